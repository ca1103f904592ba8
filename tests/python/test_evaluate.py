"""keyformer_eval (the scoring and plots of `keyformer eval` / `keyformer bench`) on synthetic data.

Needs rouge-score and matplotlib (bindings/lab/python/requirements-eval.txt, in build/deps/venv); the
tests skip without them. None of them loads libkeyformer.
"""
import json
import sys

import pytest

pytest.importorskip("rouge_score", reason="rouge-score is not installed (build/scripts/venv.sh)")
pytest.importorskip("matplotlib", reason="matplotlib is not installed (build/scripts/venv.sh)")

import eval_helpers  # noqa: E402
from eval_helpers import PNG_MAGIC, run_cli  # noqa: E402
from keyformer_eval import plots, records, rouge  # noqa: E402
from keyformer_eval.bench import bench_series  # noqa: E402
from keyformer_eval.compare import compare_command  # noqa: E402

pytestmark = pytest.mark.nolib


# Hand-computed: 6 tokens each, 5 unigrams shared (the x2, cat, on, mat), 3 of 5 bigrams shared
# (the cat, on the, the mat), longest common subsequence 5 (the cat on the mat).
REFERENCE = "The cat sat on the mat."
NEAR = "the cat lay on the mat"


def line(rid, policy, text, reference=REFERENCE, budget=None, cache=None):
    return {"id": rid, "policy": policy, "budget": budget, "cache": cache, "prompt_tokens": 1000,
            "kv_cells": 500, "generated_tokens": 20, "text": text, "reference": reference}


def write_jsonl(directory, lines):
    return eval_helpers.write_jsonl(directory / "generations.jsonl", lines)


def score(directory):
    """Runs `score DIR --json` in this process; returns (stdout, the last line as JSON)."""
    out = _Capture()
    rouge.score_command(str(directory), True, out=out)
    text = "".join(out.parts)
    return text, json.loads(text.splitlines()[-1])


class _Capture:
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)


QUALITY_LINES = [
    line("a", "full", REFERENCE),
    line("a", "keyformer", REFERENCE, budget=0.5),
    line("a", "h2o", NEAR, budget=0.5),
    line("a", "window", "", budget=0.5),
    line("b", "full", NEAR),
    line("b", "keyformer", NEAR, budget=0.5),
    line("b", "h2o", REFERENCE, budget=0.5),
    line("b", "keyformer", NEAR, budget=0.2),
]


def test_identical_text_scores_one(tmp_path):
    write_jsonl(tmp_path, [line(7, "full", REFERENCE), line(7, "keyformer", REFERENCE, budget=0.5)])
    _, result = score(tmp_path)
    assert result["full"] == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert result["results"] == [{"policy": "keyformer", "budget": 0.5, "n": 1, "rouge1": 1.0, "rouge2": 1.0,
                                  "rougeL": 1.0, "rougeL_vs_full": 1.0, "kv_memory": None}]


def test_hand_computed_example_and_stemming(tmp_path):
    write_jsonl(tmp_path, [line("a", "full", NEAR), line("a", "h2o", "running dogs", reference="run dog", budget=0.5)])
    rouge.score_command(str(tmp_path), False, out=_Capture())
    rows = [json.loads(l) for l in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert rows[0] == {"id": "a", "policy": "full", "budget": None, "rouge1": 0.8333, "rouge2": 0.6,
                       "rougeL": 0.8333, "rouge1_vs_full": None, "rouge2_vs_full": None, "rougeL_vs_full": None}
    assert rows[1]["rouge1"] == rows[1]["rouge2"] == rows[1]["rougeL"] == 1.0  # Porter stemmer
    assert rows[1]["rouge1_vs_full"] == 0.0


def test_quality_means_vs_full_and_order(tmp_path):
    write_jsonl(tmp_path, QUALITY_LINES)
    stdout, result = score(tmp_path)
    r = 5 / 6
    assert result["records"] == 2
    assert result["full"] == {"rouge1": round((1 + r) / 2, 4), "rouge2": round((1 + 0.6) / 2, 4),
                              "rougeL": round((1 + r) / 2, 4)}
    got = [(x["policy"], x["budget"], x["n"], x["rouge1"], x["rouge2"], x["rougeL_vs_full"]) for x in result["results"]]
    assert got == [
        ("keyformer", 0.2, 1, round(r, 4), 0.6, 1.0),            # b only: the same text as b's full
        ("keyformer", 0.5, 2, round((1 + r) / 2, 4), 0.8, 1.0),  # both equal to their full generation
        ("h2o", 0.5, 2, round((r + 1) / 2, 4), 0.8, round(r, 4)),
        ("window", 0.5, 1, 0.0, 0.0, 0.0),
    ]
    assert list(result) == ["records", "reading", "instruction_in_prompt", "full", "results"]
    assert result["reading"] is None and result["instruction_in_prompt"] is None  # an older file
    assert stdout.splitlines()[-1].startswith("{") and stdout.count("\n{") == 1


def test_resumed_run_last_line_wins(tmp_path):
    write_jsonl(tmp_path, [line("a", "full", REFERENCE), line("a", "h2o", "nothing alike", budget=0.5),
                           line("a", "h2o", REFERENCE, budget=0.5)])
    _, result = score(tmp_path)
    assert [(x["policy"], x["n"], x["rougeL"]) for x in result["results"]] == [("h2o", 1, 1.0)]
    assert len((tmp_path / "scores.jsonl").read_text().splitlines()) == 2


def test_reports_markdown_csv_png(tmp_path):
    write_jsonl(tmp_path, QUALITY_LINES)
    stdout, _ = score(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert md in stdout
    assert "percent" in md.splitlines()[0]
    table = [l for l in md.splitlines() if l.startswith("|")]
    assert table[0] == ("| policy | budget | n | ROUGE-1 % | ROUGE-2 % | ROUGE-L % | ROUGE-L vs full % "
                        "| KV memory % of full |")
    assert table[2] == "| full | — | 2 | 91.67 | 80.00 | 91.67 | — | — |"
    assert table[3] == "| keyformer | 20% | 1 | 83.33 | 60.00 | 83.33 | 100.00 | — |"
    assert table[-1] == "| window | 50% | 1 | 0.00 | 0.00 | 0.00 | 0.00 | — |"
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0] == "policy,budget,n,rouge1,rouge2,rougeL,rougeL_vs_full,kv_memory"
    assert csv_lines[1] == "full,,2,0.9167,0.8,0.9167,,"
    assert csv_lines[3] == "keyformer,0.5,2,0.9167,0.8,0.9167,1.0,"
    assert len(csv_lines) == 6
    assert (tmp_path / "rougeL.png").read_bytes()[:8] == PNG_MAGIC


def test_long_document_mode(tmp_path):
    write_jsonl(tmp_path, [
        line("d1", "context-shift", NEAR, cache=512),
        line("d1", "keyformer", REFERENCE, cache=512),
        line("d1", "keyformer", NEAR, cache=256),
        line("d2", "keyformer", REFERENCE, cache=512),
        line("d2", "streaming", "", cache=512),
    ])
    stdout, result = score(tmp_path)
    assert result == {"records": 2, "reading": None, "instruction_in_prompt": None, "results": [
        {"policy": "keyformer", "cache": 256, "n": 1, "rouge1": 0.8333, "rouge2": 0.6, "rougeL": 0.8333,
         "kv_memory": None},
        {"policy": "keyformer", "cache": 512, "n": 2, "rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "kv_memory": None},
        {"policy": "streaming", "cache": 512, "n": 1, "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "kv_memory": None},
        {"policy": "context-shift", "cache": 512, "n": 1, "rouge1": 0.8333, "rouge2": 0.6, "rougeL": 0.8333,
         "kv_memory": None},
    ]}
    assert "| policy | cache | n | ROUGE-1 % | ROUGE-2 % | ROUGE-L % | KV memory % of full |" in stdout
    assert "| context-shift | 512 | 1 | 83.33 | 60.00 | 83.33 | — |" in stdout
    assert (tmp_path / "results.csv").read_text().splitlines()[0] == "policy,cache,n,rouge1,rouge2,rougeL,kv_memory"
    assert "_vs_full" not in (tmp_path / "scores.jsonl").read_text()
    assert (tmp_path / "rougeL.png").read_bytes()[:8] == PNG_MAGIC


def test_peers_kv_memory_and_reading(tmp_path):
    setting = {"reading": "whole", "instruction_in_prompt": True}
    write_jsonl(tmp_path, [
        dict(line("a", "full", REFERENCE), kv_bytes=1000, **setting),
        dict(line("b", "full", NEAR), kv_bytes=2000, **setting),
        dict(line("a", "keyformer", REFERENCE, budget=0.5), kv_bytes=500, **setting),
        dict(line("b", "keyformer", NEAR, budget=0.5), kv_bytes=1200, **setting),
        dict(line("a", "kv-q4_0", REFERENCE), kv_bytes=300, **setting),
        dict(line("b", "kv-q4_0", NEAR), **setting),  # no kv_bytes: left out of the mean
        dict(line("a", "kv-q8_0", NEAR), kv_bytes=530, **setting),
    ])
    stdout, result = score(tmp_path)
    assert (result["reading"], result["instruction_in_prompt"]) == ("whole", True)
    # keyformer: 500/1000, 1200/2000 -> .55; kv-q4_0: .3 (a only); kv-q8_0: .53; peers after the policies
    assert [(r["policy"], r["budget"], r["n"], r["kv_memory"], r["rougeL_vs_full"]) for r in result["results"]] == [
        ("keyformer", 0.5, 2, 0.55, 1.0), ("kv-q8_0", None, 1, 0.53, round(5 / 6, 4)), ("kv-q4_0", None, 2, 0.3, 1.0)]
    md = (tmp_path / "results.md").read_text()
    assert "Whole-prompt reading (the paper's setting); instruction inside the compressed prompt." in md
    assert "| full | — | 2 | 91.67 | 80.00 | 91.67 | — | 100.0 |" in md
    assert "| keyformer | 50% | 2 | 91.67 | 80.00 | 91.67 | 100.00 | 55.0 |" in md
    assert "| kv-q8_0 | — | 1 | 83.33 | 60.00 | 83.33 | 83.33 | 53.0 |" in md
    assert (tmp_path / "results.csv").read_text().splitlines()[-1] == "kv-q4_0,,2,0.9167,0.8,0.9167,1.0,0.3"
    assert (tmp_path / "rougeL.png").read_bytes()[:8] == PNG_MAGIC
    out = _Capture()
    compare_command(str(tmp_path), "keyformer", "kv-q4_0", out=out)  # a peer as B: paired at every budget
    assert "| 50% | 2 | +0.00 | 0.00 |" in "".join(out.parts)


def test_policies_with_options_follow_their_policy(tmp_path):
    write_jsonl(tmp_path, [line("a", "full", REFERENCE), line("a", "h2o+span3", REFERENCE, budget=0.5),
                           line("a", "keydiff+kv-q8_0", NEAR, budget=0.5), line("a", "h2o", NEAR, budget=0.5),
                           line("a", "keydiff", REFERENCE, budget=0.5)])
    _, result = score(tmp_path)
    assert [r["policy"] for r in result["results"]] == ["keydiff", "keydiff+kv-q8_0", "h2o", "h2o+span3"]


def test_missing_full_line_warns(tmp_path, capsys):
    write_jsonl(tmp_path, [line("a", "full", REFERENCE), line("a", "h2o", REFERENCE, budget=0.5),
                           line("b", "h2o", REFERENCE, budget=0.5)])
    _, result = score(tmp_path)
    assert result["results"][0]["n"] == 2 and result["results"][0]["rougeL_vs_full"] == 1.0
    assert "no full-cache generation" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ([line("a", "full", "x"), "{not json"], ":2: not valid JSON"),
    ([line("a", "full", "x"), {"id": "a", "policy": "h2o", "budget": 0.5, "cache": None}],
     ":2: missing fields 'text', 'reference'"),
    (["", "[1, 2]"], ":2: expected a JSON object"),
    ([line("a", "lru", "x", budget=0.5)], ":1: unknown policy 'lru'"),
    ([line("a", "lru+span3", "x", budget=0.5)], ":1: unknown policy 'lru+span3'"),
    ([line("a", "kv-q8_0+span3", "x", budget=0.5)], ":1: unknown policy 'kv-q8_0+span3'"),
    ([line("a", "h2o", "x")], ":1: policy 'h2o' needs a 'budget'"),
    ([line("a", "full", "x", budget=0.5)], ":1: policy 'full' must have 'budget' and 'cache' null"),
    ([line("a", "kv-q8_0", "x", budget=0.5)], ":1: policy 'kv-q8_0' must have 'budget' and 'cache' null"),
    ([dict(line("a", "full", "x"), reading="partly")], ":1: 'reading' must be one of bounded, whole or null"),
    ([dict(line("a", "full", "x"), instruction_in_prompt="yes")], ":1: 'instruction_in_prompt' must be true, false"),
    ([dict(line("a", "full", "x"), kv_bytes=-1)], ":1: 'kv_bytes' must be an integer >= 0"),
    ([dict(line("a", "full", "x"), reading="whole"), line("a", "h2o", "x", budget=0.5)],
     ":2: 'reading' None and 'instruction_in_prompt' None differ from line 1's ('whole', None)"),
    ([line("a", "full", "x"), line("a", "h2o", "x", cache=64)], ":2: a long-document-mode line in a quality-mode file"),
    ([line("a", "h2o", "x", budget=0.5, cache=64)], ":1: a line has 'budget' (quality mode) or 'cache'"),
    ([line("a", "h2o", "x", cache=-3)], ":1: 'cache' must be a positive integer"),
    ([line("a", "h2o", 5, budget=0.5)], ":1: 'text' must be a string"),
    ([], "no generations (the file is empty)"),
])
def test_bad_generations(tmp_path, content, message):
    path = write_jsonl(tmp_path, content)
    with pytest.raises(records.EvaluateError) as e:
        records.read_generations(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_cli_score_json_and_errors(tmp_path):
    write_jsonl(tmp_path, QUALITY_LINES[:2] + ['{"id": "a", "policy": "h2o"}'])
    p = run_cli("score", str(tmp_path), "--json")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip() == ("keyformer_eval: error: %s:3: missing fields 'budget', 'cache', 'text', "
                                "'reference'" % (tmp_path / "generations.jsonl"))

    write_jsonl(tmp_path, QUALITY_LINES)
    p = run_cli("score", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert result["records"] == 2 and len(result["results"]) == 4
    assert "| policy | budget |" in p.stdout

    p = run_cli("score", str(tmp_path / "nowhere"))
    assert p.returncode == 1 and "cannot read %s" % (tmp_path / "nowhere" / "generations.jsonl") in p.stderr

    p = run_cli("rank", str(tmp_path))
    assert p.returncode == 2 and "invalid choice: 'rank'" in p.stderr


def bench(rows):
    return {"model": "smollm2", "machine": "test", "gen": 32, "rows": rows}


def bench_row(context, budget, tps, speedup=1.0, ideal=None):
    return {"context": context, "budget": budget, "prefill_tok_per_s": 500.0, "decode_tok_per_s": tps,
            "kv_bytes": context * 1024, "speedup": speedup, "ideal_speedup": ideal}


def test_plot_bench(tmp_path):
    rows = []
    for c in (1024, 2048, 4096):
        rows += [bench_row(c, None, 4096 / c * 50), bench_row(c, 1.0, 4096 / c * 48, 0.96, 1.0),
                 bench_row(c, 0.5, 4096 / c * 70, 1.4, 1.9)]
    (tmp_path / "bench.json").write_text(json.dumps(bench(rows)))
    p = run_cli("plot-bench", str(tmp_path / "bench.json"), str(tmp_path / "bench.png"))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "wrote %s\n" % (tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_MAGIC


def test_bench_series_keep_configurations_apart():
    rows = []
    for c in (1024, 2048):
        for config, budget in (("keyformer 0.5", 0.5), ("none", None), ("full", 1.0), ("full all", 1.0),
                               ("streaming 0.5", 0.5)):
            rows.append(dict(bench_row(c, budget, 50.0), config=config))
    rows.append(bench_row(4096, 0.25, 60.0))  # a row without config: named by its budget
    got = [(label, budget, [r["context"] for r in rs]) for label, budget, rs in bench_series(rows)]
    assert got == [("plain llama.cpp", None, [1024, 2048]),
                   ("hook, no eviction", 1.0, [1024, 2048]),
                   ("hook reading everything, no eviction", 1.0, [1024, 2048]),
                   ("keyformer 50%", 0.5, [1024, 2048]),
                   ("streaming 50%", 0.5, [1024, 2048]),
                   ("keyformer 25%", 0.25, [4096])]


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    (json.dumps({"rows": []}), "missing field(s) 'model', 'machine', 'gen'"),
    (json.dumps(bench([])), "'rows' must be a non-empty list"),
    (json.dumps(bench([bench_row(1024, None, 50.0), {"context": 2048}])), "rows[1]: missing field(s) 'budget'"),
    (json.dumps(bench([bench_row(1024, "half", 50.0)])), "rows[0]: 'budget' must be a number or null"),
])
def test_bad_bench(tmp_path, content, message):
    path = tmp_path / "bench.json"
    path.write_text(content)
    with pytest.raises(records.EvaluateError) as e:
        records.read_bench(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_compare_paired_differences(tmp_path):
    write_jsonl(tmp_path, [line("a", "full", REFERENCE), line("a", "keyformer", REFERENCE, budget=0.5),
                           line("b", "full", REFERENCE), line("b", "keyformer", NEAR, budget=0.5),
                           line("c", "full", NEAR), line("c", "keyformer", NEAR, budget=0.5)])
    score(tmp_path)
    out = _Capture()
    compare_command(str(tmp_path), "keyformer", "full", out=out)
    # Differences in ROUGE-L points: 0, 5/6 - 1, 0: mean -5.56, standard deviation 9.62, error 5.56.
    assert "| 50% | 3 | -5.56 | 5.56 |" in "".join(out.parts)
    bad = run_cli("compare", str(tmp_path), "h2o", "full")
    assert bad.returncode == 1 and "no generations of policy 'h2o'" in bad.stderr
    missing = run_cli("compare", str(tmp_path / "nowhere"), "keyformer", "full")
    assert missing.returncode == 1 and "run `score` first" in missing.stderr


@pytest.mark.parametrize("blocked, make", [
    ("rouge_score", lambda: rouge._rouge_scorer()),
    ("matplotlib.figure", lambda: plots.figure(7, 4.5)),
])
def test_missing_eval_dependency_names_the_requirements(monkeypatch, blocked, make):
    monkeypatch.setitem(sys.modules, blocked, None)  # import fails as if not installed
    with pytest.raises(records.EvaluateError) as e:
        make()
    assert "is not installed" in str(e.value) and "requirements-eval.txt" in str(e.value)
