#!/usr/bin/env bash
# build/scripts/llama-cpp-python.sh: a wheel of llama-cpp-python (a second, unpinned-by-us llama.cpp: the one
# it vendors) built once from its source distribution and cached, for the tests that run keyformer
# inside llama-cpp-python (tests/python/test_llama_cpp_python.py).
#
# The wheel lands in build/deps/llama-cpp-python/<version>-<sdist sha256>-<cmake arguments hash>/
# (git-ignored, names shortened);
# a second run finds it there and returns at once. The sdist comes from PyPI and must match the
# checksum below; building it compiles llama.cpp with cmake (CPU only, no tools or examples):
# about 5 minutes on 2 cores. Prints the wheel's path on its last line.
#
# Usage: build/scripts/llama-cpp-python.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=pins.env
source "$ROOT/build/scripts/pins.env"
VERSION=$LLAMA_CPP_PYTHON SHA256=$LLAMA_CPP_PYTHON_SHA256 VENDORED=$LLAMA_CPP_PYTHON_LLAMA_CPP
CMAKE_ARGS_FIXED="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"

PY=$ROOT/build/deps/venv/bin/python
ARGS_KEY=$(printf '%s' "$CMAKE_ARGS_FIXED" | sha256sum)
CACHE=$ROOT/build/deps/llama-cpp-python/$VERSION-${SHA256:0:12}-${ARGS_KEY:0:8}

log() { printf 'keyformer llama-cpp-python: %s\n' "$*" >&2; }
die() { printf 'keyformer llama-cpp-python: error: %s\n' "$*" >&2; exit 1; }

[[ -x $PY ]] || die "build/deps/venv is missing: run bash build/scripts/deps.sh (make deps) first"
mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then
    exec 8>"$CACHE/.lock"
    flock -w 3600 8 || die "another build holds $CACHE/.lock"
fi
shopt -s nullglob
wheels=("$CACHE"/llama_cpp_python-"$VERSION"-*.whl)
if ((${#wheels[@]} == 1)); then
    log "in place (llama.cpp $VENDORED)"
    printf '%s\n' "${wheels[0]}"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'llama-cpp-python==%s --hash=sha256:%s\n' "$VERSION" "$SHA256" >"$work/requirements.txt"
log "downloading the llama-cpp-python $VERSION source distribution from PyPI (75 MB)..."
"$PY" -m pip download --disable-pip-version-check --no-input --no-deps --no-binary :all: --progress-bar on \
    --require-hashes -r "$work/requirements.txt" -d "$work/sdist" >&2 ||
    die "pip download failed (above): PyPI must be reachable (PIP_INDEX_URL for a mirror)"
log "building its wheel (llama.cpp $VENDORED with cmake, CPU only; about 5 minutes on 2 cores)..."
T0=$SECONDS
CMAKE_ARGS="$CMAKE_ARGS_FIXED" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$PY" -m pip wheel --disable-pip-version-check --no-input --no-deps -w "$work/wheel" "$work"/sdist/*.tar.gz >&2 ||
    die "building the wheel failed (above): it needs a C/C++ compiler and cmake"
mv "$work"/wheel/llama_cpp_python-"$VERSION"-*.whl "$CACHE/"
wheels=("$CACHE"/llama_cpp_python-"$VERSION"-*.whl)
log "built in $((SECONDS - T0)) s"
printf '%s\n' "${wheels[0]}"
