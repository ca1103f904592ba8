"""``fidelity`` and ``tune``: fidelity to the full cache, and budget advice, for ``keyformer eval
--metric fidelity`` and ``keyformer tune`` (matplotlib, of the ``eval`` extra, is imported when a
plot is drawn)::

    python -m keyformer_eval fidelity DIR [--json]
    python -m keyformer_eval tune DIR [--target 0.99] [--json]

The inputs, DIR/fidelity.jsonl and DIR/sparsity.jsonl, are described in
:mod:`keyformer_eval.records`.

Statistics
----------
Per (policy, budget or cache): ``n`` the records (distinct ids), the means of top1, kl, nll and
ref_nll over the records that have them, and their standard errors. The standard error (SE) is the
sample standard deviation (n - 1 in the denominator) of the per-record values over sqrt(n); null
when n < 2. top1 and kl are already paired against the full cache (1.0 and 0.0 on every record).
For nll and ref_nll, ``nll_vs_full`` and ``ref_nll_vs_full`` are the mean paired differences
policy - full over the records that have both, with their SEs. ``pairs``: for every two policies
at the same budget (A before B in the policy order, so keydiff, then keyformer, is always A), the mean paired
differences A - B of top1 and kl over the records both have, with SEs (the peers, ``kv-q8_0`` and
``kv-q4_0``, have no budget: they are in no pair). ``kv_memory``: the mean over the records of the
run's peak KV bytes over the full cache's for the same record (null where unknown), so rows compare
at equal memory.

In llama.cpp's units
--------------------
Where the lines carry the per-position lists ``kl_positions`` and ``delta_p``, ``llama_cpp`` gives,
pooled over every position of every record of the row, the statistics ``llama-perplexity
--kl-divergence`` prints: ``mean_kld`` ± ``mean_kld_se``, ``median_kld``, ``kld_99`` (the 99th
percentile), ``max_kld`` (nats); ``same_top_p`` ± ``same_top_p_se`` (the share of positions where the
argmax agrees: the lines' top1 x positions pooled); ``mean_dp`` ± ``mean_dp_se`` and ``rms_dp``
(Δp = p_run(tok) - p_full(tok) of the teacher's token, as a fraction; percent in the table). The
percentiles interpolate linearly between the sorted values at fraction x (count - 1), as
llama.cpp's do; the SEs are the sample standard deviation over sqrt(count), which is llama.cpp's
sqrt(variance / (count - 1)) (null for fewer than 2 positions, where llama.cpp prints 0 for 10 or
fewer). Each field is null where no line of the row has its list; ``llama_cpp`` is null where no
line has either.

Outputs
-------
``fidelity`` writes DIR/fidelity.md (the table of the results, the table of the pairs and, where
the lines have the lists, the table in llama.cpp's units; printed too), DIR/fidelity.csv (a row
per policy x budget with all the fields of the JSON results, ``llama_cpp``'s flattened, the full
cache first) and DIR/fidelity-top1.png (top-1 agreement against the budget, a line per policy with
error bars of +-1 SE, the peers dotted; KL in a second panel). With ``--json`` the last line of
stdout is (numbers rounded to 6 decimals, results ordered by policy then budget or cache, like
``score``)::

    {"metric": "fidelity", "records": N, "reading", "instruction_in_prompt", "full": {"nll", "ref_nll"} or null,
     "results": [{"policy", "budget", "cache", "n", "top1", "top1_se", "kl", "kl_se", "nll", "nll_se",
                  "ref_nll", "ref_nll_se", "nll_vs_full", "nll_vs_full_se", "ref_nll_vs_full",
                  "ref_nll_vs_full_se", "kv_memory",
                  "llama_cpp": {"mean_kld", "mean_kld_se", "median_kld", "kld_99", "max_kld", "same_top_p",
                                "same_top_p_se", "mean_dp", "mean_dp_se", "rms_dp"} or null}, ...],
     "pairs": [{"a", "b", "budget", "cache", "n", "top1_diff", "top1_diff_se", "kl_diff", "kl_diff_se"}, ...]}

``reading`` (``bounded``, ``whole`` or null) and ``instruction_in_prompt`` (a bool or null) are
those the lines share.

On a question set (DIR holds answers.jsonl and no fidelity.jsonl) ``tune`` advises by accuracy
instead: see :func:`keyformer_eval.questions.tune_questions_command`.

``tune`` reads both files and prints, per policy (not the peers, which have no budget to choose),
the smallest budget (or cache) whose mean top-1
agreement is at least the target (default 0.99) with its top1 +- SE, or says that none of the
budgets tried reaches it and gives the best one; and a per-layer table of share90 (mean over the
records +- SE) with the mean live cells. It writes DIR/tune.md (printed too), DIR/tune-top1.png
(the fidelity plot with a dashed line at the target) and DIR/sparsity.png (share90 per layer).
With ``--json`` the last line of stdout is::

    {"metric": "tune", "target": 0.99, "records": N, "reading", "instruction_in_prompt",
     "advice": [{"policy", "budget", "cache", "top1", "top1_se", "best"}, ...],
     "sparsity": [{"layer", "n", "share90", "share90_se", "cells"}, ...]}

where an advice's ``budget`` (quality mode) or ``cache`` (long-document mode) is the smallest
setting that reaches the target, with ``top1``/``top1_se`` there and ``best`` null; when none
reaches it, ``budget``, ``cache``, ``top1`` and ``top1_se`` are null and ``best`` is
``{"budget", "cache", "top1", "top1_se"}`` of the setting with the highest top1.

Bad input exits with status 1 and a one-line message naming the file (and line).
"""

import math
import os
import sys

from .plots import figure, plot_policy_lines, save_figure
from .questions import tune_questions_command
from .records import (ANSWERS_FILE, FIDELITY_FILE, FULL, QUALITY, SPARSITY_FILE, EvaluateError, read_fidelity,
                      read_sparsity)
from .report import (by_policy, finish_report, group_runs, kv_memory, mean, mean_se, paired_differences,
                     plus_minus, reading_caption, reading_of, render_table, round_cell, round_or_none, round_row,
                     setting_key, setting_label, sort_rows, write_output, write_table_csv, write_text)

METRICS = ("top1", "kl", "nll", "ref_nll")
#: The keys of ``llama_cpp`` in a ``results`` entry (see the module docstring).
LLAMA_CPP_KEYS = ("mean_kld", "mean_kld_se", "median_kld", "kld_99", "max_kld", "same_top_p", "same_top_p_se",
                  "mean_dp", "mean_dp_se", "rms_dp")
#: The keys of one ``results`` entry of the JSON summary.
RESULT_KEYS = ("policy", "budget", "cache", "n", "top1", "top1_se", "kl", "kl_se", "nll", "nll_se",
               "ref_nll", "ref_nll_se", "nll_vs_full", "nll_vs_full_se", "ref_nll_vs_full", "ref_nll_vs_full_se",
               "kv_memory", "llama_cpp")
#: The columns of fidelity.csv: those of the results, ``llama_cpp``'s flattened.
CSV_COLUMNS = RESULT_KEYS[:-1] + LLAMA_CPP_KEYS
PAIR_KEYS = ("a", "b", "budget", "cache", "n", "top1_diff", "top1_diff_se", "kl_diff", "kl_diff_se")
DIGITS = 6


# --- aggregation --------------------------------------------------------------------------------

def _stats(row, name, values):
    """Sets ``row[name]`` and ``row[name + "_se"]`` to the mean and SE of ``values``."""
    _, row[name], row[name + "_se"] = mean_se(values)


def percentile(values, fraction):
    """llama.cpp's percentile of the sorted list ``values``: linear interpolation between the
    values around ``fraction`` x (count - 1) (the median at 0.5)."""
    p = fraction * (len(values) - 1)
    i = int(p)
    return values[i] + (p - i) * (values[min(i + 1, len(values) - 1)] - values[i])


def llama_cpp_stats(lines):
    """The statistics of ``llama-perplexity --kl-divergence``, pooled over every position of the
    fidelity ``lines`` that carry the per-position lists (see the module docstring): a dict with
    the keys of :data:`LLAMA_CPP_KEYS`, or None when no line has either list."""
    with_kl = [r for r in lines if r.kl_positions is not None]
    kld = sorted(v for r in with_kl for v in r.kl_positions)
    dp = [v for r in lines if r.delta_p is not None for v in r.delta_p]
    if not kld and not dp:
        return None
    stats = dict.fromkeys(LLAMA_CPP_KEYS)
    if kld:
        _, stats["mean_kld"], stats["mean_kld_se"] = mean_se(kld)
        stats["median_kld"], stats["kld_99"], stats["max_kld"] = percentile(kld, 0.5), percentile(kld, 0.99), kld[-1]
        agree = [1.0] * sum(round(r.top1 * r.positions) for r in with_kl if r.positions)
        _, stats["same_top_p"], stats["same_top_p_se"] = mean_se(agree + [0.0] * (len(kld) - len(agree)))
    if dp:
        _, stats["mean_dp"], stats["mean_dp_se"] = mean_se(dp)
        stats["rms_dp"] = math.sqrt(mean([v * v for v in dp]))
    return stats


def aggregate_fidelity(mode, records):
    """The fidelity statistics (see the module docstring). Returns a dict: ``mode``, ``records``
    (distinct ids), ``reading`` (see :func:`keyformer_eval.report.reading_of`), ``full`` (the full cache's row, None without full lines), ``rows`` (one per policy x
    budget, in the report's order, with the keys of :data:`RESULT_KEYS`) and ``pairs`` (with the
    keys of :data:`PAIR_KEYS`, by budget, then policy A, then B)."""
    setting = setting_key(mode)
    groups, full_by_id = group_runs(records)
    full = None
    rows = []
    for (policy, budget, cache), members in groups.items():
        row = {"policy": policy, "budget": budget, "cache": cache, "n": len(members),
               "kv_memory": kv_memory(members, full_by_id), "llama_cpp": llama_cpp_stats(members.values())}
        for m in METRICS:
            _stats(row, m, [getattr(r, m) for r in members.values()])
        for m in ("nll", "ref_nll"):
            if policy == FULL or not full_by_id:
                row[m + "_vs_full"] = row[m + "_vs_full_se"] = None
                continue
            _stats(row, m + "_vs_full", paired_differences(
                {rid: getattr(r, m) for rid, r in members.items()},
                {rid: getattr(r, m) for rid, r in full_by_id.items()}))
        if policy == FULL:
            full = row
        else:
            rows.append(row)
    rows = sort_rows(rows, setting)
    pairs = []
    for size in sorted({r[setting] for r in rows if r[setting] is not None}):
        budget, cache = (size, None) if setting == "budget" else (None, size)
        present = [r["policy"] for r in rows if r[setting] == size]
        for i, a in enumerate(present):
            for b in present[i + 1:]:
                ga, gb = groups[(a, budget, cache)], groups[(b, budget, cache)]
                pair = {"a": a, "b": b, "budget": budget, "cache": cache}
                top1 = paired_differences({k: v.top1 for k, v in ga.items()}, {k: v.top1 for k, v in gb.items()})
                pair["n"] = len(top1)
                _stats(pair, "top1_diff", top1)
                _stats(pair, "kl_diff", paired_differences({k: v.kl for k, v in ga.items()},
                                                           {k: v.kl for k, v in gb.items()}))
                pairs.append(pair)
    return {"mode": mode, "records": len({r.id for r in records}), "reading": reading_of(records), "full": full,
            "rows": rows, "pairs": pairs}


def fidelity_json(agg):
    """The ``fidelity --json`` object (see the module docstring)."""
    full = agg["full"]
    return {"metric": "fidelity", "records": agg["records"], **agg["reading"],
            "full": None if full is None else {"nll": round_or_none(full["nll"], DIGITS),
                                               "ref_nll": round_or_none(full["ref_nll"], DIGITS)},
            "results": [round_row(r, RESULT_KEYS) for r in agg["rows"]],
            "pairs": [round_row(p, PAIR_KEYS) for p in agg["pairs"]]}


# --- reports ------------------------------------------------------------------------------------

def fidelity_markdown(agg):
    """The fidelity report: the results table (top-1 in percent), the table of the pairs and the
    table in llama.cpp's units (where the lines have the per-position lists)."""
    mode = agg["mode"]
    caption = ("Fidelity to the full cache over %d records (mean ± standard error across records). top-1 %%: "
               "how often the policy's argmax is the full cache's greedy (teacher) token; KL(full‖policy) in "
               "nats per token; NLL of the teacher tokens and ref NLL of the reference tokens in nats per token; "
               "− full: the paired difference against the full cache on the records both have; KV memory: peak KV "
               "cache bytes as a share of the full cache's, mean over records. %s%s"
               % (agg["records"], "Budget = KV cache as a share of the prompt." if mode == QUALITY
                  else "Long documents, cache = KV cells.", reading_caption(agg["reading"])))
    header = ["policy", setting_key(mode), "n", "top-1 %", "KL", "NLL", "NLL − full", "ref NLL", "ref NLL − full",
              "KV memory % of full"]
    body = []
    for r in ([agg["full"]] if agg["full"] else []) + agg["rows"]:
        body.append([r["policy"], setting_label(r), str(r["n"]), plus_minus(r["top1"], r["top1_se"], 100, 2),
                     plus_minus(r["kl"], r["kl_se"]), plus_minus(r["nll"], r["nll_se"]),
                     plus_minus(r["nll_vs_full"], r["nll_vs_full_se"], signed=True),
                     plus_minus(r["ref_nll"], r["ref_nll_se"]),
                     plus_minus(r["ref_nll_vs_full"], r["ref_nll_vs_full_se"], signed=True),
                     plus_minus(r["kv_memory"], None, 100, 1)])
    text = render_table(caption, header, body)
    if agg["pairs"]:
        caption = ("Policy against policy at the same %s: mean paired difference A − B over the records both "
                   "have ± standard error (top-1 in percentage points, KL in nats)." % setting_key(mode))
        header = ["A", "B", setting_key(mode), "n", "top-1 diff (points)", "KL diff"]
        body = [[p["a"], p["b"], setting_label(p), str(p["n"]),
                 plus_minus(p["top1_diff"], p["top1_diff_se"], 100, 2, signed=True),
                 plus_minus(p["kl_diff"], p["kl_diff_se"], signed=True)] for p in agg["pairs"]]
        text += "\n" + render_table(caption, header, body)
    measured = [r for r in agg["rows"] if r["llama_cpp"] is not None]
    if measured:
        text += "\n" + llama_cpp_markdown(mode, measured)
    return text


def llama_cpp_markdown(mode, rows):
    """The table in llama.cpp's units of the ``rows`` that have them."""
    caption = ("In llama.cpp's units, as `llama-perplexity --kl-divergence` prints them, pooled over every position "
               "of every record: KLD = KL(full‖policy) in nats (mean ± standard error, median, 99th percentile, "
               "maximum); Same top p = share of the positions where the policy's argmax is the full cache's; "
               "Δp = p_policy − p_full of the teacher's token, in percent (mean ± standard error, root mean square).")
    header = ["policy", setting_key(mode), "Mean KLD", "Median KLD", "99.0% KLD", "Max KLD", "Same top p %",
              "Mean Δp %", "RMS Δp %"]
    body = []
    for r in rows:
        s = r["llama_cpp"]
        body.append([r["policy"], setting_label(r), plus_minus(s["mean_kld"], s["mean_kld_se"], digits=6),
                     plus_minus(s["median_kld"], None, digits=6), plus_minus(s["kld_99"], None, digits=6),
                     plus_minus(s["max_kld"], None, digits=6),
                     plus_minus(s["same_top_p"], s["same_top_p_se"], 100, 3),
                     plus_minus(s["mean_dp"], s["mean_dp_se"], 100, 3, signed=True),
                     plus_minus(s["rms_dp"], None, 100, 3)])
    return render_table(caption, header, body)


def plot_fidelity(path, agg, target=None):
    """Two panels against the budget (percent) or cache (cells), a line per policy with error bars
    of ±1 SE: top-1 agreement (percent; a dashed line at ``target`` when given) and KL(full‖policy)."""
    fig, (top1, kl) = figure(12, 4.5, ncols=2)
    plot_policy_lines(top1, agg["mode"], agg["rows"], "top1", 100)
    plot_policy_lines(kl, agg["mode"], agg["rows"], "kl")
    if target is not None:
        top1.axhline(100 * target, linestyle="--", color="black", label="target %g%%" % (100 * target))
    top1.set_title("top-1 agreement with the full cache (%d records)" % agg["records"])
    top1.set_ylabel("top-1 agreement (%)")
    kl.set_title("KL(full ‖ policy)")
    kl.set_ylabel("KL (nats per token)")
    for ax in (top1, kl):
        ax.grid(alpha=0.3)
    save_figure(fig, (top1, kl), path)


def fidelity_command(directory, as_json, out=None):
    """``fidelity DIR [--json]``: aggregates DIR/fidelity.jsonl, writes fidelity.md, fidelity.csv
    and fidelity-top1.png, prints the Markdown (to ``out``, default stdout) and, with ``as_json``,
    ends with the JSON summary line."""
    out = out or sys.stdout
    mode, records = read_fidelity(os.path.join(directory, FIDELITY_FILE))
    agg = aggregate_fidelity(mode, records)
    text = fidelity_markdown(agg)
    written = [write_output(directory, "fidelity.md", lambda p: write_text(p, text)),
               write_output(directory, "fidelity.csv", lambda p: write_table_csv(
                   p, CSV_COLUMNS, [dict(r, **(r["llama_cpp"] or {}))
                                    for r in ([agg["full"]] if agg["full"] else []) + agg["rows"]],
                   round_cell)),
               write_output(directory, "fidelity-top1.png", lambda p: plot_fidelity(p, agg))]
    finish_report(out, text, written, fidelity_json(agg) if as_json else None)


# --- tune ---------------------------------------------------------------------------------------

def advise(agg, target):
    """Per policy (in the policy order; not the peers, which have no budget or cache): the smallest
    budget or cache whose mean top1 is >= target, or, when none is, the best one. Returns dicts with
    policy, budget, cache, top1, top1_se, best (see the module docstring)."""
    advice = []
    setting = setting_key(agg["mode"])
    for policy, prows in by_policy([r for r in agg["rows"] if r[setting] is not None]).items():
        reached = next((r for r in prows if r["top1"] is not None and r["top1"] >= target), None)
        if reached is not None:
            advice.append({"policy": policy, "budget": reached["budget"], "cache": reached["cache"],
                           "top1": reached["top1"], "top1_se": reached["top1_se"], "best": None})
            continue
        scored = [r for r in prows if r["top1"] is not None]
        best = max(scored, key=lambda r: r["top1"]) if scored else None
        advice.append({"policy": policy, "budget": None, "cache": None, "top1": None, "top1_se": None,
                       "best": None if best is None else {k: best[k] for k in ("budget", "cache", "top1", "top1_se")}})
    return advice


def aggregate_sparsity(lines):
    """Per layer (ascending): n (records with a share90), the mean share90 over records and its SE,
    and the mean live cells."""
    layers = {}
    for s in lines:
        layers.setdefault(s.layer, []).append(s)
    out = []
    for layer in sorted(layers):
        row = {"layer": layer}
        row["n"], row["share90"], row["share90_se"] = mean_se([s.share90 for s in layers[layer]])
        _, row["cells"], _ = mean_se([s.cells for s in layers[layer] if s.share90 is not None])
        out.append(row)
    return out


def _size_text(row):
    """A budget or cache of an advice row, in words."""
    return "budget %s" % setting_label(row) if row["budget"] is not None \
        else "%s cells" % row["cache"]


def tune_markdown(agg, target, advice, sparsity):
    """The tune report: the advice table and the per-layer attention sparsity table."""
    caption = ("Smallest KV cache with a mean top-1 agreement with the full cache >= %g%% (%d records; "
               "top-1 %% ± standard error across records).%s"
               % (100 * target, agg["records"], reading_caption(agg["reading"])))
    body = []
    for a in advice:
        if a["best"] is None:
            body.append([a["policy"], setting_label(a), plus_minus(a["top1"], a["top1_se"], 100, 2)])
        else:
            b = a["best"]
            body.append([a["policy"], "none of the budgets tried reach it (best: %s)" % _size_text(b),
                         plus_minus(b["top1"], b["top1_se"], 100, 2)])
    text = render_table(caption, ["policy", setting_key(agg["mode"]), "top-1 %"], body)
    if sparsity:
        caption = ("Attention sparsity of the full cache per layer: share90 = share of the live cells that hold "
                   "90% of a row's attention mass, mean over records ± standard error; cells = mean live cells.")
        body = [[str(s["layer"]), str(s["n"]), plus_minus(s["share90"], s["share90_se"], 100, 2),
                 "—" if s["cells"] is None else "%.1f" % s["cells"]] for s in sparsity]
        text += "\n" + render_table(caption, ["layer", "n", "share90 %", "cells"], body)
    return text


def plot_sparsity(path, sparsity):
    """share90 (percent, ±1 SE) per layer as bars."""
    fig, ax = figure(7, 4.5)
    rows = [s for s in sparsity if s["share90"] is not None]
    ax.bar([s["layer"] for s in rows], [100 * s["share90"] for s in rows],
           yerr=[100 * (s["share90_se"] or 0) for s in rows], capsize=2)
    ax.set_title("cells holding 90% of the attention, per layer")
    ax.set_xlabel("layer")
    ax.set_ylabel("share of the live cells (%)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def tune_command(directory, target=0.99, as_json=False, out=None, warn=None):
    """``tune DIR [--target T] [--json]``: budget advice from DIR/fidelity.jsonl and the attention
    sparsity from DIR/sparsity.jsonl (left out, with a warning to ``warn``, when that file is not
    there). Writes tune.md, tune-top1.png and sparsity.png, prints the Markdown (to ``out``, default
    stdout) and, with ``as_json``, ends with the JSON summary line."""
    out = out or sys.stdout
    if not (0 < target <= 1):
        raise EvaluateError("--target must be in (0, 1], got %g" % target)
    if not os.path.exists(os.path.join(directory, FIDELITY_FILE)) and os.path.exists(os.path.join(directory, ANSWERS_FILE)):
        return tune_questions_command(directory, target, as_json, out)
    mode, records = read_fidelity(os.path.join(directory, FIDELITY_FILE))
    agg = aggregate_fidelity(mode, records)
    advice = advise(agg, target)
    sparsity_path = os.path.join(directory, SPARSITY_FILE)
    if os.path.exists(sparsity_path):
        sparsity = aggregate_sparsity(read_sparsity(sparsity_path))
    else:
        sparsity = []
        if warn is not None:
            warn("%s is not there: no per-layer sparsity" % sparsity_path)
    text = tune_markdown(agg, target, advice, sparsity)
    written = [write_output(directory, "tune.md", lambda p: write_text(p, text)),
               write_output(directory, "tune-top1.png", lambda p: plot_fidelity(p, agg, target))]
    if sparsity:
        written.append(write_output(directory, "sparsity.png", lambda p: plot_sparsity(p, sparsity)))
    summary = {"metric": "tune", "target": target, "records": agg["records"], **agg["reading"],
               "advice": [round_row(a, ("policy", "budget", "cache", "top1", "top1_se", "best")) for a in advice],
               "sparsity": [round_row(s, ("layer", "n", "share90", "share90_se", "cells")) for s in sparsity]}
    finish_report(out, text, written, summary if as_json else None)
