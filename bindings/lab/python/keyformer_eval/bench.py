"""``plot-bench``: the plot of the bench.json of ``keyformer bench`` (matplotlib, of the ``eval``
extra, is imported when the plot is drawn).

``plot-bench BENCH_JSON OUT_PNG`` reads bench.json (see :mod:`keyformer_eval.records`) and
plots decode tokens/s against context (one line per budget, plain llama.cpp separate) and measured
against ideal decode speedup.
"""

import sys

from .plots import figure, save_figure
from .records import EvaluateError, is_number, read_bench
from .report import budget_label


def bench_series(rows):
    """Groups bench.json rows into series, one per configuration less its budget ("keyformer
    0.5" and "streaming 0.5" apart, "full" and "full all" apart): ``[(label, budget, rows by
    context)]``, plain llama.cpp first. A row without ``config`` is named by its budget."""
    groups = {}
    for row in rows:
        words = (row.get("config") or ("none" if row["budget"] is None else "keyformer")).split()
        if len(words) > 1 and is_number(_float_or_none(words[-1])):
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
            label = "%s %s" % (kind, budget_label(budget))
        series.append((label, budget, sorted(group, key=lambda r: r["context"])))
    return series


def _float_or_none(text):
    """``float(text)``, or None where text is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def plot_bench(bench, path):
    """Two panels: decode tokens/s against context per configuration (:func:`bench_series`), and
    measured (solid) against ideal (dashed) decode speedup for every one below budget 1."""
    fig, (tps, speed) = figure(12, 4.5, ncols=2)
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
                       color=colors[label], label="budget %s ideal" % budget_label(budget))
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
    save_figure(fig, (tps, speed), path)


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
