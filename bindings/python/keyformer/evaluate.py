"""Scoring and plots for ``keyformer eval`` and ``keyformer bench`` (pure Python, no libkeyformer).

Usage (PYTHONPATH=bindings/python; the dependencies are in bindings/python/requirements-eval.txt,
installed into build/deps/venv by build/venv.sh)::

    python -m keyformer.evaluate score DIR [--json]
    python -m keyformer.evaluate compare DIR POLICY_A POLICY_B [--metric rougeL|top1|kl|nll|ref_nll|...]
    python -m keyformer.evaluate plot-bench BENCH_JSON OUT_PNG
    python -m keyformer.evaluate fidelity DIR [--json]
    python -m keyformer.evaluate questions DIR [--json]
    python -m keyformer.evaluate tune DIR [--target 0.99] [--json]

This module is the one entry point; ``fidelity`` and ``tune`` are in keyformer/eval_fidelity.py
and ``questions`` in keyformer/eval_questions.py, whose docstrings give their input schemas
(fidelity.jsonl, sparsity.jsonl, answers.jsonl) and outputs. They share this module's reading,
statistics, table, CSV and plotting helpers.

``score`` reads DIR/generations.jsonl, one JSON object per generation with the fields ``id``,
``policy``, ``budget``, ``cache``, ``text`` and ``reference`` (``prompt_tokens``, ``kv_cells`` and
``generated_tokens`` are allowed and not used). When a line appears again for the same id, policy
and budget or cache (a resumed run), the last one wins. The data is in one of two modes:

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
are ordered by policy (keyformer, h2o, tova, streaming, window, context-shift), then budget/cache.

``compare`` reads DIR/scores.jsonl (a ROUGE metric) or DIR/fidelity.jsonl (``--metric`` top1,
kl, nll or ref_nll) and prints, per budget (or cache), the paired difference of two policies'
scores over the records both have: its mean and standard error, in points (kl, nll, ref_nll in nats).

``plot-bench`` reads the bench.json of ``keyformer bench`` and plots decode tokens/s against
context (one line per budget, plain llama.cpp separate) and measured against ideal decode speedup.

Bad input exits with status 1 and a one-line message naming the file (and line or row).
"""

import argparse
import csv
import json
import math
import os
import sys
from collections import namedtuple

#: The order of the policies in tables, plots and JSON results (``full`` comes first, apart).
POLICY_ORDER = ("keyformer", "h2o", "tova", "streaming", "window", "context-shift")
FULL = "full"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
QUALITY = "quality"
LONG = "long-document"

GENERATION_FIELDS = ("id", "policy", "budget", "cache", "text", "reference")
#: The per-record fidelity metrics ``compare --metric`` takes from fidelity.jsonl.
FIDELITY_METRICS = ("top1", "kl", "nll", "ref_nll")
BENCH_ROW_FIELDS = ("context", "budget", "decode_tok_per_s", "speedup", "ideal_speedup")

#: One line of generations.jsonl.
Generation = namedtuple("Generation", "id policy budget cache text reference")


class EvaluateError(Exception):
    """Bad input or an output that cannot be written; the message names the file (and line)."""


# --- reading ------------------------------------------------------------------------------------

def _is_number(value):
    """Whether ``value`` is a finite JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def iter_jsonl(path):
    """Yields ``(number, where, obj)`` for every non-blank line of the JSONL file at ``path``: its
    1-based line number, ``"PATH:LINE"`` for messages, and the decoded JSON value. Raises
    :class:`EvaluateError` when the file cannot be read or a line is not valid JSON (naming the line)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluateError("cannot read %s: %s" % (path, e)) from e
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = "%s:%d" % (path, number)
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise EvaluateError("%s: not valid JSON: %s" % (where, e)) from e
        yield number, where, obj


def require_fields(obj, fields, where):
    """Checks that ``obj`` is a JSON object holding every name in ``fields`` (the message names the
    missing ones, in the order given)."""
    if not isinstance(obj, dict):
        raise EvaluateError("%s: expected a JSON object, got %s" % (where, type(obj).__name__))
    missing = [f for f in fields if f not in obj]
    if missing:
        raise EvaluateError("%s: missing field%s %s" % (
            where, "s" if len(missing) > 1 else "", ", ".join(repr(f) for f in missing)))


def check_run_key(obj, where):
    """Checks the fields that name a run in every eval JSONL file: ``id`` (a string or an integer),
    ``policy`` (``full`` or one of :data:`POLICY_ORDER`), ``budget`` (a positive number or null) and
    ``cache`` (a positive integer or null, never both set). Returns ``(id, policy, budget, cache)``."""
    rid, policy, budget, cache = obj["id"], obj["policy"], obj["budget"], obj["cache"]
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise EvaluateError("%s: 'id' must be a string or an integer, got %r" % (where, rid))
    if policy != FULL and policy not in POLICY_ORDER:
        raise EvaluateError("%s: unknown policy %r (known: %s)" % (
            where, policy, ", ".join((FULL,) + POLICY_ORDER)))
    if budget is not None and not (_is_number(budget) and budget > 0):
        raise EvaluateError("%s: 'budget' must be a positive number or null, got %r" % (where, budget))
    if cache is not None and not (isinstance(cache, int) and not isinstance(cache, bool) and cache > 0):
        raise EvaluateError("%s: 'cache' must be a positive integer or null, got %r" % (where, cache))
    if budget is not None and cache is not None:
        raise EvaluateError("%s: a line has 'budget' (quality mode) or 'cache' (long-document mode), "
                            "not both" % where)
    return rid, policy, budget, cache


def _parse_generation(obj, where):
    """Checks one decoded line of generations.jsonl and returns it as a :class:`Generation`."""
    require_fields(obj, GENERATION_FIELDS, where)
    rid, policy, budget, cache = check_run_key(obj, where)
    for field in ("text", "reference"):
        if not isinstance(obj[field], str):
            raise EvaluateError("%s: %r must be a string, got %r" % (where, field, obj[field]))
    return Generation(rid, policy, budget, cache, obj["text"], obj["reference"])


def _line_mode(run, where, full_in_long=False):
    """The mode one line belongs to (QUALITY or LONG), after checking that its policy fits that
    mode. With ``full_in_long`` a full-cache line (``budget`` and ``cache`` null) fits either mode
    and gets None; without it a full line is a quality-mode line."""
    if run.policy == FULL and run.cache is not None:
        if full_in_long:
            raise EvaluateError("%s: policy 'full' must have 'budget' and 'cache' null, got cache %r"
                                % (where, run.cache))
        raise EvaluateError("%s: policy 'full' with a 'cache': long-document mode has no full-cache line"
                            % where)
    if run.cache is not None:
        return LONG
    if run.policy == FULL and run.budget is not None:
        raise EvaluateError("%s: policy 'full' must have 'budget' null, got %r" % (where, run.budget))
    if run.policy != FULL and run.budget is None:
        raise EvaluateError("%s: policy %r needs a 'budget' (quality mode) or a 'cache' (long-document mode)"
                            % (where, run.policy))
    return None if run.policy == FULL and full_in_long else QUALITY


def read_runs(path, parse, what, full_in_long=False, key=None):
    """Reads an eval JSONL file of runs: ``parse(obj, where)`` checks one decoded line and returns
    a record with the attributes ``id``, ``policy``, ``budget`` and ``cache``. Checks that all lines
    are in one mode (see :func:`_line_mode`; ``full_in_long`` allows full-cache lines in
    long-document mode) and keeps the last line for each ``key(record)`` (default: id, policy,
    budget, cache). Returns ``(mode, records)``; ``what`` names the records in the message for an
    empty file. Raises :class:`EvaluateError` naming the file and line on bad input."""
    key = key or (lambda r: (r.id, r.policy, r.budget, r.cache))
    mode, mode_line = None, 0
    latest = {}
    for number, where, obj in iter_jsonl(path):
        run = parse(obj, where)
        line_mode = _line_mode(run, where, full_in_long)
        if line_mode is None:
            pass
        elif mode is None:
            mode, mode_line = line_mode, number
        elif line_mode != mode:
            raise EvaluateError("%s: a %s-mode line in a %s-mode file (line %d sets the mode: "
                                "quality lines have 'budget', long-document lines have 'cache')"
                                % (where, line_mode, mode, mode_line))
        latest[key(run)] = run
    if not latest:
        raise EvaluateError("%s: no %s (the file is empty)" % (path, what))
    return mode or QUALITY, list(latest.values())


def read_generations(path):
    """Reads generations.jsonl: returns ``(mode, generations)``, the last line winning for each
    (id, policy, budget or cache). Raises :class:`EvaluateError` naming the line on bad input."""
    return read_runs(path, _parse_generation, "generations")


# --- scoring ------------------------------------------------------------------------------------

def _rouge_scorer():
    """Google's ROUGE scorer (ROUGE-1, -2, -L, Porter stemmer); an EvaluateError when it is not installed."""
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise EvaluateError("rouge-score is not installed for %s (%s): run build/venv.sh, or "
                            "pip install -r bindings/python/requirements-eval.txt" % (sys.executable, e)) from e
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


def _mean(values):
    """The mean of the non-null values (None when there are none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def mean_se(values):
    """``(n, mean, se)`` over the non-null values: ``se`` is the sample standard deviation (n - 1 in
    the denominator) over the square root of n. ``mean`` is None when n is 0, ``se`` when n < 2."""
    values = [v for v in values if v is not None]
    n = len(values)
    if n == 0:
        return 0, None, None
    mean = sum(values) / n
    if n < 2:
        return n, mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return n, mean, sd / math.sqrt(n)


def paired_differences(a, b):
    """``a[k] - b[k]`` for every key of the dict ``a`` that the dict ``b`` also has, where neither
    value is None (in ``a``'s order): the paired differences over the records both have."""
    return [a[k] - b[k] for k in a if k in b and a[k] is not None and b[k] is not None]


def setting_key(mode):
    """The field that sizes the cache in ``mode``: ``budget`` (quality) or ``cache`` (long-document)."""
    return "budget" if mode == QUALITY else "cache"


def sort_rows(rows, setting):
    """The non-full rows in the report's order: by policy (:data:`POLICY_ORDER`), then ``setting``."""
    return sorted((r for r in rows if r["policy"] != FULL),
                  key=lambda r: (POLICY_ORDER.index(r["policy"]), r[setting]))


def aggregate(mode, scores):
    """Means over ids for each (policy, budget or cache). Returns ``(full, rows)``: ``full`` the
    full-cache row (None in long-document mode), ``rows`` the others in the report's order; each
    row has policy, budget or cache, n, rouge1, rouge2, rougeL (and rougeL_vs_full in quality mode)."""
    setting = "budget" if mode == QUALITY else "cache"
    groups = {}
    for s in scores:
        groups.setdefault((s["policy"], s[setting]), []).append(s)
    rows = []
    for (policy, value), members in groups.items():
        row = {"policy": policy, setting: value, "n": len({s["id"] for s in members})}
        row.update((t, _mean(s[t] for s in members)) for t in ROUGE_TYPES)
        if mode == QUALITY and policy != FULL:
            row["rougeL_vs_full"] = _mean(s["rougeL_vs_full"] for s in members)
        rows.append(row)
    full = next((r for r in rows if r["policy"] == FULL), None)
    return full, sort_rows(rows, setting)


def _round(value, digits=4):
    """``value`` rounded to ``digits`` decimals (None stays None)."""
    return None if value is None else round(value, digits)


def round_cell(column, value, digits=6):
    """A float ``value`` rounded to ``digits`` decimals, unless its ``column`` is ``budget`` (a
    setting, kept as given); other values as they are."""
    return _round(value, digits) if isinstance(value, float) and column != "budget" else value


def round_row(row, keys=None, digits=6):
    """``row`` restricted to ``keys`` (default: all of it), each cell through :func:`round_cell`
    (a nested dict likewise): a JSON result row."""
    return {k: round_row(row[k], digits=digits) if isinstance(row[k], dict) else round_cell(k, row[k], digits)
            for k in (keys or row)}


def summary_json(mode, records, full, rows):
    """The ``--json`` object: scores as fractions rounded to 4 decimals."""
    keys = ["policy", "budget" if mode == QUALITY else "cache", "n"] + list(ROUGE_TYPES)
    if mode == QUALITY:
        keys.append("rougeL_vs_full")
    out = {"records": records}
    if mode == QUALITY:
        out["full"] = {t: _round(full[t]) if full else None for t in ROUGE_TYPES}
    out["results"] = [{k: _round(r[k]) if k in ROUGE_TYPES or k.endswith("_vs_full") else r[k] for k in keys}
                      for r in rows]
    return out


# --- tables -------------------------------------------------------------------------------------

def _percent(value):
    """A fraction as a percent with 2 decimals; None as a dash."""
    return "—" if value is None else "%.2f" % (100 * value)


def _budget_label(budget):
    """A budget fraction as a percent label (0.5: ``50%``)."""
    return "%g%%" % (100 * budget)


def plus_minus(mean, se, scale=1, digits=4, signed=False):
    """``mean ± se``, both times ``scale`` with ``digits`` decimals (``mean`` with its sign when
    ``signed``); only the mean when ``se`` is None; a dash when ``mean`` is None."""
    if mean is None:
        return "—"
    text = ("%+.*f" if signed else "%.*f") % (digits, scale * mean)
    return text if se is None else "%s ± %.*f" % (text, digits, scale * se)


def setting_label(row):
    """The budget or cache column of a table row: a dash for the full cache, ``50%`` for a
    budget, the number of cells for a cache."""
    if row["policy"] == FULL:
        return "—"
    if row.get("budget") is not None:
        return _budget_label(row["budget"])
    return str(row["cache"])


def render_table(caption, header, body, notes=()):
    """A Markdown report: the caption line, a blank line, the table (first column left-aligned,
    the others right-aligned; ``body`` a list of rows of cell strings) and then each of ``notes``
    as a line of its own after a blank line."""
    lines = [caption, "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if notes:
        lines.append("")
        lines += list(notes)
    return "\n".join(lines) + "\n"


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


def write_table_csv(path, columns, rows, value=None):
    """Writes ``rows`` (dicts) to the CSV file ``path``: a header of ``columns``, then a line per
    row; ``value(column, v)`` formats a cell (default: as is), a missing or None cell is empty."""
    value = value or (lambda column, v: v)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else value(c, r[c]) for c in columns])


def write_csv(path, mode, full, rows):
    """results.csv: the Markdown table's columns, ROUGE as fractions 0..1 (4 decimals)."""
    columns = ["policy", setting_key(mode), "n"] + list(ROUGE_TYPES) + (["rougeL_vs_full"] if mode == QUALITY else [])
    write_table_csv(path, columns, ([full] if full else []) + rows,
                    lambda c, v: _round(v) if c in ROUGE_TYPES or c.endswith("_vs_full") else v)


# --- plots --------------------------------------------------------------------------------------

def _figure(width, height, ncols=1):
    """A matplotlib figure drawn by the Agg backend (no pyplot, no display) and its axes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise EvaluateError("matplotlib is not installed for %s (%s): run build/venv.sh, or "
                            "pip install -r bindings/python/requirements-eval.txt" % (sys.executable, e)) from e
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _save_figure(fig, axes, path):
    """Adds a legend to each of ``axes`` that has labelled lines, lays ``fig`` out and writes it
    to ``path`` (PNG, 120 dpi)."""
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _by_policy(rows):
    """The rows grouped by policy (a dict in the rows' order)."""
    policies = {}
    for r in rows:
        policies.setdefault(r["policy"], []).append(r)
    return policies


def plot_policy_lines(ax, mode, rows, metric, scale=1):
    """Draws ``metric`` (times ``scale``) of ``rows`` against the budget (percent) or the cache
    (cells) on ``ax``, a line per policy with error bars of ±1 SE (``metric + "_se"``; none where
    it is None); labels the x axis. Returns ``{policy: colour}``."""
    setting = setting_key(mode)
    xscale = 100 if mode == QUALITY else 1
    colours = {}
    for policy, prows in _by_policy(rows).items():
        drawn = ax.errorbar([xscale * r[setting] for r in prows],
                            [float("nan") if r[metric] is None else scale * r[metric] for r in prows],
                            yerr=[scale * (r[metric + "_se"] or 0) for r in prows], marker="o", capsize=3,
                            label=policy)
        colours[policy] = drawn.lines[0].get_color()
    ax.set_xlabel("KV cache budget (% of the prompt)" if mode == QUALITY else "KV cache (cells)")
    return colours


def plot_rouge(path, mode, records, full, rows):
    """rougeL.png: ROUGE-L (percent) against the budget (quality mode, full cache dashed) or the
    cache size in cells (long-document mode), one line per policy."""
    fig, ax = _figure(7, 4.5)
    setting = "budget" if mode == QUALITY else "cache"
    scale = 100 if mode == QUALITY else 1
    for policy, prows in _by_policy(rows).items():
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


def bench_series(rows):
    """Groups bench.json rows into series, one per configuration less its budget ("keyformer
    0.5" and "streaming 0.5" apart, "full" and "full all" apart): ``[(label, budget, rows by
    context)]``, plain llama.cpp first. A row without ``config`` is named by its budget."""
    groups = {}
    for row in rows:
        words = (row.get("config") or ("none" if row["budget"] is None else "keyformer")).split()
        if len(words) > 1 and _is_number(_float_or_none(words[-1])):
            words = words[:-1]
        groups.setdefault((" ".join(words), row["budget"]), []).append(row)
    series = []
    for (kind, budget), group in sorted(groups.items(), key=lambda kv: (kv[0][1] is not None, -(kv[0][1] or 0), kv[0][0])):
        if budget is None:
            label = "plain llama.cpp"
        elif budget >= 1:
            label = "hook, no eviction" if kind == "full" else "hook reading everything, no eviction" \
                if kind == "full all" else "%s, no eviction" % kind
        else:
            label = "%s %s" % (kind, _budget_label(budget))
        series.append((label, budget, sorted(group, key=lambda r: r["context"])))
    return series


def _float_or_none(text):
    """``float(text)``, or None where text is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def read_bench(path):
    """Reads and checks bench.json; returns the decoded object."""
    try:
        with open(path, encoding="utf-8") as f:
            bench = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluateError("cannot read %s: %s" % (path, e)) from e
    except ValueError as e:
        raise EvaluateError("%s: not valid JSON: %s" % (path, e)) from e
    if not isinstance(bench, dict):
        raise EvaluateError("%s: expected a JSON object" % path)
    missing = [f for f in ("model", "machine", "gen", "rows") if f not in bench]
    if missing:
        raise EvaluateError("%s: missing field(s) %s" % (path, ", ".join(repr(f) for f in missing)))
    if not isinstance(bench["rows"], list) or not bench["rows"]:
        raise EvaluateError("%s: 'rows' must be a non-empty list" % path)
    for i, row in enumerate(bench["rows"]):
        where = "%s: rows[%d]" % (path, i)
        if not isinstance(row, dict):
            raise EvaluateError("%s: expected a JSON object" % where)
        missing = [f for f in BENCH_ROW_FIELDS if f not in row]
        if missing:
            raise EvaluateError("%s: missing field(s) %s" % (where, ", ".join(repr(f) for f in missing)))
        if not (isinstance(row["context"], int) and row["context"] > 0):
            raise EvaluateError("%s: 'context' must be a positive integer, got %r" % (where, row["context"]))
        for field, nullable in (("budget", True), ("decode_tok_per_s", False), ("speedup", False),
                                ("ideal_speedup", True)):
            if not (_is_number(row[field]) or (nullable and row[field] is None)):
                raise EvaluateError("%s: %r must be a number%s, got %r" % (
                    where, field, " or null" if nullable else "", row[field]))
    return bench


def plot_bench(bench, path):
    """Two panels: decode tokens/s against context per configuration (:func:`bench_series`), and
    measured (solid) against ideal (dashed) decode speedup for every one below budget 1."""
    fig, (tps, speed) = _figure(12, 4.5, ncols=2)
    series = bench_series(bench["rows"])
    contexts = sorted({row["context"] for row in bench["rows"]})
    colors = {}
    for label, budget, rows in series:
        line, = tps.plot([r["context"] for r in rows], [r["decode_tok_per_s"] for r in rows], marker="o",
                         linestyle=":" if budget is None else "-", color="black" if budget is None else None,
                         label=label)
        colors[label] = line.get_color()
    tps.set_title("decode speed")
    tps.set_ylabel("decode tokens/s")
    reduced = [(label, budget, rows) for label, budget, rows in series if budget is not None and budget < 1]
    ideals = set()
    for label, budget, rows in reduced:
        speed.plot([r["context"] for r in rows], [r["speedup"] for r in rows], marker="o", color=colors[label],
                   label="%s measured" % label)
        ideal = [r for r in rows if r["ideal_speedup"] is not None]
        if ideal and budget not in ideals:  # one ideal per budget, whichever policy
            ideals.add(budget)
            speed.plot([r["context"] for r in ideal], [r["ideal_speedup"] for r in ideal], linestyle="--",
                       color=colors[label], label="budget %s ideal" % _budget_label(budget))
    speed.axhline(1, color="grey", linewidth=0.8)
    speed.set_title("decode speedup over plain llama.cpp")
    speed.set_ylabel("speedup (×)")
    if not reduced:
        speed.text(0.5, 0.5, "no budget below 100%", transform=speed.transAxes, ha="center")
    for ax in (tps, speed):
        ax.set_xscale("log", base=2)
        ax.set_xticks(contexts)
        ax.set_xticklabels([str(c) for c in contexts])
        ax.minorticks_off()
        ax.set_xlabel("context (tokens)")
        ax.grid(alpha=0.3)
    fig.suptitle("%s on %s, %s generated tokens" % (bench["model"], bench["machine"], bench["gen"]))
    _save_figure(fig, (tps, speed), path)


# --- commands -----------------------------------------------------------------------------------

def _warn(message):
    """Prints a warning line to stderr."""
    print("keyformer.evaluate: warning: %s" % message, file=sys.stderr)


def write_output(directory, name, write):
    """Calls ``write(path)`` for the report DIR/name and returns the path; an OSError becomes an
    :class:`EvaluateError` naming the file."""
    path = os.path.join(directory, name)
    try:
        write(path)
    except OSError as e:
        raise EvaluateError("cannot write %s: %s" % (path, e)) from e
    return path


def write_text(path, text):
    """Writes ``text`` to the file ``path`` (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def finish_report(out, text, written, summary=None):
    """Prints a command's Markdown ``text``, the files it wrote and, when ``summary`` is given (the
    ``--json`` object), that object as the last line."""
    out.write(text)
    out.write("\nwrote %s\n" % ", ".join(written))
    if summary is not None:
        out.write(json.dumps(summary) + "\n")


def score_command(directory, as_json, out=None):
    """``score DIR [--json]``: scores DIR/generations.jsonl, writes the reports, prints the table
    (to ``out``, default stdout)."""
    out = out or sys.stdout
    mode, generations = read_generations(os.path.join(directory, "generations.jsonl"))
    scores = score_generations(mode, generations, warn=_warn)
    records = len({g.id for g in generations})
    full, rows = aggregate(mode, scores)
    table = markdown_table(mode, records, full, rows)
    lines = "".join(json.dumps({k: _round(v) if k.startswith("rouge") else v for k, v in s.items()}) + "\n"
                    for s in scores)
    written = [write_output(directory, "scores.jsonl", lambda p: write_text(p, lines)),
               write_output(directory, "results.md", lambda p: write_text(p, table)),
               write_output(directory, "results.csv", lambda p: write_csv(p, mode, full, rows)),
               write_output(directory, "rougeL.png", lambda p: plot_rouge(p, mode, records, full, rows))]
    finish_report(out, table, written, summary_json(mode, records, full, rows) if as_json else None)


def compare_command(directory, policy_a, policy_b, metric="rougeL", out=None, against=None):
    """``compare DIR A B``: the paired difference A - B of ``metric`` at every budget or cache size
    both policies have: its mean over the ids that have both, with its standard error. B may be
    ``full`` (one line per id, paired with A at every budget). With ``against`` (another eval
    folder, e.g. the same policy under another observation schedule), B's values come from there.
    A ROUGE metric comes from DIR/scores.jsonl (which ``score`` writes), in points; a fidelity
    metric (top1 in percentage points; kl, nll, ref_nll in nats) from DIR/fidelity.jsonl. Prints a
    Markdown table (to ``out``, default stdout)."""
    out = out or sys.stdout
    path, by = _metric_by_run(directory, metric)
    by_b = by if against is None else _metric_by_run(against, metric)[1]
    if metric in FIDELITY_METRICS:
        scale, unit, fmt = (100, "percentage points", "%+.2f | %.2f") if metric == "top1" else \
            (1, "nats", "%+.4f | %.4f")
    else:
        scale, unit, fmt = 100, "F1 in points", "%+.2f | %.2f"
    sizes = {size for (policy, size, _) in by if policy == policy_a and size is not None}
    if not sizes:
        raise EvaluateError("%s: no %s of policy %r" % (
            path, "lines" if metric in FIDELITY_METRICS else "generations", policy_a))
    if policy_b != FULL:
        sizes &= {size for (policy, size, _) in by_b if policy == policy_b}
        if not sizes:
            raise EvaluateError("%s: no budget or cache size has both %s and %s" % (path, policy_a, policy_b))
    out.write("%s - %s%s, %s in %s: mean of the paired differences over records +- its standard error\n\n"
              % (policy_a, policy_b, "" if against is None else " of " + against, metric, unit))
    out.write("| budget or cache | n | mean difference | standard error |\n|---:|---:|---:|---:|\n")
    for size in sorted(sizes):
        a = {rid: v for (policy, s, rid), v in by.items() if policy == policy_a and s == size}
        b = {rid: v for (policy, s, rid), v in by_b.items()
             if policy == policy_b and s == (None if policy_b == FULL else size)}
        n, mean, se = mean_se([scale * d for d in paired_differences(a, b)])
        if n < 2:
            raise EvaluateError("%s: fewer than 2 records with both %s and %s at %s" % (path, policy_a, policy_b, size))
        label = _budget_label(size) if isinstance(size, float) else "%d cells" % size
        out.write(("| %s | %d | " + fmt + " |\n") % (label, n, mean, se))


def _metric_by_run(directory, metric):
    """``(path, {(policy, budget or cache, id): value})`` of ``metric`` in the eval folder: a
    fidelity metric from its fidelity.jsonl, a ROUGE score from its scores.jsonl."""
    if metric in FIDELITY_METRICS:
        from . import eval_fidelity
        path = os.path.join(directory, eval_fidelity.FIDELITY_FILE)
        return path, eval_fidelity.metric_by_run(path, metric)
    path = os.path.join(directory, "scores.jsonl")
    return path, _read_scores(path, metric)


def _read_scores(path, metric):
    """``{(policy, budget or cache, id): value}`` of ``metric`` from scores.jsonl."""
    by = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                    size = row.get("budget") if row.get("cache") is None else row["cache"]
                    by[(row["policy"], size, row["id"])] = row[metric]
                except (ValueError, KeyError, TypeError) as e:
                    raise EvaluateError("%s:%d: %s" % (path, n, e)) from e
    except OSError as e:
        raise EvaluateError("cannot read %s (run `score` first): %s" % (path, e)) from e
    return by


def plot_bench_command(bench_path, png_path, out=None):
    """``plot-bench BENCH_JSON OUT_PNG``: plots bench.json into OUT_PNG and says so on ``out``
    (default stdout)."""
    out = out or sys.stdout
    bench = read_bench(bench_path)
    try:
        plot_bench(bench, png_path)
    except OSError as e:
        raise EvaluateError("cannot write %s: %s" % (png_path, e)) from e
    out.write("wrote %s\n" % png_path)


def main(argv=None):
    """The command line; returns the exit status (argparse exits with 2 on a usage error)."""
    parser = argparse.ArgumentParser(prog="python -m keyformer.evaluate",
                                     description="Score `keyformer eval` runs and plot `keyformer bench` runs.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    score = commands.add_parser("score", help="ROUGE of DIR/generations.jsonl: tables, plot, scores")
    score.add_argument("dir", metavar="DIR", help="the eval folder (holds generations.jsonl)")
    score.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the results")
    compare = commands.add_parser("compare", help="paired difference of two policies per budget (after score)")
    compare.add_argument("dir", metavar="DIR", help="the eval folder (holds scores.jsonl)")
    compare.add_argument("a", metavar="A", help="a policy")
    compare.add_argument("b", metavar="B", help="the policy subtracted (full: the full cache)")
    compare.add_argument("--metric", default="rougeL",
                         choices=ROUGE_TYPES + tuple(t + "_vs_full" for t in ROUGE_TYPES) + FIDELITY_METRICS,
                         help="a ROUGE score (from scores.jsonl) or a fidelity metric (from fidelity.jsonl)")
    compare.add_argument("--against", metavar="DIR2",
                         help="read B from this eval folder instead (e.g. B under another observation schedule)")
    plot = commands.add_parser("plot-bench", help="plot bench.json (decode speed, speedup)")
    plot.add_argument("bench", metavar="BENCH_JSON", help="bench.json written by `keyformer bench`")
    plot.add_argument("png", metavar="OUT_PNG", help="the PNG to write")
    fidelity = commands.add_parser("fidelity", help="top-1 agreement, KL and NLL against the full cache "
                                   "(DIR/fidelity.jsonl): tables, plot")
    fidelity.add_argument("dir", metavar="DIR", help="the eval folder (holds fidelity.jsonl)")
    fidelity.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the results")
    questions = commands.add_parser("questions", help="accuracy on a question set (DIR/answers.jsonl): "
                                    "tables, plot")
    questions.add_argument("dir", metavar="DIR", help="the eval folder (holds answers.jsonl)")
    questions.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the results")
    tune = commands.add_parser("tune", help="smallest budget reaching a top-1 target, attention sparsity per "
                               "layer (DIR/fidelity.jsonl, DIR/sparsity.jsonl)")
    tune.add_argument("dir", metavar="DIR", help="the eval folder (holds fidelity.jsonl and sparsity.jsonl)")
    tune.add_argument("--target", type=float, default=0.99, help="the mean top-1 agreement to reach (default 0.99)")
    tune.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the advice")
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            score_command(args.dir, args.json)
        elif args.command == "compare":
            compare_command(args.dir, args.a, args.b, args.metric, against=args.against)
        elif args.command == "fidelity":
            from .eval_fidelity import fidelity_command
            fidelity_command(args.dir, args.json)
        elif args.command == "questions":
            from .eval_questions import questions_command
            questions_command(args.dir, args.json)
        elif args.command == "tune":
            from .eval_fidelity import tune_command
            tune_command(args.dir, args.target, args.json, warn=_warn)
        else:
            plot_bench_command(args.bench, args.png)
    except EvaluateError as e:
        print("keyformer.evaluate: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Run the copy imported as keyformer.evaluate, the one eval_fidelity and eval_questions import:
    # one EvaluateError class for main to catch.
    from keyformer.evaluate import main as _main
    sys.exit(_main())
