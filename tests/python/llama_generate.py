#!/usr/bin/env python3
"""One budgeted generation with llama.cpp loaded through ctypes and keyformer's C ABI.

    python3 tests/python/llama_generate.py [--attach default|path|soname|global] [--budget 256] ...

The pinned llama.cpp runtime and SmolLM2 come from build/deps (bash build/scripts/deps.sh). The script
declares the few llama.h functions and structs it needs (the pinned llama.cpp's ABI, checked against
llama_*_default_params at start), puts keyformer's C eval callback in the context parameters,
feeds a long prompt in n_ubatch chunks through a cache of budget + n_ubatch cells with
``Context.llama_apply`` after every decode, then generates greedily. It prints the text and, last,
one JSON line (what tests/python/test_llama.py checks).

How keyformer finds llama.cpp (``--attach``); ctypes loads libraries with RTLD_LOCAL, so the
llama_* symbols are not in the process's global scope:

* ``default``: ``ctypes.CDLL(libllama)``, ``llama_attach(lctx)``: RTLD_DEFAULT fails, and the
  library falls back to the libllama/libggml objects the process has loaded (/proc/self/maps,
  re-opened with RTLD_NOLOAD). Works.
* ``path``: the same load, ``llama_attach(lctx, llama_library=<the path given to CDLL>)``: re-opened
  with RTLD_NOLOAD. Works.
* ``soname``: ``llama_library="libllama.vX.Y.Z.so"`` (the SONAME, X.Y.Z the release build/scripts/pins.env
  pins): dlopen matches bare names against
  SONAMEs. Works; ``"libllama.so"`` (the link name) does not (an error that says so).
* ``global``: ``ctypes.CDLL(libllama, mode=RTLD_GLOBAL)``, ``llama_attach(lctx)``: RTLD_DEFAULT finds
  it. Works.
"""

import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def read_pins(path=os.path.join(ROOT, "build", "scripts", "pins.env")):
    """The NAME=value lines of build/scripts/pins.env: the pinned versions."""
    with open(path) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line and not line.lstrip().startswith("#"))


PINS = read_pins()
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import keyformer  # noqa: E402
from lighthouse import PARAGRAPH, QUESTION  # noqa: E402

DEFAULT_LIB_DIR = os.environ.get("KEYFORMER_LLAMA_LIB_DIR") or os.path.join(ROOT, "build", "deps", "llama", "cpu")
DEFAULT_MODEL = os.environ.get("KEYFORMER_MODEL") or os.path.join(ROOT, "build", "deps", "models", "smollm2.gguf")


LLAMA_FLASH_ATTN_TYPE_DISABLED = 0
LLAMA_FLASH_ATTN_TYPE_ENABLED = 1

c_bool, c_int32, c_uint32, c_float, c_void_p, c_size_t = (
    ctypes.c_bool, ctypes.c_int32, ctypes.c_uint32, ctypes.c_float, ctypes.c_void_p, ctypes.c_size_t)


class LlamaModelParams(ctypes.Structure):
    """struct llama_model_params (the pinned llama.h), 80 bytes on LP64."""

    _fields_ = [
        ("devices", c_void_p),                      # @0
        ("tensor_buft_overrides", c_void_p),        # @8
        ("n_gpu_layers", c_int32),                  # @16
        ("split_mode", c_int32),                    # @20 enum llama_split_mode
        ("load_mode", c_int32),                     # @24 enum llama_load_mode
        ("lazy_mode", c_int32),                     # @28 enum llama_lazy_mode
        ("main_gpu", c_int32),                      # @32
        ("tensor_split", c_void_p),                 # @40 const float *
        ("progress_callback", c_void_p),            # @48
        ("progress_callback_user_data", c_void_p),  # @56
        ("kv_overrides", c_void_p),                 # @64
        ("vocab_only", c_bool),                     # @72
        ("check_tensors", c_bool),
        ("use_extra_bufts", c_bool),
        ("no_host", c_bool),
        ("no_alloc", c_bool),
        ("load_mtp", c_bool),                       # @77, then 2 bytes of padding
    ]


class LlamaContextParams(ctypes.Structure):
    """struct llama_context_params (the pinned llama.h), 160 bytes, cb_eval at 88."""

    _fields_ = [
        ("n_ctx", c_uint32),                  # @0
        ("n_batch", c_uint32),
        ("n_ubatch", c_uint32),
        ("n_seq_max", c_uint32),
        ("n_rs_seq", c_uint32),
        ("n_outputs_max", c_uint32),
        ("n_outputs_max_per_seq", c_uint32),
        ("n_threads", c_int32),
        ("n_threads_batch", c_int32),
        ("ctx_type", c_int32),                # @36 enum llama_context_type
        ("rope_scaling_type", c_int32),
        ("pooling_type", c_int32),
        ("attention_type", c_int32),
        ("flash_attn_type", c_int32),         # @52 enum llama_flash_attn_type
        ("rope_freq_base", c_float),
        ("rope_freq_scale", c_float),
        ("yarn_ext_factor", c_float),
        ("yarn_attn_factor", c_float),
        ("yarn_beta_fast", c_float),
        ("yarn_beta_slow", c_float),
        ("yarn_orig_ctx", c_uint32),
        ("defrag_thold", c_float),            # @84
        ("cb_eval", c_void_p),                # @88 ggml_backend_sched_eval_callback
        ("cb_eval_user_data", c_void_p),      # @96
        ("type_k", c_int32),                  # @104 enum ggml_type
        ("type_v", c_int32),
        ("abort_callback", c_void_p),         # @112
        ("abort_callback_data", c_void_p),
        ("embeddings", c_bool),               # @128
        ("offload_kqv", c_bool),
        ("no_perf", c_bool),
        ("op_offload", c_bool),
        ("swa_full", c_bool),
        ("kv_unified", c_bool),               # @133, then 2 bytes of padding
        ("samplers", c_void_p),               # @136
        ("n_samplers", c_size_t),
        ("ctx_other", c_void_p),              # @152
    ]


class LlamaBatch(ctypes.Structure):
    """struct llama_batch, 56 bytes."""

    _fields_ = [
        ("n_tokens", c_int32),
        ("token", c_void_p),
        ("embd", c_void_p),
        ("pos", c_void_p),
        ("n_seq_id", c_void_p),
        ("seq_id", c_void_p),
        ("logits", c_void_p),
    ]


class LlamaChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


#: name -> (restype, argtypes) of the llama.h / ggml-backend.h functions used here.
LLAMA_FUNCTIONS = {
    "ggml_backend_load_all_from_path": (None, [ctypes.c_char_p]),
    "ggml_backend_dev_count": (c_size_t, []),
    "llama_log_set": (None, [c_void_p, c_void_p]),
    "llama_backend_init": (None, []),
    "llama_model_default_params": (LlamaModelParams, []),
    "llama_context_default_params": (LlamaContextParams, []),
    "llama_model_load_from_file": (c_void_p, [ctypes.c_char_p, LlamaModelParams]),
    "llama_model_free": (None, [c_void_p]),
    "llama_init_from_model": (c_void_p, [c_void_p, LlamaContextParams]),
    "llama_free": (None, [c_void_p]),
    "llama_n_ctx": (c_uint32, [c_void_p]),
    "llama_model_get_vocab": (c_void_p, [c_void_p]),
    "llama_model_n_layer": (c_int32, [c_void_p]),
    "llama_model_n_head": (c_int32, [c_void_p]),
    "llama_model_n_head_kv": (c_int32, [c_void_p]),
    "llama_model_chat_template": (ctypes.c_char_p, [c_void_p, ctypes.c_char_p]),
    "llama_chat_apply_template": (c_int32, [ctypes.c_char_p, ctypes.POINTER(LlamaChatMessage), c_size_t, c_bool,
                                            ctypes.c_char_p, c_int32]),
    "llama_vocab_n_tokens": (c_int32, [c_void_p]),
    "llama_vocab_is_eog": (c_bool, [c_void_p, c_int32]),
    "llama_tokenize": (c_int32, [c_void_p, ctypes.c_char_p, c_int32, c_void_p, c_int32, c_bool, c_bool]),
    "llama_token_to_piece": (c_int32, [c_void_p, c_int32, ctypes.c_char_p, c_int32, c_int32, c_bool]),
    "llama_batch_get_one": (LlamaBatch, [c_void_p, c_int32]),
    "llama_decode": (c_int32, [c_void_p, LlamaBatch]),
    "llama_get_logits_ith": (ctypes.POINTER(c_float), [c_void_p, c_int32]),
    "llama_get_memory": (c_void_p, [c_void_p]),
    "llama_memory_seq_pos_max": (c_int32, [c_void_p, c_int32]),
    "llama_memory_seq_rm": (c_bool, [c_void_p, c_int32, c_int32, c_int32]),
}

#: offsetof(struct ggml_tensor, name) in the pinned ggml.h (checked by test_llama.py).
GGML_TENSOR_NAME_OFFSET = 256

LOG_CALLBACK = ctypes.CFUNCTYPE(None, c_int32, ctypes.c_char_p, c_void_p)
GGML_LOG_LEVEL_ERROR = 4


@LOG_CALLBACK
def _log(level, text, _ud):
    if level == GGML_LOG_LEVEL_ERROR and text:
        sys.stderr.write(text.decode("utf-8", "replace"))


def load_llama(lib_dir, rtld_global):
    """Loads libllama (its RUNPATH $ORIGIN finds libggml*) and declares LLAMA_FUNCTIONS on it; dlsym on
    the libllama handle also searches its dependencies (the ggml_* functions)."""
    path = os.path.join(lib_dir, "libllama.so")
    mode = ctypes.RTLD_GLOBAL if rtld_global else ctypes.RTLD_LOCAL
    dll = ctypes.CDLL(path, mode=mode)
    for name, (restype, argtypes) in LLAMA_FUNCTIONS.items():
        fn = getattr(dll, name)
        fn.restype, fn.argtypes = restype, argtypes
    check_layouts(dll)
    dll.llama_log_set(ctypes.cast(_log, c_void_p), None)
    dll.ggml_backend_load_all_from_path(os.fsencode(lib_dir))
    if dll.ggml_backend_dev_count() == 0:
        raise RuntimeError("no ggml backend in %s" % lib_dir)
    dll.llama_backend_init()
    return dll, path


def check_layouts(dll):
    """The mirrors against the sizes and llama.cpp's defaults: known values in the right fields."""
    assert ctypes.sizeof(LlamaModelParams) == 80 and ctypes.sizeof(LlamaContextParams) == 160
    assert LlamaContextParams.cb_eval.offset == 88 and ctypes.sizeof(LlamaBatch) == 56
    cp = dll.llama_context_default_params()
    got = (cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max, cp.flash_attn_type, cp.yarn_ext_factor,
           cp.defrag_thold, cp.cb_eval, cp.type_k, cp.type_v, cp.offload_kqv, cp.no_perf, cp.kv_unified,
           cp.samplers, cp.ctx_other)
    want = (512, 2048, 512, 1, -1, -1.0, -1.0, None, 1, 1, True, True, False, None, None)
    if got != want:
        raise RuntimeError("llama_context_params mirror mismatch (not the pinned llama.cpp %s?): %s != %s" % (PINS["LLAMA_CPP"], got, want))
    mp = dll.llama_model_default_params()
    got = (mp.n_gpu_layers, mp.main_gpu, mp.vocab_only, mp.use_extra_bufts, mp.load_mtp, mp.kv_overrides)
    if got != (-1, 0, False, True, False, None):
        raise RuntimeError("llama_model_params mirror mismatch: %s" % (got,))


def tokenize(dll, model, text):
    vocab = dll.llama_model_get_vocab(model)
    msg = LlamaChatMessage(b"user", text.encode())
    tmpl = dll.llama_model_chat_template(model, None)
    buf = ctypes.create_string_buffer(2 * len(text) + 256)
    n = dll.llama_chat_apply_template(tmpl, ctypes.byref(msg), 1, True, buf, len(buf)) if tmpl else -1
    raw = buf.raw[:n] if 0 <= n < len(buf) else text.encode()
    toks = np.empty(len(raw) + 16, np.int32)
    n = dll.llama_tokenize(vocab, raw, len(raw), toks.ctypes.data, toks.shape[0], True, True)
    if n <= 0:
        raise RuntimeError("llama_tokenize: %d" % n)
    return toks[:n].copy()


def argmax_token(dll, lctx, n_vocab):
    logits = np.ctypeslib.as_array(dll.llama_get_logits_ith(lctx, -1), shape=(n_vocab,))
    return int(np.argmax(logits))


def run(args):
    dll, path = load_llama(args.lib_dir, args.attach == "global")
    model = dll.llama_model_load_from_file(os.fsencode(args.model), dll.llama_model_default_params())
    if not model:
        raise RuntimeError("cannot load %s" % args.model)
    vocab = dll.llama_model_get_vocab(model)
    n_vocab = dll.llama_vocab_n_tokens(vocab)
    prompt = tokenize(dll, model, PARAGRAPH * args.reps + QUESTION)

    kf = keyformer.Context("keyformer", n_layer=dll.llama_model_n_layer(model), n_head=dll.llama_model_n_head(model),
                           n_head_kv=dll.llama_model_n_head_kv(model), budget=args.budget, new_tokens=args.n_gen,
                           seed=7)
    cp = dll.llama_context_default_params()
    cp.n_ctx = args.budget + args.ubatch
    cp.n_batch = cp.n_ubatch = args.ubatch
    cp.n_threads = cp.n_threads_batch = args.threads
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED if args.flash_attn else LLAMA_FLASH_ATTN_TYPE_DISABLED
    cp.cb_eval = kf.llama_eval_callback
    cp.cb_eval_user_data = kf.llama_user_data
    lctx = dll.llama_init_from_model(model, cp)
    if not lctx:
        raise RuntimeError("llama_init_from_model failed")
    n_ctx = dll.llama_n_ctx(lctx)

    library = {"default": None, "global": None, "path": path, "soname": "libllama.%s.so" % PINS["LLAMA_CPP"],
               "linkname": "libllama.so"}[args.attach]
    result = {"attach": args.attach, "llama_library": library, "prompt_tokens": int(prompt.shape[0]),
              "budget": args.budget, "n_ctx": n_ctx}
    chain = None
    if args.chain:  # a host callback of our own behind keyformer's: asked about every node
        seen = result["chain"] = {"asks": 0, "result_output": 0, "unexpected": 0}

        def host_eval(t, ask, _ud):
            name = ctypes.string_at(t + GGML_TENSOR_NAME_OFFSET)
            if ask:
                seen["asks"] += 1
                return name == b"result_output"
            if name == b"result_output":
                seen["result_output"] += 1
            else:
                seen["unexpected"] += 1
            return True

        chain = keyformer.EVAL_CALLBACK(host_eval)
        kf.llama_chain(chain)
    try:
        kf.llama_attach(lctx, library)
    except keyformer.KeyformerError as e:
        result["error"] = "%s: %s" % (type(e).__name__, e)
        print(json.dumps(result))
        return 1
    kf.set_prompt_length(0, int(prompt.shape[0]))

    max_len = evicted = 0
    t0 = time.perf_counter()
    try:
        for i in range(0, prompt.shape[0], args.ubatch):
            chunk = np.ascontiguousarray(prompt[i:i + args.ubatch])
            rc = dll.llama_decode(lctx, dll.llama_batch_get_one(chunk.ctypes.data, chunk.shape[0]))
            if rc != 0:
                raise RuntimeError("llama_decode of prompt tokens [%d, %d): %d" % (i, i + chunk.shape[0], rc))
            evicted += kf.llama_apply(0)
            max_len = max(max_len, kf.seq_length(0))
        t1 = time.perf_counter()
        pieces, n_gen = [], 0
        tok = np.zeros(1, np.int32)
        piece = ctypes.create_string_buffer(64)
        for _ in range(args.n_gen):
            tok[0] = argmax_token(dll, lctx, n_vocab)
            if dll.llama_vocab_is_eog(vocab, int(tok[0])):
                break
            n = dll.llama_token_to_piece(vocab, int(tok[0]), piece, len(piece), 0, False)
            pieces.append(piece.raw[:max(n, 0)])
            rc = dll.llama_decode(lctx, dll.llama_batch_get_one(tok.ctypes.data, 1))
            if rc != 0:
                raise RuntimeError("llama_decode of a generated token: %d" % rc)
            evicted += kf.llama_apply(0)
            max_len = max(max_len, kf.seq_length(0))
            n_gen += 1
        t2 = time.perf_counter()
        if args.prefix_reuse:
            result["prefix_reuse"] = prefix_reuse(dll, lctx, kf, prompt, n_vocab, args)
    except keyformer.KeyformerError as e:
        result["error"] = "%s: %s" % (type(e).__name__, e)
        print(json.dumps(result))
        return 1
    text = b"".join(pieces).decode("utf-8", "replace")
    print(text)
    result.update({
        "generated_tokens": n_gen, "evicted": evicted, "max_seq_length": max_len, "final_seq_length": kf.seq_length(0),
        "evict_slack": kf.params["evict_slack"],
        "last_position": dll.llama_memory_seq_pos_max(dll.llama_get_memory(lctx), 0),
        "prefill_tokens_per_s": round(prompt.shape[0] / (t1 - t0), 1),
        "decode_ms_per_token": round(1e3 * (t2 - t1) / max(n_gen, 1), 2), "text": text,
    })
    print(json.dumps(result))
    dll.llama_free(lctx)
    kf.close()  # after llama_free
    dll.llama_model_free(model)
    return 0


def decode_apply(dll, lctx, kf, toks):
    """One llama_decode of toks for sequence 0 at its next position, then llama_apply."""
    chunk = np.ascontiguousarray(toks, dtype=np.int32)
    rc = dll.llama_decode(lctx, dll.llama_batch_get_one(chunk.ctypes.data, chunk.shape[0]))
    if rc != 0:
        raise RuntimeError("llama_decode of %d tokens: %d" % (chunk.shape[0], rc))
    return kf.llama_apply(0)


def prefix_reuse(dll, lctx, kf, prompt, n_vocab, args):
    """After the generation (evictions done): drops the last four positions with
    llama_memory_seq_rm and decodes another continuation from there, then greedy tokens. With
    ``--prefix-reuse mirror`` the edit is mirrored (kf.llama_seq_rm); with ``unmirrored`` it is not,
    the apply that follows fails, and the host rolls llama.cpp back and calls kf.llama_sync."""
    mem = dll.llama_get_memory(lctx)
    p = dll.llama_memory_seq_pos_max(mem, 0) - 3
    held = kf.seq_length(0)
    out = {"at": p, "held_before": held}
    if not dll.llama_memory_seq_rm(mem, 0, p, -1):
        raise RuntimeError("llama_memory_seq_rm refused")
    if args.prefix_reuse == "mirror":
        kf.llama_seq_rm(0, p, -1)
    else:
        try:
            decode_apply(dll, lctx, kf, prompt[:4])
        except keyformer.KeyformerError as e:
            out["apply_error"] = "%s: %s" % (type(e).__name__, e)
        if not dll.llama_memory_seq_rm(mem, 0, p, -1):
            raise RuntimeError("llama_memory_seq_rm refused")
        kf.llama_sync(0)
    out["held_after_edit"] = kf.seq_length(0)
    out["pos_max_after_edit"] = dll.llama_memory_seq_pos_max(mem, 0)
    evicted = max_len = 0
    for i in range(0, 2 * args.ubatch, args.ubatch):
        evicted += decode_apply(dll, lctx, kf, prompt[10 + i:10 + i + args.ubatch])
        max_len = max(max_len, kf.seq_length(0))
    tok = np.zeros(1, np.int32)
    for _ in range(4):
        tok[0] = argmax_token(dll, lctx, n_vocab)
        evicted += decode_apply(dll, lctx, kf, tok)
        max_len = max(max_len, kf.seq_length(0))
    out.update({"evicted": evicted, "max_seq_length": max_len, "final_seq_length": kf.seq_length(0),
                "last_position": dll.llama_memory_seq_pos_max(mem, 0)})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib-dir", default=DEFAULT_LIB_DIR, help="the llama.cpp runtime (libllama.so ...)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a GGUF model")
    ap.add_argument("--attach", default="default", choices=["default", "path", "soname", "linkname", "global"],
                    help="how keyformer finds llama.cpp (see the module doc)")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--ubatch", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=10, help="paragraph repetitions in the prompt (~94 tokens each)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flash-attn", action="store_true", help="turn flash attention on (apply must refuse)")
    ap.add_argument("--chain", action="store_true", help="chain a Python eval callback (slow: ~1100 calls a decode)")
    ap.add_argument("--prefix-reuse", choices=["mirror", "unmirrored"],
                    help="after the generation, drop a tail with llama_memory_seq_rm and continue (see prefix_reuse)")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
