"""``envbuild export``: a lockfile in the formats other tools install from.

Every format is written from the lockfile's own records (exact URLs and hashes), never
re-solved, and each is the format of a tool people already use:

* ``pixi``: a ``pixi.lock`` written with py-rattler's lock-file API (the library pixi
  itself uses).  py-rattler 0.28 takes no hash for a PyPI entry, so each wheel's
  ``sha256:`` is added to its entry afterwards (the lock format has the field; the
  result is read back by py-rattler before it is returned).
* ``requirements``: the pip layer as ``name @ URL --hash=sha256:...`` lines, for
  ``pip install --require-hashes --no-deps -r`` (or ``uv pip install``).  Conda
  packages (python itself, CUDA, a conda torch) cannot be expressed in it; the header
  says so and how many there are.
* ``explicit``: conda's ``@EXPLICIT`` file (``conda create --file``,
  ``micromamba create -f``); the pip layer follows as conda-lock's ``# pip`` comment
  lines.
* ``environment-yml``: the environment.yml beside each lockfile, with the pip index
  options the lock used (so ``conda env create -f`` finds torch's wheel index).

Formats are a registry of writers (name -> function); the CLI only picks one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import UsageError


@dataclass(frozen=True)
class ExportResult:
    """What was exported: the text (or, for binary-free YAML writers, the file) and counts."""

    format: str
    text: str
    conda_packages: int
    pip_packages: int


@dataclass(frozen=True)
class _Loaded:
    path: Path
    model: Any  # conda-lock's Lockfile
    plan: Any  # builder.install.plan.InstallPlan for the lockfile's platform
    meta: Any  # builder.lock.lockfile.EnvbuildMeta; None for another tool's conda-lock file
    platform: str
    name: str


def _load(path: Path) -> _Loaded:
    from builder.install.plan import load_plan, read_lockfile_model
    from builder.lock.lockfile import envbuild_metadata
    from builder.spec.places import cuda_tag

    model = read_lockfile_model(path)
    try:
        meta = envbuild_metadata(model, path)
    except UsageError:
        meta = None  # a plain conda-lock file: every format but environment-yml works
    if meta is not None:
        platform, name = meta.platform, f"{meta.spec_name}-{cuda_tag(meta.cuda)}"
    else:
        platforms = list(model.metadata.platforms)
        platform = "linux-64" if "linux-64" in platforms else (platforms or ["linux-64"])[0]
        name = path.name.split(".")[0]
    return _Loaded(path, model, load_plan(path, platform), meta, platform, name)


def _header(src: _Loaded, what: str) -> list[str]:
    digest = src.meta.input_hash if src.meta is not None else "unknown"
    return [f"# {src.name}: {what}, exported by envbuild from {src.path.name}.",
            f"# Input hash {digest}; the lockfile is the source of truth."]


def to_requirements(src: _Loaded) -> str:
    """The pip layer, hash-pinned by exact URL."""
    lines = _header(src, "the pip layer only")
    lines.append(f"# The {len(src.plan.conda)} conda packages (python included) are not in "
                 "this file: install them from the lockfile first")
    lines.append("# Use: pip install --require-hashes --no-deps -r THIS_FILE")
    lines += [f"{r.name} @ {r.url} \\\n    --hash=sha256:{r.sha256}" for r in
              sorted(src.plan.pip, key=lambda r: r.name)]
    return "\n".join(lines) + "\n"


def to_explicit(src: _Loaded) -> str:
    """conda's ``@EXPLICIT`` format: one ``URL#MD5`` line per package, in lockfile order.

    A record the channel published without an md5 gets conda's ``#sha256:HEX`` form.  The
    pip layer follows as ``# pip NAME @ URL#sha256=HEX`` comments (conda-lock's
    convention, read by ``conda-lock install``; conda itself skips comments).
    """
    lines = [*_header(src, "conda explicit spec"),
             f"# platform: {src.platform}",
             "# Use: conda create --name ENV --file THIS_FILE   (or micromamba create -f)",
             "@EXPLICIT"]
    lines += [f"{r.url}#{r.md5}" if r.md5 else f"{r.url}#sha256:{r.sha256}"
              for r in src.plan.conda]
    lines += [f"# pip {p.name} @ {p.url}#sha256={p.sha256}" for p in src.plan.pip]
    return "\n".join(lines) + "\n"


def to_environment_yml(src: _Loaded) -> str:
    """environment.yml with the pip index options of the spec the lockfile was made from."""
    from builder.lock.render import pip_option_lines, render_environment

    if src.meta is None:
        raise UsageError(f"{src.path}: environment-yml needs a lockfile written by envbuild",
                         hint="`conda-lock render --kind env` renders other conda-lock files")
    options: list[str] = []
    spec = _spec_of(src)
    if spec is not None:
        from builder.resolve.resolver import ResolveRequest, resolve

        res = resolve(spec, ResolveRequest(cuda=src.meta.cuda))
        options = pip_option_lines(spec, res, src.path.parent)
    return render_environment(src.model, src.meta, src.path.name, options)


def _spec_of(src: _Loaded) -> Any | None:
    """The envspec recorded in the lockfile's ``metadata.sources`` (None when gone)."""
    from builder.spec.envspec import load_spec

    for rel in src.model.metadata.sources or ():
        path = (src.path.parent / rel).resolve()
        if path.is_file():
            return load_spec(path)
    return None


def to_pixi(src: _Loaded) -> str:
    """A pixi.lock (rattler lock-file v6), written by py-rattler."""
    import tempfile

    import rattler

    platform = rattler.LockPlatform(src.platform)
    lock = rattler.LockFile([platform])
    channels = [c.url for c in src.model.metadata.channels]
    lock.set_channels("default", [rattler.LockChannel(c) for c in channels])
    for rec in src.plan.conda:
        lock.add_conda_package("default", platform, _repodata_record(rattler, rec))
    for pip in src.plan.pip:
        lock.add_pypi_package("default", platform, pip.name, pip.version, pip.url)
    with tempfile.TemporaryDirectory(prefix="envbuild-export-") as tmp:
        out = Path(tmp) / "pixi.lock"
        lock.to_path(out)
        text = _with_pypi_hashes(out.read_text(encoding="utf-8"),
                                 {p.url: p.sha256 for p in src.plan.pip})
        out.write_text(text, encoding="utf-8")
        back = rattler.LockFile.from_path(out).default_environment()
        got = back.pypi_packages().get(src.platform, []) if back else []
        want = {p.url: p.sha256 for p in src.plan.pip}
        seen = {p.location: ((p.hashes.sha256 if p.hashes else None) or b"").hex() for p in got}
        if seen != want:
            raise UsageError("the pixi.lock written does not read back with every wheel hash",
                             hint="report this with the lockfile attached")
        return text


def _with_pypi_hashes(text: str, sha256: dict[str, str]) -> str:
    """Add ``sha256:`` after the ``version:`` of every top-level ``- pypi: URL`` entry."""
    out: list[str] = []
    pending: str | None = None
    for line in text.splitlines():
        out.append(line)
        if line.startswith("- pypi: "):
            pending = sha256.get(line.removeprefix("- pypi: ").strip())
        elif pending and line.startswith("  version: "):
            out.append(f"  sha256: {pending}")
            pending = None
        elif line.startswith("- "):
            pending = None
    return "\n".join(out) + "\n"


def _repodata_record(rattler: Any, rec: Any) -> Any:
    pkg = rattler.PackageRecord(
        name=rec.name, version=rec.version, build=rattler.BuildString(rec.build),
        build_number=_build_number(rec.build), subdir=rec.subdir, depends=list(rec.depends),
        sha256=bytes.fromhex(rec.sha256) if rec.sha256 else None,
        md5=bytes.fromhex(rec.md5) if rec.md5 else None)
    return rattler.RepoDataRecord(pkg, rec.file_name, rec.url, rec.channel + "/")


def _build_number(build: str) -> int:
    """Conda build strings end in ``_<build number>`` by convention (0 when they do not)."""
    tail = build.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


FORMATS: dict[str, Callable[[_Loaded], str]] = {
    "pixi": to_pixi,
    "requirements": to_requirements,
    "explicit": to_explicit,
    "environment-yml": to_environment_yml,
}


def export(lockfile: Path, fmt: str) -> ExportResult:
    """Export ``lockfile`` in ``fmt`` (one of :data:`FORMATS`)."""
    writer = FORMATS.get(fmt)
    if writer is None:
        raise UsageError(f"unknown export format {fmt!r}",
                         hint=f"one of: {', '.join(FORMATS)}")
    src = _load(lockfile)
    return ExportResult(format=fmt, text=writer(src), conda_packages=len(src.plan.conda),
                        pip_packages=len(src.plan.pip))
