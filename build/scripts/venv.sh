#!/usr/bin/env bash
# build/scripts/venv.sh: the Python environment for scoring and plotting (`keyformer eval`, `keyformer bench`:
# python -m keyformer_eval) and for the Python tests (make pytest), in build/deps/venv (git-ignored).
#
# It installs bindings/lab/python/requirements-eval.txt (rouge-score, matplotlib, numpy) and
# tests/python/requirements.txt (pytest), every package pinned with the hashes of its files, from PyPI
# with the venv's pip (--require-hashes: pip refuses a file whose hash is not listed). A stamp
# (build/deps/venv/.stamp-keyformer) records a hash of both files and of the Python: a second run
# with nothing changed needs no network and returns at once; a change rebuilds the venv.
# build/scripts/deps.sh (make deps) runs it.
#
# Usage: build/scripts/venv.sh [--force]
#   --force    rebuild the venv even if its stamp is current
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS=$ROOT/build/deps
VENV=$DEPS/venv
PY=$VENV/bin/python
STAMP=$VENV/.stamp-keyformer
REQS=("$ROOT/bindings/lab/python/requirements-eval.txt" "$ROOT/tests/python/requirements.txt")
MIN_PYTHON=3.11             # the pinned numpy and matplotlib have wheels for 3.11 and newer

log() { printf 'keyformer venv: %s\n' "$*" >&2; }
die() { printf 'keyformer venv: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

force=0
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

for r in "${REQS[@]}"; do [[ -f $r ]] || die "missing ${r#"$ROOT/"}"; done
command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python $MIN_PYTHON or newer (Debian: apt-get install python3 python3-venv)"
python3 -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" ||
    die "python3 is $(python3 -c 'import platform; print(platform.python_version())'); the pinned packages need Python $MIN_PYTHON or newer"

mkdir -p "$DEPS"
if command -v flock >/dev/null 2>&1; then
    exec 8>"$DEPS/.lock-venv"
    flock -w 900 8 || die "another build/scripts/venv.sh holds $DEPS/.lock-venv"
fi

stamp=$( { cat "${REQS[@]}"; python3 -c 'import sys; print(sys.version)'; } | sha256sum)
stamp=${stamp%% *}
if ((force == 0)) && [[ -f $STAMP && "$(cat "$STAMP")" == "$stamp" ]] && "$PY" -c '' >/dev/null 2>&1; then
    log "in place (${VENV#"$ROOT/"}, $("$PY" -c 'import platform; print("Python " + platform.python_version())'))"
    exit 0
fi

T0=$SECONDS
if [[ -e $VENV ]]; then
    log "rebuilding ${VENV#"$ROOT/"} (requirements or Python changed, an earlier run did not finish, or --force)"
    rm -rf "$VENV"
fi
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || bash "$ROOT/build/scripts/ensure-tools.sh"
log "creating ${VENV#"$ROOT/"} with $(command -v python3) ($(python3 -c 'import platform; print(platform.python_version())'))"
python3 -m venv "$VENV" ||
    die "python3 -m venv failed (Debian: apt-get install python3-venv); nothing usable in ${VENV#"$ROOT/"}"
log "installing ${REQS[*]#"$ROOT/"} from the Python package index..."
if ! "$PY" -m pip install --disable-pip-version-check --no-input --require-hashes "${REQS[@]/#/--requirement=}" >&2; then
    die "pip install failed (its output is above): the Python package index must be reachable (PIP_INDEX_URL for a mirror); run build/scripts/venv.sh again when it is"
fi
"$PY" -c 'import matplotlib, numpy, pytest, rouge_score.rouge_scorer' ||
    die "the venv's packages do not import (see above)"
printf '%s\n' "$stamp" >"$STAMP"
log "ready in $((SECONDS - T0)) s: ${VENV#"$ROOT/"} ($("$PY" -m pip freeze --disable-pip-version-check | wc -l) packages)"
