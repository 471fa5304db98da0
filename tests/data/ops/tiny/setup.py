"""A tiny CUDA extension used by envbuild's compile tests (one kernel, no ATen in the .cu)."""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="envbuild-tiny",
    version="0.1",
    ext_modules=[CUDAExtension("envbuild_tiny", ["src/tiny.cpp", "src/tiny_kernel.cu"])],
    cmdclass={"build_ext": BuildExtension},
)
