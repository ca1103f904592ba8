"""``score``: ROUGE of the generations of ``keyformer eval`` (rouge-score and matplotlib, of the
``eval`` extra, are imported when a command needs them).

``score DIR [--json]`` reads DIR/generations.jsonl (see :mod:`keyformer.evaluate.records`), in
one of two modes:

- quality mode: every line has ``budget`` (the KV cache as a fraction of the prompt), except one
  line of policy ``full`` per id (the full cache, ``budget`` null);
- long-document mode: every line has ``cache`` (KV cells) and ``budget`` null; there is no full line.

Each generation gets ROUGE-1, ROUGE-2 and ROUGE-L F1 (Google's rouge-score, Porter stemmer) against
its reference and, in quality mode, against the full-cache generation of the same id (``_vs_full``).
``score`` writes DIR/scores.jsonl (per generation), DIR/results.md (Markdown table, percent),
DIR/results.csv (the same columns, fractions 0..1) and DIR/rougeL.png, and prints the Markdown
table. With ``--json`` the last line of stdout is one JSON object, scores as fractions (4 decimals)::

    quality: {"records": N, "full": {"rouge1", "rouge2", "rougeL"},
              "results": [{"policy", "budget", "n", "rouge1", "rouge2", "rougeL", "rougeL_vs_full"}, ...]}
    long:    {"records": N, "results": [{"policy", "cache", "n", "rouge1", "rouge2", "rougeL"}, ...]}

``records`` is the number of distinct ids, ``n`` the number of ids a row averages over. Results
are ordered by policy (:data:`keyformer.evaluate.records.POLICY_ORDER`), then budget/cache.
"""

import json
import os
import sys

from .plots import figure
from .records import FULL, GENERATIONS_FILE, QUALITY, missing_extra, read_generations
from .report import (by_policy, finish_report, mean, render_table, round_or_none, setting_key, setting_label,
                     sort_rows, warn, write_output, write_table_csv, write_text)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
#: What ``score`` writes per generation, and ``compare`` reads a ROUGE metric from.
SCORES_FILE = "scores.jsonl"


def _rouge_scorer():
    """Google's ROUGE scorer (ROUGE-1, -2, -L, Porter stemmer); an EvaluateError naming the
    ``eval`` extra when rouge-score is not installed."""
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise missing_extra("rouge-score", e) from e
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def score_generations(mode, generations, warn=None):
    """ROUGE F1 of every generation against its reference and, in quality mode, against the
    full-cache generation of its id. Returns one dict per generation (the scores.jsonl lines).
    ``warn`` (a function of one string) hears about ids that lack a full-cache line."""
    scorer = _rouge_scorer()
    full = {g.id: g for g in generations if g.policy == FULL}
    if mode == QUALITY and warn is not None:
        lacking = sorted({str(g.id) for g in generations if g.id not in full})
        if lacking:
            warn("%d id(s) have no full-cache generation, left out of ROUGE vs full: %s"
                 % (len(lacking), ", ".join(lacking[:10]) + (", ..." if len(lacking) > 10 else "")))
    scores = []
    for g in generations:
        row = {"id": g.id, "policy": g.policy}
        row["budget" if mode == QUALITY else "cache"] = g.budget if mode == QUALITY else g.cache
        vs_ref = scorer.score(g.reference, g.text)
        row.update((t, vs_ref[t].fmeasure) for t in ROUGE_TYPES)
        if mode == QUALITY:
            reference = full.get(g.id) if g.policy != FULL else None
            vs_full = scorer.score(reference.text, g.text) if reference is not None else None
            row.update((t + "_vs_full", vs_full[t].fmeasure if vs_full else None) for t in ROUGE_TYPES)
        scores.append(row)
    return scores


def aggregate(mode, scores):
    """Means over ids for each (policy, budget or cache). Returns ``(full, rows)``: ``full`` the
    full-cache row (None in long-document mode), ``rows`` the others in the report's order; each
    row has policy, budget or cache, n, rouge1, rouge2, rougeL (and rougeL_vs_full in quality mode)."""
    setting = setting_key(mode)
    groups = {}
    for s in scores:
        groups.setdefault((s["policy"], s[setting]), []).append(s)
    rows = []
    for (policy, value), members in groups.items():
        row = {"policy": policy, setting: value, "n": len({s["id"] for s in members})}
        row.update((t, mean(s[t] for s in members)) for t in ROUGE_TYPES)
        if mode == QUALITY and policy != FULL:
            row["rougeL_vs_full"] = mean(s["rougeL_vs_full"] for s in members)
        rows.append(row)
    full = next((r for r in rows if r["policy"] == FULL), None)
    return full, sort_rows(rows, setting)


def summary_json(mode, records, full, rows):
    """The ``--json`` object: scores as fractions rounded to 4 decimals."""
    keys = ["policy", setting_key(mode), "n"] + list(ROUGE_TYPES)
    if mode == QUALITY:
        keys.append("rougeL_vs_full")
    out = {"records": records}
    if mode == QUALITY:
        out["full"] = {t: round_or_none(full[t]) if full else None for t in ROUGE_TYPES}
    out["results"] = [{k: round_or_none(r[k]) if k in ROUGE_TYPES or k.endswith("_vs_full") else r[k] for k in keys}
                      for r in rows]
    return out


def _percent(value):
    """A fraction as a percent with 2 decimals; None as a dash."""
    return "—" if value is None else "%.2f" % (100 * value)


def markdown_table(mode, records, full, rows):
    """The Markdown report: a caption line and the table, ROUGE F1 in percent with 2 decimals."""
    if mode == QUALITY:
        caption = ("ROUGE F1 in percent (rouge-score, stemmed), mean over %d records; budget = KV cache "
                   "as a share of the prompt; ROUGE-L vs full = against the full-cache generation." % records)
        header = ["policy", "budget", "n", "ROUGE-1 %", "ROUGE-2 %", "ROUGE-L %", "ROUGE-L vs full %"]
    else:
        caption = ("ROUGE F1 in percent (rouge-score, stemmed), mean over %d records; long documents, "
                   "cache = KV cells." % records)
        header = ["policy", "cache", "n", "ROUGE-1 %", "ROUGE-2 %", "ROUGE-L %"]
    body = []
    for r in ([full] if full else []) + rows:
        cells = [r["policy"], setting_label(r), str(r["n"])] + [_percent(r[t]) for t in ROUGE_TYPES]
        if mode == QUALITY:
            cells.append(_percent(r.get("rougeL_vs_full")))
        body.append(cells)
    return render_table(caption, header, body)


def write_csv(path, mode, full, rows):
    """results.csv: the Markdown table's columns, ROUGE as fractions 0..1 (4 decimals)."""
    columns = ["policy", setting_key(mode), "n"] + list(ROUGE_TYPES) + (["rougeL_vs_full"] if mode == QUALITY else [])
    write_table_csv(path, columns, ([full] if full else []) + rows,
                    lambda c, v: round_or_none(v) if c in ROUGE_TYPES or c.endswith("_vs_full") else v)


def plot_rouge(path, mode, records, full, rows):
    """rougeL.png: ROUGE-L (percent) against the budget (quality mode, full cache dashed) or the
    cache size in cells (long-document mode), one line per policy."""
    fig, ax = figure(7, 4.5)
    setting = setting_key(mode)
    scale = 100 if mode == QUALITY else 1
    for policy, prows in by_policy(rows).items():
        ax.plot([scale * r[setting] for r in prows], [100 * r["rougeL"] for r in prows], marker="o", label=policy)
    if full is not None:
        ax.axhline(100 * full["rougeL"], linestyle="--", color="black", label="full cache")
    if mode == QUALITY:
        ax.set_title("ROUGE-L against KV cache budget (%d records)" % records)
        ax.set_xlabel("KV cache budget (% of the prompt)")
    else:
        ax.set_title("ROUGE-L against KV cache size, long documents (%d records)" % records)
        ax.set_xlabel("KV cache (cells)")
    ax.set_ylabel("ROUGE-L F1 (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def score_command(directory, as_json, out=None):
    """``score DIR [--json]``: scores DIR/generations.jsonl, writes the reports, prints the table
    (to ``out``, default stdout)."""
    out = out or sys.stdout
    mode, generations = read_generations(os.path.join(directory, GENERATIONS_FILE))
    scores = score_generations(mode, generations, warn=warn)
    records = len({g.id for g in generations})
    full, rows = aggregate(mode, scores)
    table = markdown_table(mode, records, full, rows)
    lines = "".join(json.dumps({k: round_or_none(v) if k.startswith("rouge") else v for k, v in s.items()}) + "\n"
                    for s in scores)
    written = [write_output(directory, SCORES_FILE, lambda p: write_text(p, lines)),
               write_output(directory, "results.md", lambda p: write_text(p, table)),
               write_output(directory, "results.csv", lambda p: write_csv(p, mode, full, rows)),
               write_output(directory, "rougeL.png", lambda p: plot_rouge(p, mode, records, full, rows))]
    finish_report(out, table, written, summary_json(mode, records, full, rows) if as_json else None)
