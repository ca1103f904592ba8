"""keyformer in a fresh venv, as a user gets it: ``pip install bindings/python`` (which builds and
bundles libkeyformer.so) next to llama-cpp-python (build/scripts/pins.env pins it), whose own llama.cpp
(the commit its sdist vendors, not the one build/deps pins) keyformer attaches to through the C ABI.

llama-cpp-python's wheel is built once from its source distribution into build/deps
(build/scripts/llama-cpp-python.sh, about 5 minutes on 2 cores; reused after). The venv is made once per
test run; each scenario runs llama_cpp_python_run.py in it, as a subprocess (one llama.cpp per
process), with no KEYFORMER_LIB and no PYTHONPATH.
"""

import json
import os
import re
import subprocess
import sys

import pytest

import keyformer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.environ.get("KEYFORMER_MODEL") or os.path.join(ROOT, "build", "deps", "models", "smollm2.gguf")
RUN = os.path.join(HERE, "llama_cpp_python_run.py")
BUDGET = 256
N_BATCH = 128
EVICTING = ["keydiff", "keyformer", "h2o", "tova", "peak", "streaming", "window"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    if not os.path.exists(MODEL):
        pytest.skip("model not found at %s: fetch it with `bash build/scripts/deps.sh` (make deps)" % MODEL)
    build = subprocess.run(["bash", os.path.join(ROOT, "build", "scripts", "llama-cpp-python.sh")], capture_output=True,
                           text=True, timeout=3600)
    assert build.returncode == 0, build.stderr[-4000:]
    wheel = build.stdout.strip().splitlines()[-1]
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(d)], check=True, timeout=300)
    py = str(d / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                          os.path.join(ROOT, "bindings", "python"), wheel],
                         capture_output=True, text=True, timeout=1800, cwd=str(d), env=_clean_env())
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-4000:]
    return d


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("KEYFORMER_LIB", "PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "2"
    return env


def run(venv, *args):
    p = subprocess.run([str(venv / "bin" / "python"), RUN] + list(args) + [MODEL], capture_output=True, text=True,
                       timeout=900, cwd=str(venv), env=_clean_env())
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines, "exit %d; stderr:\n%s" % (p.returncode, p.stderr[-4000:])
    return json.loads(lines[-1])


def check_bounded(r):
    """The llama.cpp context holds budget + n_batch + slack cells, never more, and evicts to stay there."""
    bound = r["budget"] + r["n_batch"] + r["evict_slack"]
    assert r["budget"] == BUDGET and r["n_batch"] == N_BATCH and r["evict_slack"] > 0, r
    assert r["n_cells"] <= bound + 256, r  # llama.cpp may round its n_ctx up to a multiple of 256
    assert r["peak_cells"] <= bound, r
    assert r["final_cells"] <= r["budget"] + r["evict_slack"], r
    assert r["n_ctx"] == 8192, "llama-cpp-python sees the n_ctx it asked for"
    assert r["evicted"] > 0


def check_answer(text, coherent=True):
    words = text.split()
    assert len(words) >= 3, text
    assert sum(c.isalpha() or c.isspace() for c in text) >= 0.8 * len(text), text
    if coherent:
        assert len(set(words)) >= len(words) / 3, "degenerate repetition: %r" % text


def test_installed_package_bundles_the_library(venv):
    """`pip install bindings/python` built the library into the package, found with no KEYFORMER_LIB."""
    code = "import keyformer; print(keyformer.library_path()); print(keyformer.version())"
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True,
                       cwd=str(venv), env=_clean_env())
    path, version = p.stdout.split()
    assert path.startswith(str(venv)) and path.endswith(os.path.join("keyformer", "libkeyformer.so")), path
    assert version == keyformer.version()
    env = dict(_clean_env(), KEYFORMER_LIB=keyformer.library_path())  # an explicit choice wins
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True,
                       cwd=str(venv), env=env)
    assert p.stdout.split()[0] == keyformer.library_path()


@pytest.mark.parametrize("policy", EVICTING)
def test_long_document_through_a_bounded_cache(venv, policy):
    r = run(venv, "document", "--policy", policy, "--budget", str(BUDGET), "--n-batch", str(N_BATCH))
    assert r["prompt_tokens"] > 2 * r["n_cells"], "the document must be much longer than the cache"
    check_bounded(r)
    assert r["last_position"] + 1 >= r["prompt_tokens"]  # positions are kept: llama.cpp's count every token
    assert r["evicted"] == r["last_position"] + 1 - r["final_cells"]
    for text in (r["text"], r["regenerated"]["text"]):
        # The window alone drops the first tokens (the attention sinks) and, as the StreamingLLM paper
        # found, then falls into repetition ("and the lighthouse on the mainland, and the ...").
        check_answer(text, coherent=policy != "window")
        if policy in ("keyformer", "h2o", "tova"):  # kept by attention; streaming and window keep only the
            assert "marta" in text.lower(), text  # end, where SmolLM2-135M answers fluently but not always right


def test_regeneration_after_the_last_prompt_token_was_evicted(venv):
    """A 4-token window: the answer pushes the prompt's last token out, so regenerating (llama-cpp-python
    truncates to that token and decodes it again) must first close the gap llama.cpp would refuse."""
    r = run(venv, "document", "--window", "4", "--budget", str(BUDGET), "--n-batch", str(N_BATCH))
    check_bounded(r)
    assert r["gaps_closed"] >= 1 and r["regenerated"]["gaps_closed"] == r["gaps_closed"], r
    check_answer(r["regenerated"]["text"])
    assert "marta" in r["regenerated"]["text"].lower()


def test_enable_then_llama_cpp_llama(venv):
    """keyformer.llama_cpp.enable() gives llama-cpp-python's own Llama the same bounded cache."""
    r = run(venv, "document", "--enable", "--budget", str(BUDGET), "--n-batch", str(N_BATCH))
    check_bounded(r)
    check_answer(r["text"])
    assert "marta" in r["text"].lower(), r["text"]


def test_policy_full_keeps_everything(venv):
    r = run(venv, "document", "--policy", "full", "--budget", str(BUDGET), "--n-batch", str(N_BATCH), "--reps", "4")
    assert r["evicted"] == 0 and r["n_cells"] >= r["n_ctx"], r
    assert r["final_cells"] == r["last_position"] + 1
    check_answer(r["text"])


def test_multi_turn_chat_past_the_cells(venv):
    r = run(venv, "chat", "--budget", str(BUDGET), "--n-batch", str(N_BATCH))
    turns = r["turns"]
    assert turns[-1]["prompt_tokens"] > r["n_cells"] + BUDGET, "the history must outgrow the cache"
    for t in turns:
        check_bounded(t)
        check_answer(t["text"])
    assert [t["evicted"] for t in turns] == sorted(t["evicted"] for t in turns)
    assert turns[-1].get("regenerated") and turns[-1]["prompt_tokens"] == turns[-2]["prompt_tokens"]
    assert r["load_state_error"] == "Unsupported", r


def test_chat_in_a_stream_per_sequence(venv):
    """A context of two sequences in llama.cpp's default layout for several, a KV stream each:
    each stream holds budget + n_batch + slack cells (rounded up to 256), the chat stays within
    it and evicts as in one stream."""
    r = run(venv, "chat", "--budget", str(BUDGET), "--n-batch", str(N_BATCH), "--n-seq-max", "2")
    bound = BUDGET + N_BATCH + r["evict_slack"]
    for t in r["turns"]:
        assert bound <= t["stream_cells"] <= bound + 256 and t["n_cells"] == 2 * t["stream_cells"], t
        assert t["peak_cells"] <= bound and t["final_cells"] <= BUDGET + t["evict_slack"], t
        check_answer(t["text"])
    assert r["turns"][-1]["prompt_tokens"] > r["stream_cells"] + BUDGET and r["evicted"] > 0, r
    assert r["load_state_error"] == "Unsupported", r


def test_readme_snippet(venv):
    from test_readme import readme_python_blocks
    code = "MODEL = %r\n%s" % (MODEL, readme_python_blocks()[0])
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=600,
                       cwd=str(venv), env=_clean_env())
    assert p.returncode == 0, p.stderr[-4000:]
    reply, session = p.stdout.strip().rsplit("\n", 1)
    check_answer(reply)
    assert re.fullmatch(r"<keyformer\.llama_cpp\.Session policy=keydiff budget=256 cells=\d+ n_ctx=8192 "
                        r"evicted=\d+ peak=\d+>", session), session


@pytest.mark.parametrize("kwargs, error", [
    ("keyformer_budget=-1", "ValueError: keyformer budget must be positive"),
    ("keyformer_budget=1.5", "ValueError: a fractional keyformer budget must be in (0, 1]"),
    ("keyformer_budget='half'", "TypeError: keyformer budget must be an int"),
    ("keyformer_n_layer=3", "TypeError: keyformer option 'n_layer' is set by the model"),
    ("keyformer_policy='lru'", "ValueError: unknown policy 'lru'"),
])
def test_bad_arguments_raise_before_loading(venv, kwargs, error):
    code = "from keyformer.llama_cpp import Llama\nLlama(model_path=%r, verbose=False, %s)" % (MODEL, kwargs)
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=str(venv), env=_clean_env())
    assert p.returncode != 0 and error in p.stderr, p.stderr[-2000:]
    assert "Exception ignored" not in p.stderr, p.stderr[-2000:]  # no half-built Llama left behind
