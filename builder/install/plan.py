"""Lockfile -> :class:`InstallPlan`: the exact conda and pip records for this platform.

The lockfile is conda-lock's format, read with the models of
:mod:`builder.lock.lockformat` (conda-lock's v1 schema; conda-lock is not imported).
Every record must carry a hash: conda records a sha256 (md5 is checked too when
given), pip records a sha256; an unhashed record is refused, never installed on trust.

Install key contract (``install_key``): sha256 of
``json.dumps({"schema": 1, "platform": P, "conda": [[url, sha256], ...],
"pip": [[name, url, sha256], ...]}, sort_keys=True)`` with both lists sorted.
It names *what is installed*, so a lockfile that only changed comments or
metadata does not trigger a re-install.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.errors import SpecError, UsageError
from builder.models import Frozen as _Frozen
from builder.util import fields
from builder.util.hashing import payload_digest

PLAN_SCHEMA = 1
CONDA_SUFFIXES = (".conda", ".tar.bz2")


class CondaRecord(_Frozen):
    """One conda package: where to get it and the hashes it must have."""

    name: str
    version: str
    build: str
    subdir: str
    url: str
    # Some channels publish only an md5 for old packages (e.g. nvidia's cuda-nvcc 11.8.89):
    # those are pinned and verified by md5; every other record by sha256 (and md5 too).
    sha256: fields.Sha256 | None
    md5: fields.Md5 | None = None
    depends: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The strongest hash the lockfile pins: the package cache is keyed by it."""
        if self.sha256:
            return self.sha256.lower()
        assert self.md5, "a conda record carries a sha256 or an md5"
        return f"md5-{self.md5.lower()}"

    @property
    def file_name(self) -> str:
        """The archive's file name (last URL segment)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def channel(self) -> str:
        """The channel URL (the URL without ``/<subdir>/<file>``)."""
        return self.url.rsplit("/", 2)[0]


class PipRecord(_Frozen):
    """One wheel: exact URL and sha256."""

    name: fields.Name
    version: str
    url: fields.Url
    sha256: fields.Sha256


class InstallPlan(_Frozen):
    """Everything ``install`` needs from a lockfile."""

    lockfile: str
    platform: str
    conda: tuple[CondaRecord, ...]
    pip: tuple[PipRecord, ...]
    input_hash: str | None = None

    @property
    def install_key(self) -> str:
        """Digest of what gets installed (see module docstring)."""
        return payload_digest({
            "schema": PLAN_SCHEMA,
            "platform": self.platform,
            "conda": sorted([r.url, r.key] for r in self.conda),
            "pip": sorted([r.name, r.url, r.sha256] for r in self.pip),
        })


def host_platform() -> str:
    """The conda subdir of this machine (``linux-64``)."""
    import platform
    import sys

    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "arm64",
            "ppc64le": "ppc64le"}.get(machine, machine)
    os_name = {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    return f"{os_name}-{arch}"


def read_lockfile_model(path: Path) -> Any:
    """The conda-lock ``Lockfile`` model (a clear exit-2 error when missing or unreadable)."""
    if not path.is_file():
        raise UsageError(f"lockfile not found: {path}",
                         hint="run `make lock` (or `envbuild lock SPEC`) to create it")
    from builder.lock.lockfile import read_lockfile

    try:
        return read_lockfile(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{path}: not a readable conda-lock lockfile ({exc})",
                         hint="regenerate it with `make lock`") from None


def _input_hash(model: Any) -> str | None:
    try:
        from builder.lock.lockfile import envbuild_metadata

        return str(envbuild_metadata(model).input_hash)
    except Exception:  # noqa: BLE001 - metadata is informative only here
        custom = getattr(model.metadata, "custom_metadata", None) or {}
        return custom.get("envbuild_input_hash") or custom.get("input_hash")


def load_plan(path: Path, platform: str | None = None) -> InstallPlan:
    """Read ``path`` and select the records for ``platform`` (default: this machine).

    A record envbuild cannot install is a :class:`SpecError` at its ``path:line``.
    """
    from builder.lock.lockfile import field_location

    model = read_lockfile_model(path)
    platform = platform or host_platform()
    platforms = list(model.metadata.platforms)
    if platform not in platforms:
        raise SpecError(
            f"a lockfile for {', '.join(platforms) or 'no platform'}, "
            f"not for this machine ({platform})",
            location=field_location(path, "metadata", "platforms"),
            hint="lock for this platform on a machine of it, or use the matching lockfile")
    conda: list[CondaRecord] = []
    pip: list[PipRecord] = []
    for dep in model.package:
        if dep.platform != platform:
            continue
        sha = dep.hash.sha256
        if not sha and not (dep.manager == "conda" and dep.hash.md5):
            raise _bad_record(path, dep, "hash",
                              f"{dep.name} {dep.version} has no sha256 in the lockfile",
                              "every record must be hash-pinned; run `make lock`")
        subdir = _conda_subdir(path, dep, platform) if dep.manager == "conda" else ""
        _check_fields(path, dep)
        if dep.manager == "conda":
            conda.append(CondaRecord(
                name=dep.name, version=dep.version, build=dep.build or "0",
                subdir=subdir, url=dep.url, sha256=sha,
                md5=dep.hash.md5,
                depends=tuple(f"{k} {v}".strip() for k, v in sorted(dep.dependencies.items())),
            ))
        else:
            assert sha is not None
            pip.append(PipRecord(name=dep.name, version=dep.version, url=dep.url, sha256=sha))
    if not conda:
        raise SpecError(f"no conda packages for {platform}",
                        location=field_location(path, "package"),
                        hint="a prefix needs at least python from conda; run `make lock`")
    return InstallPlan(lockfile=str(path), platform=platform, conda=tuple(conda),
                       pip=tuple(pip), input_hash=_input_hash(model))


def _check_fields(path: Path, dep: Any) -> None:
    """Every field of a record is what it claims to be (see :mod:`builder.util.fields`) before
    any of it reaches a cache path, a command line or a requirements file."""
    conda = dep.manager == "conda"
    checks: list[tuple[str, Callable[[], object]]] = [
        ("manager", lambda: _manager(dep.manager)),
        ("name", lambda: fields.name(dep.name, "a package name")),
        ("version", lambda: fields.version(dep.version)),
        ("url", lambda: fields.url(dep.url)),
        ("url", lambda: fields.file_name(
            urllib.parse.unquote(urllib.parse.urlsplit(dep.url).path.rsplit("/", 1)[-1]),
            CONDA_SUFFIXES if conda else fields.PIP_SUFFIXES)),
    ]
    if conda and dep.build is not None:
        checks.append(("build", lambda: fields.version(dep.build, "build")))
    if dep.hash.sha256 is not None:
        checks.append(("hash", lambda: fields.hex_digest(dep.hash.sha256, 64)))
    if dep.hash.md5 is not None:
        checks.append(("hash", lambda: fields.hex_digest(dep.hash.md5, 32, "md5")))
    for key, value in dep.dependencies.items():
        checks.append(("dependencies", functools.partial(_dependency, key, value)))
    for field, check in checks:
        try:
            check()
        except ValueError as exc:
            from builder.util.redact import redact

            raise _bad_record(path, dep, field, f"{dep.name}: {redact(str(exc))}",
                              "the lockfile was edited or is not envbuild's; regenerate it "
                              "with `envbuild lock`") from None


def _manager(value: object) -> str:
    if value not in ("conda", "pip"):
        raise ValueError(f"manager must be conda or pip, not {value!r}")
    return str(value)


def _dependency(key: object, value: object) -> None:
    fields.name(key, "a dependency name")
    if not isinstance(value, str) or any(ord(c) < 32 for c in value) or len(value) > 500:
        raise ValueError(f"dependency {key!r} has an unreadable constraint {value!r}")


def _conda_subdir(path: Path, dep: Any, platform: str) -> str:
    """The subdir of a conda record's URL ``<scheme>://<channel>/<subdir>/<file>``, checked."""
    url = str(dep.url or "")
    parts = urllib.parse.urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    file_name = segments[-1]
    subdir = segments[-2] if len(segments) >= 2 else ""
    problem = None
    if not parts.scheme or "://" not in url:
        problem = "has no scheme (expected file://, http:// or https://)"
    elif not file_name.endswith(CONDA_SUFFIXES):
        problem = "does not end in a conda archive's file name (.conda or .tar.bz2)"
    elif subdir not in (platform, "noarch"):
        problem = f"has no {platform} or noarch subdir before the file name"
    if problem is None:
        return subdir
    from builder.util.redact import redact

    raise _bad_record(path, dep, "url",
                      f"{dep.name} {dep.version}: url {redact(url)!r} {problem}",
                      "a conda record's url is <channel>/<subdir>/<file>; run `make lock`")


def _bad_record(path: Path, dep: Any, field: str, message: str, hint: str) -> SpecError:
    from builder.lock.lockfile import record_location

    return SpecError(message, location=record_location(path, dep, field), hint=hint)
