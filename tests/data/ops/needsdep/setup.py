"""A cheap CUDA op with a runtime dependency, for envbuild's build-trust tests.

One small kernel compiled by nvcc (for $TORCH_CUDA_ARCH_LIST, which envbuild sets) and
linked into a plain C extension: no torch headers, so a build takes seconds.  The module
imports ``envbuild_fixture_dep`` when it loads, and the metadata declares the
distribution that provides it, so a prefix without it fails the dependency check (and,
with the distribution but not its module, the import check).
"""
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))  # absolute sources, as upstream ops use


def gencode_flags():
    flags = []
    for arch in filter(None, os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0").split(";")):
        sm = arch.removesuffix("+PTX").replace(".", "")
        flags.append(f"-gencode=arch=compute_{sm},code=sm_{sm}")
        if arch.endswith("+PTX"):
            flags.append(f"-gencode=arch=compute_{sm},code=compute_{sm}")
    return flags


class NvccThenC(build_ext):
    def build_extensions(self):
        cuda = os.environ["CUDA_HOME"]
        os.makedirs(self.build_temp, exist_ok=True)
        obj = os.path.join(self.build_temp, "scale.o")
        subprocess.check_call([os.path.join(cuda, "bin", "nvcc"), "-c", "-Xcompiler", "-fPIC",
                               *gencode_flags(), os.path.join(HERE, "src", "scale.cu"), "-o", obj])
        for ext in self.extensions:
            ext.extra_objects.append(obj)
            ext.libraries.extend(["cudart", "stdc++"])
        super().build_extensions()


setup(
    name="envbuild-needsdep",
    version="0.1",
    install_requires=["envbuild-fixture-dep>=1.0", 'envbuild-never-needed; python_version < "3"'],
    ext_modules=[Extension("envbuild_needsdep", [os.path.join(HERE, "src", "module.c")])],
    cmdclass={"build_ext": NvccThenC},
)
