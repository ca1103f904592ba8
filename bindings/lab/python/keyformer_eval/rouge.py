"""``score``: ROUGE of the generations of ``keyformer eval`` (rouge-score and matplotlib, of the
``eval`` extra, are imported when a command needs them).

``score DIR [--json]`` reads DIR/generations.jsonl (see :mod:`keyformer_eval.records`), in
one of two modes:

- quality mode: every line has ``budget`` (the KV cache as a fraction of the prompt), except one
  line of policy ``full`` per id (the full cache) and the peers' lines (``kv-q8_0``, ``kv-q4_0``:
  the whole prompt in a quantized cache), which have ``budget`` null;
- long-document mode: every line has ``cache`` (KV cells) and ``budget`` null; there is no full line.

Each generation gets ROUGE-1, ROUGE-2 and ROUGE-L F1 (Google's rouge-score, Porter stemmer) against
its reference and, in quality mode, against the full-cache generation of the same id (``_vs_full``).
Each row also gets its KV memory as a share of the full cache's: the mean over its ids of
``kv_bytes`` over the full line's ``kv_bytes`` for the same id (null where unknown: older files,
no full line), so that rows compare at equal memory.
``score`` writes DIR/scores.jsonl (per generation), DIR/results.md (Markdown table, percent),
DIR/results.csv (the same columns, fractions 0..1) and DIR/rougeL.png, and prints the Markdown
table. With ``--json`` the last line of stdout is one JSON object, scores as fractions (4 decimals)::

    quality: {"records": N, "reading", "instruction_in_prompt", "full": {"rouge1", "rouge2", "rougeL"},
              "results": [{"policy", "budget", "n", "rouge1", "rouge2", "rougeL", "rougeL_vs_full",
                           "kv_memory"}, ...]}
    long:    {"records": N, "reading", "instruction_in_prompt",
              "results": [{"policy", "cache", "n", "rouge1", "rouge2", "rougeL", "kv_memory"}, ...]}

``records`` is the number of distinct ids, ``n`` the number of ids a row averages over;
``reading`` (``bounded``, ``whole`` or null) and ``instruction_in_prompt`` (a bool or null) those
the lines share. Results are ordered by policy (:data:`keyformer_eval.records.POLICY_ORDER`),
then budget/cache; a peer's ``budget`` is null.
"""

import json
import os
import sys

from .plots import figure, plot_policy_lines, save_figure
from .records import FULL, GENERATIONS_FILE, QUALITY, missing_extra, read_generations
from .report import (finish_report, group_runs, kv_memory, mean, plus_minus, reading_caption, reading_of,
                     render_table, round_or_none, setting_key, setting_label, sort_rows, warn, write_output,
                     write_table_csv, write_text)

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


def kv_memory_by_setting(mode, generations):
    """``{(policy, budget or cache): KV memory as a fraction of the full cache's}`` of the
    generations' runs (see :func:`keyformer_eval.report.kv_memory`)."""
    groups, full_by_id = group_runs(generations)
    return {(policy, budget if mode == QUALITY else cache): kv_memory(members, full_by_id)
            for (policy, budget, cache), members in groups.items()}


def aggregate(mode, scores, kv):
    """Means over ids for each (policy, budget or cache). Returns ``(full, rows)``: ``full`` the
    full-cache row (None in long-document mode), ``rows`` the others in the report's order; each
    row has policy, budget or cache, n, rouge1, rouge2, rougeL, kv_memory (from ``kv``, see
    :func:`kv_memory_by_setting`) and, in quality mode, rougeL_vs_full."""
    setting = setting_key(mode)
    groups = {}
    for s in scores:
        groups.setdefault((s["policy"], s[setting]), []).append(s)
    rows = []
    for (policy, value), members in groups.items():
        row = {"policy": policy, setting: value, "n": len({s["id"] for s in members})}
        row.update((t, mean(s[t] for s in members)) for t in ROUGE_TYPES)
        row["kv_memory"] = kv[(policy, value)]
        if mode == QUALITY and policy != FULL:
            row["rougeL_vs_full"] = mean(s["rougeL_vs_full"] for s in members)
        rows.append(row)
    full = next((r for r in rows if r["policy"] == FULL), None)
    return full, sort_rows(rows, setting)


def _columns(mode):
    """The fields of a result row, in the JSON results' and results.csv's order."""
    return ["policy", setting_key(mode), "n"] + list(ROUGE_TYPES) + (
        ["rougeL_vs_full"] if mode == QUALITY else []) + ["kv_memory"]


def _rounded(column, value):
    """A cell of the JSON results and results.csv: the fractions (ROUGE, KV memory) to 4 decimals."""
    return value if column in ("policy", "budget", "cache", "n") else round_or_none(value)


def summary_json(mode, records, reading, full, rows):
    """The ``--json`` object: scores as fractions rounded to 4 decimals."""
    out = dict({"records": records}, **reading)
    if mode == QUALITY:
        out["full"] = {t: round_or_none(full[t]) if full else None for t in ROUGE_TYPES}
    out["results"] = [{k: _rounded(k, r[k]) for k in _columns(mode)} for r in rows]
    return out


def _percent(value):
    """A fraction as a percent with 2 decimals; None as a dash."""
    return "—" if value is None else "%.2f" % (100 * value)


def markdown_table(mode, records, reading, full, rows):
    """The Markdown report: a caption line and the table, ROUGE F1 and the KV memory in percent."""
    if mode == QUALITY:
        caption = ("ROUGE F1 in percent (rouge-score, stemmed), mean over %d records; budget = KV cache "
                   "as a share of the prompt; ROUGE-L vs full = against the full-cache generation; KV memory = "
                   "peak KV cache bytes as a share of the full cache's, mean over records." % records)
        header = ["policy", "budget", "n", "ROUGE-1 %", "ROUGE-2 %", "ROUGE-L %", "ROUGE-L vs full %",
                  "KV memory % of full"]
    else:
        caption = ("ROUGE F1 in percent (rouge-score, stemmed), mean over %d records; long documents, "
                   "cache = KV cells; KV memory = peak KV cache bytes as a share of the full cache's." % records)
        header = ["policy", "cache", "n", "ROUGE-1 %", "ROUGE-2 %", "ROUGE-L %", "KV memory % of full"]
    body = []
    for r in ([full] if full else []) + rows:
        cells = [r["policy"], setting_label(r), str(r["n"])] + [_percent(r[t]) for t in ROUGE_TYPES]
        if mode == QUALITY:
            cells.append(_percent(r.get("rougeL_vs_full")))
        body.append(cells + [plus_minus(r["kv_memory"], None, 100, 1)])
    return render_table(caption + reading_caption(reading), header, body)


def write_csv(path, mode, full, rows):
    """results.csv: the JSON results' columns, ROUGE and the KV memory as fractions 0..1 (4 decimals)."""
    write_table_csv(path, _columns(mode), ([full] if full else []) + rows, _rounded)


def plot_rouge(path, mode, records, full, rows):
    """rougeL.png: ROUGE-L (percent) against the budget (quality mode, full cache dashed, the peers
    dotted) or the cache size in cells (long-document mode), one line per policy."""
    fig, ax = figure(7, 4.5)
    plot_policy_lines(ax, mode, rows, "rougeL", 100)
    if full is not None:
        ax.axhline(100 * full["rougeL"], linestyle="--", color="black", label="full cache")
    ax.set_title("ROUGE-L against KV cache budget (%d records)" % records if mode == QUALITY else
                 "ROUGE-L against KV cache size, long documents (%d records)" % records)
    ax.set_ylabel("ROUGE-L F1 (%)")
    ax.grid(alpha=0.3)
    save_figure(fig, (ax,), path)


def score_command(directory, as_json, out=None):
    """``score DIR [--json]``: scores DIR/generations.jsonl, writes the reports, prints the table
    (to ``out``, default stdout)."""
    out = out or sys.stdout
    mode, generations = read_generations(os.path.join(directory, GENERATIONS_FILE))
    scores = score_generations(mode, generations, warn=warn)
    records = len({g.id for g in generations})
    reading = reading_of(generations)
    full, rows = aggregate(mode, scores, kv_memory_by_setting(mode, generations))
    table = markdown_table(mode, records, reading, full, rows)
    lines = "".join(json.dumps({k: round_or_none(v) if k.startswith("rouge") else v for k, v in s.items()}) + "\n"
                    for s in scores)
    written = [write_output(directory, SCORES_FILE, lambda p: write_text(p, lines)),
               write_output(directory, "results.md", lambda p: write_text(p, table)),
               write_output(directory, "results.csv", lambda p: write_csv(p, mode, full, rows)),
               write_output(directory, "rougeL.png", lambda p: plot_rouge(p, mode, records, full, rows))]
    finish_report(out, table, written, summary_json(mode, records, reading, full, rows) if as_json else None)
