#!/usr/bin/env bash
# On a machine with a GPU: build the REAL upstream Mask2Former MSDeformAttn op and envbuild's
# own family-shaped fixture ops for this GPU's arch, and run `envbuild sanity` on them,
# including a deliberately broken MSDeformAttn variant that sanity must FAIL.
#
#   bench/gpu_check.sh /path/to/Mask2Former [BASE]
#
# BASE (default .venv, torch 2.14.1+cu130) is the environment whose torch the ops are built
# against; each group of ops goes into its own fresh venv layered on BASE (a .pth file), so
# BASE itself is never changed.  ARCH defaults to the first GPU's compute capability.
# Without a GPU the kernel checks report SKIPPED (never PASS) and this script exits 1, since
# nothing was checked.  Nothing from the checkout is copied into this repo: every build
# works on a copy in a temp dir inside the store.
set -euo pipefail
M2F=${1:?usage: bench/gpu_check.sh /path/to/Mask2Former [BASE]}
BASE=$(cd "${2:-.venv}" && pwd)
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY="$HERE/.venv/bin/python"
ENVBUILD="$PY -m builder"
OPS="$HERE/tests/data/ops"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export ENVBUILD_HOME="$WORK/home"

nvidia-smi -L
ARCH=${ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' ')}
echo "== arch $ARCH =="

layered() {  # layered PREFIX: a venv seeing BASE's site-packages
  python3 -m venv --without-pip "$1"
  "$PY" - "$1" "$BASE" <<'PYCODE'
import sys
from pathlib import Path
from builder.opbuild.toolchain import prefix_facts
own, base = (prefix_facts(Path(p)).site_packages for p in sys.argv[1:3])
(own / "_envbuild_layer.pth").write_text(f"{base}\n")
PYCODE
}

spec() {  # spec FILE SOURCE_PATH OP_PATH NAME SANITY
  cat > "$1" <<YAML
name: gpu-check
python: "3.11"
torch: ">=2.6"
torch_from: pypi
cuda: {default: "13.0"}
sources:
  src: {path: "$2"}
ops:
  - {name: $4, source: src, path: "$3", sanity: $5}
YAML
}

# 1. upstream Mask2Former ops (the matrix and the source both call for dispatch-scalar-type)
layered "$WORK/m2f"
spec "$WORK/m2f.yaml" "$(cd "$M2F" && pwd)" mask2former/modeling/pixel_decoder/ops \
  MultiScaleDeformableAttention msdeformattn
echo "== build upstream Mask2Former ops =="
time $ENVBUILD build "$WORK/m2f.yaml" --prefix "$WORK/m2f" --arch "$ARCH"
echo "== rebuild (expect a cache hit) =="
time $ENVBUILD build "$WORK/m2f.yaml" --prefix "$WORK/m2f" --arch "$ARCH"
echo "== sanity: upstream Mask2Former ops (must PASS) =="
$ENVBUILD sanity --prefix "$WORK/m2f" --check msdeformattn

# 2. the fixtures: MSDeformAttn-style op, the GPU-gated tree, the whole package
layered "$WORK/fixtures"
for tree in msda:MultiScaleDeformableAttention:msdeformattn gated:gated:import \
            wholepkg:wholepkg:import; do
  IFS=: read -r dir name kind <<<"$tree"
  spec "$WORK/$dir.yaml" "$OPS/$dir" . "$name" "$kind"
  echo "== build fixture $dir =="
  $ENVBUILD build "$WORK/$dir.yaml" --prefix "$WORK/fixtures" --arch "$ARCH"
done
echo "== sanity: fixture MSDeformAttn op (must PASS) =="
$ENVBUILD sanity --prefix "$WORK/fixtures" --check msdeformattn
echo "== kernels of the gated and whole-package fixtures against their CPU paths =="
"$WORK/fixtures/bin/python" - <<'PYCODE'
import torch, envbuild_gated, wholepkg
assert envbuild_gated.has_cuda() and wholepkg._C.has_cuda()
for dev in range(torch.cuda.device_count()):
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(1000, dtype=dtype)
        a, b = x.clone(), x.clone().cuda(dev)
        envbuild_gated.scale_(a, 1.5); envbuild_gated.scale_(b, 1.5)
        assert torch.equal(a, b.cpu()), ("gated", dev, dtype)
        wholepkg.shift_(a, -2); wholepkg.shift_(b, -2)
        assert torch.equal(a, b.cpu()), ("wholepkg", dev, dtype)
        print(f"PASS cuda:{dev} {dtype}: gated scale_, wholepkg shift_ match the CPU path")
PYCODE

# 3. a deliberately broken MSDeformAttn variant: the forward uses the wrong corner weight
cp -r "$OPS/msda" "$WORK/msda-broken"
KERNEL="$WORK/msda-broken/src/msda_kernels.cu"
[ "$(grep -c 'wts\[3\] \* c\.v\[3\]);' "$KERNEL")" = 1 ] || { echo "broken variant: pattern moved"; exit 1; }
sed -i 's/wts\[3\] \* c\.v\[3\]);/wts[2] * c.v[3]);/' "$KERNEL"
layered "$WORK/broken"
spec "$WORK/broken.yaml" "$WORK/msda-broken" . MultiScaleDeformableAttention msdeformattn
echo "== build the broken variant =="
$ENVBUILD build "$WORK/broken.yaml" --prefix "$WORK/broken" --arch "$ARCH"
echo "== sanity: broken variant (must FAIL) =="
if $ENVBUILD sanity --prefix "$WORK/broken" --check msdeformattn; then
  echo "ERROR: sanity passed a kernel with a wrong corner weight"; exit 1
fi
echo "== gpu_check: upstream and fixture ops PASS, the broken variant FAILS =="
