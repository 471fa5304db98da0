#!/usr/bin/env bash
# Build the REAL upstream Mask2Former MSDeformAttn op for sm_90 and run the kernel sanity checks.
#
#   bench/gpu_check.sh /path/to/Mask2Former [PREFIX]
#
# PREFIX defaults to .venv (torch 2.14.1+cu130).  Needs a GPU for the kernel checks; without
# one they report SKIPPED (never PASS).  Nothing from the checkout is copied into this repo:
# the build works on a copy in a temp dir inside the store.
set -euo pipefail
M2F=${1:?usage: bench/gpu_check.sh /path/to/Mask2Former [PREFIX]}
PREFIX=${2:-.venv}
ARCH=${ARCH:-9.0}
HERE=$(cd "$(dirname "$0")/.." && pwd)
ENVBUILD="$HERE/.venv/bin/python -m builder"
SPEC=$(mktemp --suffix=.yaml)
trap 'rm -f "$SPEC"' EXIT
cat > "$SPEC" <<YAML
name: m2f-gpu-check
python: "3.11"
torch: ">=2.6"
torch_from: pypi
cuda: {default: "13.0"}
sources:
  mask2former: {path: "$(cd "$M2F" && pwd)"}
ops:
  - {name: MultiScaleDeformableAttention, source: mask2former,
     path: mask2former/modeling/pixel_decoder/ops, sanity: msdeformattn,
     fixups: [dispatch-scalar-type]}
YAML
nvidia-smi -L || true
echo "== build (arch $ARCH) =="
time $ENVBUILD build "$SPEC" --prefix "$PREFIX" --arch "$ARCH"
echo "== rebuild (expect a cache hit) =="
time $ENVBUILD build "$SPEC" --prefix "$PREFIX" --arch "$ARCH"
echo "== sanity =="
$ENVBUILD sanity --prefix "$PREFIX" --check msdeformattn
