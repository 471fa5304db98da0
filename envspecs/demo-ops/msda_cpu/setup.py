"""The demo's op: multi-scale deformable attention with a CPU kernel (forward and backward).

It builds with torch's ``CppExtension`` alone (no nvcc, no CUDA), so ``make demo`` compiles
and checks a real op on any machine.  The module is ``MultiScaleDeformableAttention`` with
``ms_deform_attn_forward`` and ``ms_deform_attn_backward``, called as the Deformable-DETR
family's op is called.
"""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    name="msda-cpu",
    version="0.1",
    ext_modules=[CppExtension("MultiScaleDeformableAttention", ["src/msda_cpu.cpp"])],
    cmdclass={"build_ext": BuildExtension},
)
