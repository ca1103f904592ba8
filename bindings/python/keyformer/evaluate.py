"""Scoring and plots for ``keyformer eval`` and ``keyformer bench`` (pure Python, no libkeyformer).

Usage (PYTHONPATH=bindings/python; the dependencies are in bindings/python/requirements-eval.txt,
installed into build/deps/venv by build/venv.sh)::

    python -m keyformer.evaluate score DIR [--json]
    python -m keyformer.evaluate compare DIR POLICY_A POLICY_B [--metric rougeL]
    python -m keyformer.evaluate plot-bench BENCH_JSON OUT_PNG

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

``compare`` reads DIR/scores.jsonl and prints, per budget (or cache), the paired difference of
two policies' scores over the records both have: its mean and standard error, in points.

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
BENCH_ROW_FIELDS = ("context", "budget", "decode_tok_per_s", "speedup", "ideal_speedup")

#: One line of generations.jsonl.
Generation = namedtuple("Generation", "id policy budget cache text reference")


class EvaluateError(Exception):
    """Bad input or an output that cannot be written; the message names the file (and line)."""


# --- reading ------------------------------------------------------------------------------------

def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_generation(obj, where):
    """Checks one decoded line of generations.jsonl and returns it as a :class:`Generation`."""
    if not isinstance(obj, dict):
        raise EvaluateError("%s: expected a JSON object, got %s" % (where, type(obj).__name__))
    missing = [f for f in GENERATION_FIELDS if f not in obj]
    if missing:
        raise EvaluateError("%s: missing field%s %s" % (
            where, "s" if len(missing) > 1 else "", ", ".join(repr(f) for f in missing)))
    rid, policy, budget, cache = obj["id"], obj["policy"], obj["budget"], obj["cache"]
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise EvaluateError("%s: 'id' must be a string or an integer, got %r" % (where, rid))
    if policy != FULL and policy not in POLICY_ORDER:
        raise EvaluateError("%s: unknown policy %r (known: %s)" % (
            where, policy, ", ".join((FULL,) + POLICY_ORDER)))
    for field in ("text", "reference"):
        if not isinstance(obj[field], str):
            raise EvaluateError("%s: %r must be a string, got %r" % (where, field, obj[field]))
    if budget is not None and not (_is_number(budget) and budget > 0):
        raise EvaluateError("%s: 'budget' must be a positive number or null, got %r" % (where, budget))
    if cache is not None and not (isinstance(cache, int) and not isinstance(cache, bool) and cache > 0):
        raise EvaluateError("%s: 'cache' must be a positive integer or null, got %r" % (where, cache))
    if budget is not None and cache is not None:
        raise EvaluateError("%s: a line has 'budget' (quality mode) or 'cache' (long-document mode), "
                            "not both" % where)
    return Generation(rid, policy, budget, cache, obj["text"], obj["reference"])


def _line_mode(gen, where):
    """The mode one line belongs to, after checking that its policy fits that mode."""
    if gen.cache is not None:
        if gen.policy == FULL:
            raise EvaluateError("%s: policy 'full' with a 'cache': long-document mode has no full-cache line"
                                % where)
        return LONG
    if gen.policy == FULL and gen.budget is not None:
        raise EvaluateError("%s: policy 'full' must have 'budget' null, got %r" % (where, gen.budget))
    if gen.policy != FULL and gen.budget is None:
        raise EvaluateError("%s: policy %r needs a 'budget' (quality mode) or a 'cache' (long-document mode)"
                            % (where, gen.policy))
    return QUALITY


def read_generations(path):
    """Reads generations.jsonl: returns ``(mode, generations)``, the last line winning for each
    (id, policy, budget or cache). Raises :class:`EvaluateError` naming the line on bad input."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluateError("cannot read %s: %s" % (path, e)) from e
    mode, mode_line = None, 0
    latest = {}
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = "%s:%d" % (path, number)
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise EvaluateError("%s: not valid JSON: %s" % (where, e)) from e
        gen = _parse_generation(obj, where)
        line_mode = _line_mode(gen, where)
        if mode is None:
            mode, mode_line = line_mode, number
        elif line_mode != mode:
            raise EvaluateError("%s: a %s-mode line in a %s-mode file (line %d sets the mode: "
                                "quality lines have 'budget', long-document lines have 'cache')"
                                % (where, line_mode, mode, mode_line))
        latest[(gen.id, gen.policy, gen.budget, gen.cache)] = gen
    if not latest:
        raise EvaluateError("%s: no generations (the file is empty)" % path)
    return mode, list(latest.values())


# --- scoring ------------------------------------------------------------------------------------

def _rouge_scorer():
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
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


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
    rows = sorted((r for r in rows if r["policy"] != FULL),
                  key=lambda r: (POLICY_ORDER.index(r["policy"]), r[setting]))
    return full, rows


def _round(value):
    return None if value is None else round(value, 4)


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
    return "—" if value is None else "%.2f" % (100 * value)


def _budget_label(budget):
    return "%g%%" % (100 * budget)


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
        if mode == QUALITY:
            setting = "—" if r["policy"] == FULL else _budget_label(r["budget"])
        else:
            setting = str(r["cache"])
        cells = [r["policy"], setting, str(r["n"])] + [_percent(r[t]) for t in ROUGE_TYPES]
        if mode == QUALITY:
            cells.append(_percent(r.get("rougeL_vs_full")))
        body.append(cells)
    lines = [caption, "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def write_csv(path, mode, full, rows):
    """results.csv: the Markdown table's columns, ROUGE as fractions 0..1 (4 decimals)."""
    setting = "budget" if mode == QUALITY else "cache"
    columns = ["policy", setting, "n"] + list(ROUGE_TYPES) + (["rougeL_vs_full"] if mode == QUALITY else [])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in ([full] if full else []) + rows:
            w.writerow(["" if r.get(c) is None else _round(r[c]) if c in ROUGE_TYPES or c.endswith("_vs_full")
                        else r[c] for c in columns])


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


def _by_policy(rows):
    policies = {}
    for r in rows:
        policies.setdefault(r["policy"], []).append(r)
    return policies


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


def _bench_label(budget):
    if budget is None:
        return "no hook (plain llama.cpp)"
    if budget >= 1:
        return "hook, budget %s (no eviction)" % _budget_label(budget)
    return "budget %s" % _budget_label(budget)


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
    """Two panels: decode tokens/s against context per budget (plain llama.cpp separate), and
    measured (solid) against ideal (dashed) decode speedup for every budget below 1."""
    fig, (tps, speed) = _figure(12, 4.5, ncols=2)
    groups = {}
    for row in bench["rows"]:
        groups.setdefault(row["budget"], []).append(row)
    budgets = sorted(groups, key=lambda b: (b is not None, b or 0))
    contexts = sorted({row["context"] for row in bench["rows"]})
    for budget in budgets:
        rows = sorted(groups[budget], key=lambda r: r["context"])
        tps.plot([r["context"] for r in rows], [r["decode_tok_per_s"] for r in rows], marker="o",
                 linestyle=":" if budget is None else "-", color="black" if budget is None else None,
                 label=_bench_label(budget))
    tps.set_title("decode speed")
    tps.set_ylabel("decode tokens/s")
    reduced = [b for b in budgets if b is not None and b < 1]
    for budget in reduced:
        rows = sorted(groups[budget], key=lambda r: r["context"])
        line, = speed.plot([r["context"] for r in rows], [r["speedup"] for r in rows], marker="o",
                           label="%s measured" % _bench_label(budget))
        ideal = [r for r in rows if r["ideal_speedup"] is not None]
        speed.plot([r["context"] for r in ideal], [r["ideal_speedup"] for r in ideal], linestyle="--",
                   color=line.get_color(), label="%s ideal" % _bench_label(budget))
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
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle("%s on %s, %s generated tokens" % (bench["model"], bench["machine"], bench["gen"]))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- commands -----------------------------------------------------------------------------------

def _warn(message):
    print("keyformer.evaluate: warning: %s" % message, file=sys.stderr)


def score_command(directory, as_json, out=None):
    """``score DIR [--json]``: scores DIR/generations.jsonl, writes the reports, prints the table
    (to ``out``, default stdout)."""
    out = out or sys.stdout
    mode, generations = read_generations(os.path.join(directory, "generations.jsonl"))
    scores = score_generations(mode, generations, warn=_warn)
    records = len({g.id for g in generations})
    full, rows = aggregate(mode, scores)
    table = markdown_table(mode, records, full, rows)
    written = []
    target = None
    try:
        target = os.path.join(directory, "scores.jsonl")
        with open(target, "w", encoding="utf-8") as f:
            for s in scores:
                f.write(json.dumps({k: _round(v) if k.startswith("rouge") else v for k, v in s.items()}) + "\n")
        written.append(target)
        target = os.path.join(directory, "results.md")
        with open(target, "w", encoding="utf-8") as f:
            f.write(table)
        written.append(target)
        target = os.path.join(directory, "results.csv")
        write_csv(target, mode, full, rows)
        written.append(target)
        target = os.path.join(directory, "rougeL.png")
        plot_rouge(target, mode, records, full, rows)
        written.append(target)
    except OSError as e:
        raise EvaluateError("cannot write %s: %s" % (target, e)) from e
    out.write(table)
    out.write("\nwrote %s\n" % ", ".join(written))
    if as_json:
        out.write(json.dumps(summary_json(mode, records, full, rows)) + "\n")


def compare_command(directory, policy_a, policy_b, metric="rougeL", out=None):
    """``compare DIR A B``: the paired difference A - B of ``metric`` (from DIR/scores.jsonl, which
    ``score`` writes) at every budget or cache size both policies have: its mean over the ids that
    have both, in points, with its standard error. B may be ``full`` (one generation per id, paired
    with A at every budget). Prints a Markdown table (to ``out``, default stdout)."""
    out = out or sys.stdout
    path = os.path.join(directory, "scores.jsonl")
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
    sizes = sorted({size for (policy, size, _) in by if policy == policy_a and size is not None})
    if not sizes:
        raise EvaluateError("%s: no generations of policy %r" % (path, policy_a))
    out.write("%s - %s, %s F1 in points: mean of the paired differences over records +- its standard error\n\n"
              % (policy_a, policy_b, metric))
    out.write("| budget or cache | n | mean difference | standard error |\n|---:|---:|---:|---:|\n")
    for size in sizes:
        diffs = []
        for (policy, s, rid), value in by.items():
            if policy != policy_a or s != size:
                continue
            other = by.get((policy_b, None if policy_b == FULL else size, rid))
            if other is not None:
                diffs.append(100 * (value - other))
        if len(diffs) < 2:
            raise EvaluateError("%s: fewer than 2 records with both %s and %s at %s" % (path, policy_a, policy_b, size))
        mean = sum(diffs) / len(diffs)
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
        label = _budget_label(size) if isinstance(size, float) else "%d cells" % size
        out.write("| %s | %d | %+.2f | %.2f |\n" % (label, len(diffs), mean, sd / math.sqrt(len(diffs))))


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
    compare.add_argument("--metric", default="rougeL", choices=ROUGE_TYPES + tuple(t + "_vs_full" for t in ROUGE_TYPES))
    plot = commands.add_parser("plot-bench", help="plot bench.json (decode speed, speedup)")
    plot.add_argument("bench", metavar="BENCH_JSON", help="bench.json written by `keyformer bench`")
    plot.add_argument("png", metavar="OUT_PNG", help="the PNG to write")
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            score_command(args.dir, args.json)
        elif args.command == "compare":
            compare_command(args.dir, args.a, args.b, args.metric)
        else:
            plot_bench_command(args.bench, args.png)
    except EvaluateError as e:
        print("keyformer.evaluate: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
