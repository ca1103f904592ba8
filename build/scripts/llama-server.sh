#!/usr/bin/env bash
# build/scripts/llama-server.sh: llama.cpp's own HTTP server (llama-server) of the pinned release, built once
# from the source build/scripts/deps.sh lays out (build/deps/llama-src: the node-llama-cpp bundle's tree,
# which holds tools/server and its vendored HTTP and JSON libraries) and cached, for the tests that
# run keyformer inside an unmodified server (tests/python/test_llama_server.py) and for
# `keyformer serve`. Nothing is downloaded: the build is offline.
#
# Shared libraries (as the server is usually built), CPU only, no web UI (its assets would be
# downloaded; the HTTP API does not need them). The build lands in
# build/deps/llama-server/<release>-<source hash>-<cmake arguments hash>/ (git-ignored); a second
# run finds its stamp there and returns at once. About 10 minutes on 2 cores the first time.
# Prints the server binary's path on its last line.
#
# Usage: build/scripts/llama-server.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=pins.env
source "$ROOT/build/scripts/pins.env"
SRC=$ROOT/build/deps/llama-src
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF)

log() { printf 'keyformer llama-server: %s\n' "$*" >&2; }
die() { printf 'keyformer llama-server: error: %s\n' "$*" >&2; exit 1; }

[[ -f $SRC/tools/server/CMakeLists.txt ]] || die "$SRC has no tools/server: run bash build/scripts/deps.sh (make deps) first"
command -v cmake >/dev/null && command -v ninja >/dev/null || die "cmake and ninja are needed (bash build/scripts/ensure-tools.sh)"
# The source: the bundle's commit and the node-llama-cpp patch deps.sh applied on top of it.
SRC_KEY=$( (git -C "$SRC" rev-parse HEAD && git -C "$SRC" diff) | sha256sum)
ARGS_KEY=$(printf '%s\n' "${CMAKE_ARGS[@]}" | sha256sum)
OUT=$ROOT/build/deps/llama-server/$LLAMA_CPP-${SRC_KEY:0:12}-${ARGS_KEY:0:8}
BIN=$OUT/bin/llama-server

mkdir -p "$OUT"
if command -v flock >/dev/null 2>&1; then
    exec 8>"$OUT/.lock"
    flock -w 3600 8 || die "another build holds $OUT/.lock"
fi
if [[ -f $OUT/.built && -x $BIN ]]; then
    log "in place (llama.cpp $LLAMA_CPP)"
    printf '%s\n' "$BIN"
    exit 0
fi

log "building llama-server of llama.cpp $LLAMA_CPP from $SRC (offline, CPU only; about 10 minutes on 2 cores)..."
T0=$SECONDS
cmake -S "$SRC" -B "$OUT" -G Ninja "${CMAKE_ARGS[@]}" >"$OUT/configure.log" 2>&1 ||
    die "cmake configure failed: $OUT/configure.log"
cmake --build "$OUT" --target llama-server -j "$(nproc)" >&2 || die "the build failed (above)"
[[ -x $BIN ]] || die "the build made no $BIN"
touch "$OUT/.built"
log "built in $((SECONDS - T0)) s"
printf '%s\n' "$BIN"
