"""The lockfile: conda-lock's format (:mod:`builder.lock.lockformat`), with envbuild's data.

On disk it is what conda-lock itself writes (``version: 1``, dumped with PyYAML,
packages alpha-sorted, virtual packages filtered), under an envbuild header comment,
so ``conda-lock install``, ``conda-lock render`` and ``micromamba create -f`` read it;
conda-lock itself is not imported.  Bytes are deterministic: no timestamps, sorted
records, sorted metadata.

envbuild's own data lives in ``metadata.custom_metadata`` under ``envbuild.*``
keys (values are strings; lists and mappings are canonical JSON).  Read it with
:func:`envbuild_metadata`; read the whole file with :func:`read_lockfile`.
``metadata.content_hash`` holds the envbuild input hash per platform, and
``metadata.sources`` the spec file relative to the lockfile's directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from builder.errors import SpecError, UsageError
from builder.lock.buildtools import LockedPiece
from builder.lock.lockformat import (
    Channel,
    FormatError,
    HashModel,
    LockedDependency,
    Lockfile,
    LockMeta,
    dump_yaml,
    load_yaml,
    normalized,
    parse,
    to_data,
)
from builder.sources.pinned import PinnedSource
from builder.util.hashing import payload_digest

if TYPE_CHECKING:
    from builder.lock.conda_layer import CondaRecord
    from builder.lock.pypi_layer import PipRecord

LOCK_SCHEMA = 1
PREFIX = "envbuild."
# EnvbuildMeta fields stored as canonical JSON; all others are plain strings
JSON_KEYS = frozenset({"lock_schema", "inputs", "requested", "virtual_packages", "sources",
                       "warnings", "toolchain"})


class EnvbuildMeta(BaseModel):
    """envbuild's metadata inside a lockfile (what install, build and --check read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lock_schema: int
    input_hash: str
    spec_name: str
    cuda: str
    platform: str = "linux-64"
    solver: str
    channels: str  # "snapshot" | "live" | "mirror"
    provenance: str
    nvcc: str | None = None
    newest_record: str | None = None  # date of the newest conda record (provenance)
    inputs: dict[str, str]  # component -> digest (what --check compares)
    requested: dict[str, list[str]]  # {"conda": [...], "pip": [...]} (for readable diffs)
    virtual_packages: dict[str, str]
    sources: tuple[PinnedSource, ...] = ()
    warnings: tuple[str, ...] = ()
    packages_digest: str
    pypi_key: str | None = None  # the PyPI layer's input key (see builder.lock.pypi_cache)
    # the op build toolchain, piece by piece, as locked (provider, reason, header dir)
    toolchain: tuple[LockedPiece, ...] = ()


def _split_dep(dep: str) -> tuple[str, str]:
    name, _, rest = dep.strip().partition(" ")
    return name, rest.strip() or "*"


def _conda_dependencies(depends: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for dep in depends:
        name, spec = _split_dep(dep)
        out[name] = f"{out[name]},{spec}" if name in out else spec
    return dict(sorted(out.items()))


def locked_dependencies(conda: Sequence[CondaRecord], pip: Sequence[PipRecord],
                        platform: str) -> list[LockedDependency]:
    """Lockfile records for the solved records."""
    deps = [LockedDependency(
        name=r.name, version=r.version, manager="conda", platform=platform,
        dependencies=_conda_dependencies(r.depends), url=r.url,
        hash=HashModel(md5=r.md5, sha256=r.sha256), build=r.build,
    ) for r in conda]
    deps += [LockedDependency(
        name=p.name, version=p.version, manager="pip", platform=platform, dependencies={},
        url=p.url, hash=HashModel(sha256=p.sha256),
    ) for p in pip]
    return deps


def packages_digest(packages: Iterable[Any]) -> str:
    """Digest of the records (manager, name, version, build, url, hashes, dependencies)."""
    rows = sorted([p.manager, p.name, p.version, p.build or "", p.url, p.hash.md5 or "",
                   p.hash.sha256 or "", sorted(p.dependencies.items())] for p in packages)
    return payload_digest({"schema": LOCK_SCHEMA, "packages": rows})


def meta_to_custom(meta: EnvbuildMeta) -> dict[str, str]:
    """``EnvbuildMeta`` as conda-lock's ``custom_metadata`` (str -> str, sorted keys)."""
    out: dict[str, str] = {}
    for key in sorted(EnvbuildMeta.model_fields):
        value = getattr(meta, key)
        if value is None:
            continue
        if key not in JSON_KEYS:
            out[PREFIX + key] = str(value)
        else:
            plain = ([s.model_dump(mode="json") for s in value] if key == "sources" else
                     [s.model_dump(mode="json", exclude_none=True) for s in value]
                     if key == "toolchain" else value)
            out[PREFIX + key] = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return out


def build_lockfile(packages: list[LockedDependency], meta: EnvbuildMeta,
                   channels: Sequence[str], spec_rel: str) -> Lockfile:
    """The model of the whole lockfile."""
    metadata = LockMeta(
        content_hash={meta.platform: meta.input_hash},
        channels=[Channel(url=c) for c in channels],
        platforms=[meta.platform], sources=[spec_rel], custom_metadata=meta_to_custom(meta))
    return normalized(Lockfile(package=packages, metadata=metadata))


def render_lockfile(lockfile: Lockfile, spec_rel: str, cuda: str) -> str:
    """The file's exact text (conda-lock's serialisation under an envbuild header)."""
    header = (
        "# Generated by envbuild in conda-lock's format.  DO NOT EDIT: regenerate with\n"
        f"#     envbuild lock {spec_rel} --cuda {cuda}\n"
        "# and check freshness with `envbuild lock ... --check`.  Install with any of:\n"
        "#     envbuild install THIS_FILE\n"
        "#     conda-lock install -n YOURENV THIS_FILE\n"
        "#     micromamba create -n YOURENV -f THIS_FILE\n")
    return header + dump_yaml(to_data(normalized(lockfile)))


def read_lockfile(path: Path) -> Lockfile:
    """Parse ``path`` as conda-lock would (a usage error when missing or malformed).

    A file the parser rejects is reported at ``path:line``: the YAML parser's own line, or
    the line of the first field that failed validation (see :func:`_unreadable`).
    """
    from builder.util.yamlloc import refuse_bombs

    try:
        text = Path(path).read_text(encoding="utf-8")
        if not text.strip():
            raise SpecError("the lockfile is empty", location=f"{path}:1",
                            hint="regenerate it with `envbuild lock SPEC --cuda X.Y`, or "
                                 "restore it from version control")
        refuse_bombs(Path(path), text)
        return parse(load_yaml(text))
    except SpecError:
        raise
    except FileNotFoundError:
        raise UsageError(f"lockfile not found: {path}",
                         hint="create it with `envbuild lock SPEC --cuda X.Y`") from None
    except Exception as exc:  # noqa: BLE001 - yaml, pydantic, decoding, the format's own
        raise _unreadable(Path(path), exc) from None


def _unreadable(path: Path, exc: Exception) -> SpecError:
    """The parser's failure as a ``path:line`` usage error (line 1 = the whole document)."""
    import yaml

    line, detail = 1, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = "malformed YAML: " + " ".join(str(p) for p in (exc.context, exc.problem) if p)
    elif isinstance(exc, UnicodeDecodeError):
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as full:
            line = raw[:full.start].count(b"\n") + 1
        detail = "not UTF-8 text"
    elif isinstance(exc, ValidationError):
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(path, loc)
        detail = (f"{'.'.join(str(p) for p in loc) or 'document'}: {first['msg']}"
                  + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""))
    elif not _is_mapping(path):
        detail = "the document must be a mapping with version:, metadata: and package:"
    elif isinstance(exc, FormatError):
        line = _line_of(path, ("version",)) if "version" in str(exc) else 1
        detail = str(exc)
    else:
        line = _line_of(path, ("version",)) if "version" in str(exc) else 1
    return SpecError(f"not a readable conda-lock lockfile ({detail})",
                     location=f"{path}:{line}", hint="regenerate it with `envbuild lock`")


def _is_mapping(path: Path) -> bool:
    import yaml

    try:
        return isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError, yaml.YAMLError):
        return True  # not this problem; the parser's own message stands


def record_location(path: Path, dep: Any, field: str | None = None) -> str:
    """``path:line`` of a parsed record ``dep`` (or of its ``field``) in the file ``path``.

    The model does not keep positions (and merges entries by key), so the record is
    found again in the file by manager, name and platform; the whole ``package`` list is
    named when it cannot be.
    """
    from builder.util.yamlloc import load_located

    try:
        located = load_located(path)
    except SpecError:
        return f"{path}:1"
    packages = located.data.get("package") if isinstance(located.data, dict) else None
    for i, item in enumerate(packages if isinstance(packages, list) else ()):
        if isinstance(item, dict) and (item.get("manager"), item.get("name"),
                                       item.get("platform")) == (dep.manager, dep.name,
                                                                 dep.platform):
            return located.where("package", i, *((field,) if field else ()))
    return located.where("package")


def field_location(path: Path, *loc: str | int) -> str:
    """``path:line`` of ``loc`` (or its deepest parent present) in the lockfile ``path``."""
    return f"{path}:{_line_of(path, tuple(loc))}"


def _line_of(path: Path, loc: tuple[str | int, ...]) -> int:
    """Line of ``loc`` (or its deepest known parent) in the YAML file ``path``."""
    from builder.util.yamlloc import load_located

    try:
        return load_located(path).line(loc)
    except SpecError as exc:  # a stricter parser (e.g. duplicate keys): use its line
        where = (exc.location or "").rsplit(":", 1)[-1]
        return int(where) if where.isdigit() else 1


def envbuild_metadata(lockfile: Lockfile, path: Path | None = None) -> EnvbuildMeta:
    """envbuild's metadata of a parsed lockfile (a usage error when it has none).

    With the file's ``path``, a field that fails its check is reported at ``path:line`` of
    its ``envbuild.*`` key.
    """
    custom = lockfile.metadata.custom_metadata or {}
    raw: dict[str, Any] = {}
    for key in EnvbuildMeta.model_fields:
        text = custom.get(PREFIX + key)
        if text is None:
            continue
        raw[key] = _loads(text) if key in JSON_KEYS else text
    try:
        return EnvbuildMeta.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = (f"lockfile has no valid envbuild metadata ({exc.error_count()} "
                   f"problem(s), first: {first['msg']})")
        hint = "was it written by envbuild? regenerate it with `envbuild lock`"
        if path is None:
            raise UsageError(message, hint=hint) from None
        key = str(first["loc"][0]) if first["loc"] else ""
        where = ("metadata", "custom_metadata", PREFIX + key) if key else ("metadata",)
        raise SpecError(message, location=field_location(path, *where), hint=hint) from None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # reported by the model validation as a wrong type
