"""Cost of one Context.observe call through ctypes: one layer, one query row (a decode step) of
softmax probabilities over n_kv = 4096 columns, 9 query heads (SmolLM2-135M's shape: 9 heads, 3 KV
heads), policy keyformer (Gumbel noise on).

    KEYFORMER_LIB=build/lib/libkeyformer.so build/deps/venv/bin/python tests/python/bench_observe.py

(make bench-abi runs it through tests/c/bench_abi.py). Prints per-round numbers, the same call made
straight through the ctypes prototype with a prebuilt struct (the library's own time plus the bare
ctypes crossing), and, as its last line, one JSON object: ``python_ns`` (the median ns per
Context.observe call), ``rounds_ns``, ``raw_ctypes_ns`` and ``wrapped_floor_ns``.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bindings", "python"))

import numpy as np  # noqa: E402

import keyformer  # noqa: E402
from keyformer import _lib  # noqa: E402


def softmax_row(rng, heads, n_kv):
    """A realistic attention row per head: heavy-tailed logits (a few tokens draw most of the
    weight), softmax in float64, stored as float32 in llama.cpp's (heads, rows, n_kv) layout."""
    logits = rng.normal(0.0, 1.0, size=(heads, 1, n_kv))
    hot = rng.random(n_kv) < 0.02
    logits[:, :, hot] += rng.normal(5.0, 1.0, size=(heads, 1, int(hot.sum())))
    logits[:, :, :4] += 6.0  # attention sinks
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def measure(fns, rounds, calls):
    """For each function, the median over rounds of the mean ns per call in a round. The rounds of
    the functions are interleaved so that a machine busy for a while affects them alike."""
    per_call = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, per_call):
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            out.append((time.perf_counter_ns() - t0) / calls)
    return [(statistics.median(r), r) for r in per_call]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-kv", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=9)
    ap.add_argument("--kv-heads", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()

    print("library: %s (version %s)" % (keyformer.library_path(), keyformer.version()))
    rng = np.random.default_rng(0)
    att = softmax_row(rng, args.heads, args.n_kv)
    with keyformer.Context("keyformer", n_layer=1, n_head=args.heads, n_head_kv=args.kv_heads, budget=0.5,
                           seed=0) as kf:
        kf.add_cells(0, np.arange(args.n_kv, dtype=np.int32), np.arange(args.n_kv, dtype=np.int32))
        observe = kf.observe
        for _ in range(200):  # warm-up: the library's workspaces, caches, CPU clocks
            observe(0, 0, att)

        # The same call straight through the ctypes prototype with a prebuilt struct.
        a = _lib.KeyformerAttention(ctypes.sizeof(_lib.KeyformerAttention), 1, args.heads, args.n_kv, 0,
                                    args.n_kv, att.ctypes.data, None, 0)
        raw_fn, ctx, ref = kf._lib.keyformer_observe, kf._ctx, ctypes.byref(a)
        (med, rounds), (raw_ns, _), (floor_ns, _) = measure([
            lambda: observe(0, 0, att),
            lambda: raw_fn(ctx, 0, 0, ref),
            lambda: kf.seq_length(0),  # a wrapped call doing no work: checks, ctypes crossing, cgo
        ], args.rounds, args.calls)

    n = args.heads * args.n_kv
    print("shape: 1 row x %d heads x %d columns (%d elements), %d rounds x %d calls"
          % (args.heads, args.n_kv, n, args.rounds, args.calls))
    print("rounds_ns=" + ",".join("%.0f" % r for r in rounds))
    print("raw_ctypes_ns=%.0f  (keyformer_observe through the prototype, prebuilt struct)" % raw_ns)
    print("wrapped_floor_ns=%.0f  (Context.seq_length: a wrapped call doing no work)" % floor_ns)
    print("ns_per_element=%.3f" % (med / n))
    print(json.dumps({"python_ns": round(med), "rounds_ns": [round(r) for r in rounds],
                      "raw_ctypes_ns": round(raw_ns), "wrapped_floor_ns": round(floor_ns)},
                     separators=(",", ":")))


if __name__ == "__main__":
    main()
