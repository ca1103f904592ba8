"""The Go command's records, read by keyformer_eval: the golden files that TestSchema
(bindings/lab/cmd/keyformer/schema_test.go) marshals from the Go structs, through the readers of
keyformer_eval/records.py and the commands that use them.

The readers check the fields they declare (``records.*_FIELDS``) and their types, so a Go field
renamed or retyped fails here once its golden file is regenerated. Reading needs no third-party
package; the commands need matplotlib (and rouge-score for ``score``) and skip without them. None
of them loads libkeyformer.
"""
import json
import os
import shutil

import pytest

from eval_helpers import PNG_MAGIC, ROOT, Capture
from keyformer_eval import records

pytestmark = pytest.mark.nolib

SCHEMA = os.path.join(ROOT, "bindings", "lab", "cmd", "keyformer", "testdata", "schema")

#: Each golden JSONL file, the reader that reads it and the fields that reader requires.
JSONL = [
    ("generations.jsonl", records.read_generations, records.GENERATION_FIELDS),
    ("generations-long.jsonl", records.read_generations, records.GENERATION_FIELDS),
    ("fidelity.jsonl", records.read_fidelity, records.FIDELITY_FIELDS),
    ("sparsity.jsonl", records.read_sparsity, records.SPARSITY_FIELDS),
    ("answers.jsonl", records.read_answers, records.ANSWER_FIELDS),
]


def golden(name):
    """The path of a golden file."""
    return os.path.join(SCHEMA, name)


def golden_lines(name):
    """The decoded lines of a golden JSONL file."""
    with open(golden(name), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_run_extras(lines):
    """The optional fields every eval line may carry, where the golden file has them (an older one
    lacks them: None): one reading and one instruction_in_prompt shared by the lines, kv_bytes > 0."""
    assert len({(r.reading, r.instruction_in_prompt) for r in lines}) == 1
    assert lines[0].reading in records.READINGS + (None,)
    assert lines[0].instruction_in_prompt in (True, False, None)
    assert all(r.kv_bytes is None or r.kv_bytes > 0 for r in lines)


def test_generations():
    mode, generations = records.read_generations(golden("generations.jsonl"))
    assert mode == records.QUALITY
    assert [(g.policy, g.budget, g.cache) for g in generations] == [("full", None, None), ("keyformer", 0.5, None)]
    assert all(g.text and g.reference for g in generations)
    check_run_extras(generations)
    mode, generations = records.read_generations(golden("generations-long.jsonl"))
    assert mode == records.LONG
    assert [(g.policy, g.budget, g.cache) for g in generations] == [(records.CONTEXT_SHIFT, None, 2048)]


def test_fidelity_metrics_set_and_null():
    mode, lines = records.read_fidelity(golden("fidelity.jsonl"))
    assert mode == records.QUALITY
    full, kept, empty = lines
    assert (full.policy, full.top1, full.kl) == ("full", 1.0, 0.0)
    assert kept.positions > 0 and kept.ref_tokens > 0
    assert None not in (kept.top1, kept.kl, kept.nll, kept.ref_nll)
    assert (empty.positions, empty.top1, empty.kl, empty.nll, empty.ref_tokens, empty.ref_nll) == (
        0, None, None, None, 0, None)
    check_run_extras(lines)
    for line in (full, kept):  # the per-position lists, where the golden file has them
        assert line.kl_positions is None or len(line.kl_positions) == line.positions
        assert line.delta_p is None or len(line.delta_p) == line.positions
    assert (empty.kl_positions or []) == (empty.delta_p or []) == []


def test_sparsity():
    (line,) = records.read_sparsity(golden("sparsity.jsonl"))
    assert line.rows > 0 and line.cells > 0 and 0 < line.share90 <= 1


def test_answers_choice_and_recall():
    mode, answers = records.read_answers(golden("answers.jsonl"))
    assert mode == records.QUALITY
    assert {a.kind for a in answers} == set(records.KINDS)
    assert {"full", "h2o", "keyformer"} <= {a.policy for a in answers}
    assert all(isinstance(a.gold, str) for a in answers if a.kind == "choice")
    for recall in (a for a in answers if a.kind == "recall"):
        assert recall.gold is None and records.normalize(recall.reference) in records.normalize(recall.answer)
        assert recall.references is None or ", ".join(recall.references) == recall.reference
        assert recall.depth is None or 0 <= recall.depth <= 1
    check_run_extras(answers)
    assert {a.instruction_in_prompt for a in answers} <= {False, None}  # the question comes after the document


def test_bench():
    bench = records.read_bench(golden("bench.json"))
    plain, policy = bench["rows"]
    assert plain["budget"] is None and plain["ideal_speedup"] is None
    assert policy["budget"] == 0.5 and policy["ideal_speedup"] > 1 and policy["config"] == "keyformer 0.5"


@pytest.mark.parametrize("name, read, fields", JSONL)
def test_every_required_field_is_in_the_golden_file(tmp_path, name, read, fields):
    # The reader takes the golden file as it is, and fails when any field it requires is taken out.
    read(golden(name))
    lines = golden_lines(name)
    for field in fields:
        path = tmp_path / name
        path.write_text("".join(json.dumps({k: v for k, v in line.items() if k != field}) + "\n" for line in lines))
        with pytest.raises(records.EvaluateError) as e:
            read(str(path))
        assert "missing field %r" % field in str(e.value)


def test_every_required_bench_field_is_in_the_golden_file(tmp_path):
    with open(golden("bench.json"), encoding="utf-8") as f:
        bench = json.load(f)
    path = tmp_path / "bench.json"
    for field in records.BENCH_FIELDS:
        path.write_text(json.dumps({k: v for k, v in bench.items() if k != field}))
        with pytest.raises(records.EvaluateError) as e:
            records.read_bench(str(path))
        assert "missing field(s) %r" % field in str(e.value)
    for field in records.BENCH_ROW_FIELDS:
        rows = [{k: v for k, v in row.items() if k != field} for row in bench["rows"]]
        path.write_text(json.dumps(dict(bench, rows=rows)))
        with pytest.raises(records.EvaluateError) as e:
            records.read_bench(str(path))
        assert "rows[0]: missing field(s) %r" % field in str(e.value)


def eval_dir(tmp_path, *files):
    """A folder holding copies of the golden files, as ``(golden name, name in the folder)``."""
    for name, as_name in files:
        shutil.copy(golden(name), tmp_path / as_name)
    return str(tmp_path)


def test_commands_on_the_golden_files(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (build/scripts/venv.sh)")
    from keyformer_eval import bench, fidelity, questions

    directory = eval_dir(tmp_path, ("fidelity.jsonl", records.FIDELITY_FILE), ("sparsity.jsonl", records.SPARSITY_FILE),
                         ("answers.jsonl", records.ANSWERS_FILE))
    summaries = []
    for command, args in ((fidelity.fidelity_command, (True,)), (fidelity.tune_command, (0.9, True)),
                          (questions.questions_command, (True,))):
        out = Capture()
        command(directory, *args, out=out)
        summaries.append(json.loads(out.text.splitlines()[-1]))
    for summary in summaries:  # the reading the golden lines share, null in older files
        assert summary["reading"] in records.READINGS + (None,)
        assert summary["instruction_in_prompt"] in (True, False, None)
    for png in ("fidelity-top1.png", "tune-top1.png", "sparsity.png", "questions-accuracy.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC
    bench.plot_bench_command(golden("bench.json"), str(tmp_path / "bench.png"), out=Capture())
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("name", ["generations.jsonl", "generations-long.jsonl"])
def test_score_on_the_golden_files(tmp_path, name):
    pytest.importorskip("rouge_score", reason="rouge-score is not installed (build/scripts/venv.sh)")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (build/scripts/venv.sh)")
    from keyformer_eval import rouge

    out = Capture()
    rouge.score_command(eval_dir(tmp_path, (name, records.GENERATIONS_FILE)), True, out=out)
    result = json.loads(out.text.splitlines()[-1])
    assert result["records"] == 1 and len(result["results"]) == 1
