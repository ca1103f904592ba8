#!/usr/bin/env bash
# tests/c/bench_abi.sh (make bench-abi): one keyformer_observe call for one layer (n_kv = 4096
# columns, 9 heads, 1 query row, Keyformer policy, probabilities) through
#   (a) the Go API           BenchmarkObserveGo in tests/go/bench_test.go
#   (b) the C ABI from C     tests/c/bench_observe.c (built by CMake)
#   (c) ctypes               tests/python/bench_observe.py, when it exists (prints python_ns=N)
# Each reports 7 rounds of 2000 calls; the last line printed is the medians as JSON:
#   {"go_ns":…,"c_ns":…,"python_ns":…}   (python_ns is null without the Python benchmark)
# The target: the C ABI adds at most 10% over the Go call (c_over_go <= 1.10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
GO=${GO:-go}
BUILD=${KEYFORMER_CMAKE_BUILD:-build/cmake}
CALLS=${BENCH_CALLS:-2000}
ROUNDS=${BENCH_ROUNDS:-7}

bash build/ensure-tools.sh
cmake -S . -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" --target bench_observe keyformer_go

out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$GO" test -run '^$' -bench '^BenchmarkObserveGo$' -benchtime "${CALLS}x" -count "$ROUNDS" ./tests/go/ | tee -a "$out"
"$BUILD/tests/c/bench_observe" "$CALLS" "$ROUNDS" | tee -a "$out"
fields=(go_ns='^BenchmarkObserveGo$:ns/op' c_ns='^BenchmarkObserveC$:ns/op')
python=false
if [[ -f tests/python/bench_observe.py ]]; then
  if py=$(KEYFORMER_LIB=build/lib/libkeyformer.so python3 tests/python/bench_observe.py); then
    echo "$py"
    # as a Go benchmark line, for benchjson
    sed -n 's/^python_ns=\([0-9.eE+-][0-9.eE+-]*\).*/BenchmarkObservePython 1 \1 ns\/op/p' <<<"$py" >>"$out"
    if grep -q BenchmarkObservePython "$out"; then
      fields+=(python_ns='^BenchmarkObservePython$:ns/op')
      python=true
    else
      echo "bench-abi: tests/python/bench_observe.py printed no python_ns=<number>" >&2
    fi
  else
    echo "bench-abi: tests/python/bench_observe.py failed" >&2
  fi
else
  echo "bench-abi: tests/python/bench_observe.py not found: python_ns is null" >&2
fi

json=$("$GO" run ./bindings/cmd/benchjson "${fields[@]}" <"$out" | tail -n 1)
$python || json="${json%\}},\"python_ns\":null}"
go_ns=$(sed -n 's/.*"go_ns":\([^,}]*\).*/\1/p' <<<"$json")
c_ns=$(sed -n 's/.*"c_ns":\([^,}]*\).*/\1/p' <<<"$json")
awk -v g="$go_ns" -v c="$c_ns" 'BEGIN { printf "c_over_go=%.3f (target <= 1.10)\n", c / g }'
echo "$json"
