#!/usr/bin/env python3
"""keyformer inside llama-cpp-python, as a user writes it: ``from keyformer.llama_cpp import Llama``.

    python llama_cpp_python_run.py document --policy keyformer --budget 256 MODEL
    python llama_cpp_python_run.py chat --budget 256 [--n-seq-max 2] MODEL

Run by tests/python/test_llama_cpp_python.py with the Python of a fresh venv holding the installed
keyformer package (``pip install bindings/python``) and llama-cpp-python (whose own llama.cpp is
the one keyformer attaches to). ``document`` asks one question after a long document; ``chat`` runs
a conversation whose history grows past the cells of the llama.cpp context; both then regenerate
the last answer. Each prints one JSON line. ``--n-seq-max N`` creates the context as a host serving
N sequences does (llama-cpp-python's ``Llama`` does not expose ``n_seq_max``: the run sets it in
the default context parameters ``Llama`` starts from), with llama.cpp's default layout for several
sequences, one KV stream each.
"""

import argparse
import json
import sys

import llama_cpp

import keyformer
import keyformer.llama_cpp
from keyformer.llama_cpp import Llama
from lighthouse import PARAGRAPH, QUESTION

TURNS = [
    PARAGRAPH * 4 + QUESTION,
    "What broke in the storm of 1911, and what did she do until the new glass came?",
    PARAGRAPH * 3 + "What did the ships from the northern ports carry?",
    "Tell me again who kept the lighthouse, in one sentence.",
]


def session_state(llm):
    s = llm.keyformer
    return {"n_cells": s.n_cells, "stream_cells": s.stream_cells, "n_ctx": llm.n_ctx(), "budget": s.budget, "peak_cells": s.peak_cells,
            "evicted": s.evicted, "decodes": s.decodes, "n_batch": llm.n_batch,
            "evict_slack": s.context.params["evict_slack"], "final_cells": s.context.seq_length(0),
            "gaps_closed": s.gaps_closed,
            "last_position": llama_cpp.llama_memory_seq_pos_max(llm._ctx.memory, 0)}


def answer(llm, messages, max_tokens):
    r = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
    return r["choices"][0]["message"]["content"], r["usage"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["document", "chat"])
    ap.add_argument("model")
    ap.add_argument("--policy", default="keyformer")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--n-batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=12, help="paragraphs of the document")
    ap.add_argument("--window", type=int, help="keyformer's recent window (default: the library's)")
    ap.add_argument("--enable", action="store_true", help="keyformer.llama_cpp.enable() and llama_cpp.Llama")
    ap.add_argument("--n-seq-max", type=int, default=1, help="sequences the context holds, a KV stream each")
    args = ap.parse_args()
    if args.n_seq_max > 1:
        defaults = llama_cpp.llama_cpp.llama_context_default_params

        def with_sequences():
            p = defaults()
            p.n_seq_max, p.kv_unified = args.n_seq_max, False
            return p
        llama_cpp.llama_cpp.llama_context_default_params = with_sequences
    options = {} if args.window is None else {"window": args.window}
    common = dict(model_path=args.model, n_ctx=8192, n_batch=args.n_batch, n_ubatch=args.n_batch, n_threads=2,
                  seed=0, verbose=False)
    if args.enable:  # the other way in: enable(), then llama-cpp-python's own class
        keyformer.llama_cpp.enable(budget=args.budget, policy=args.policy, **options)
        llm = llama_cpp.Llama(**common)
        llm.keyformer = keyformer.llama_cpp.session(llm)
    else:
        llm = Llama(**common, keyformer_budget=args.budget, keyformer_policy=args.policy,
                    **{"keyformer_" + k: v for k, v in options.items()})
    out = {"policy": args.policy}
    if args.what == "document":
        messages = [{"role": "user", "content": PARAGRAPH * args.reps + QUESTION}]
        text, usage = answer(llm, messages, 48)
        out.update(text=text, prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"])
        text = answer(llm, messages, 48)[0]  # regenerate
        out["regenerated"] = dict(session_state(llm), text=text)
    else:
        messages, turns = [], []
        for content in TURNS:
            messages.append({"role": "user", "content": content})
            text, usage = answer(llm, messages, 40)
            messages.append({"role": "assistant", "content": text})
            turns.append(dict(session_state(llm), text=text, prompt_tokens=usage["prompt_tokens"],
                              completion_tokens=usage["completion_tokens"]))
        text, usage = answer(llm, messages[:-1], 40)  # regenerate the last answer
        turns.append(dict(session_state(llm), text=text, prompt_tokens=usage["prompt_tokens"],
                          completion_tokens=usage["completion_tokens"], regenerated=True))
        out["turns"] = turns
        try:
            llm.load_state(llm.save_state())
        except keyformer.KeyformerError as e:
            out["load_state_error"] = type(e).__name__
    out.update(session_state(llm))
    print(json.dumps(out))
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
