"""Question answering from a compressed KV cache, for ``keyformer eval`` on a question set (pure Python).

Usage (through the one entry point, keyformer/evaluate.py)::

    python -m keyformer.evaluate questions DIR [--json]

Input DIR/answers.jsonl
-----------------------
One JSON object per line, one line per (question, run). Each document is read once with the
policy, then each of its questions is asked from a saved copy of the compressed cache::

    {"id": "quality-00-03", "document": "quality-00", "set": "quality", "policy": "h2o", "budget": 0.5,
     "cache": null, "kind": "choice", "prompt_tokens": 6120, "kv_cells": 3060,
     "answer": "B", "gold": "A", "logprobs": {"A": -1.2, "B": -0.7, "C": -3.0, "D": -2.2},
     "text": null, "reference": "(A) ..."}
    {"id": "topic-retrieval-00-01", "document": "topic-retrieval-00", "set": "topic_retrieval",
     "policy": "keyformer", "budget": null, "cache": 2048, "kind": "recall", "prompt_tokens": 14000,
     "kv_cells": 2048, "answer": "The future of space tourism.", "gold": null, "logprobs": null,
     "text": "The future of space tourism.", "reference": "The future of space tourism"}

- ``id``: the question (a string or an integer); ``document``: the document it is asked about
  (a string or an integer); ``set``: the question set (a string).
- ``policy``, ``budget``, ``cache``: as in generations.jsonl and fidelity.jsonl: quality mode has
  ``budget`` (a fraction of the prompt) and ``cache`` null; long-document mode has ``cache`` (KV
  cells) and ``budget`` null. A line of policy ``full`` (``budget`` and ``cache`` null) per
  question is the full cache; long-document mode may have none (then policy ``context-shift`` is
  the baseline).
- ``kind``: ``choice`` (multiple choice) or ``recall`` (free text).
- ``answer``: a string, or null (no answer: counted wrong). For ``choice`` the letter picked;
  for ``recall`` the generated answer.
- ``gold``: for ``choice`` the right letter (a string); for ``recall`` not used (null).
- ``reference``: for ``recall`` the reference answer (a string); for ``choice`` not used.
- ``prompt_tokens``, ``kv_cells``, ``logprobs``, ``text`` (and any other field) are allowed and not used.

A repeated (id, policy, budget, cache) line replaces the earlier one (the last one wins).

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
import re
import string
import sys
from collections import namedtuple

from .evaluate import (FULL, QUALITY, EvaluateError, _figure, _round, _save_figure, check_run_key, finish_report, mean_se,
                       paired_differences, plot_policy_lines, plus_minus, read_runs, render_table, require_fields,
                       round_cell, round_row, setting_key, setting_label, sort_rows, write_output, write_table_csv,
                       write_text)

ANSWERS_FILE = "answers.jsonl"
ANSWER_FIELDS = ("id", "document", "set", "policy", "budget", "cache", "kind", "answer", "gold", "reference")
KINDS = ("choice", "recall")
RESULT_KEYS = ("policy", "budget", "cache", "n", "accuracy", "accuracy_se", "agreement", "agreement_se")
PAIR_KEYS = ("a", "b", "budget", "cache", "n", "accuracy_diff", "accuracy_diff_se")
DIGITS = 6
#: The policy the paired accuracy differences are taken from.
LEAD = "keyformer"

#: One line of answers.jsonl.
Answer = namedtuple("Answer", "id document set policy budget cache kind answer gold reference")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text):
    """SQuAD-style answer normalisation: lowercase, drop punctuation (ASCII), drop the articles a,
    an and the, collapse runs of whitespace to one space (and strip)."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _key_value(obj, field, where):
    """``obj[field]``, a string or an integer."""
    value = obj[field]
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise EvaluateError("%s: %r must be a string or an integer, got %r" % (where, field, value))
    return value


def _parse_answer(obj, where):
    """Checks one decoded line of answers.jsonl and returns it as an :class:`Answer`."""
    require_fields(obj, ANSWER_FIELDS, where)
    rid, policy, budget, cache = check_run_key(obj, where)
    document = _key_value(obj, "document", where)
    if not isinstance(obj["set"], str):
        raise EvaluateError("%s: 'set' must be a string, got %r" % (where, obj["set"]))
    kind = obj["kind"]
    if kind not in KINDS:
        raise EvaluateError("%s: 'kind' must be one of %s, got %r" % (where, ", ".join(KINDS), kind))
    answer = obj["answer"]
    if answer is not None and not isinstance(answer, str):
        raise EvaluateError("%s: 'answer' must be a string or null, got %r" % (where, answer))
    needed = "gold" if kind == "choice" else "reference"
    if not isinstance(obj[needed], str):
        raise EvaluateError("%s: %r must be a string for a %s question, got %r" % (where, needed, kind, obj[needed]))
    if kind == "recall" and not normalize(obj["reference"]):
        raise EvaluateError("%s: 'reference' is empty once normalised: %r" % (where, obj["reference"]))
    return Answer(rid, document, obj["set"], policy, budget, cache, kind, answer, obj["gold"], obj["reference"])


def read_answers(path):
    """Reads answers.jsonl: returns ``(mode, answers)``, the last line winning for each (id,
    policy, budget, cache). Raises :class:`EvaluateError` naming the line on bad input."""
    return read_runs(path, _parse_answer, "answers", full_in_long=True)


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
    groups = {}
    for a in answers:
        groups.setdefault((a.policy, a.budget, a.cache), {})[a.id] = a
    full_by_id = next((g for (policy, _, _), g in groups.items() if policy == FULL), {})
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
            "full": None if full is None else {"accuracy": _round(full["accuracy"], DIGITS), "n": full["n"]},
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
    fig, ax = _figure(7, 4.5)
    plot_policy_lines(ax, agg["mode"], agg["rows"], "accuracy", 100)
    if agg["full"] is not None:
        ax.axhline(100 * agg["full"]["accuracy"], linestyle="--", color="black", label="full cache")
    ax.set_title("%s: accuracy from the compressed cache (%d questions)" % (agg["set"], agg["questions"]))
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    _save_figure(fig, (ax,), path)


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
