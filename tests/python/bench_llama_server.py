"""The same concurrent chat load on a plain llama-server and on one with keyformer preloaded.

Each server (the pinned release, identical arguments) is started in turn and serves CLIENTS chats of
TURNS turns at once (tests/python/llama_server.py's chat: blocks of notes, then a fact asked back);
printed per server: the KV cache llama.cpp allocated (its own log line), the process's peak and
final RSS, wall time, and prompt and generation tokens/s (the server's /metrics: tokens over the
seconds it spent on them). --rounds > 1 alternates plain and keyformer and reports medians. The last
line is JSON.

    build/deps/venv/bin/python tests/python/bench_llama_server.py [--model smollm2] [--budget 256]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

from llama_server import PRELOAD, Server, chat, in_threads, model_path, server_binary


def run(binary, args, env, log, clients, turns, notes_per_turn):
    server = Server(binary, args, log, env=env)
    peak, done = [server.rss_mib()], threading.Event()

    def sample():
        while not done.wait(1):
            peak.append(server.rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        t0 = time.time()
        results = in_threads(clients, lambda i: chat(server, i, turns=turns, notes_per_turn=notes_per_turn))
        wall = time.time() - t0
        m = server.metrics()
        cells, streams, kv_mib = server.kv_cache()
        return {"wall_s": round(wall, 1),
                "prompt_tokens_per_s": round(m["prompt_tokens_total"] / m["prompt_seconds_total"], 1),
                "gen_tokens_per_s": round(m["tokens_predicted_total"] / m["tokens_predicted_seconds_total"], 2),
                "prompt_tokens": int(m["prompt_tokens_total"]), "gen_tokens": int(m["tokens_predicted_total"]),
                "kv_cells_per_stream": cells, "kv_streams": streams, "kv_mib": kv_mib,
                "rss_peak_mib": round(max(server.rss_mib(peak=True), max(peak)), 1),
                "last_history_tokens": max(r[1].prompt_tokens for r in results),
                "fact_answered": sum("plum" in r[0][-1].lower() for r in results)}
    finally:
        done.set()
        sampler.join()
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="a model of build/deps/models (name) or a GGUF path")
    ap.add_argument("--budget", type=int, default=256, help="KEYFORMER_BUDGET: cells kept per slot")
    ap.add_argument("--policy", default="", help="KEYFORMER_POLICY (empty: the library's default)")
    ap.add_argument("--ctx", type=int, default=32768, help="-c: the context the server is asked for")
    ap.add_argument("--clients", type=int, default=4, help="concurrent chats, and -np slots")
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--notes", type=int, default=30, help="notes per turn (about 22 tokens each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="plain and keyformer alternately, this many times each")
    a = ap.parse_args()
    model = a.model if os.path.exists(a.model) else model_path(a.model)
    binary = server_binary()
    args = ["-m", model, "-c", str(a.ctx), "-np", str(a.clients), "-t", str(a.threads), "-b", "256", "-ub", "256",
            "--metrics", "-lv", "4", "--host", "127.0.0.1", "--port", "0"]
    env = {"LD_PRELOAD": PRELOAD, "KEYFORMER_BUDGET": str(a.budget)}
    if a.policy:
        env["KEYFORMER_POLICY"] = a.policy
    rows = {"plain": [], "keyformer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name in ("plain", "keyformer"):
                res = run(binary, args, env if name == "keyformer" else {}, os.path.join(tmp, "%s-%d.log" % (name, r)),
                          a.clients, a.turns, a.notes)
                print("round %d %-9s %s" % (r + 1, name, json.dumps(res)), file=sys.stderr, flush=True)
                rows[name].append(res)
    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in rows.items()}
    p, k = med["plain"], med["keyformer"]
    print("llama-server %s, -c %d -np %d, %d chats x %d turns at once (histories up to %d tokens); keyformer: "
          "KEYFORMER_BUDGET=%d%s; medians of %d round%s" % (
              os.path.basename(model), a.ctx, a.clients, a.clients, a.turns, p["last_history_tokens"], a.budget,
              " KEYFORMER_POLICY=" + a.policy if a.policy else "", a.rounds, "s" if a.rounds > 1 else ""))
    print("%-28s %12s %12s %8s" % ("", "plain", "keyformer", "ratio"))
    for key, label in (("kv_cells_per_stream", "KV cells per slot"), ("kv_mib", "KV cache (MiB)"),
                       ("rss_peak_mib", "peak RSS (MiB)"), ("prompt_tokens_per_s", "prompt tokens/s"),
                       ("gen_tokens_per_s", "generated tokens/s"), ("wall_s", "wall time (s)"),
                       ("fact_answered", "last-turn fact answered")):
        print("%-28s %12g %12g %8.2f" % (label, p[key], k[key], k[key] / p[key] if p[key] else float("nan")))
    print(json.dumps({"model": os.path.basename(model), "budget": a.budget, "policy": a.policy or "default",
                      "ctx": a.ctx, "clients": a.clients, "turns": a.turns, "rounds": a.rounds,
                      "plain": med["plain"], "keyformer": med["keyformer"]}))


if __name__ == "__main__":
    main()
