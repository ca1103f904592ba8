"""keyformer with llama.cpp loaded through ctypes: llama_generate.py run as a subprocess (one llama.cpp
per process), plus the ctypes mirrors of llama.h checked against the C compiler.

Needs the pinned llama.cpp runtime, headers and model of build/deps (bash build/scripts/deps.sh, or
make deps); skipped with a message saying so when they are absent.
"""

import ctypes
import json
import os
import shutil
import subprocess
import sys

import pytest

import keyformer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import llama_generate  # noqa: E402

SCRIPT = os.path.join(HERE, "llama_generate.py")
INCLUDE_DIR = os.environ.get("KEYFORMER_LLAMA_INCLUDE_DIR") or os.path.join(
    llama_generate.ROOT, "build", "deps", "llama", "include")
BUDGET = 256


def _need_runtime():
    for what, path in (("llama.cpp runtime", os.path.join(llama_generate.DEFAULT_LIB_DIR, "libllama.so")),
                       ("model", llama_generate.DEFAULT_MODEL)):
        if not os.path.exists(path):
            pytest.skip("%s not found at %s: fetch it with `bash build/scripts/deps.sh` (make deps)" % (what, path))


def generate(*args):
    """Runs llama_generate.py and returns (its JSON result line, the text it printed before)."""
    _need_runtime()
    env = dict(os.environ)
    env.setdefault("KEYFORMER_LIB", keyformer.library_path())  # the library this pytest run uses
    p = subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True, timeout=600, env=env)
    lines = p.stdout.strip().splitlines()
    assert lines, "no output (exit %d); stderr:\n%s" % (p.returncode, p.stderr[-4000:])
    result = json.loads(lines[-1])
    return p.returncode, result, "\n".join(lines[:-1])


def check_generation(rc, r, n_gen):
    assert rc == 0 and "error" not in r, r
    assert r["prompt_tokens"] > r["n_ctx"], "the prompt must not fit the cache: eviction is what makes room"
    # past the prompt a sequence grows by at most the default schedule's slack before evicting
    assert r["budget"] == BUDGET and r["evict_slack"] > 0, r
    assert r["max_seq_length"] <= BUDGET + r["evict_slack"], r
    assert BUDGET <= r["final_seq_length"] <= BUDGET + r["evict_slack"]
    assert 0 < r["generated_tokens"] <= n_gen
    assert r["text"].strip(), "no text generated"
    total = r["prompt_tokens"] + r["generated_tokens"]
    assert r["evicted"] == total - r["final_seq_length"]
    assert r["last_position"] == total - 1  # llama.cpp holds the positions keyformer kept


def test_generation_within_budget():
    rc, r, text = generate("--attach", "default", "--n-gen", "32")
    check_generation(rc, r, 32)
    assert text.strip() == r["text"].strip()
    # The answer is in the (repeated) paragraph: the kept cells must still hold it.
    assert "Marta" in r["text"], r["text"]


@pytest.mark.parametrize("attach", ["path", "soname", "global"])
def test_ways_to_find_llama(attach):
    """ctypes loads libllama RTLD_LOCAL: the library finds it anyway (see llama_generate.py's doc)."""
    rc, r, _ = generate("--attach", attach, "--reps", "6", "--n-gen", "4")
    check_generation(rc, r, 4)


def test_link_name_is_not_a_loaded_library():
    rc, r, _ = generate("--attach", "linkname", "--reps", "6", "--n-gen", "4")
    assert rc == 1 and r["error"].startswith("InvalidArgument"), r
    assert "SONAME" in r["error"] and "libllama.so" in r["error"]


def test_flash_attention_is_refused():
    rc, r, _ = generate("--flash-attn", "--reps", "6", "--n-gen", "4")
    assert rc == 1 and r["error"].startswith("Unsupported"), r
    assert "flash attention" in r["error"]


def test_chained_python_callback():
    rc, r, _ = generate("--chain", "--reps", "6", "--n-gen", "4")
    check_generation(rc, r, 4)
    decodes = -(-r["prompt_tokens"] // 128) + r["generated_tokens"]
    assert r["chain"]["unexpected"] == 0
    assert r["chain"]["result_output"] == decodes
    assert r["chain"]["asks"] > 100 * decodes


def check_prefix_reuse(r):
    pr = r["prefix_reuse"]
    slack = r["evict_slack"]
    assert r["evicted"] > 0, "the prefix is reused after evictions"
    # the last four positions go, all of them held (the recent window); llama.cpp continues at p
    assert pr["held_after_edit"] == pr["held_before"] - 4, pr
    assert pr["pos_max_after_edit"] == pr["at"] - 1, pr
    # the other continuation: two ubatches, then four generated tokens, within the budget
    assert pr["last_position"] == pr["at"] + 2 * 128 + 4 - 1, pr
    assert pr["max_seq_length"] <= BUDGET + 128 and BUDGET <= pr["final_seq_length"] <= BUDGET + slack, pr
    assert pr["evicted"] > 0, pr


def test_prefix_reuse_after_evictions():
    rc, r, _ = generate("--reps", "6", "--n-gen", "8", "--prefix-reuse", "mirror")
    assert rc == 0 and "error" not in r, r
    assert "apply_error" not in r["prefix_reuse"]
    check_prefix_reuse(r)


def test_unmirrored_edit_fails_and_sync_repairs():
    rc, r, _ = generate("--reps", "6", "--n-gen", "8", "--prefix-reuse", "unmirrored")
    assert rc == 0 and "error" not in r, r
    assert r["prefix_reuse"]["apply_error"].startswith("InvalidArgument"), r["prefix_reuse"]
    assert "does not come after" in r["prefix_reuse"]["apply_error"]
    check_prefix_reuse(r)


def test_cache_edits_check_their_arguments():
    with keyformer.Context(n_layer=2, n_head=2, budget=8) as kf:
        for call in (lambda: kf.llama_seq_rm(0), lambda: kf.llama_seq_add(0, 0, 4, 1),
                     lambda: kf.llama_seq_cp(0, 1), lambda: kf.llama_seq_keep(0), kf.llama_clear,
                     kf.llama_sync):
            with pytest.raises(keyformer.InvalidArgument, match="keyformer_llama_attach first"):
                call()
        with pytest.raises(TypeError):
            kf.llama_seq_rm("0")
        with pytest.raises(TypeError):
            kf.llama_seq_add(0, 0, 1, 1.5)
        with pytest.raises(ValueError, match="int32"):
            kf.llama_seq_cp(0, 1, 2**31, -1)
        with pytest.raises(ValueError, match="int32"):
            kf.llama_sync(-2**40)
    with pytest.raises(keyformer.InvalidHandle):
        kf.llama_seq_keep(0)


def test_context_llama_api_without_llama():
    with keyformer.Context(n_layer=2, n_head=2, budget=8) as kf:
        assert kf.llama_eval_callback == keyformer.llama_eval_callback() != 0
        assert kf.llama_user_data != 0
        with pytest.raises(keyformer.InvalidArgument, match="keyformer_llama_attach first"):
            kf.llama_apply(0)
        with pytest.raises(keyformer.InvalidArgument, match="lctx is NULL"):
            kf.llama_attach(0)
        with pytest.raises(keyformer.InvalidArgument, match="not loaded"):
            kf.llama_attach(1, "/nonexistent/libllama.so")
        with pytest.raises(TypeError):
            kf.llama_attach("lctx")
        kf.llama_chain(keyformer.EVAL_CALLBACK(lambda t, ask, ud: False))
        kf.llama_chain(None)
    with pytest.raises(keyformer.InvalidHandle):
        kf.llama_apply(0)


@pytest.mark.nolib
def test_llama_mirrors_match_the_c_compiler(tmp_path):
    """llama_generate.py's ctypes structs against llama.h (sizes and every field's offset)."""
    if not os.path.isfile(os.path.join(INCLUDE_DIR, "llama.h")):
        pytest.skip("llama.h not found in %s: fetch it with `bash build/scripts/deps.sh` (make deps)" % INCLUDE_DIR)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    structs = {"struct llama_model_params": llama_generate.LlamaModelParams,
               "struct llama_context_params": llama_generate.LlamaContextParams,
               "struct llama_batch": llama_generate.LlamaBatch,
               "struct llama_chat_message": llama_generate.LlamaChatMessage}
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "llama.h"', "int main(void) {",
             'printf("ggml_tensor.name %zu\\n", offsetof(struct ggml_tensor, name));']
    for cname, cls in structs.items():
        key = cname.split()[-1]
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (key, cname))
        for field, _ in cls._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (key, field, cname, field))
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", INCLUDE_DIR, str(src), "-o", str(exe)], check=True)
    got = dict(line.split() for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                       text=True).stdout.splitlines())
    assert int(got["ggml_tensor.name"]) == llama_generate.GGML_TENSOR_NAME_OFFSET
    for cname, cls in structs.items():
        key = cname.split()[-1]
        assert int(got[key]) == ctypes.sizeof(cls), key
        for field, _ in cls._fields_:
            assert int(got["%s.%s" % (key, field)]) == getattr(cls, field).offset, (key, field)
