"""keyformer_eval fidelity / tune / compare --metric top1 (keyformer_eval/fidelity.py) on synthetic data.

Needs matplotlib (build/deps/venv); skips without it. Does not load libkeyformer. The expected
means and standard errors are computed by hand in the comments (SE = sample sd / sqrt(n)).
"""
import json
import math

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is not installed (build/scripts/venv.sh)")

from eval_helpers import PNG_MAGIC, Capture, approx, run_cli, run_json, write_jsonl  # noqa: E402
from keyformer_eval import fidelity, records  # noqa: E402
from keyformer_eval.compare import compare_command  # noqa: E402

pytestmark = pytest.mark.nolib

S3 = 0.1 / math.sqrt(3)  # the SE of three values 0.1 apart (sd 0.1): 0.057735


def fid(rid, policy, top1, kl, nll, ref_nll, budget=None, cache=None, positions=10, ref_tokens=5):
    """One line of fidelity.jsonl."""
    return {"id": rid, "policy": policy, "budget": budget, "cache": cache, "prompt_tokens": 800, "kv_cells": 400,
            "positions": positions, "top1": top1, "kl": kl, "nll": nll, "ref_tokens": ref_tokens, "ref_nll": ref_nll}


QUALITY = [
    fid("a", "full", 1.0, 0.0, 0.5, 2.0),
    fid("b", "full", 1.0, 0.0, 0.7, 3.0),
    fid("c", "full", 1.0, 0.0, 0.6, None, ref_tokens=0),
    fid("a", "keyformer", 0.9, 0.1, 0.6, 2.2, budget=0.5),
    fid("b", "keyformer", 0.8, 0.2, 0.9, 3.1, budget=0.5),
    fid("c", "keyformer", 1.0, 0.0, 0.6, None, budget=0.5, ref_tokens=0),
    fid("a", "h2o", 0.1, 5.0, 9.0, 9.0, budget=0.5),  # replaced below (a resumed run)
    fid("a", "h2o", 0.7, 0.3, 0.8, 2.5, budget=0.5),
    fid("b", "h2o", 0.8, 0.4, 1.0, 3.0, budget=0.5),
    fid("c", "h2o", 0.9, 0.2, 0.7, None, budget=0.5, ref_tokens=0),
    fid("a", "window", 0.5, 1.0, 1.5, 3.0, budget=0.5),
    fid("b", "window", 0.6, 1.2, 1.7, 4.0, budget=0.5),
    fid("a", "keyformer", 0.5, 0.6, 1.1, 2.9, budget=0.2),
]


def test_quality_means_ses_and_paired_against_full(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", QUALITY)
    stdout, result = run_json(fidelity.fidelity_command, str(tmp_path), True)
    assert result["metric"] == "fidelity" and result["records"] == 3
    assert result["full"] == {"nll": approx(0.6), "ref_nll": approx(2.5)}  # (.5+.7+.6)/3, (2+3)/2
    rows = {(r["policy"], r["budget"]): r for r in result["results"]}
    assert [(r["policy"], r["budget"], r["cache"], r["n"]) for r in result["results"]] == [
        ("keyformer", 0.2, None, 1), ("keyformer", 0.5, None, 3), ("h2o", 0.5, None, 3), ("window", 0.5, None, 2)]
    k = rows[("keyformer", 0.5)]
    # top1 .9 .8 1.0 -> .9 (sd .1); kl .1 .2 0 -> .1; nll .6 .9 .6 -> .7 (sd .1732, se .1);
    # ref_nll 2.2 3.1 (c has no reference tokens) -> 2.65 (se .45); nll - full: .1 .2 0; ref - full: .2 .1.
    assert k == {"policy": "keyformer", "budget": 0.5, "cache": None, "n": 3,
                 "top1": approx(0.9), "top1_se": approx(S3), "kl": approx(0.1), "kl_se": approx(S3),
                 "nll": approx(0.7), "nll_se": approx(0.1), "ref_nll": approx(2.65), "ref_nll_se": approx(0.45),
                 "nll_vs_full": approx(0.1), "nll_vs_full_se": approx(S3),
                 "ref_nll_vs_full": approx(0.15), "ref_nll_vs_full_se": approx(0.05),
                 "kv_memory": None, "llama_cpp": None}  # an older file: no kv_bytes, no per-position lists
    h = rows[("h2o", 0.5)]  # the last line for (a, h2o, 0.5) wins: top1 .7 .8 .9
    assert (h["top1"], h["top1_se"], h["kl"], h["kl_se"]) == (approx(0.8), approx(S3), approx(0.3), approx(S3))
    # nll .8 1.0 .7: mean .8333, sd .152753, se .088192; nll - full .3 .3 .1: mean .2333, se .066667
    assert (h["nll"], h["nll_se"]) == (approx(2.5 / 3), approx(0.088192))
    assert (h["nll_vs_full"], h["nll_vs_full_se"]) == (approx(0.7 / 3), approx(0.066667))
    assert (h["ref_nll_vs_full"], h["ref_nll_vs_full_se"]) == (approx(0.25), approx(0.25))  # .5, 0
    one = rows[("keyformer", 0.2)]  # one record: means, no SEs
    assert (one["top1"], one["top1_se"], one["nll_vs_full"], one["nll_vs_full_se"]) == (0.5, None, approx(0.6), None)
    assert result["pairs"] == [
        # top1 diffs .2 0 .1 -> .1 (se .0577); kl diffs -.2 -.2 -.2 -> -.2 (se 0)
        {"a": "keyformer", "b": "h2o", "budget": 0.5, "cache": None, "n": 3, "top1_diff": approx(0.1),
         "top1_diff_se": approx(S3), "kl_diff": approx(-0.2), "kl_diff_se": approx(0.0)},
        # a, b only: top1 .4 .2 -> .3 (se .1); kl -.9 -1.0 -> -.95 (se .05)
        {"a": "keyformer", "b": "window", "budget": 0.5, "cache": None, "n": 2, "top1_diff": approx(0.3),
         "top1_diff_se": approx(0.1), "kl_diff": approx(-0.95), "kl_diff_se": approx(0.05)},
        {"a": "h2o", "b": "window", "budget": 0.5, "cache": None, "n": 2, "top1_diff": approx(0.2),
         "top1_diff_se": approx(0.0), "kl_diff": approx(-0.75), "kl_diff_se": approx(0.05)},
    ]
    assert list(result) == ["metric", "records", "reading", "instruction_in_prompt", "full", "results", "pairs"]
    assert result["reading"] is None and result["instruction_in_prompt"] is None
    assert stdout.count("\n{") == 1 and stdout.splitlines()[-1].startswith('{"metric": "fidelity"')


def test_reports_markdown_csv_png(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", QUALITY)
    stdout, _ = run_json(fidelity.fidelity_command, str(tmp_path), True)
    md = (tmp_path / "fidelity.md").read_text()
    assert md in stdout
    table = [l for l in md.splitlines() if l.startswith("|")]
    assert table[0] == ("| policy | budget | n | top-1 % | KL | NLL | NLL − full | ref NLL | ref NLL − full "
                        "| KV memory % of full |")
    assert table[2] == ("| full | — | 3 | 100.00 ± 0.00 | 0.0000 ± 0.0000 | 0.6000 ± 0.0577 | — | 2.5000 ± 0.5000 | — "
                        "| — |")
    assert table[3] == "| keyformer | 20% | 1 | 50.00 | 0.6000 | 1.1000 | +0.6000 | 2.9000 | +0.9000 | — |"
    assert table[4] == ("| keyformer | 50% | 3 | 90.00 ± 5.77 | 0.1000 ± 0.0577 | 0.7000 ± 0.1000 | +0.1000 ± 0.0577 "
                        "| 2.6500 ± 0.4500 | +0.1500 ± 0.0500 | — |")
    assert "llama.cpp" not in md  # no per-position lists
    assert "| A | B | budget | n | top-1 diff (points) | KL diff |" in table
    assert "| keyformer | h2o | 50% | 3 | +10.00 ± 5.77 | -0.2000 ± 0.0000 |" in table
    assert "| h2o | window | 50% | 2 | +20.00 ± 0.00 | -0.7500 ± 0.0500 |" in table
    csv_lines = (tmp_path / "fidelity.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(fidelity.CSV_COLUMNS)
    assert csv_lines[1] == "full,,,3,1.0,0.0,0.0,0.0,0.6,0.057735,2.5,0.5,,,,," + "," * 10
    assert csv_lines[3] == ("keyformer,0.5,,3,0.9,0.057735,0.1,0.057735,0.7,0.1,2.65,0.45,0.1,0.057735,0.15,0.05,"
                            + "," * 10)
    assert len(csv_lines) == 6
    assert (tmp_path / "fidelity-top1.png").read_bytes()[:8] == PNG_MAGIC


def measured(line, kv_bytes, kl_positions=None, delta_p=None):
    """``line`` (of :func:`fid`) of the current Go command: bounded reading, the question after the
    document, its KV bytes and, where given, the per-position lists."""
    return dict(line, reading="bounded", instruction_in_prompt=False, kv_bytes=kv_bytes, kl_positions=kl_positions,
                delta_p=delta_p)


LLAMA_CPP = [
    measured(fid("a", "full", 1.0, 0.0, 0.5, 2.0, positions=4), 1000, [0.0] * 4, [0.0] * 4),
    measured(fid("b", "full", 1.0, 0.0, 0.7, 3.0, positions=2), 2000, [0.0] * 2, [0.0] * 2),
    measured(fid("a", "keyformer", 0.75, 0.2, 0.6, 2.2, budget=0.5, positions=4), 500,
             [0.0, 0.1, 0.2, 0.5], [0.0, -0.1, 0.2, -0.3]),
    measured(fid("b", "keyformer", 0.5, 0.7, 0.9, 3.1, budget=0.5, positions=2), 1000, [0.4, 1.0], [-0.2, 0.0]),
    measured(fid("a", "kv-q8_0", 1.0, 0.01, 0.5, 2.0, positions=4), 530),  # no lists
    measured(fid("b", "kv-q8_0", 1.0, 0.02, 0.7, 3.0, positions=2), 1060),
    measured(fid("a", "h2o", 0.5, 0.3, 0.8, 2.5, budget=0.5, positions=4), 500, [0.1, 0.2, 0.3, 0.4]),  # KLD only
]


def test_llama_cpp_units_by_hand(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", LLAMA_CPP)
    stdout, result = run_json(fidelity.fidelity_command, str(tmp_path), True)
    assert (result["reading"], result["instruction_in_prompt"]) == ("bounded", False)
    k, h, q8 = result["results"]
    assert (k["policy"], h["policy"], q8["policy"]) == ("keyformer", "h2o", "kv-q8_0")
    # KLD pooled over a's 4 and b's 2 positions: 0 .1 .2 .5 .4 1 -> mean 2.2/6 = .366667, sample sd .361478,
    # se .361478/sqrt(6) = .147573 (llama.cpp's sqrt((sum2/n - mean^2)/(n - 1)) gives the same); sorted
    # 0 .1 .2 .4 .5 1: median (.2+.4)/2 = .3, 99%: .99 x 5 = 4.95 -> .5 + .95 x (1 - .5) = .975, max 1.
    # Same top p: .75 x 4 + .5 x 2 = 4 of 6 positions = .666667, se sqrt(p(1-p)/(6-1)) = .210819.
    # Δp 0 -.1 .2 -.3 -.2 0: mean -.4/6 = -.066667, se .071492; rms sqrt(.18/6) = .173205.
    assert k["llama_cpp"] == {"mean_kld": approx(0.366667), "mean_kld_se": approx(0.147573), "median_kld": approx(0.3),
                              "kld_99": approx(0.975), "max_kld": approx(1.0), "same_top_p": approx(2 / 3),
                              "same_top_p_se": approx(0.210819), "mean_dp": approx(-0.066667),
                              "mean_dp_se": approx(0.071492), "rms_dp": approx(0.173205)}
    # KLD only (a, 4 positions .1 .2 .3 .4): median .25, 99%: 2.97 -> .3 + .97 x .1 = .397; top1 .5 -> 2 of 4
    assert h["llama_cpp"] == {"mean_kld": approx(0.25), "mean_kld_se": approx(0.0645497), "median_kld": approx(0.25),
                              "kld_99": approx(0.397), "max_kld": approx(0.4), "same_top_p": 0.5,
                              "same_top_p_se": approx(0.288675), "mean_dp": None, "mean_dp_se": None, "rms_dp": None}
    assert q8["llama_cpp"] is None and q8["budget"] is None
    # KV memory: keyformer 500/1000, 1000/2000 -> .5; h2o .5 (a only); kv-q8_0 .53
    assert (k["kv_memory"], h["kv_memory"], q8["kv_memory"]) == (0.5, 0.5, 0.53)
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [("keyformer", "h2o")]  # a peer is in no pair
    md = (tmp_path / "fidelity.md").read_text()
    assert "Bounded reading; question after the document." in md
    assert "| kv-q8_0 | — | 2 | 100.00 ± 0.00 |" in md and md.count(" | 53.0 |") == 1
    assert "| policy | budget | Mean KLD | Median KLD | 99.0% KLD | Max KLD | Same top p % | Mean Δp % | RMS Δp % |" in md
    assert ("| keyformer | 50% | 0.366667 ± 0.147573 | 0.300000 | 0.975000 | 1.000000 | 66.667 ± 21.082 "
            "| -6.667 ± 7.149 | 17.321 |") in md
    assert "| h2o | 50% | 0.250000 ± 0.064550 | 0.250000 | 0.397000 | 0.400000 | 50.000 ± 28.868 | — | — |" in md
    assert "| kv-q8_0 | — | 0." not in md  # no lists: not in the llama.cpp table
    csv_lines = (tmp_path / "fidelity.csv").read_text().splitlines()
    assert csv_lines[2].startswith("keyformer,0.5,,2,") and csv_lines[2].endswith(
        ",0.5,0.366667,0.147573,0.3,0.975,1.0,0.666667,0.210819,-0.066667,0.071492,0.173205")
    assert (tmp_path / "fidelity-top1.png").read_bytes()[:8] == PNG_MAGIC
    _, tune = run_json(fidelity.tune_command, str(tmp_path), 0.7, True)
    assert (tune["reading"], tune["instruction_in_prompt"]) == ("bounded", False)
    assert [a["policy"] for a in tune["advice"]] == ["keyformer", "h2o"]  # not the peer: no budget to choose


def test_long_document_nulls_and_optional_full(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", [
        fid("d1", "full", 1.0, 0.0, 0.9, 1.9),
        fid("d1", "keyformer", 0.9, 0.1, 1.0, 2.0, cache=512),
        # no teacher positions: top1/kl/nll are left out (the 0.0 there is ignored); the reference counts
        fid("d2", "keyformer", 0.0, None, None, 3.0, cache=512, positions=0),
        fid("d1", "context-shift", 0.6, 0.5, 1.5, 2.5, cache=512),
        fid("d2", "context-shift", None, None, None, 3.5, cache=512, positions=0),
    ])
    _, result = run_json(fidelity.fidelity_command, str(tmp_path), True)
    assert result["records"] == 2 and result["full"] == {"nll": 0.9, "ref_nll": 1.9}
    k, cs = result["results"]
    assert (k["policy"], k["budget"], k["cache"], k["n"]) == ("keyformer", None, 512, 2)
    assert (k["top1"], k["top1_se"], k["kl"], k["nll"]) == (0.9, None, 0.1, 1.0)
    assert (k["ref_nll"], k["ref_nll_se"]) == (approx(2.5), approx(0.5))
    assert (k["nll_vs_full"], k["ref_nll_vs_full"], k["ref_nll_vs_full_se"]) == (approx(0.1), approx(0.1), None)
    assert cs["policy"] == "context-shift" and cs["top1"] == 0.6 and cs["n"] == 2
    assert result["pairs"] == [{"a": "keyformer", "b": "context-shift", "budget": None, "cache": 512, "n": 1,
                                "top1_diff": approx(0.3), "top1_diff_se": None, "kl_diff": approx(-0.4),
                                "kl_diff_se": None}]
    assert "| keyformer | 512 | 2 | 90.00 |" in (tmp_path / "fidelity.md").read_text()


def test_long_document_without_full(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", [fid("d1", "keyformer", 0.9, 0.1, 1.0, 2.0, cache=256),
                                              fid("d1", "keyformer", 0.95, 0.05, 0.9, 1.8, cache=1024)])
    _, result = run_json(fidelity.fidelity_command, str(tmp_path), True)
    assert result["full"] is None and result["pairs"] == []
    assert [(r["cache"], r["top1"], r["nll_vs_full"]) for r in result["results"]] == [(256, 0.9, None),
                                                                                     (1024, 0.95, None)]


def test_compare_top1_and_kl(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", QUALITY)
    out = Capture()
    compare_command(str(tmp_path), "h2o", "keyformer", metric="top1", out=out)
    assert "| 50% | 3 | -10.00 | 5.77 |" in out.text  # points: -20, 0, -10
    out = Capture()
    compare_command(str(tmp_path), "h2o", "keyformer", metric="kl", out=out)
    assert "| 50% | 3 | +0.2000 | 0.0000 |" in out.text and "nats" in out.text
    out = Capture()
    compare_command(str(tmp_path), "h2o", "full", metric="nll", out=out)
    assert "| 50% | 3 | +0.2333 | 0.0667 |" in out.text
    p = run_cli("compare", str(tmp_path), "window", "keyformer", "--metric", "top1")
    assert p.returncode == 0, p.stderr
    assert "| 50% | 2 | -30.00 | 10.00 |" in p.stdout
    p = run_cli("compare", str(tmp_path), "tova", "keyformer", "--metric", "top1")
    assert p.returncode == 1 and "no lines of policy 'tova'" in p.stderr


def test_compare_against_another_folder(tmp_path):
    # the same policy under another schedule, in its own folder: its top-1 lower on records a and b
    here, there = tmp_path / "everything", tmp_path / "schedule"
    here.mkdir(), there.mkdir()
    write_jsonl(here / "fidelity.jsonl", QUALITY)
    write_jsonl(there / "fidelity.jsonl", [fid("a", "keyformer", 0.7, 0.1, 0.6, 2.2, budget=0.5),
                                           fid("b", "keyformer", 0.7, 0.2, 0.9, 3.1, budget=0.5)])
    p = run_cli("compare", str(here), "keyformer", "keyformer", "--metric", "top1", "--against", str(there))
    assert p.returncode == 0, p.stderr
    assert "| 50% | 2 | +15.00 | 5.00 |" in p.stdout and "of " + str(there) in p.stdout
    p = run_cli("compare", str(here), "keyformer", "keyformer", "--metric", "top1", "--against", str(tmp_path))
    assert p.returncode == 1 and "fidelity.jsonl" in p.stderr


SPARSITY = [
    {"id": "a", "layer": 0, "rows": 64, "cells": 999.0, "share90": 0.9},  # replaced below
    {"id": "a", "layer": 0, "rows": 64, "cells": 100.0, "share90": 0.2},
    {"id": "b", "layer": 0, "rows": 64, "cells": 200, "share90": 0.4},
    {"id": "a", "layer": 1, "rows": 64, "cells": 100.0, "share90": 0.5},
    {"id": "b", "layer": 1, "rows": 0, "cells": 0, "share90": None},  # no rows: left out
]


def test_tune_advice_and_sparsity(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", QUALITY)
    write_jsonl(tmp_path / "sparsity.jsonl", SPARSITY)
    stdout, result = run_json(fidelity.tune_command, str(tmp_path), 0.85, True)
    assert result["metric"] == "tune" and result["target"] == 0.85 and result["records"] == 3
    assert result["advice"] == [
        # keyformer: 20% -> .5, 50% -> .9: 50% is the smallest to reach .85
        {"policy": "keyformer", "budget": 0.5, "cache": None, "top1": approx(0.9), "top1_se": approx(S3),
         "best": None},
        {"policy": "h2o", "budget": None, "cache": None, "top1": None, "top1_se": None,
         "best": {"budget": 0.5, "cache": None, "top1": approx(0.8), "top1_se": approx(S3)}},
        {"policy": "window", "budget": None, "cache": None, "top1": None, "top1_se": None,
         "best": {"budget": 0.5, "cache": None, "top1": approx(0.55), "top1_se": approx(0.05)}},
    ]
    # layer 0: .2 .4 -> .3 (se .1), cells 150; layer 1: b has no rows -> a alone
    assert result["sparsity"] == [{"layer": 0, "n": 2, "share90": approx(0.3), "share90_se": approx(0.1), "cells": 150.0},
                                  {"layer": 1, "n": 1, "share90": 0.5, "share90_se": None, "cells": 100.0}]
    md = (tmp_path / "tune.md").read_text()
    assert md in stdout
    assert "| keyformer | 50% | 90.00 ± 5.77 |" in md
    assert "| h2o | none of the budgets tried reach it (best: budget 50%) | 80.00 ± 5.77 |" in md
    assert "| 0 | 2 | 30.00 ± 10.00 | 150.0 |" in md and "| 1 | 1 | 50.00 | 100.0 |" in md
    for png in ("tune-top1.png", "sparsity.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def test_tune_cli_default_target_none_reach(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", QUALITY)
    p = run_cli("tune", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert result["target"] == 0.99 and result["sparsity"] == []
    assert [(a["policy"], a["budget"], a["best"]["budget"]) for a in result["advice"]] == [
        ("keyformer", None, 0.5), ("h2o", None, 0.5), ("window", None, 0.5)]
    assert "sparsity.jsonl is not there" in p.stderr
    assert not (tmp_path / "sparsity.png").exists() and (tmp_path / "tune-top1.png").exists()
    bad = run_cli("tune", str(tmp_path), "--target", "1.5")
    assert bad.returncode == 1 and "--target must be in (0, 1]" in bad.stderr


def test_cli_fidelity_json(tmp_path):
    write_jsonl(tmp_path / "fidelity.jsonl", QUALITY)
    p = run_cli("fidelity", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert result["records"] == 3 and len(result["results"]) == 4 and len(result["pairs"]) == 3
    assert list(result["results"][0]) == list(fidelity.RESULT_KEYS)
    assert list(result["pairs"][0]) == list(fidelity.PAIR_KEYS)
    assert "| policy | budget | n | top-1 % |" in p.stdout


@pytest.mark.parametrize("lines, message", [
    ([fid("a", "full", 1.0, 0.0, 0.5, 2.0), "{not json"], ":2: not valid JSON"),
    ([{"id": "a", "policy": "full", "budget": None, "cache": None, "positions": 3}],
     ":1: missing fields 'top1', 'kl', 'nll', 'ref_tokens', 'ref_nll'"),
    ([], "no fidelity lines (the file is empty)"),
    ([fid("a", "h2o", 1.5, 0.0, 0.5, 2.0, budget=0.5)], ":1: 'top1' must be between 0 and 1"),
    ([fid("a", "h2o", None, 0.0, 0.5, 2.0, budget=0.5)], ":1: 'top1' must be a number, got None"),
    ([fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5, positions=-1)], ":1: 'positions' must be an integer >= 0"),
    ([fid("a", "full", 1.0, 0.0, 0.5, 2.0, cache=512)], ":1: policy 'full' must have 'budget' and 'cache' null"),
    ([fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5), fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, cache=64)],
     ":2: a long-document-mode line in a quality-mode file"),
    ([dict(fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5, positions=2), kl_positions=[0.1])],
     ":1: 'kl_positions' must be a list of 'positions' (2) numbers or null, got a list of 1"),
    ([dict(fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5, positions=2), kl_positions=[0.1, -0.2])],
     ":1: kl_positions[1] must be a number >= 0, got -0.2"),
    ([dict(fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5, positions=1), delta_p=[1.5])],
     ":1: delta_p[0] must be a number >= -1 and <= 1, got 1.5"),
    ([dict(fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5), delta_p="none")],
     ":1: 'delta_p' must be a list of 'positions' (10) numbers or null, got 'none'"),
    ([measured(fid("a", "full", 1.0, 0.0, 0.5, 2.0), 10), fid("a", "h2o", 1.0, 0.0, 0.5, 2.0, budget=0.5)],
     ":2: 'reading' None and 'instruction_in_prompt' None differ from line 1's ('bounded', False)"),
])
def test_bad_fidelity(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "fidelity.jsonl", lines)
    with pytest.raises(records.EvaluateError) as e:
        records.read_fidelity(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


@pytest.mark.parametrize("lines, message", [
    ([{"id": "a", "layer": 0, "rows": 4, "cells": 10}], ":1: missing field 'share90'"),
    ([{"id": "a", "layer": 0, "rows": 4, "cells": 10, "share90": None}], ":1: 'share90' must be a number"),
    (["", "[]"], ":2: expected a JSON object"),
    ([], "no sparsity lines"),
])
def test_bad_sparsity(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "sparsity.jsonl", lines)
    with pytest.raises(records.EvaluateError) as e:
        records.read_sparsity(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
    path = write_jsonl(tmp_path / "fidelity.jsonl", [fid("a", "full", 1.0, 0.0, 0.5, 2.0), '{"id": "a"'])
    p = run_cli("fidelity", str(tmp_path), "--json")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("keyformer_eval: error: %s:2: not valid JSON" % path)
    assert len(p.stderr.strip().splitlines()) == 1
    p = run_cli("fidelity", str(tmp_path / "nowhere"))
    assert p.returncode == 1 and "cannot read %s" % (tmp_path / "nowhere" / "fidelity.jsonl") in p.stderr
