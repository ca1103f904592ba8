"""``questions``: question answering from a compressed KV cache, for ``keyformer eval`` on a question
set (matplotlib, of the ``eval`` extra, is imported when the plot is drawn)::

    python -m keyformer.evaluate questions DIR [--json]

The input, DIR/answers.jsonl, is described in :mod:`keyformer.evaluate.records`.

Scoring
-------
- Correct: ``choice``: ``answer == gold``. ``recall``: the normalised reference is contained in
  the normalised answer, where normalisation (as SQuAD's) lowercases, drops punctuation, drops the
  articles a, an and the, and collapses whitespace (see :func:`normalize`).
- Agreement with the full cache, per question: ``choice``: the same letter as the full cache's
  answer to that question; ``recall``: the same correctness. Null (left out) where the question
  has no full line.
- Per (policy, budget or cache): ``n`` questions, the accuracy and the agreement (means over the
  questions) with their standard errors (sample standard deviation, n - 1, over sqrt(n); null when
  n < 2); and, at the same budget, the paired accuracy difference keyformer - each other policy
  over the questions both have, with its standard error.

Outputs
-------
Writes DIR/questions.md (printed too), DIR/questions.csv (one row per policy x budget, the full
cache first) and DIR/questions-accuracy.png (accuracy against the budget, a line per policy with
±1 SE error bars, the full cache dashed). With ``--json`` the last line of stdout is (numbers
rounded to 6 decimals; results ordered by policy, then budget or cache)::

    {"metric": "questions", "set": "quality", "documents": D, "questions": Q,
     "full": {"accuracy", "n"} or null,
     "results": [{"policy", "budget", "cache", "n", "accuracy", "accuracy_se", "agreement", "agreement_se"}, ...],
     "pairs": [{"a", "b", "budget", "cache", "n", "accuracy_diff", "accuracy_diff_se"}, ...]}

``set`` is the question set (the sets joined by commas if a file mixes several), ``documents`` and
``questions`` the distinct documents and question ids. Bad input exits with status 1 and a
one-line message naming the file (and line).
"""

import os
import sys

from .plots import figure, plot_policy_lines, save_figure
from .records import ANSWERS_FILE, FULL, QUALITY, normalize, read_answers
from .report import (finish_report, group_runs, mean_se, paired_differences, plus_minus, render_table,
                     round_cell, round_or_none, round_row, setting_key, setting_label, sort_rows,
                     write_output, write_table_csv, write_text)

RESULT_KEYS = ("policy", "budget", "cache", "n", "accuracy", "accuracy_se", "agreement", "agreement_se")
PAIR_KEYS = ("a", "b", "budget", "cache", "n", "accuracy_diff", "accuracy_diff_se")
DIGITS = 6
#: The policy the paired accuracy differences are taken from.
LEAD = "keyformer"


def correct(a):
    """Whether the :class:`Answer` ``a`` is right (see the module docstring)."""
    if a.answer is None:
        return False
    if a.kind == "choice":
        return a.answer == a.gold
    return normalize(a.reference) in normalize(a.answer)


def agrees(a, full):
    """Whether ``a`` agrees with the full cache's answer ``full`` to the same question (choice: the
    same letter; recall: the same correctness); None without a full answer."""
    if full is None:
        return None
    if a.kind == "choice":
        return a.answer == full.answer
    return correct(a) == correct(full)


def aggregate_questions(mode, answers):
    """The question statistics. Returns a dict: ``mode``, ``set``, ``documents``, ``questions``,
    ``full`` (the full cache's row with accuracy, accuracy_se and n; None without full lines),
    ``rows`` (one per policy x budget with the keys of :data:`RESULT_KEYS`, in the report's order)
    and ``pairs`` (keyformer - each other policy at the same budget, keys :data:`PAIR_KEYS`)."""
    setting = setting_key(mode)
    groups, full_by_id = group_runs(answers)
    full = None
    rows = []
    score = {}
    for (policy, budget, cache), members in groups.items():
        score[(policy, budget, cache)] = {rid: float(correct(a)) for rid, a in members.items()}
        row = {"policy": policy, "budget": budget, "cache": cache, "n": len(members)}
        _, row["accuracy"], row["accuracy_se"] = mean_se(score[(policy, budget, cache)].values())
        if policy == FULL:
            full = row
            continue
        agreement = [agrees(a, full_by_id.get(rid)) for rid, a in members.items()]
        _, row["agreement"], row["agreement_se"] = mean_se([None if x is None else float(x) for x in agreement])
        rows.append(row)
    rows = sort_rows(rows, setting)
    pairs = []
    for r in rows:
        if r["policy"] == LEAD:
            continue
        lead = score.get((LEAD, r["budget"], r["cache"]))
        if lead is None:
            continue
        diffs = paired_differences(lead, score[(r["policy"], r["budget"], r["cache"])])
        pair = {"a": LEAD, "b": r["policy"], "budget": r["budget"], "cache": r["cache"]}
        pair["n"], pair["accuracy_diff"], pair["accuracy_diff_se"] = mean_se(diffs)
        pairs.append(pair)
    pairs.sort(key=lambda p: p[setting])  # stable: the policy order within a budget
    return {"mode": mode, "set": ",".join(sorted({a.set for a in answers})),
            "documents": len({a.document for a in answers}), "questions": len({a.id for a in answers}),
            "full": full, "rows": rows, "pairs": pairs}


def questions_json(agg):
    """The ``questions --json`` object (see the module docstring)."""
    full = agg["full"]
    return {"metric": "questions", "set": agg["set"], "documents": agg["documents"], "questions": agg["questions"],
            "full": None if full is None else {"accuracy": round_or_none(full["accuracy"], DIGITS), "n": full["n"]},
            "results": [round_row(r, RESULT_KEYS) for r in agg["rows"]],
            "pairs": [round_row(p, PAIR_KEYS) for p in agg["pairs"]]}


def _pct(mean, se, signed=False):
    """A fraction and its SE as ``percent ± se`` (2 decimals); a dash for None."""
    return plus_minus(mean, se, 100, 2, signed)


FOOTNOTE = ("Correct: a choice question when the answer is the gold letter; a recall question when the "
            "normalised reference is contained in the normalised answer (SQuAD-style normalisation: lowercase, "
            "punctuation dropped, the articles a/an/the dropped, whitespace collapsed). Agreement: the same letter "
            "as the full cache (choice) or the same correctness (recall), over the questions that have a full-cache "
            "answer.")


def questions_markdown(agg):
    """The questions report: the accuracy table (with its footnote) and keyformer's paired differences."""
    mode = agg["mode"]
    caption = ("Question answering from the compressed cache, set %s: %d questions on %d documents; accuracy and "
               "agreement with the full cache in percent ± standard error across questions. %s"
               % (agg["set"], agg["questions"], agg["documents"],
                  "Budget = KV cache as a share of the prompt." if mode == QUALITY else
                  "Long documents, cache = KV cells."))
    header = ["policy", setting_key(mode), "n", "accuracy %", "agreement with full %"]
    body = [[r["policy"], setting_label(r), str(r["n"]), _pct(r["accuracy"], r["accuracy_se"]),
             _pct(r.get("agreement"), r.get("agreement_se"))]
            for r in ([agg["full"]] if agg["full"] else []) + agg["rows"]]
    text = render_table(caption, header, body, ["Note: " + FOOTNOTE])
    if agg["pairs"]:
        caption = ("%s − each other policy at the same %s: mean paired accuracy difference over the questions both "
                   "have, in percentage points ± standard error." % (LEAD, setting_key(mode)))
        body = [[p["a"], p["b"], setting_label(dict(p, policy=p["a"])), str(p["n"]),
                 _pct(p["accuracy_diff"], p["accuracy_diff_se"], signed=True)] for p in agg["pairs"]]
        text += "\n" + render_table(caption, ["A", "B", setting_key(mode), "n", "accuracy diff (points)"], body)
    return text


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


def questions_command(directory, as_json, out=None):
    """``questions DIR [--json]``: scores DIR/answers.jsonl, writes questions.md, questions.csv and
    questions-accuracy.png, prints the Markdown (to ``out``, default stdout) and, with ``as_json``,
    ends with the JSON summary line."""
    out = out or sys.stdout
    mode, answers = read_answers(os.path.join(directory, ANSWERS_FILE))
    agg = aggregate_questions(mode, answers)
    text = questions_markdown(agg)
    rows = ([dict(agg["full"], agreement=None, agreement_se=None)] if agg["full"] else []) + agg["rows"]
    written = [write_output(directory, "questions.md", lambda p: write_text(p, text)),
               write_output(directory, "questions.csv", lambda p: write_table_csv(
                   p, RESULT_KEYS, rows, round_cell)),
               write_output(directory, "questions-accuracy.png", lambda p: plot_questions(p, agg))]
    finish_report(out, text, written, questions_json(agg) if as_json else None)
