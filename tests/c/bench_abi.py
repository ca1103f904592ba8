"""make bench-abi: one keyformer_observe call for one layer (n_kv = 4096 columns, 9 heads, 1 query
row, Keyformer policy, probabilities) through

  the Go API    BenchmarkObserveGo in tests/go/bench_test.go (go test -bench: a line per round)
  the C ABI     tests/c/bench_observe.c, built by CMake (last line JSON: c_ns)
  ctypes        tests/python/bench_observe.py, in this Python (last line JSON: python_ns)

each as ROUNDS rounds of CALLS calls (medians over the rounds). Echoes the three outputs, then
prints c_over_go (the target: the C ABI adds at most 10% over the Go call) and, as its last line,
the medians as JSON, to 4 significant digits (%.4g): {"go_ns":...,"c_ns":...,"python_ns":...}.

    build/deps/venv/bin/python tests/c/bench_abi.py

after build/lib/libkeyformer.so and bench_observe are built (make bench-abi does both). GO (go),
KEYFORMER_CMAKE_BUILD (build/cmake), BENCH_CALLS (2000) and BENCH_ROUNDS (7) override the defaults.
"""

import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GO_LINE = re.compile(r"^BenchmarkObserveGo(?:-\d+)?\s+\d+\s+([0-9.eE+-]+) ns/op\b")


def run(what, argv, env=None):
    """Runs argv in the repository root, echoes its output and returns it; exits when it fails."""
    sys.stdout.flush()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.exit("bench-abi: %s (%s) failed with exit status %d" % (what, " ".join(argv), proc.returncode))
    return proc.stdout


def last_json(what, out):
    """The JSON object of the last line of out."""
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError) as e:
        sys.exit("bench-abi: %s printed no JSON last line: %s" % (what, e))


def main():
    go = os.environ.get("GO", "go")
    build = os.environ.get("KEYFORMER_CMAKE_BUILD", "build/cmake")
    calls = os.environ.get("BENCH_CALLS", "2000")
    rounds = os.environ.get("BENCH_ROUNDS", "7")

    out = run("the Go benchmark", [go, "test", "-run", "^$", "-bench", "^BenchmarkObserveGo$", "-benchtime",
                                   calls + "x", "-count", rounds, "./tests/go/"])
    go_rounds = [float(m.group(1)) for m in map(GO_LINE.match, out.splitlines()) if m]
    if len(go_rounds) != int(rounds):
        sys.exit("bench-abi: %d BenchmarkObserveGo results, want %s" % (len(go_rounds), rounds))
    go_ns = statistics.median(go_rounds)

    c_ns = last_json("bench_observe", run("bench_observe", [os.path.join(build, "tests/c/bench_observe"), calls,
                                                            rounds]))["c_ns"]

    env = dict(os.environ, KEYFORMER_LIB=os.path.join(ROOT, "build/lib/libkeyformer.so"))
    py = run("tests/python/bench_observe.py", [sys.executable, "tests/python/bench_observe.py", "--calls", calls,
                                               "--rounds", rounds], env=env)
    python_ns = last_json("tests/python/bench_observe.py", py)["python_ns"]

    print("c_over_go=%.3f (target <= 1.10)" % (c_ns / go_ns))
    medians = {"go_ns": go_ns, "c_ns": c_ns, "python_ns": python_ns}
    print("{%s}" % ",".join('"%s":%.4g' % kv for kv in medians.items()))


if __name__ == "__main__":
    main()
