"""The PyPI layer: ``uv pip compile`` for the target python and platform, with hashes.

How packages the conda layer already provides (torch, torchvision, numpy, ...)
are kept out without being resolved twice:

* each is pinned to its conda version with a **constraint** (``numpy==1.24.4``), so a
  pip requirement that needs another version fails loudly instead of drifting;
* each gets uv **dependency metadata** with no requirements (a temporary
  ``uv.toml``), so PyPI's own dependencies of e.g. torch (the nvidia-*-cu11
  wheels) are never pulled in: conda already installed what torch needs;
* each is left out of the output with ``--no-emit-package``.

uv writes a PEP 751 ``pylock.toml`` that lists, per package, the wheels usable on
the target with their URL and sha256; the best wheel for the target's tags
(cpXY, manylinux_2_17 or 2_28 by the target glibc) is recorded.  A package
with no such wheel records its sdist and a warning.  No python is downloaded: uv
gets this interpreter (``--python``) for sdist metadata builds instead of searching.

The previous lockfile's pins go in as uv's existing output file (``pylock.toml``), so
uv keeps them where they still fit.  Whether uv runs at all, and whether its cache
may answer offline, is :mod:`builder.lock.pypi_cache`'s decision.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict

from builder.errors import CommandError, ConflictError, EnvbuildError
from builder.util import cmd
from builder.util.redact import redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, published for 3.10 as tomli (a dependency there)
    import tomli as tomllib

# conda package name -> PyPI project name, where they differ (python packages only)
CONDA_TO_PYPI = {
    "pytorch": "torch", "python-tzdata": "tzdata", "msgpack-python": "msgpack",
    "matplotlib-base": "matplotlib", "brotli-python": "brotli",
}
# uv environment variables that would silently change a lock; everything else passes
_UV_KEEP = {"UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS"}


class PipRecord(BaseModel):
    """One pinned PyPI distribution: exact URL and sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    url: str
    sha256: str
    kind: Literal["wheel", "sdist"] = "wheel"


class IndexUnreachable(EnvbuildError):
    """PyPI (or the configured index) could not be reached: exit 1."""

    exit_code = 1


@dataclass(frozen=True)
class PypiRequest:
    """What the PyPI layer needs."""

    requirements: tuple[str, ...]
    python_version: str  # the exact python the conda layer pinned, e.g. "3.8.19"
    glibc: str = "2.17"
    provided: Mapping[str, str] = field(default_factory=dict)  # PyPI name -> version
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    exclude_newer: dt.datetime | None = None
    origins: Mapping[str, str] = field(default_factory=dict)
    # the previous lockfile's pins (name, version): uv prefers them, so a re-lock is stable
    preferences: tuple[tuple[str, str], ...] = ()
    refresh: bool = False  # ask the index even when uv's cache would answer

    @property
    def only_local(self) -> bool:
        """No index is asked: ``no_index`` with local ``find_links`` only."""
        return self.no_index and all("://" not in link for link in self.find_links)

    @property
    def manylinux_minor(self) -> int:
        minor = int(self.glibc.split(".")[1]) if "." in self.glibc else 17
        return 28 if minor >= 28 else 17


def python_provided(records: Any) -> dict[str, str]:
    """PyPI name -> version of the conda records that are python packages."""
    out: dict[str, str] = {}
    for rec in records:
        deps = {d.split()[0] for d in rec.depends}
        if rec.name == "python" or not deps & {"python", "python_abi"}:
            continue
        try:
            Version(rec.version)
        except InvalidVersion:
            continue
        out[str(canonicalize_name(CONDA_TO_PYPI.get(rec.name, rec.name)))] = rec.version
    return dict(sorted(out.items()))


def uv_bin() -> str:
    """The uv executable shipped with the ``uv`` Python package."""
    import uv

    return str(uv.find_uv_bin())


def _argv(req: PypiRequest, *, offline: bool) -> list[str]:
    # --python: this interpreter runs sdist metadata builds; without it uv searches
    # the machine for one matching --python-version (seconds, and machine-dependent)
    argv = [uv_bin(), "pip", "compile", "requirements.in", "-c", "constraints.txt",
            "--config-file", "uv.toml", "--python", sys.executable,
            "--python-version", req.python_version,
            "--python-platform", f"x86_64-manylinux_2_{req.manylinux_minor}",
            "--generate-hashes", "--no-python-downloads", "--format", "pylock.toml",
            "-o", "pylock.toml", "--quiet"]
    for name in req.provided:
        argv += ["--no-emit-package", name]
    # index URLs and find-links (which may carry credentials) go in uv.toml, never on a
    # command line another user could read in /proc/PID/cmdline (see _write_inputs)
    if offline:
        argv.append("--offline")
    if req.exclude_newer is not None:
        argv += ["--exclude-newer", req.exclude_newer.strftime("%Y-%m-%dT%H:%M:%SZ")]
    return argv


def _write_inputs(req: PypiRequest, work: Path) -> None:
    (work / "requirements.in").write_text("\n".join(req.requirements) + "\n")
    (work / "constraints.txt").write_text(
        "".join(f"{n}=={v}\n" for n, v in req.provided.items()))
    meta = "".join(f'[[dependency-metadata]]\nname = "{n}"\nversion = "{v}"\n'
                   "requires-dist = []\n\n" for n, v in req.provided.items())
    fd = os.open(work / "uv.toml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(_pip_settings(req) + meta)
    _write_preferences(req, work)


def _pip_settings(req: PypiRequest) -> str:
    """uv.toml's ``[pip]`` table: where uv looks (a file only this user can read)."""
    lines = ["[pip]"]
    if req.index_url:
        lines.append(f"index-url = {_toml_str(req.index_url)}")
    if req.extra_index_urls:
        lines.append("extra-index-url = [" + ", ".join(map(_toml_str, req.extra_index_urls))
                     + "]")
    if req.find_links:
        lines.append("find-links = [" + ", ".join(map(_toml_str, req.find_links)) + "]")
    if req.no_index:
        lines.append("no-index = true")
    return "\n".join(lines) + "\n\n"


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(value, ensure_ascii=False)


def _write_preferences(req: PypiRequest, work: Path) -> None:
    """The previous pins as the existing output file: uv keeps them where they still fit."""
    rows = []
    for name, version in req.preferences:
        try:
            rows.append((str(canonicalize_name(name)), str(Version(version))))
        except InvalidVersion:
            continue  # an untrusted lockfile value: not a preference
    out = work / "pylock.toml"
    if not rows:
        out.unlink(missing_ok=True)
        return
    body = "".join(f'[[packages]]\nname = "{n}"\nversion = "{v}"\n\n' for n, v in rows)
    out.write_text('lock-version = "1.0"\ncreated-by = "envbuild"\n\n'
                                      + body)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in _UV_KEEP}


def solve_pypi(req: PypiRequest) -> tuple[list[PipRecord], list[str]]:
    """Pinned records for ``req.requirements`` and warnings (sdist-only packages)."""
    if not req.requirements:
        return [], []
    from builder.lock import pypi_cache

    with tempfile.TemporaryDirectory(prefix="envbuild-pypi-") as tmp:
        work = Path(tmp)
        _write_inputs(req, work)
        data = None
        if not req.refresh and pypi_cache.may_try_offline(req):
            data = _compile_offline(req, work)
            if data is not None and not pypi_cache.offline_answer_ok(req, _names(data)):
                data = None
            _write_preferences(req, work)  # an unused offline answer must not steer uv
        if data is None:
            data = _compile_online(req, work)
            if not req.only_local:
                pypi_cache.write_stamps(req, _names(data))
    return _records(req, data.get("packages", []))


def _names(data: dict[str, Any]) -> list[str]:
    return sorted(str(canonicalize_name(p["name"])) for p in data.get("packages", []))


def _compile_offline(req: PypiRequest, work: Path) -> dict[str, Any] | None:
    """uv's pylock.toml as data, from uv's cache alone (``None``: the cache cannot answer)."""
    try:
        cmd.run(_argv(req, offline=True), cwd=work, env=_env(), timeout=600)
    except CommandError:
        return None
    return _read_pylock(work)


def _compile_online(req: PypiRequest, work: Path) -> dict[str, Any]:
    try:
        cmd.run(_argv(req, offline=False), cwd=work, env=_env(), timeout=600)
    except CommandError as exc:
        raise _explain(req, exc) from None
    return _read_pylock(work)


def _read_pylock(work: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((work / "pylock.toml").read_text(encoding="utf-8"))
    return data


def _explain(req: PypiRequest, exc: CommandError) -> EnvbuildError:
    text = redact(exc.stderr_tail)
    lowered = text.lower()
    if any(s in lowered for s in ("failed to fetch", "dns error", "connect", "timed out",
                                  "network")) and "no solution" not in lowered:
        index = redact(req.index_url or "https://pypi.org/simple")
        return IndexUnreachable(
            f"cannot reach the PyPI index {index}:\n{text}",
            hint="set pip_options.index_url to a reachable mirror, or pip_options.find_links "
                 "to a wheelhouse with no_index: true")
    blame = [f"  {r}  <- {req.origins.get(r, 'added by envbuild')}"
             for r in req.requirements if canonicalize_name(r.split()[0]) in lowered
             or r.split(";")[0].strip().lower() in lowered]
    provided = ", ".join(f"{n}=={v}" for n, v in req.provided.items())
    return ConflictError(
        f"the pip requirements cannot be resolved for python {req.python_version} on "
        f"manylinux_2_{req.manylinux_minor}:\n{text}"
        + ("\nrequested by:\n" + "\n".join(blame) if blame else ""),
        constraint="pip",
        alternatives=[f"loosen the pip requirement named above; conda already pins: {provided}"]
        if provided else ["loosen the pip requirement named above"])


def target_tags(python_version: str, manylinux_minor: int) -> list[Tag]:
    """The target's wheel tags, most preferred first."""
    major, minor = (int(p) for p in python_version.split(".")[:2])
    plats: list[str] = []
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    for m in range(manylinux_minor, 4, -1):
        plats.append(f"manylinux_2_{m}_x86_64")
        if m in legacy:
            plats.append(f"{legacy[m]}_x86_64")
    interp = f"cp{major}{minor}"
    return [*cpython_tags((major, minor), abis=[interp], platforms=plats),
            *compatible_tags((major, minor), interp, plats)]


def _marker_env(python_version: str) -> dict[str, str]:
    return {"python_version": ".".join(python_version.split(".")[:2]),
            "python_full_version": python_version, "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version":
            python_version, "extra": ""}


def _records(req: PypiRequest, packages: list[dict[str, Any]]) -> tuple[list[PipRecord], list[str]]:
    ranks = {t: i for i, t in enumerate(target_tags(req.python_version, req.manylinux_minor))}
    env = _marker_env(req.python_version)
    records: list[PipRecord] = []
    warnings: list[str] = []
    for pkg in packages:
        name = str(canonicalize_name(pkg["name"]))
        if name in req.provided:
            continue
        if "marker" in pkg and not Marker(pkg["marker"]).evaluate(env):
            continue
        best = _best_wheel(pkg.get("wheels", []), ranks)
        if best is not None:
            records.append(PipRecord(name=name, version=str(pkg["version"]),
                                     url=redact(best["url"]), sha256=best["hashes"]["sha256"]))
            continue
        sdist = pkg.get("sdist")
        if not sdist or "sha256" not in sdist.get("hashes", {}):
            raise ConflictError(f"{name} {pkg.get('version')}: no wheel for the target and no "
                                "hashed sdist on the index", constraint="pip")
        warnings.append(sdist_warning(req, name, str(pkg["version"])))
        records.append(PipRecord(name=name, version=str(pkg["version"]), kind="sdist",
                                 url=redact(sdist["url"]), sha256=sdist["hashes"]["sha256"]))
    return sorted(records, key=lambda r: r.name), warnings


def sdist_warning(req: PypiRequest, name: str, version: str) -> str:
    """The warning for a package locked as its sdist."""
    cp = "cp" + "".join(req.python_version.split(".")[:2])
    return (f"pip: {name} {version} has no wheel for {cp} manylinux_2_{req.manylinux_minor}; "
            "the sdist is locked and built at install")


def _best_wheel(wheels: list[dict[str, Any]], ranks: dict[Tag, int]) -> dict[str, Any] | None:
    """The hashed wheel whose best tag ranks highest for the target (None when none fits).

    The chosen entry is returned as uv wrote it: its URL stays percent-encoded.
    """
    best: tuple[int, str] | None = None
    chosen = None
    for wheel in wheels:
        url = wheel.get("url", "")
        if "sha256" not in wheel.get("hashes", {}):
            continue
        filename = wheel.get("name") or _url_file_name(url)
        try:
            tags = parse_wheel_filename(filename)[3]
        except ValueError:
            continue
        rank = min((ranks[t] for t in tags if t in ranks), default=None)
        if rank is not None and (best is None or (rank, filename) < best):
            best, chosen = (rank, filename), wheel
    return chosen


def _url_file_name(url: str) -> str:
    """The file name a URL ends in, percent-decoded (uv writes ``+`` as ``%2B``)."""
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
