#!/usr/bin/env bash
# build/arm64-test.sh: cross-compiles the simd tests (and the keyformer tests, when that package has
# any) for linux/arm64 and runs them under qemu user emulation (qemu-aarch64), twice: with the NEON
# kernels (gumbel_arm64.s) and with -tags purego (the Go twins only). Go test binaries are static,
# so no cross C toolchain is needed. Installs qemu-user from Debian's packages when qemu-aarch64 is
# missing. Extra arguments go to the test binaries (e.g. -test.run TestArgmin -test.v).
# `make arm64` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
out=build/out
mkdir -p "$out"

if ! command -v qemu-aarch64 >/dev/null 2>&1; then
  echo "arm64-test: qemu-aarch64 missing, installing qemu-user" >&2
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "arm64-test: need root (or sudo) to install qemu-user" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends qemu-user >&2; then
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends qemu-user >&2
  fi
fi
qemu=$(command -v qemu-aarch64)

pkgs=(simd)
if compgen -G 'keyformer/*_test.go' >/dev/null; then
  pkgs+=(keyformer)
fi

status=0
for variant in neon purego; do
  tags=()
  suffix=
  what="NEON kernels (gumbel_arm64.s)"
  if [[ $variant == purego ]]; then
    tags=(-tags purego)
    suffix=-purego
    what="Go twins only (-tags purego)"
  fi
  for pkg in "${pkgs[@]}"; do
    bin=$out/$pkg-arm64$suffix.test
    echo "=== arm64-test: ./$pkg/, GOARCH=arm64, $what: building $bin"
    GOOS=linux GOARCH=arm64 CGO_ENABLED=0 "$GO" test -c "${tags[@]}" -o "$bin" "./$pkg/"
    echo "=== arm64-test: running $bin under $qemu $*"
    start=$SECONDS
    # -test.v to list which implementations ran; the filter keeps the top-level results short.
    if (cd "$pkg" && "$qemu" "../$bin" -test.v "$@") >"$bin.log" 2>&1; then
      result=PASS
    else
      result=FAIL
      status=1
    fi
    grep -E '^(--- FAIL|    --- FAIL|FAIL|panic:)|^        ' "$bin.log" | head -50 || true
    impls=$(grep -oE '^=== RUN   TestGumbelScores/[a-z]+$' "$bin.log" | sed 's/.*\///' | tr '\n' ' ' || true)
    npass=$(grep -cE '^--- PASS' "$bin.log" || true)
    nfail=$(grep -cE '^--- FAIL' "$bin.log" || true)
    echo "=== arm64-test: ./$pkg/ $what: $result ($npass tests passed, $nfail failed, $((SECONDS - start))s)${impls:+; GumbelScores implementations run: $impls}; log: $bin.log"
  done
done
if ((status == 0)); then
  echo "=== arm64-test: all passed"
else
  echo "=== arm64-test: FAILED" >&2
fi
exit $status
