"""keyformer.evaluate questions (keyformer/evaluate/questions.py) on synthetic answers.jsonl files.

Needs matplotlib (build/deps/venv); skips without it. Does not load libkeyformer. Expected means
and standard errors are computed by hand in the comments (SE = sample sd / sqrt(n)).
"""
import json
import math

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (build/venv.sh)")

from eval_helpers import PNG_MAGIC, approx, run_cli, run_json, write_jsonl  # noqa: E402
from keyformer.evaluate import questions as eval_questions, records  # noqa: E402

pytestmark = pytest.mark.nolib


def choice(qid, doc, policy, answer, gold, budget=None, cache=None):
    """One line of answers.jsonl for a multiple-choice question."""
    return {"id": qid, "document": doc, "set": "quality", "policy": policy, "budget": budget, "cache": cache,
            "kind": "choice", "prompt_tokens": 6000, "kv_cells": 3000, "answer": answer, "gold": gold,
            "logprobs": {"A": -1.0, "B": -2.0}, "text": None, "reference": "(%s) ..." % gold}


def recall(qid, doc, policy, answer, reference, budget=None, cache=None, qset="quality"):
    """One line of answers.jsonl for a free-text (recall) question."""
    return {"id": qid, "document": doc, "set": qset, "policy": policy, "budget": budget, "cache": cache,
            "kind": "recall", "prompt_tokens": 14000, "kv_cells": 2048, "answer": answer, "gold": None,
            "logprobs": None, "text": answer, "reference": reference}


def questions(directory):
    """Runs `questions DIR --json` in this process; returns (stdout, the last line as JSON)."""
    return run_json(eval_questions.questions_command, str(directory), True)


QUALITY = [
    choice("q1", "doc1", "full", "A", "A"),                  # right
    choice("q2", "doc1", "full", "B", "C"),                  # wrong
    choice("q3", "doc2", "full", "D", "D"),                  # right
    recall("q4", "doc2", "full", "Paris, France", "Paris"),  # right
    choice("q1", "doc1", "keyformer", "A", "A", budget=0.5),  # right, agrees
    choice("q2", "doc1", "keyformer", "B", "C", budget=0.5),  # wrong, agrees (the same letter)
    choice("q3", "doc2", "keyformer", "D", "D", budget=0.5),  # right, agrees
    recall("q4", "doc2", "keyformer", "It is Paris.", "Paris", budget=0.5),  # right, agrees (same correctness)
    choice("q1", "doc1", "h2o", "A", "A", budget=0.5),        # replaced below (a resumed run)
    choice("q1", "doc1", "h2o", "C", "A", budget=0.5),        # wrong, disagrees
    choice("q2", "doc1", "h2o", "C", "C", budget=0.5),        # right, disagrees
    choice("q3", "doc2", "h2o", "D", "D", budget=0.5),        # right, agrees
    recall("q4", "doc2", "h2o", "Lyon", "Paris", budget=0.5),  # wrong, disagrees
    choice("q1", "doc1", "window", None, "A", budget=0.5),    # no answer: wrong, disagrees
    choice("q2", "doc1", "window", "B", "C", budget=0.5),     # wrong, agrees
]


@pytest.mark.parametrize("text, expected", [
    ("The Future of Space-Tourism!", "future of spacetourism"),
    ("  An   apple a\tday ", "apple day"),
    ("Theatre, then anthem.", "theatre then anthem"),  # articles only as whole words
    ("THE", ""),
])
def test_normalize(text, expected):
    assert records.normalize(text) == expected


@pytest.mark.parametrize("answer, reference, right", [
    ("It's about the future of space tourism.", "The future of space tourism", True),
    ("The future of space tourism.", "the Future of space-tourism", False),  # "spacetourism" is not there
    ("space tourism", "The future of space tourism", False),
    ("Answer: a Paris", "paris!", True),
    (None, "Paris", False),
])
def test_recall_correctness(answer, reference, right):
    a = records.Answer("q", "d", "s", "h2o", 0.5, None, "recall", answer, None, reference)
    assert eval_questions.correct(a) is right


def test_quality_accuracy_agreement_pairs(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", QUALITY)
    stdout, result = questions(tmp_path)
    assert (result["metric"], result["set"], result["documents"], result["questions"]) == ("questions", "quality", 2, 4)
    assert result["full"] == {"accuracy": 0.75, "n": 4}
    assert result["results"] == [
        # 1 0 1 1: .75, sd .5, se .25; agreement 1 1 1 1
        {"policy": "keyformer", "budget": 0.5, "cache": None, "n": 4, "accuracy": 0.75, "accuracy_se": 0.25,
         "agreement": 1.0, "agreement_se": 0.0},
        # 0 1 1 0: .5, sd .57735, se .288675; agreement 0 0 1 0: .25, se .25
        {"policy": "h2o", "budget": 0.5, "cache": None, "n": 4, "accuracy": 0.5, "accuracy_se": approx(0.288675),
         "agreement": 0.25, "agreement_se": 0.25},
        {"policy": "window", "budget": 0.5, "cache": None, "n": 2, "accuracy": 0.0, "accuracy_se": 0.0,
         "agreement": 0.5, "agreement_se": 0.5},
    ]
    assert result["pairs"] == [
        # 1-0, 0-1, 1-1, 1-0: mean .25, sd .957427, se .478714
        {"a": "keyformer", "b": "h2o", "budget": 0.5, "cache": None, "n": 4, "accuracy_diff": 0.25,
         "accuracy_diff_se": approx(0.478714)},
        {"a": "keyformer", "b": "window", "budget": 0.5, "cache": None, "n": 2, "accuracy_diff": 0.5,
         "accuracy_diff_se": 0.5},
    ]
    assert stdout.count("\n{") == 1


def test_reports_markdown_csv_png(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", QUALITY)
    stdout, _ = questions(tmp_path)
    md = (tmp_path / "questions.md").read_text()
    assert md in stdout
    table = [l for l in md.splitlines() if l.startswith("|")]
    assert table[0] == "| policy | budget | n | accuracy % | agreement with full % |"
    assert table[2] == "| full | — | 4 | 75.00 ± 25.00 | — |"
    assert table[3] == "| keyformer | 50% | 4 | 75.00 ± 25.00 | 100.00 ± 0.00 |"
    assert table[4] == "| h2o | 50% | 4 | 50.00 ± 28.87 | 25.00 ± 25.00 |"
    assert "| keyformer | h2o | 50% | 4 | +25.00 ± 47.87 |" in table
    assert "normalised reference is contained in the normalised answer" in md
    assert "the articles a/an/the dropped" in md
    csv_lines = (tmp_path / "questions.csv").read_text().splitlines()
    assert csv_lines[0] == "policy,budget,cache,n,accuracy,accuracy_se,agreement,agreement_se"
    assert csv_lines[1] == "full,,,4,0.75,0.25,,"
    assert csv_lines[3] == "h2o,0.5,,4,0.5,0.288675,0.25,0.25"
    assert len(csv_lines) == 5
    assert (tmp_path / "questions-accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_long_document_without_full(tmp_path):
    ref = "The future of space tourism"
    write_jsonl(tmp_path / "answers.jsonl", [
        recall("t1", "topic-00", "keyformer", "The future of space tourism.", ref, cache=2048, qset="topic_retrieval"),
        recall("t2", "topic-00", "keyformer", "Cooking", "Gardening", cache=2048, qset="topic_retrieval"),
        recall("t1", "topic-00", "context-shift", "space", ref, cache=2048, qset="topic_retrieval"),
        recall("t2", "topic-00", "context-shift", "Gardening tips", "gardening", cache=2048, qset="topic_retrieval"),
        recall("t1", "topic-00", "keyformer", "the FUTURE of space tourism", ref, cache=1024, qset="topic_retrieval"),
    ])
    stdout, result = questions(tmp_path)
    assert result == {
        "metric": "questions", "set": "topic_retrieval", "documents": 1, "questions": 2, "full": None,
        "results": [
            {"policy": "keyformer", "budget": None, "cache": 1024, "n": 1, "accuracy": 1.0, "accuracy_se": None,
             "agreement": None, "agreement_se": None},
            {"policy": "keyformer", "budget": None, "cache": 2048, "n": 2, "accuracy": 0.5, "accuracy_se": 0.5,
             "agreement": None, "agreement_se": None},
            {"policy": "context-shift", "budget": None, "cache": 2048, "n": 2, "accuracy": 0.5, "accuracy_se": 0.5,
             "agreement": None, "agreement_se": None},
        ],
        # 1-0, 0-1: mean 0, sd sqrt(2), se 1
        "pairs": [{"a": "keyformer", "b": "context-shift", "budget": None, "cache": 2048, "n": 2,
                   "accuracy_diff": 0.0, "accuracy_diff_se": approx(1.0)}],
    }
    assert "| context-shift | 2048 | 2 | 50.00 ± 50.00 | — |" in stdout
    assert (tmp_path / "questions-accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_questions_json(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", QUALITY)
    p = run_cli("questions", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert list(result) == ["metric", "set", "documents", "questions", "full", "results", "pairs"]
    assert list(result["results"][0]) == list(eval_questions.RESULT_KEYS)
    assert math.isclose(result["results"][1]["accuracy_se"], 0.288675)


@pytest.mark.parametrize("lines, message", [
    ([choice("q1", "d", "full", "A", "A"), "{oops"], ":2: not valid JSON"),
    ([{"id": "q1", "policy": "full", "budget": None, "cache": None, "kind": "choice"}],
     ":1: missing fields 'document', 'set', 'answer', 'gold', 'reference'"),
    ([], "no answers (the file is empty)"),
    ([dict(choice("q1", "d", "full", "A", "A"), kind="essay")], ":1: 'kind' must be one of choice, recall"),
    ([choice("q1", "d", "full", "A", None)], ":1: 'gold' must be a string for a choice question"),
    ([recall("q1", "d", "full", "x", None)], ":1: 'reference' must be a string for a recall question"),
    ([recall("q1", "d", "full", "x", "The!")], ":1: 'reference' is empty once normalised"),
    ([choice("q1", "d", "full", 3, "A")], ":1: 'answer' must be a string or null"),
    ([choice("q1", "d", "lru", "A", "A", budget=0.5)], ":1: unknown policy 'lru'"),
])
def test_bad_answers(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "answers.jsonl", lines)
    with pytest.raises(records.EvaluateError) as e:
        records.read_answers(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [choice("q1", "d", "full", "A", "A"),
                                                    {"id": "q1", "policy": "h2o"}])
    p = run_cli("questions", str(tmp_path), "--json")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == ("keyformer.evaluate: error: %s:2: missing fields 'document', 'set', 'budget', 'cache', "
                        "'kind', 'answer', 'gold', 'reference'\n" % path)
    write_jsonl(tmp_path / "answers.jsonl", [])
    p = run_cli("questions", str(tmp_path))
    assert p.returncode == 1 and "no answers (the file is empty)" in p.stderr
