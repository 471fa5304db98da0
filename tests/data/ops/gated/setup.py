"""A test op for envbuild shaped like the Deformable-DETR ops family's setup.py.

It refuses to build unless torch sees a GPU (and CUDA_HOME is
known), so on a GPU-less host it raises before compiling anything; its sources are
found by glob (src/*.cpp, src/cpu/*.cpp, src/cuda/*.cu), and src/vision.cpp passes
``x.type()`` to an AT_DISPATCH macro (the spelling torch 2.6 stopped accepting).
"""

import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

here = os.path.dirname(os.path.abspath(__file__))


def extensions():
    src = os.path.join("src")
    sources = sorted(glob.glob(os.path.join(src, "*.cpp")))
    sources += sorted(glob.glob(os.path.join(src, "cpu", "*.cpp")))
    extension = CppExtension
    macros = []
    if torch.cuda.is_available() and CUDA_HOME is not None:
        extension = CUDAExtension
        sources += sorted(glob.glob(os.path.join(src, "cuda", "*.cu")))
        macros.append(("WITH_CUDA", None))
    else:
        raise NotImplementedError("CUDA is not available")
    return [extension("envbuild_gated", sources, define_macros=macros,
                      include_dirs=[os.path.join(here, "src")])]


setup(
    name="envbuild-gated",
    version="0.1",
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension},
)
