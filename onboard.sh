#!/usr/bin/env bash
# onboard.sh - one command for a new teammate on a fresh Linux machine:
# check prerequisites, set up the envbuild tool, install the team environment from the
# COMMITTED lockfile (never re-solved), build the CUDA ops, run the sanity checks, and
# say how to activate the env and pick a GPU.  Safe to re-run: finished steps are no-ops.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: ./onboard.sh [--cuda X.Y] [--spec FILE] [--lockfile FILE] [--prefix DIR]
                   [--channel NAME=URL]... [--offline]

  --cuda X.Y       CUDA version of the environment (default: 11.7, or $CUDA)
  --spec FILE      envspec (default: envspecs/mask2former.yaml, or $SPEC)
  --lockfile FILE  committed lockfile (default: lockfiles/<spec name>-cu<XY>.conda-lock.yml)
  --prefix DIR     where the environment goes (default: $ENVBUILD_ENVS/<name>-cu<XY>,
                   ENVBUILD_ENVS defaulting to .envbuild/envs in this checkout, the
                   same place `make env` uses)
  --channel NAME=URL  download channel NAME's packages from a mirror (repeatable; the
                   syntax of `envbuild lock --channel`; hashes are checked as always)
  --offline        install from the package cache only (names what it lacks)
  -h, --help       this help

Environment: PYTHON (python >= 3.10 used to create the tool's venv; default python3);
ENVBUILD_CHANNEL_ALIAS=URL fetches every anaconda.org channel from a team mirror.
Steps: prerequisites, tool venv (make setup), install (envbuild install LOCKFILE, which
first prints the warnings the lockfile records), build (envbuild build), sanity (envbuild
sanity), then how to use it.
USAGE
}

CUDA="${CUDA:-11.7}"
SPEC="${SPEC:-envspecs/mask2former.yaml}"
LOCKFILE=""
PREFIX=""
PYTHON="${PYTHON:-python3}"
INSTALL_ARGS=()

# the value of option $1 (given as $2), or a usage error (exit 2) when it is missing
value_of() {
    if [ -z "${2-}" ] || [ "${2#--}" != "${2-}" ]; then
        echo "onboard: $1 needs $3 (see ./onboard.sh --help)" >&2
        exit 2
    fi
    printf '%s' "$2"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --cuda) CUDA="$(value_of --cuda "${2-}" "a value like 11.7")" || exit 2; shift 2 ;;
        --cuda=*) CUDA="${1#*=}"; shift ;;
        --spec) SPEC="$(value_of --spec "${2-}" "a file")" || exit 2; shift 2 ;;
        --spec=*) SPEC="${1#*=}"; shift ;;
        --lockfile) LOCKFILE="$(value_of --lockfile "${2-}" "a file")" || exit 2; shift 2 ;;
        --lockfile=*) LOCKFILE="${1#*=}"; shift ;;
        --prefix) PREFIX="$(value_of --prefix "${2-}" "a directory")" || exit 2; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --channel) INSTALL_ARGS+=(--channel "$(value_of --channel "${2-}" "NAME=URL")") || exit 2
            shift 2 ;;
        --channel=*) INSTALL_ARGS+=(--channel "${1#*=}"); shift ;;
        --offline) INSTALL_ARGS+=(--offline); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "onboard: unknown option: $1 (see ./onboard.sh --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")"
ROOT="$(pwd)"
STEP="start"
TOTAL=6
N=0

step() {
    N=$((N + 1))
    STEP="$1"
    printf '\n==> [%d/%d] %s\n' "$N" "$TOTAL" "$STEP"
}

die() {
    printf 'onboard: %s\n' "$1" >&2
    [ $# -gt 1 ] && printf '  fix: %s\n' "$2" >&2
    exit "${3:-1}"
}

on_error() {
    local rc=$?
    printf '\nonboard: step "%s" failed (exit %d).\n' "$STEP" "$rc" >&2
    printf '  Fix the problem reported above and run ./onboard.sh again; finished steps are skipped.\n' >&2
    printf '  `.venv/bin/envbuild doctor` explains the GPUs, driver, nvcc and gcc of this machine.\n' >&2
    exit "$rc"
}
trap on_error ERR

case "$CUDA" in
    [0-9]*.[0-9]*) TAG="cu${CUDA//./}" ;;
    cpu) TAG="cpu" ;;
    *) die "--cuda must look like 11.7 (or cpu), got '$CUDA'" "./onboard.sh --cuda 11.7" 2 ;;
esac
NAME="$(basename "$SPEC")"; NAME="${NAME%.yaml}"; NAME="${NAME%.yml}"
LOCKFILE="${LOCKFILE:-lockfiles/${NAME}-${TAG}.conda-lock.yml}"
PREFIX="${PREFIX:-${ENVBUILD_ENVS:-$PWD/.envbuild/envs}/${NAME}-${TAG}}"

step "prerequisites"
[ "$(uname -s)" = "Linux" ] || die "envbuild environments are linux-64; this is $(uname -s)" \
    "run onboard.sh on the Linux GPU server"
command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' found on PATH" \
    "install Python >= 3.10 (e.g. 'uv python install 3.11', or 'sudo apt install python3.11 python3.11-venv') and run PYTHON=/path/to/python3.11 ./onboard.sh"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    found="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo unknown)"
    die "envbuild needs Python >= 3.10 for the tool itself; $PYTHON is $found" \
        "install one without sudo: 'curl -LsSf https://astral.sh/uv/install.sh | sh && uv python install 3.11', then PYTHON=\$(uv python find 3.11) ./onboard.sh (or use your distro's python3.11 package)"
fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON cannot create virtual environments" \
    "install the venv module (Debian/Ubuntu: python3.X-venv) or use a uv-managed python"
[ -f "$SPEC" ] || die "spec $SPEC not found" "pass --spec envspecs/NAME.yaml" 2
[ -f "$LOCKFILE" ] || die "no committed lockfile $LOCKFILE (onboarding never re-solves)" \
    "ls lockfiles/ for the CUDA versions the team locked, or ask the lead to run 'make lock CUDA=$CUDA' and commit the result" 2
echo "python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
echo "spec: $SPEC  lockfile: $LOCKFILE  prefix: $PREFIX"

step "tool venv (make setup)"
if command -v make >/dev/null 2>&1; then
    make --no-print-directory setup PYTHON="$PYTHON"
else
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
fi
ENVBUILD="$ROOT/.venv/bin/envbuild"
[ -x "$ENVBUILD" ] || die "the tool's venv has no envbuild" "rm -rf .venv && ./onboard.sh"

step "install the environment from $LOCKFILE"
"$ENVBUILD" install "$LOCKFILE" --prefix "$PREFIX" ${INSTALL_ARGS[@]+"${INSTALL_ARGS[@]}"}

step "build the CUDA ops"
"$ENVBUILD" build "$SPEC" --prefix "$PREFIX" --cuda "$CUDA" --lockfile "$LOCKFILE"  # its pins: the commits installed

step "sanity checks"
"$ENVBUILD" sanity --prefix "$PREFIX"

step "done"
cat <<DONE
The environment is ready: $PREFIX

Activate it:
    . "$PREFIX/activate"          # or: conda activate "$PREFIX"
  (it sets CUDA_HOME to the env's own toolkit and CUDA_DEVICE_ORDER=PCI_BUS_ID)

Pick a GPU (indices are nvidia-smi's; the chosen GPU is cuda:0 inside the program):
    $ENVBUILD gpus
    $ENVBUILD run --gpus auto -- python train_net.py --num-gpus 1 ...
    $ENVBUILD run --gpus 0,1 -- python train_net.py --num-gpus 2 ...

What this machine can run and build:
    $ENVBUILD doctor $SPEC --cuda $CUDA
DONE
