"""A test package for envbuild shaped like the GroundingDINO / detectron2 family.

The whole package is the op: ``wholepkg`` (pure Python) plus the extension
``wholepkg._C``, whose sources are every ``wholepkg/csrc/**/*.cpp`` and ``*.cu`` found by
glob.  CUDA is used when CUDA_HOME is known and an arch list is given (no GPU test), and
csrc/vision.cpp still passes ``x.type()`` to an AT_DISPATCH macro.
"""

import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def extensions():
    csrc = os.path.join("wholepkg", "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "**", "*.cpp"), recursive=True))
    cuda = sorted(glob.glob(os.path.join(csrc, "**", "*.cu"), recursive=True))
    if CUDA_HOME is not None and "TORCH_CUDA_ARCH_LIST" in os.environ:
        return [CUDAExtension("wholepkg._C", sources + cuda, define_macros=[("WITH_CUDA", None)])]
    return [CppExtension("wholepkg._C", sources)]


setup(
    name="envbuild-wholepkg",
    version="0.1",
    packages=find_packages(exclude=("tests",)),
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension},
)
