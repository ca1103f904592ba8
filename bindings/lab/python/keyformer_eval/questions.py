"""``questions``: question answering from a compressed KV cache, for ``keyformer eval`` on a question
set (matplotlib, of the ``eval`` extra, is imported when the plots are drawn)::

    python -m keyformer_eval questions DIR [--json]

The input, DIR/answers.jsonl, is described in :mod:`keyformer_eval.records`.

Scoring
-------
- Score of an answer (0..1; no answer scores 0): ``choice``: 1 when ``answer == gold``. ``recall``
  with ``references`` (every value the answer must recall): the share of the references found in
  the answer, each matched as a whole-word sequence of the normalised answer (so ``822`` does not
  match ``8221937``, nor ``8221937`` ``822``): RULER's string_match_all, on whole words.
  ``recall`` without ``references``: 1 when the normalised reference is contained in the
  normalised answer. Normalisation (as SQuAD's) lowercases, drops punctuation, drops the articles
  a, an and the, and collapses whitespace (see :func:`normalize`).
- Agreement with the full cache, per question: ``choice``: the same letter as the full cache's
  answer to that question; ``recall``: the same score. Null (left out) where the question has no
  full line.
- Per (policy, budget or cache): ``n`` questions, the accuracy (the mean score) and the agreement
  (means over the questions) with their standard errors (sample standard deviation, n - 1, over
  sqrt(n); null when n < 2); ``vs_full``, the paired accuracy difference against the full cache
  over the questions both have, with its standard error; ``kv_memory``, the mean over the
  questions of the run's peak KV bytes over the full cache's for the same question (null where
  unknown), so that rows compare at equal memory; and, at the same budget, the paired accuracy
  difference keydiff (keyformer where no keydiff ran) - each other policy over the questions both
  have, with its standard error.
  The peers (``kv-q8_0``, ``kv-q4_0``: no eviction, the whole prompt in a quantized cache) have no
  budget: their budget is a dash, and they are in no pair.
- Where the questions carry a ``task``: the accuracy per task, policy and budget. Where they carry
  a ``depth`` (where the needle sits, 0 = the document's start, 1 = its end): the accuracy per
  policy, budget and depth rounded to the nearest 0.1.

Outputs
-------
Writes DIR/questions.md (printed too: the accuracy table, keyformer's pairs, the per-task table and
a depth x budget table per policy, the last two where there are tasks or depths),
DIR/questions.csv (one row per policy x budget, the full cache first), DIR/questions-accuracy.png
(accuracy against the budget, a line per policy with ±1 SE error bars, the full cache dashed, the
peers dotted) and, where there are depths, DIR/questions-depth.png (a heatmap per policy, the full
cache's first: x the budget, or the policy's name for the full cache and the peers; y the depth;
the accuracy in percent as the colour and written in each cell). With ``--json`` the last line of
stdout is (numbers rounded to 6 decimals; results ordered by policy, then budget or cache)::

    {"metric": "questions", "set": "quality", "documents": D, "questions": Q,
     "reading", "instruction_in_prompt", "full": {"accuracy", "n"} or null,
     "results": [{"policy", "budget", "cache", "n", "accuracy", "accuracy_se", "vs_full", "vs_full_se",
                  "agreement", "agreement_se", "kv_memory"}, ...],
     "pairs": [{"a", "b", "budget", "cache", "n", "accuracy_diff", "accuracy_diff_se"}, ...],
     "tasks": [{"task", "policy", "budget", "cache", "n", "accuracy", "accuracy_se"}, ...]}

``set`` is the question set (the sets joined by commas if a file mixes several), ``documents`` and
``questions`` the distinct documents and question ids; ``reading`` (``bounded``, ``whole`` or null)
and ``instruction_in_prompt`` (false, or null in older files) those the lines share; ``tasks`` is
empty where no question has a task (ordered by task, then the full cache, then like the results).
Bad input exits with status 1 and a one-line message naming the file (and line).
"""

import os
import sys

from .plots import figure, heatmap, plot_policy_lines, save_figure
from .records import ANSWERS_FILE, FULL, QUALITY, normalize, read_answers
from .report import (by_policy, finish_report, group_runs, kv_memory, mean_se, paired_differences, plus_minus,
                     reading_caption, reading_of, render_table, round_cell, round_or_none, round_row, run_order,
                     setting_key, setting_label, sort_rows, write_output, write_table_csv, write_text)

RESULT_KEYS = ("policy", "budget", "cache", "n", "accuracy", "accuracy_se", "vs_full", "vs_full_se", "agreement",
               "agreement_se", "kv_memory")
PAIR_KEYS = ("a", "b", "budget", "cache", "n", "accuracy_diff", "accuracy_diff_se")
TASK_KEYS = ("task", "policy", "budget", "cache", "n", "accuracy", "accuracy_se")
DIGITS = 6
#: The policies the paired accuracy differences are taken from: the first with answers.
LEADS = ("keydiff", "keyformer")


def found(reference, answer):
    """Whether the normalised ``reference`` is a whole-word sequence of the normalised ``answer``."""
    return " %s " % normalize(reference) in " %s " % normalize(answer)


def score(a):
    """The score (0..1) of the :class:`Answer` ``a`` (see the module docstring)."""
    if a.answer is None:
        return 0.0
    if a.kind == "choice":
        return float(a.answer == a.gold)
    if a.references is None:
        return float(normalize(a.reference) in normalize(a.answer))
    return sum(found(r, a.answer) for r in a.references) / len(a.references)


def agrees(a, full):
    """Whether ``a`` agrees with the full cache's answer ``full`` to the same question (choice: the
    same letter; recall: the same score); None without a full answer."""
    if full is None:
        return None
    if a.kind == "choice":
        return a.answer == full.answer
    return score(a) == score(full)


def _accuracy(row, scores):
    """Sets ``n``, ``accuracy`` and ``accuracy_se`` of ``row`` from the ``scores``; returns ``row``."""
    row["n"], row["accuracy"], row["accuracy_se"] = mean_se(scores)
    return row


def breakdown(answers, field, setting, bucket=None):
    """The accuracy per value of the answers' ``field`` (through ``bucket`` where given) and run,
    over the answers where it is not None: rows with ``field``, policy, budget, cache, n, accuracy
    and accuracy_se, ordered by the value, then like the report (``setting`` sizes the cache)."""
    groups = {}
    for a in answers:
        value = getattr(a, field)
        if value is not None:
            key = (bucket(value) if bucket else value, a.policy, a.budget, a.cache)
            groups.setdefault(key, []).append(score(a))
    rows = [_accuracy({field: value, "policy": policy, "budget": budget, "cache": cache}, scores)
            for (value, policy, budget, cache), scores in groups.items()]
    return sorted(rows, key=lambda r: (r[field],) + run_order(r, setting))


def _depth_bucket(depth):
    """A depth rounded to the nearest 0.1."""
    return round(depth * 10) / 10


def aggregate_questions(mode, answers):
    """The question statistics. Returns a dict: ``mode``, ``set``, ``documents``, ``questions``,
    ``reading`` (see :func:`keyformer_eval.report.reading_of`), ``full`` (the full cache's row;
    None without full lines), ``rows`` (one per policy x budget with the keys of
    :data:`RESULT_KEYS`, in the report's order), ``pairs`` (keydiff, or keyformer, - each other policy at the
    same budget, keys :data:`PAIR_KEYS`), ``tasks`` (keys :data:`TASK_KEYS`) and ``depths`` (the
    same with ``depth`` for ``task``)."""
    setting = setting_key(mode)
    groups, full_by_id = group_runs(answers)
    scores = {run: {rid: score(a) for rid, a in members.items()} for run, members in groups.items()}
    full_scores = {rid: score(a) for rid, a in full_by_id.items()}
    full = None
    rows = []
    for run, members in groups.items():
        row = _accuracy({"policy": run[0], "budget": run[1], "cache": run[2]}, scores[run].values())
        row["kv_memory"] = kv_memory(members, full_by_id)
        row["vs_full"] = row["vs_full_se"] = row["agreement"] = row["agreement_se"] = None
        if run[0] == FULL:
            full = row
            continue
        _, row["vs_full"], row["vs_full_se"] = mean_se(paired_differences(scores[run], full_scores))
        agreement = [agrees(a, full_by_id.get(rid)) for rid, a in members.items()]
        _, row["agreement"], row["agreement_se"] = mean_se([None if x is None else float(x) for x in agreement])
        rows.append(row)
    rows = sort_rows(rows, setting)
    pairs = []
    lead_name = next((p for p in LEADS if any(r["policy"] == p for r in rows)), None)
    for r in rows:
        lead = scores.get((lead_name, r["budget"], r["cache"]))
        if r["policy"] == lead_name or lead is None:
            continue
        diffs = paired_differences(lead, scores[(r["policy"], r["budget"], r["cache"])])
        pair = {"a": lead_name, "b": r["policy"], "budget": r["budget"], "cache": r["cache"]}
        pair["n"], pair["accuracy_diff"], pair["accuracy_diff_se"] = mean_se(diffs)
        pairs.append(pair)
    pairs.sort(key=lambda p: p[setting])  # stable: the policy order within a budget
    return {"mode": mode, "set": ",".join(sorted({a.set for a in answers})),
            "documents": len({a.document for a in answers}), "questions": len({a.id for a in answers}),
            "reading": reading_of(answers), "full": full, "rows": rows, "pairs": pairs,
            "tasks": breakdown(answers, "task", setting), "depths": breakdown(answers, "depth", setting, _depth_bucket)}


def questions_json(agg):
    """The ``questions --json`` object (see the module docstring)."""
    full = agg["full"]
    return {"metric": "questions", "set": agg["set"], "documents": agg["documents"], "questions": agg["questions"],
            **agg["reading"],
            "full": None if full is None else {"accuracy": round_or_none(full["accuracy"], DIGITS), "n": full["n"]},
            "results": [round_row(r, RESULT_KEYS) for r in agg["rows"]],
            "pairs": [round_row(p, PAIR_KEYS) for p in agg["pairs"]],
            "tasks": [round_row(t, TASK_KEYS) for t in agg["tasks"]]}


def _pct(mean, se, signed=False):
    """A fraction and its SE as ``percent ± se`` (2 decimals); a dash for None."""
    return plus_minus(mean, se, 100, 2, signed)


def column_label(row):
    """The label of a row's budget or cache in a depth table or heatmap: the policy's name for the
    full cache and the peers (no budget, no cache)."""
    return row["policy"] if row["budget"] is None and row["cache"] is None else setting_label(row)


FOOTNOTE = ("Score: a choice question scores 1 when the answer is the gold letter; a recall question with a list of "
            "references scores the share of them found in the answer, each as a whole-word sequence of the "
            "normalised answer (RULER's string_match_all on whole words: 822 does not match 8221937); a recall "
            "question without one scores 1 when the normalised reference is contained in the normalised answer "
            "(SQuAD-style normalisation: lowercase, punctuation dropped, the articles a/an/the dropped, whitespace "
            "collapsed). Accuracy: the mean score. vs full: the paired accuracy difference against the full cache "
            "over the questions both have. Agreement: the same letter as the full cache (choice) or the same score "
            "(recall), over the questions that have a full-cache answer. KV memory: peak KV cache bytes as a share "
            "of the full cache's, mean over the questions.")


def questions_markdown(agg):
    """The questions report: the accuracy table (with its footnote), the paired differences of the
    first of :data:`LEADS` with answers, the per-task table and the depth tables (where there are tasks or depths)."""
    mode = agg["mode"]
    setting = setting_key(mode)
    caption = ("Question answering from the compressed cache, set %s: %d questions on %d documents; accuracy and "
               "agreement with the full cache in percent ± standard error across questions. %s%s"
               % (agg["set"], agg["questions"], agg["documents"],
                  "Budget = KV cache as a share of the prompt." if mode == QUALITY else
                  "Long documents, cache = KV cells.", reading_caption(agg["reading"])))
    header = ["policy", setting, "n", "accuracy %", "vs full, points ± SE", "agreement with full %",
              "KV memory % of full"]
    body = [[r["policy"], setting_label(r), str(r["n"]), _pct(r["accuracy"], r["accuracy_se"]),
             _pct(r["vs_full"], r["vs_full_se"], signed=True), _pct(r["agreement"], r["agreement_se"]),
             plus_minus(r["kv_memory"], None, 100, 1)]
            for r in ([agg["full"]] if agg["full"] else []) + agg["rows"]]
    text = render_table(caption, header, body, ["Note: " + FOOTNOTE])
    if agg["pairs"]:
        caption = ("%s − each other policy at the same %s: mean paired accuracy difference over the questions both "
                   "have, in percentage points ± standard error." % (agg["pairs"][0]["a"], setting))
        body = [[p["a"], p["b"], setting_label(p), str(p["n"]),
                 _pct(p["accuracy_diff"], p["accuracy_diff_se"], signed=True)] for p in agg["pairs"]]
        text += "\n" + render_table(caption, ["A", "B", setting, "n", "accuracy diff (points)"], body)
    if agg["tasks"]:
        caption = "Accuracy per task, in percent ± standard error across the task's questions."
        body = [[t["task"], t["policy"], setting_label(t), str(t["n"]), _pct(t["accuracy"], t["accuracy_se"])]
                for t in agg["tasks"]]
        text += "\n" + render_table(caption, ["task", "policy", setting, "n", "accuracy %"], body)
    for policy, cells in depths_by_policy(agg).items():
        text += "\n" + depth_markdown(policy, setting, cells)
    return text


def depths_by_policy(agg):
    """The depth rows of ``agg`` grouped by policy, the full cache first, then in the report's order."""
    setting = setting_key(agg["mode"])
    return by_policy(sorted(agg["depths"], key=lambda r: run_order(r, setting)))


def depth_grid(cells):
    """The depth x budget grid of one policy's depth rows ``cells``: ``(depths, columns, grid)``,
    the depths ascending, the columns (rows with the run) in the report's order and ``grid[(depth,
    column label)]`` the cell."""
    columns = list({column_label(c): c for c in cells}.values())
    return sorted({c["depth"] for c in cells}), columns, {(c["depth"], column_label(c)): c for c in cells}


def depth_markdown(policy, setting, cells):
    """The depth x budget table of one policy (its depth rows ``cells``, in the report's order)."""
    depths, columns, grid = depth_grid(cells)
    caption = ("Accuracy of %s by needle depth (rounded to the nearest 0.1; 0 = the start of the document) and %s, "
               "in percent ± standard error (questions in brackets)." % (policy, setting))
    body = []
    for d in depths:
        row = ["%.1f" % d]
        for c in columns:
            cell = grid.get((d, column_label(c)))
            row.append("—" if cell is None else "%s (%d)" % (_pct(cell["accuracy"], cell["accuracy_se"]), cell["n"]))
        body.append(row)
    return render_table(caption, ["depth"] + [column_label(c) for c in columns], body)


def plot_questions(path, agg):
    """Accuracy (percent, ±1 SE) against the budget (percent) or cache (cells), a line per policy,
    the full cache's accuracy dashed."""
    fig, ax = figure(7, 4.5)
    plot_policy_lines(ax, agg["mode"], agg["rows"], "accuracy", 100)
    if agg["full"] is not None:
        ax.axhline(100 * agg["full"]["accuracy"], linestyle="--", color="black", label="full cache")
    ax.set_title("%s: accuracy from the compressed cache (%d questions)" % (agg["set"], agg["questions"]))
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    save_figure(fig, (ax,), path)


def plot_depths(path, agg):
    """questions-depth.png: a heatmap per policy (the full cache first), x its budgets (or its name
    for the full cache and the peers), y the depth (0 at the top), the accuracy in percent as the
    colour and written in each cell."""
    policies = depths_by_policy(agg)
    depths = sorted({c["depth"] for c in agg["depths"]})
    grids = [depth_grid(cells) for cells in policies.values()]
    widths = [len(columns) for _, columns, _ in grids]
    fig, axes = figure(2 + 0.9 * sum(widths) + 0.6 * len(widths), 2.2 + 0.35 * len(depths), len(widths), widths)
    axes = [axes] if len(widths) == 1 else list(axes)
    for ax, policy, (_, columns, grid) in zip(axes, policies, grids):
        labels = [column_label(c) for c in columns]
        values = [[100 * grid[(d, label)]["accuracy"] if (d, label) in grid else float("nan") for label in labels]
                  for d in depths]
        image = heatmap(ax, values, labels, ["%.1f" % d for d in depths])
        ax.set_title(policy)
        if labels != [policy]:
            ax.set_xlabel(setting_key(agg["mode"]))
    axes[0].set_ylabel("needle depth")
    fig.colorbar(image, ax=axes[-1], label="accuracy (%)")
    fig.suptitle("%s: accuracy by needle depth" % agg["set"])
    save_figure(fig, axes, path)


def questions_command(directory, as_json, out=None):
    """``questions DIR [--json]``: scores DIR/answers.jsonl, writes questions.md, questions.csv,
    questions-accuracy.png and (where there are depths) questions-depth.png, prints the Markdown (to
    ``out``, default stdout) and, with ``as_json``, ends with the JSON summary line."""
    out = out or sys.stdout
    mode, answers = read_answers(os.path.join(directory, ANSWERS_FILE))
    agg = aggregate_questions(mode, answers)
    text = questions_markdown(agg)
    written = [write_output(directory, "questions.md", lambda p: write_text(p, text)),
               write_output(directory, "questions.csv", lambda p: write_table_csv(
                   p, RESULT_KEYS, ([agg["full"]] if agg["full"] else []) + agg["rows"], round_cell)),
               write_output(directory, "questions-accuracy.png", lambda p: plot_questions(p, agg))]
    if agg["depths"]:
        written.append(write_output(directory, "questions-depth.png", lambda p: plot_depths(p, agg)))
    finish_report(out, text, written, questions_json(agg) if as_json else None)


# --- tune on a question set ---------------------------------------------------------------------

def advise_questions(agg, target):
    """Per policy (in the report's order; not the peers, which have no budget or cache): the
    smallest budget or cache whose accuracy is at least ``target`` times the full cache's, or, when
    none is (or there is no full cache), the best one. Returns dicts with policy, budget, cache,
    accuracy, accuracy_se and best (``{budget, cache, accuracy, accuracy_se}`` when none reaches
    it, and then budget, cache, accuracy and accuracy_se are None)."""
    setting = setting_key(agg["mode"])
    need = None if agg["full"] is None or agg["full"]["accuracy"] is None else target * agg["full"]["accuracy"]
    advice = []
    for policy, prows in by_policy([r for r in agg["rows"] if r[setting] is not None]).items():
        scored = [r for r in prows if r["accuracy"] is not None]
        reached = next((r for r in scored if need is not None and r["accuracy"] >= need), None)
        if reached is not None:
            advice.append({"policy": policy, "budget": reached["budget"], "cache": reached["cache"],
                           "accuracy": reached["accuracy"], "accuracy_se": reached["accuracy_se"], "best": None})
            continue
        best = max(scored, key=lambda r: r["accuracy"]) if scored else None
        advice.append({"policy": policy, "budget": None, "cache": None, "accuracy": None, "accuracy_se": None,
                       "best": None if best is None else {k: best[k] for k in ("budget", "cache", "accuracy", "accuracy_se")}})
    return advice


def tune_questions_markdown(agg, target, advice):
    """The tune report of a question set: the advice table."""
    full = agg["full"]
    caption = ("Smallest KV cache whose accuracy is >= %g%% of the full cache's (%s) on %s: %d questions on %d "
               "documents; accuracy %% ± standard error across questions.%s"
               % (100 * target, "no full cache" if full is None else _pct(full["accuracy"], full["accuracy_se"]),
                  agg["set"], agg["questions"], agg["documents"], reading_caption(agg["reading"])))
    body = []
    for a in advice:
        if a["best"] is None:
            body.append([a["policy"], setting_label(a), _pct(a["accuracy"], a["accuracy_se"])])
        else:
            b = a["best"]
            body.append([a["policy"], "none of those tried reach it (best: %s)" % setting_label(b),
                         _pct(b["accuracy"], b["accuracy_se"])])
    return render_table(caption, ["policy", setting_key(agg["mode"]), "accuracy %"], body)


def tune_questions_command(directory, target, as_json, out=None):
    """``tune DIR`` where DIR holds a question set's answers.jsonl (and no fidelity.jsonl): the
    budget advice by accuracy; writes tune.md and tune-accuracy.png, prints the Markdown and, with
    ``as_json``, ends with ``{"metric": "tune", "basis": "questions", "target", "set", "documents",
    "questions", "reading", "instruction_in_prompt", "full": {"accuracy", "n"} or null, "advice":
    [{"policy", "budget", "cache", "accuracy", "accuracy_se", "best"}, ...]}``."""
    out = out or sys.stdout
    mode, answers = read_answers(os.path.join(directory, ANSWERS_FILE))
    agg = aggregate_questions(mode, answers)
    advice = advise_questions(agg, target)
    text = tune_questions_markdown(agg, target, advice)
    written = [write_output(directory, "tune.md", lambda p: write_text(p, text)),
               write_output(directory, "tune-accuracy.png", lambda p: plot_questions(p, agg))]
    summary = questions_json(agg)
    summary = {"metric": "tune", "basis": "questions", "target": target,
               **{k: summary[k] for k in ("set", "documents", "questions", "reading", "instruction_in_prompt", "full")},
               "advice": [round_row(a, ("policy", "budget", "cache", "accuracy", "accuracy_se", "best")) for a in advice]}
    finish_report(out, text, written, summary if as_json else None)
