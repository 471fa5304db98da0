"""An MSDeformAttn-style op written for envbuild's tests from the Deformable DETR formula.

Same Python-facing surface as the upstream extension: a module named
``MultiScaleDeformableAttention`` with ``ms_deform_attn_forward`` and
``ms_deform_attn_backward``.
"""

import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

here = os.path.dirname(os.path.abspath(__file__))

setup(
    name="MultiScaleDeformableAttention",
    version="0.1",
    ext_modules=[
        CUDAExtension(
            "MultiScaleDeformableAttention",
            [os.path.join("src", "msda_bind.cpp"), os.path.join("src", "msda_kernels.cu")],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
