"""keyformer_eval questions (keyformer_eval/questions.py) on synthetic answers.jsonl files.

Needs matplotlib (build/deps/venv); skips without it. Does not load libkeyformer. Expected means
and standard errors are computed by hand in the comments (SE = sample sd / sqrt(n)).
"""
import json
import math

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (build/scripts/venv.sh)")

from eval_helpers import PNG_MAGIC, approx, run_cli, run_json, write_jsonl  # noqa: E402
from keyformer_eval import questions as eval_questions, records  # noqa: E402

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
    assert eval_questions.score(a) == float(right)


@pytest.mark.parametrize("answer, references, expected", [
    ("8221937", ["822"], 0.0),  # whole words only, either way
    ("822", ["8221937"], 0.0),
    ("The number is 8221937.", ["8221937"], 1.0),
    ("1234567 and 7654321", ["1234567", "7654321"], 1.0),
    ("1234567, 765432", ["1234567", "7654321"], 0.5),
    ("1,234,567", ["1234567", "7654321"], 0.5),  # punctuation dropped by the normalisation
    ("ABCDE, FGHIJ", ["abcde", "FGHIJ", "KLMNO"], 2 / 3),
    ("It is the future of space tourism", ["space tourism", "future"], 1.0),  # a sequence of words
    ("tourism space", ["space tourism"], 0.0),
    (None, ["1234567"], 0.0),
])
def test_recall_references_share_whole_words(answer, references, expected):
    a = records.Answer("q", "d", "s", "h2o", 0.5, None, "recall", answer, None, ", ".join(references),
                       references=references)
    assert eval_questions.score(a) == pytest.approx(expected)


def test_quality_accuracy_agreement_pairs(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", QUALITY)
    stdout, result = questions(tmp_path)
    assert (result["metric"], result["set"], result["documents"], result["questions"]) == ("questions", "quality", 2, 4)
    assert (result["reading"], result["instruction_in_prompt"], result["tasks"]) == (None, None, [])  # an older file
    assert result["full"] == {"accuracy": 0.75, "n": 4}
    assert result["results"] == [
        # 1 0 1 1: .75, sd .5, se .25; agreement 1 1 1 1; vs full (1 0 1 1) 0 0 0 0
        {"policy": "keyformer", "budget": 0.5, "cache": None, "n": 4, "accuracy": 0.75, "accuracy_se": 0.25,
         "vs_full": 0.0, "vs_full_se": 0.0, "agreement": 1.0, "agreement_se": 0.0, "kv_memory": None},
        # 0 1 1 0: .5, sd .57735, se .288675; agreement 0 0 1 0: .25, se .25; vs full -1 1 0 -1: -.25, se .478714
        {"policy": "h2o", "budget": 0.5, "cache": None, "n": 4, "accuracy": 0.5, "accuracy_se": approx(0.288675),
         "vs_full": -0.25, "vs_full_se": approx(0.478714), "agreement": 0.25, "agreement_se": 0.25, "kv_memory": None},
        # 0 0; vs full -1 0: -.5, se .5
        {"policy": "window", "budget": 0.5, "cache": None, "n": 2, "accuracy": 0.0, "accuracy_se": 0.0,
         "vs_full": -0.5, "vs_full_se": 0.5, "agreement": 0.5, "agreement_se": 0.5, "kv_memory": None},
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
    assert table[0] == ("| policy | budget | n | accuracy % | vs full, points ± SE | agreement with full % "
                        "| KV memory % of full |")
    assert table[2] == "| full | — | 4 | 75.00 ± 25.00 | — | — | — |"
    assert table[3] == "| keyformer | 50% | 4 | 75.00 ± 25.00 | +0.00 ± 0.00 | 100.00 ± 0.00 | — |"
    assert table[4] == "| h2o | 50% | 4 | 50.00 ± 28.87 | -25.00 ± 47.87 | 25.00 ± 25.00 | — |"
    assert "| keyformer | h2o | 50% | 4 | +25.00 ± 47.87 |" in table
    assert "normalised reference is contained in the normalised answer" in md
    assert "the articles a/an/the dropped" in md
    assert "each as a whole-word sequence of the normalised answer" in md
    assert "Accuracy per task" not in md and "needle depth" not in md  # no tasks, no depths
    csv_lines = (tmp_path / "questions.csv").read_text().splitlines()
    assert csv_lines[0] == "policy,budget,cache,n,accuracy,accuracy_se,vs_full,vs_full_se,agreement,agreement_se,kv_memory"
    assert csv_lines[1] == "full,,,4,0.75,0.25,,,,,"
    assert csv_lines[3] == "h2o,0.5,,4,0.5,0.288675,-0.25,0.478714,0.25,0.25,"
    assert len(csv_lines) == 5
    assert (tmp_path / "questions-accuracy.png").read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "questions-depth.png").exists()


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
    nothing = {"vs_full": None, "vs_full_se": None, "agreement": None, "agreement_se": None, "kv_memory": None}
    assert result == {
        "metric": "questions", "set": "topic_retrieval", "documents": 1, "questions": 2, "reading": None,
        "instruction_in_prompt": None, "full": None,
        "results": [
            dict(policy="keyformer", budget=None, cache=1024, n=1, accuracy=1.0, accuracy_se=None, **nothing),
            dict(policy="keyformer", budget=None, cache=2048, n=2, accuracy=0.5, accuracy_se=0.5, **nothing),
            dict(policy="context-shift", budget=None, cache=2048, n=2, accuracy=0.5, accuracy_se=0.5, **nothing),
        ],
        # 1-0, 0-1: mean 0, sd sqrt(2), se 1
        "pairs": [{"a": "keyformer", "b": "context-shift", "budget": None, "cache": 2048, "n": 2,
                   "accuracy_diff": 0.0, "accuracy_diff_se": approx(1.0)}],
        "tasks": [],
    }
    assert "| context-shift | 2048 | 2 | 50.00 ± 50.00 | — | — | — |" in stdout
    assert (tmp_path / "questions-accuracy.png").read_bytes()[:8] == PNG_MAGIC


def retrieval(qid, doc, policy, answer, references, task, depth, kv_bytes, budget=None):
    """One line of answers.jsonl of the current Go command for a retrieval question."""
    return dict(recall(qid, doc, policy, answer, ", ".join(references), budget=budget, qset="retrieval-4096"),
                reading="bounded", instruction_in_prompt=False, kv_bytes=kv_bytes, references=references, task=task,
                depth=depth)


RETRIEVAL = []
for policy, budget, kv, answers in (("full", None, 1000, ("1234567", "7654321", "111, 222, 333, 444")),
                                    ("keyformer", 0.5, 500, ("1234567", "765432", "111, 222 and 3334")),
                                    ("keyformer", 0.25, 250, ("no idea", "7654321", "")),
                                    ("kv-q4_0", None, 300, ("1234567", "7654321", "111 222 333"))):
    RETRIEVAL += [retrieval("s1", "d1", policy, answers[0], ["1234567"], "niah_single", 0.04, kv, budget),
                  retrieval("s2", "d2", policy, answers[1], ["7654321"], "niah_single", 0.46, kv, budget),
                  retrieval("m1", "d3", policy, answers[2], ["111", "222", "333", "444"], "niah_multivalue", None, kv,
                            budget)]


def test_retrieval_tasks_depths_peers_kv_memory(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", RETRIEVAL)
    stdout, result = questions(tmp_path)
    assert (result["reading"], result["instruction_in_prompt"]) == ("bounded", False)
    assert result["full"] == {"accuracy": 1.0, "n": 3}
    assert result["results"] == [
        # scores 0 1 0: 1/3 (se .333333); vs full -1 0 -1: -2/3 (se .333333); agreement F T F; KV 250/1000
        {"policy": "keyformer", "budget": 0.25, "cache": None, "n": 3, "accuracy": approx(1 / 3),
         "accuracy_se": approx(1 / 3), "vs_full": approx(-2 / 3), "vs_full_se": approx(1 / 3),
         "agreement": approx(1 / 3), "agreement_se": approx(1 / 3), "kv_memory": 0.25},
        # scores 1 0 .5 (2 of 4 values): .5 (sd .5, se .288675); vs full 0 -1 -.5; agreement T F F
        {"policy": "keyformer", "budget": 0.5, "cache": None, "n": 3, "accuracy": 0.5, "accuracy_se": approx(0.288675),
         "vs_full": -0.5, "vs_full_se": approx(0.288675), "agreement": approx(1 / 3), "agreement_se": approx(1 / 3),
         "kv_memory": 0.5},
        # the peer after the policies: 1 1 .75 -> .916667 (sd .144338, se .083333); vs full 0 0 -.25; T T F
        {"policy": "kv-q4_0", "budget": None, "cache": None, "n": 3, "accuracy": approx(11 / 12),
         "accuracy_se": approx(1 / 12), "vs_full": approx(-1 / 12), "vs_full_se": approx(1 / 12),
         "agreement": approx(2 / 3), "agreement_se": approx(1 / 3), "kv_memory": 0.3},
    ]
    assert result["pairs"] == []  # keyformer has no peer at its budgets
    assert [(t["task"], t["policy"], t["budget"], t["n"], t["accuracy"], t["accuracy_se"]) for t in result["tasks"]] == [
        ("niah_multivalue", "full", None, 1, 1.0, None), ("niah_multivalue", "keyformer", 0.25, 1, 0.0, None),
        ("niah_multivalue", "keyformer", 0.5, 1, 0.5, None), ("niah_multivalue", "kv-q4_0", None, 1, 0.75, None),
        ("niah_single", "full", None, 2, 1.0, 0.0), ("niah_single", "keyformer", 0.25, 2, 0.5, 0.5),
        ("niah_single", "keyformer", 0.5, 2, 0.5, 0.5), ("niah_single", "kv-q4_0", None, 2, 1.0, 0.0)]
    assert list(result["tasks"][0]) == list(eval_questions.TASK_KEYS)
    md = (tmp_path / "questions.md").read_text()
    assert md in stdout
    assert "Bounded reading; question after the document." in md
    assert "| full | — | 3 | 100.00 ± 0.00 | — | — | 100.0 |" in md
    assert "| keyformer | 25% | 3 | 33.33 ± 33.33 | -66.67 ± 33.33 | 33.33 ± 33.33 | 25.0 |" in md
    assert "| kv-q4_0 | — | 3 | 91.67 ± 8.33 | -8.33 ± 8.33 | 66.67 ± 33.33 | 30.0 |" in md
    assert "| task | policy | budget | n | accuracy % |" in md
    assert "| niah_single | keyformer | 50% | 2 | 50.00 ± 50.00 |" in md
    # depth tables: .04 -> 0.0, .46 -> 0.5; the multivalue question has no depth
    lines = md.splitlines()
    at = lines.index("| depth | 25% | 50% |")
    assert "Accuracy of keyformer by needle depth" in lines[at - 2]
    assert lines[at + 2:at + 4] == ["| 0.0 | 0.00 (1) | 100.00 (1) |", "| 0.5 | 100.00 (1) | 0.00 (1) |"]
    assert "| depth | full |" in lines and "| depth | kv-q4_0 |" in lines
    assert lines.index("| depth | full |") < at < lines.index("| depth | kv-q4_0 |")
    for png in ("questions-accuracy.png", "questions-depth.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC
    assert "questions-depth.png" in stdout


def test_long_document_depths_heatmap(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", [
        dict(recall("s1", "d1", "keyformer", "1234567", "1234567", cache=512), depth=0.0, task="niah_single"),
        dict(recall("s1", "d1", "keyformer", "12", "1234567", cache=1024), depth=0.0, task="niah_single"),
        dict(recall("s2", "d1", "context-shift", "7654321", "7654321", cache=512), depth=1.0, task="niah_single")])
    _, result = questions(tmp_path)
    assert [(t["policy"], t["cache"], t["accuracy"]) for t in result["tasks"]] == [
        ("keyformer", 512, 1.0), ("keyformer", 1024, 0.0), ("context-shift", 512, 1.0)]
    md = (tmp_path / "questions.md").read_text()
    assert "| depth | 512 | 1024 |" in md and "| 0.0 | 100.00 (1) | 0.00 (1) |" in md
    assert "| depth | 512 |" in md and "| 1.0 | 100.00 (1) |" in md
    assert (tmp_path / "questions-depth.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_mixed_reading_exits_1(tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [RETRIEVAL[0], dict(RETRIEVAL[1], reading="whole")])
    p = run_cli("questions", str(tmp_path), "--json")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == ("keyformer_eval: error: %s:2: 'reading' 'whole' and 'instruction_in_prompt' False differ "
                        "from line 1's ('bounded', False): the lines of one file share them (null included)\n" % path)


def test_cli_questions_json(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", QUALITY)
    p = run_cli("questions", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert list(result) == ["metric", "set", "documents", "questions", "reading", "instruction_in_prompt", "full",
                            "results", "pairs", "tasks"]
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
    ([dict(recall("q1", "d", "full", "x", "1, 2"), references=["1", "!"])],
     ":1: 'references' must be a non-empty list of strings, each not empty once normalised"),
    ([dict(recall("q1", "d", "full", "x", "1"), references=[])], ":1: 'references' must be a non-empty list"),
    ([dict(recall("q1", "d", "full", "x", "1"), references="1")], ":1: 'references' must be a non-empty list"),
    ([dict(recall("q1", "d", "full", "x", "1"), task=3)], ":1: 'task' must be a string or null"),
    ([dict(recall("q1", "d", "full", "x", "1"), depth=1.5)], ":1: 'depth' must be a number between 0 and 1"),
    ([dict(recall("q1", "d", "kv-q4_0", "x", "1"), cache=512)], ":1: policy 'kv-q4_0' must have 'budget' and 'cache' null"),
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
    assert p.stderr == ("keyformer_eval: error: %s:2: missing fields 'document', 'set', 'budget', 'cache', "
                        "'kind', 'answer', 'gold', 'reference'\n" % path)
    write_jsonl(tmp_path / "answers.jsonl", [])
    p = run_cli("questions", str(tmp_path))
    assert p.returncode == 1 and "no answers (the file is empty)" in p.stderr


def test_tune_on_a_question_set_advises_by_accuracy(tmp_path):
    # Full: 4 of 4. keydiff 3/4 at 30%, 4/4 at 50%; streaming 2/4 and 3/4; kv-q8_0 has no budget.
    lines = [recall("q%d" % i, "d", "full", "7", "7", qset="retrieval-4096") for i in range(4)]
    for policy, budget, right in [("keydiff", 0.3, 3), ("keydiff", 0.5, 4), ("streaming", 0.3, 2), ("streaming", 0.5, 3)]:
        lines += [recall("q%d" % i, "d", policy, "7" if i < right else "8", "7", budget=budget, qset="retrieval-4096")
                  for i in range(4)]
    lines += [recall("q%d" % i, "d", "kv-q8_0", "7", "7", qset="retrieval-4096") for i in range(4)]
    write_jsonl(tmp_path / "answers.jsonl", lines)
    from keyformer_eval.fidelity import tune_command
    stdout, result = run_json(tune_command, str(tmp_path), 0.75, True)
    assert (result["metric"], result["basis"], result["target"], result["questions"]) == ("tune", "questions", 0.75, 4)
    assert result["full"] == {"accuracy": 1.0, "n": 4}
    assert [(a["policy"], a["budget"], a["accuracy"], a["best"]) for a in result["advice"]] == [
        ("keydiff", 0.3, 0.75, None),   # 3/4 >= 0.75 x 1
        ("streaming", 0.5, 0.75, None),
    ]
    stdout, result = run_json(tune_command, str(tmp_path), 0.9, True)
    assert result["advice"][1] == {"policy": "streaming", "budget": None, "cache": None, "accuracy": None,
                                   "accuracy_se": None, "best": {"budget": 0.5, "cache": None, "accuracy": 0.75,
                                                                 "accuracy_se": 0.25}}
    assert "| streaming | none of those tried reach it (best: 50%) | 75.00 ± 25.00 |" in stdout
    assert (tmp_path / "tune-accuracy.png").read_bytes().startswith(PNG_MAGIC)
