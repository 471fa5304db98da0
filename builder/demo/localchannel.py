"""An offline conda channel of real packages, plus a local wheelhouse.

Lets ``envbuild env`` run every stage on a machine that reaches no conda channel
(tests marked ``e2e``, ``make demo``).  The channel holds:

* ``python``: the host interpreter (``sys.base_prefix``) packaged as a conda
  package, with its C headers (``include/pythonX.Y``: the demo's op compiles against
  them) and hash-checked bytecode for its stdlib, as a conda python ships it (a new
  prefix's first interpreter start does not compile what it imports).  Text files that
  embed the host prefix (sysconfig data, scripts) carry
  it as their ``prefix_placeholder`` so the installer rewrites them; ELF RUNPATHs
  naming the host ``lib`` are made ``$ORIGIN``-relative, so the interpreter loads
  *its own* ``libpython`` from wherever it is installed.
* ``envbuild-demo-tool``: a noarch script whose shebang is a prefix placeholder,
  proving text prefix replacement end to end.

The wheelhouse holds one tiny pure-python wheel (``envbuild-demo-greeting``),
written here (a wheel is a zip with a RECORD), so the pip layer needs no index.

Channel contents are cached by a key over the interpreter and this module's
schema version; rebuilding only happens when that changes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sys
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from builder.demo.condapkg import PackageMeta, relativize_runpath, write_conda
from builder.util.fs import atomic_write_text, file_lock, remove_tree, temp_dir_in
from builder.util.hashing import payload_digest

SCHEMA = 5  # 4: the python package carries its C headers; 5: and its stdlib bytecode
TOOL_PLACEHOLDER = "/opt/envbuild-placeholder-prefix-for-the-demo-tool/placeholder"
WHEEL_NAME, WHEEL_VERSION = "envbuild_demo_greeting", "1.0.0"
# Parts of the stdlib a demo env never needs; they only make the archive bigger.
_SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
              "__pycache__", "site-packages"}


class LocalChannel(BaseModel):
    """Where the channel and wheelhouse were written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Path
    wheelhouse: Path
    python_version: str

    @property
    def channel_url(self) -> str:
        """``file://`` URL of the channel (what a lockfile records)."""
        return self.channel.resolve().as_uri()


def host_python() -> tuple[Path, str]:
    """The host interpreter's prefix and full version (``3.11.7``)."""
    return Path(sys.base_prefix), ".".join(map(str, sys.version_info[:3]))


def ensure_local_channel(root: Path, base_prefix: Path | None = None) -> LocalChannel:
    """Build (once) the channel and wheelhouse under ``root``; later calls return at once."""
    prefix, version = host_python()
    prefix = base_prefix or prefix
    key = payload_digest({"schema": SCHEMA, "prefix": str(prefix), "version": version})[:16]
    result = LocalChannel(channel=root / "channel", wheelhouse=root / "wheels",
                          python_version=version)
    marker = root / ".complete"
    if marker.exists() and marker.read_text().strip() == key:
        return result
    with file_lock(root.parent / f".{root.name}.lock", what=f"local channel {root}"):
        if marker.exists() and marker.read_text().strip() == key:
            return result
        with temp_dir_in(root.parent, f".{root.name}.tmp-") as tmp:
            _build_into(tmp, prefix, version)
            remove_tree(root, inside=root.parent, ignore_errors=True)
            os.replace(tmp, root)
            tmp.mkdir()  # temp_dir_in removes it again
        atomic_write_text(marker, key + "\n")
    return result


def _build_into(tmp: Path, prefix: Path, version: str) -> None:
    channel = tmp / "channel"
    (channel / "noarch").mkdir(parents=True)
    (channel / "linux-64").mkdir(parents=True)
    build_python_package(prefix, version, channel, tmp / "stage-python")
    build_tool_package(channel, tmp / "stage-tool")
    build_pip_package(prefix, version, channel, tmp / "stage-pip")
    write_wheel(tmp / "wheels")
    index_channel(channel)
    for stage in ("stage-python", "stage-tool", "stage-pip"):
        remove_tree(tmp / stage, inside=tmp, ignore_errors=True)


def _skip_dir(name: str) -> bool:
    return name in _SKIP_DIRS or name.startswith("config-")


def build_python_package(prefix: Path, version: str, channel: Path, stage: Path) -> Path:
    """Package the interpreter at ``prefix`` as ``python-<version>`` into ``channel/linux-64``."""
    xy = ".".join(version.split(".")[:2])
    stage.mkdir(parents=True)
    for name in (f"python{xy}", f"python{xy.split('.')[0]}", "python"):
        src = prefix / "bin" / name
        if src.exists() or src.is_symlink():
            _copy(src, stage / "bin" / name)
    libdir = prefix / "lib"
    for src in libdir.glob(f"libpython{xy}*.so*"):
        _copy(src, stage / "lib" / src.name)
    stdlib = libdir / f"python{xy}"
    for dirpath, dirnames, filenames in os.walk(stdlib):
        rel_dir = os.path.relpath(dirpath, libdir).replace(os.sep, "/")
        dirnames[:] = [d for d in dirnames if not _skip_dir(d)]
        for f in filenames:
            if not f.endswith((".pyc", ".pyo")):
                _copy(Path(dirpath) / f, stage / "lib" / rel_dir / f)
    _compile_stdlib(stage / "lib" / f"python{xy}", str(prefix))
    # the C headers, as a conda python has them: the demo's op compiles against them
    headers = prefix / "include" / f"python{xy}"
    for src in sorted(headers.rglob("*")) if headers.is_dir() else ():
        if src.is_file():
            _copy(src, stage / "include" / f"python{xy}" / src.relative_to(headers))
    (stage / "lib" / f"python{xy}" / "site-packages").mkdir(parents=True, exist_ok=True)
    (stage / "lib" / f"python{xy}" / "site-packages" / "README.txt").write_text(
        "third-party packages of this environment\n")
    for path in stage.rglob("*"):
        if path.is_file() and not path.is_symlink():
            relativize_runpath(path, str(libdir), stage / "lib")
    meta = PackageMeta(name="python", version=version, build=f"envbuild_{SCHEMA}",
                       license="PSF-2.0")
    return write_conda(stage, meta, channel, placeholder=str(prefix))


def _compile_stdlib(stdlib: Path, placeholder: str) -> None:
    """Bytecode beside the staged stdlib, as a conda python package ships it.

    Without it every first start of an installed interpreter compiles what it imports
    (uv's interpreter query of a new prefix: 0.13 s instead of 0.05 s).  Hash-checked
    pycs stay valid whatever mtimes the installer gives the files; a module whose source
    embeds the prefix placeholder is rewritten at install, so it gets none.
    """
    import py_compile
    from importlib.util import cache_from_source

    mode = py_compile.PycInvalidationMode.CHECKED_HASH
    for src in sorted(stdlib.rglob("*.py")):
        if placeholder.encode() in src.read_bytes():
            continue
        try:
            py_compile.compile(str(src), cfile=cache_from_source(str(src)),
                               dfile=src.relative_to(stdlib.parent).as_posix(),
                               doraise=True, invalidation_mode=mode)
        except py_compile.PyCompileError:
            continue  # not valid for this interpreter: it is never imported either


def build_tool_package(channel: Path, stage: Path) -> Path:
    """A noarch package with one script whose shebang is replaced by the install prefix."""
    script = stage / "bin" / "envbuild-demo-hello"
    script.parent.mkdir(parents=True)
    script.write_text(
        f"#!{TOOL_PLACEHOLDER}/bin/python3\n"
        "import sys\n"
        "print('hello from', sys.prefix)\n"
    )
    script.chmod(0o755)
    meta = PackageMeta(name="envbuild-demo-tool", version="1.0", build="0", subdir="noarch",
                       noarch="generic", depends=("python >=3.8",))
    return write_conda(stage, meta, channel, placeholder=TOOL_PLACEHOLDER)


def build_pip_package(prefix: Path, version: str, channel: Path, stage: Path) -> Path | None:
    """The host's own ``pip`` as a conda package (resolutions ask for ``pip``)."""
    import importlib.metadata as md

    xy = ".".join(version.split(".")[:2])
    site = prefix / "lib" / f"python{xy}" / "site-packages"
    dists = sorted(site.glob("pip-*.dist-info"))
    if not (site / "pip").is_dir() or not dists:
        return None
    pip_version = md.Distribution.at(dists[-1]).version
    dest = stage / "lib" / f"python{xy}" / "site-packages"
    for src in (site / "pip", dists[-1]):
        shutil.copytree(src, dest / src.name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    meta = PackageMeta(name="pip", version=pip_version, build=f"py{xy.replace('.', '')}_0",
                       depends=(f"python {xy}.*",))
    return write_conda(stage, meta, channel)


def write_wheel(out_dir: Path) -> Path:
    """A pure-python wheel ``envbuild_demo_greeting-1.0.0-py3-none-any.whl``."""
    dist = f"{WHEEL_NAME}-{WHEEL_VERSION}.dist-info"
    files = {
        f"{WHEEL_NAME}/__init__.py":
            '"""A greeting from the pip layer."""\n\n'
            "def greet() -> str:\n    return 'hello from the pip layer'\n",
        f"{dist}/METADATA":
            f"Metadata-Version: 2.1\nName: envbuild-demo-greeting\nVersion: {WHEEL_VERSION}\n"
            "Summary: envbuild offline demo wheel\n",
        f"{dist}/WHEEL":
            "Wheel-Version: 1.0\nGenerator: envbuild\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{name},sha256={_b64_sha(text.encode())},{len(text.encode())}"
              for name, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{WHEEL_NAME}-{WHEEL_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, text)
    return target


def index_channel(channel: Path) -> None:
    """Write ``repodata.json`` for every subdir with rattler's indexer."""
    import asyncio

    from rattler.index import index_fs

    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))


def _b64_sha(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)


def write_channel_lockfile(local: LocalChannel, out: Path, *, platform: str = "linux-64",
                           wheels: tuple[Path, ...] | None = None) -> Path:
    """A conda-lock lockfile of every package in ``local`` (tests, benchmarks).

    The real flow locks through ``builder.lock``; this writes the same format
    straight from the channel's repodata so the installer can be exercised alone.
    """
    import json

    from builder.lock.lockformat import (
        Channel,
        HashModel,
        LockedDependency,
        Lockfile,
        LockMeta,
        dump_yaml,
        normalized,
        to_data,
    )
    from builder.util.fs import atomic_write_text
    from builder.util.hashing import sha256_file

    deps: list[LockedDependency] = []
    for subdir in ("linux-64", "noarch"):
        repodata = json.loads((local.channel / subdir / "repodata.json").read_text())
        for fname, rec in sorted(repodata.get("packages.conda", {}).items()):
            deps.append(LockedDependency(
                name=rec["name"], version=rec["version"], manager="conda", platform=platform,
                dependencies=dict(_split_dep(d) for d in rec.get("depends", [])
                                  if not d.startswith("__")),
                url=f"{local.channel_url}/{subdir}/{fname}",
                hash=HashModel(md5=rec["md5"], sha256=rec["sha256"]),
                build=rec["build"]))
    for whl in wheels if wheels is not None else tuple(sorted(local.wheelhouse.glob("*.whl"))):
        name, version = whl.name.split("-")[:2]
        deps.append(LockedDependency(
            name=name.replace("_", "-"), version=version, manager="pip", platform=platform,
            dependencies={}, url=whl.resolve().as_uri(),
            hash=HashModel(sha256=sha256_file(whl))))
    meta = LockMeta(content_hash={platform: "local-channel"},
                    channels=[Channel(url=local.channel_url)],
                    platforms=[platform], sources=["local-channel"])
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, dump_yaml(to_data(normalized(Lockfile(package=deps, metadata=meta)))))
    return out


def _split_dep(dep: str) -> tuple[str, str]:
    name, _, rest = dep.partition(" ")
    return name, rest
