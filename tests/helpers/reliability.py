"""Helpers for the reliability suite (``tests/reliability/``, marker ``reliability``).

* killing a real ``envbuild`` process group at a chosen moment (:func:`spawn_cli`,
  :func:`kill_after`);
* digests of prefixes and stores to prove "nothing changed" (:func:`tree_state`);
* a cheap CUDA op (one trivial kernel, no torch headers: a build takes seconds, not a
  minute), optionally one that fails to import (undefined symbol), and a spec that builds
  it from a ``path:`` source (:func:`write_cheap_op`);
* small pure-python wheels and a find-links page with hashes (:func:`write_wheel`,
  :func:`write_links_page`), and a loopback HTTP server that records what it was
  asked (:func:`serve_directory`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from builder.util.hashing import sha256_file
from tests.helpers import REPO

# Files that legitimately change when a prefix is only *read* or a lock is only *taken*.
_VOLATILE_NAMES = {"__pycache__", ".lock"}


def tree_state(root: Path) -> str:
    """Digest of everything under ``root`` (names, modes, bytes, symlink targets).

    Links are recorded by their target text and never followed: a prefix holds links
    that leave it (``bin/python`` to the base interpreter), which a source-tree digest
    refuses.  Bytecode caches and lock files (a waiting process writes its pid there) are
    left out.  A missing ``root`` digests as ``"absent"``.
    """
    if not root.exists() and not root.is_symlink():
        return "absent"
    h = hashlib.sha256()
    for here, dirs, files in os.walk(root):
        rel_dir = Path(here).relative_to(root)
        dirs[:] = sorted(d for d in dirs if d not in _VOLATILE_NAMES)
        for name in sorted(files) + [d for d in dirs if (Path(here) / d).is_symlink()]:
            rel, path = (rel_dir / name).as_posix(), Path(here) / name
            if name in _VOLATILE_NAMES or rel.endswith(".lock"):
                continue
            if path.is_symlink():
                h.update(f"l {rel} {os.readlink(path)}\n".encode())
            elif path.is_file():
                mode = "x" if os.access(path, os.X_OK) else "-"
                h.update(f"f {mode} {rel} {sha256_file(path)}\n".encode())
            else:
                h.update(f"o {rel}\n".encode())
    return h.hexdigest()


def prefix_state(prefix: Path) -> tuple[str, str]:
    """(symlink target, digest of the generations dir) of an envbuild prefix."""
    link = os.readlink(prefix) if prefix.is_symlink() else "not a symlink"
    return link, tree_state(prefix.with_name(prefix.name + ".envbuild-gens"))


# --------------------------------------------------------------------------- processes


@dataclass
class Spawned:
    """A running ``envbuild`` in its own session (so its children can be killed with it)."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ENVBUILD_FAULT", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def spawn_cli(args: list[str], logs: Path, *, env: dict[str, str] | None = None,
              prefix_cmd: tuple[str, ...] = ()) -> Spawned:
    """Start ``envbuild ARGS`` as a user would, in a new session; output goes to files."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("*.out")))
    out, err = logs / f"{n:03d}.out", logs / f"{n:03d}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([*prefix_cmd, sys.executable, "-m", "builder", *args],
                                cwd=REPO, env=cli_env(env), stdout=fo, stderr=fe,
                                start_new_session=True)
    return Spawned(proc, out, err)


def run_to_end(args: list[str], logs: Path, *, env: dict[str, str] | None = None,
               timeout: float = 300, prefix_cmd: tuple[str, ...] = (),
               ) -> tuple[int, str, str, float]:
    """Run ``envbuild ARGS`` to completion: (exit code, stdout, stderr, seconds)."""
    sp = spawn_cli(args, logs, env=env, prefix_cmd=prefix_cmd)
    try:
        rc = sp.proc.wait(timeout=timeout)
    finally:
        kill_group(sp.proc)
    return rc, sp.stdout(), sp.stderr(), time.monotonic() - sp.started


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group of ``proc`` (envbuild and its uv/pip/nvcc children)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def kill_after(sp: Spawned, delay: float) -> bool:
    """``kill -9`` the process group ``delay`` s after start; False if it had already exited."""
    deadline = sp.started + delay
    while time.monotonic() < deadline:
        if sp.proc.poll() is not None:
            break
        time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
    alive = sp.proc.poll() is None
    kill_group(sp.proc)
    _wait_group_gone(sp.proc.pid)
    return alive


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until no process of group ``pgid`` is left (children die asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def record(check: str, **figures: object) -> None:
    """Print one figure line (``pytest -s`` / ``-rA`` shows it) and append it to
    ``$ENVBUILD_RELIABILITY_LOG`` when that is set (RELIABILITY.md is written from it)."""
    line = json.dumps({"check": check, **figures}, sort_keys=True, default=str)
    print(f"RELIABILITY {line}")
    target = os.environ.get("ENVBUILD_RELIABILITY_LOG")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


# --------------------------------------------------------------------------- a cheap op

OP_NAME = "envbuild_relop"
_OP_SETUP = '''\
"""A cheap CUDA op for envbuild's reliability tests: one trivial kernel, no torch headers.

nvcc compiles the kernel for $TORCH_CUDA_ARCH_LIST (set by envbuild) into an object that
a plain C extension links, so a build takes seconds and cuobjdump still sees sm targets.
"""
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _gencode():
    out = []
    for arch in os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0").replace(" ", ";").split(";"):
        if not arch:
            continue
        num = arch.replace("+PTX", "").replace(".", "")
        out.append(f"-gencode=arch=compute_{num},code=sm_{num}")
        if arch.endswith("+PTX"):
            out.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    return out


class BuildWithNvcc(build_ext):
    def build_extensions(self):
        nvcc = os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
        os.makedirs(self.build_temp, exist_ok=True)
        obj = os.path.join(self.build_temp, "kernel.o")
        subprocess.check_call([nvcc, "-c", "-Xcompiler", "-fPIC", *_gencode(),
                               "src/kernel.cu", "-o", obj])
        cudart = os.path.join(os.environ["CUDA_HOME"], "lib64")
        for ext in self.extensions:
            ext.extra_objects.append(obj)
            ext.library_dirs.append(cudart)
            ext.libraries.extend(["cudart", "stdc++"])
        super().build_extensions()


setup(name="envbuild-relop", version="0.1",
      ext_modules=[Extension("envbuild_relop", ["src/mod.c"])],
      cmdclass={"build_ext": BuildWithNvcc})
'''
_OP_KERNEL = """\
__global__ void relop_kernel(float* d, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) d[i] += 1.0f;
}
extern "C" int envbuild_relop_launch(float* d, int n) {
  relop_kernel<<<(n + 255) / 256, 256>>>(d, n);
  return 0;
}
"""
_OP_MODULE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int envbuild_relop_launch(float* d, int n);
%s
static PyObject* variant(PyObject* self, PyObject* args) { return PyLong_FromLong(%d); }
static PyMethodDef methods[] = {{"variant", variant, METH_NOARGS, "which source variant"},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "envbuild_relop", NULL, -1, methods};
PyMODINIT_FUNC PyInit_envbuild_relop(void) {
  (void)&envbuild_relop_launch;%s
  return PyModule_Create(&def);
}
"""


# With broken=True the module calls a function that is declared but defined nowhere: it
# compiles and links (a shared object may have undefined symbols) but fails to import with
# "undefined symbol: envbuild_relop_missing".
_BROKEN_DECL = "int envbuild_relop_missing(void);"
_BROKEN_CALL = "\n  if (envbuild_relop_missing()) return NULL;"


def write_cheap_op(root: Path, variant: int, *, broken: bool = False) -> Path:
    """Write (or rewrite) the op under ``root/op`` and its spec ``root/relop.yaml``.

    ``variant`` is compiled into the module (``envbuild_relop.variant()``), so each
    variant is a different source digest and a different store key.  ``broken`` makes
    the import fail with an undefined symbol (see ``_BROKEN_DECL``).
    """
    op = root / "op"
    (op / "src").mkdir(parents=True, exist_ok=True)
    (op / "setup.py").write_text(_OP_SETUP)
    (op / "src" / "kernel.cu").write_text(_OP_KERNEL)
    decl, call = (_BROKEN_DECL, _BROKEN_CALL) if broken else ("", "")
    (op / "src" / "mod.c").write_text(_OP_MODULE % (decl, variant, call))
    spec = root / "relop.yaml"
    spec.write_text("name: relop\npython: '3.11'\ntorch: '==2.14.1'\ntorch_from: pypi\n"
                    "cuda: {default: '13.0'}\nsources:\n  mine: {path: op}\n"
                    "ops:\n  - {name: envbuild_relop, source: mine}\n")
    return spec


def op_variant(prefix: Path) -> int | None:
    """``envbuild_relop.variant()`` in the prefix's python, or None when it does not import."""
    out = subprocess.run([str(prefix / "bin" / "python"), "-c",
                          "import envbuild_relop; print(envbuild_relop.variant())"],
                         capture_output=True, text=True, env=cli_env({"PATH": "/usr/bin:/bin"}))
    return int(out.stdout.strip()) if out.returncode == 0 else None


# --------------------------------------------------------------------------- wheels, http


def _b64_sha(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(out_dir: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-python ``py3-none-any`` wheel with a correct RECORD."""
    dist_name = name.replace("-", "_")
    dist = f"{dist_name}-{version}.dist-info"
    files = {**files,
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: envbuild-tests\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{n},sha256={_b64_sha(t.encode())},{len(t.encode())}" for n, t in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{dist_name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, text in files.items():
            zf.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return target


def write_links_page(wheel_dir: Path) -> Path:
    """``index.html`` listing every wheel with its ``#sha256=`` (a find-links page)."""
    rows = []
    for whl in sorted(wheel_dir.glob("*.whl")):
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        rows.append(f'<a href="{whl.name}#sha256={digest}">{whl.name}</a><br>')
    page = wheel_dir / "index.html"
    page.write_text("<html><body>\n" + "\n".join(rows) + "\n</body></html>\n")
    return page


@dataclass
class Served:
    """A loopback HTTP server over a directory and what it was asked."""

    url: str
    requests: list[tuple[str, str]]  # (path, Authorization header or "")
    stop: threading.Event


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[Served]:
    """Serve ``root`` on ``http://127.0.0.1:PORT`` (any credentials accepted) until exit."""
    requests: list[tuple[str, str]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            requests.append((self.path, self.headers.get("Authorization") or ""))
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", requests, stop)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def unshare_net_reason() -> str | None:
    """None when ``unshare -n`` works here, else why not."""
    try:
        out = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare not runnable: {exc}"
    if out.returncode != 0:
        return f"`unshare -n` not permitted here: {out.stderr.strip()[:200]}"
    return None


def package_paths(archive: Path) -> list[dict[str, object]]:
    """``info/paths.json`` entries of a ``.conda`` archive (what the package must install)."""
    import tarfile

    import zstandard

    with zipfile.ZipFile(archive) as zf:
        member = next(n for n in zf.namelist() if n.startswith("info-"))
        with zf.open(member) as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zs, \
                tarfile.open(fileobj=zs, mode="r|") as tar:
            for info in tar:
                if info.name.lstrip("./") == "info/paths.json":
                    fh = tar.extractfile(info)
                    assert fh is not None
                    return list(json.loads(fh.read())["paths"])
    raise AssertionError(f"{archive} has no info/paths.json")


def damaged_package_files(prefix: Path, archives: list[Path]) -> list[str]:
    """Files of the given packages missing from ``prefix`` or with other bytes than packaged.

    Files with a prefix placeholder are rewritten at install, so only their presence counts.
    """
    problems = []
    for archive in archives:
        for entry in package_paths(archive):
            rel = str(entry["_path"])
            path = prefix / rel
            if not path.exists() and not path.is_symlink():
                problems.append(f"{archive.name}: missing {rel}")
            elif (entry.get("path_type") == "hardlink" and "prefix_placeholder" not in entry
                  and "sha256" in entry and not path.is_symlink()
                  and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]):
                problems.append(f"{archive.name}: {rel} differs from the package")
    return problems


def bad_cached_archives(cache: Path) -> list[str]:
    """Archives in the package cache whose sha256 is not the one they are filed under."""
    bad = []
    root = cache / "archives"
    for d in sorted(root.iterdir()) if root.is_dir() else ():
        if d.name.startswith("."):
            continue
        for f in d.iterdir():
            if f.name != "index.json" and hashlib.sha256(f.read_bytes()).hexdigest() != d.name:
                bad.append(f"{d.name[:12]}/{f.name}")
    return bad


def mutate_lines(lines: list[str], cut: int, op: str, junk: str) -> list[str]:
    """A copy of a text file's ``lines`` with one line-level mutation, for fuzzing readers.

    ``op``: delete, duplicate, indent, dedent, garble (insert ``junk``), truncate,
    retype (keep a key, change its value's shape) or swap (two lines).
    """
    lines = list(lines)
    cut %= len(lines)
    if op == "delete":
        del lines[cut]
    elif op == "duplicate":
        lines.insert(cut, lines[cut])
    elif op == "indent":
        lines[cut] = "   " + lines[cut]
    elif op == "dedent":
        lines[cut] = lines[cut].lstrip()
    elif op == "garble":
        pos = len(lines[cut]) // 2
        lines[cut] = lines[cut][:pos] + junk + lines[cut][pos:]
    elif op == "truncate":
        lines = lines[:cut]
    elif op == "retype":  # keep the key, change the value's shape
        key, sep, _ = lines[cut].partition(": ")
        lines[cut] = f"{key}{sep}[{junk!r}]" if sep else lines[cut] + ": {}"
    else:
        other = (cut * 7 + 3) % len(lines)
        lines[cut], lines[other] = lines[other], lines[cut]
    return lines
