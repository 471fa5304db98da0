"""conda-lock's ``version: 1`` file format, read and written without importing conda-lock.

The models accept what conda-lock's own v1 models accept (the same fields, required
and optional, extra keys refused) and the text written is the bytes conda-lock writes:
``{"version": 1, "metadata": ..., "package": [...]}`` dumped with PyYAML
(``sort_keys=False``), fields in conda-lock's order, unset and ``None`` fields left out,
packages sorted by (manager, name, platform) and their dependencies by name, virtual
packages (``__*`` conda records) left out.  ``tests/lock/test_lock.py`` keeps conda-lock's
parser and ``conda-lock render`` as the check that this stays true.

libyaml's C loader and dumper are used when PyYAML has them.  The C dumper is used only
for documents whose strings are all printable ASCII (every envbuild lockfile: metadata
lists and mappings are ASCII JSON), where its output is byte for byte the pure-Python
emitter's; anything else goes through the pure-Python emitter.  YAML anchors/aliases are
refused when reading: conda-lock never writes them, and an alias of a container is how a
small file expands into a huge document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HashModel(_Strict):
    """A record's hashes (conda records need md5; sha256 is what envbuild verifies)."""

    md5: str | None = None
    sha256: str | None = None


class DependencySource(_Strict):
    """conda-lock's optional ``source`` of a record."""

    type: Literal["url"]
    url: str


class LockedDependency(_Strict):
    """One package record of one platform."""

    name: str
    version: str
    manager: Literal["conda", "pip"]
    platform: str
    dependencies: dict[str, str] = Field(default_factory=dict)
    url: str
    hash: HashModel
    source: DependencySource | None = None
    build: str | None = None
    category: str = "main"
    optional: bool = False

    @field_validator("hash")
    @classmethod
    def _conda_md5(cls, v: HashModel, info: ValidationInfo) -> HashModel:
        if info.data.get("manager") == "conda" and v.md5 is None:
            raise ValueError("conda package hashes must use MD5")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            raise ValueError("URL cannot be empty")
        return v

    def key(self) -> tuple[str, str, str]:
        """(manager, name, platform): conda-lock's sort and identity key."""
        return (self.manager, self.name, self.platform)


class Channel(BaseModel):
    """A channel entry (a bare URL string is accepted too, as conda-lock does)."""

    model_config = ConfigDict(frozen=True)

    url: str
    used_env_vars: tuple[str, ...] = ()


class LockMeta(_Strict):
    """The ``metadata`` mapping."""

    content_hash: dict[str, str]
    channels: list[Channel]
    platforms: list[str]
    sources: list[str]
    time_metadata: dict[str, Any] | None = None
    git_metadata: dict[str, Any] | None = None
    inputs_metadata: dict[str, dict[str, Any]] | None = None
    custom_metadata: dict[str, str] | None = None

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"url": e} if isinstance(e, str) else e for e in v]
        return v


class Lockfile(_Strict):
    """A whole lockfile: records and metadata."""

    package: list[LockedDependency]
    metadata: LockMeta


class FormatError(ValueError):
    """The document is YAML but not a conda-lock v1 lockfile (the message says why)."""


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """YAML text as plain data (libyaml when present); shared containers are refused."""
    import yaml

    data = yaml.load(text, Loader=_loader())  # noqa: S506 - a safe loader
    _refuse_aliases(data)
    return data


def _refuse_aliases(data: Any) -> None:
    seen: set[int] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if id(node) in seen:
            raise FormatError("YAML anchors/aliases are not allowed in a lockfile")
        seen.add(id(node))
        stack.extend(node.values() if isinstance(node, dict) else node)


def parse(data: Any) -> Lockfile:
    """The model of a loaded document (``FormatError`` or pydantic's ``ValidationError``)."""
    if not isinstance(data, dict):
        raise FormatError("the document is not a mapping with a version")
    body = dict(data)
    version = body.pop("version", None)
    if version is None:
        raise FormatError("the lockfile is missing a version")
    if version != SCHEMA_VERSION:
        raise FormatError(f"unknown lockfile version {version!r} (this reads version 1)")
    model = Lockfile.model_validate(body)
    return model.model_copy(update={"package": _merged(model.package)})


def _merged(packages: list[LockedDependency]) -> list[LockedDependency]:
    """One record per key: entries that differ only in category are one package."""
    out: dict[tuple[str, str, str], LockedDependency] = {}
    for dep in packages:
        first = out.setdefault(dep.key(), dep)
        if first is not dep and (first.model_copy(update={"category": "", "optional": False})
                                 != dep.model_copy(update={"category": "", "optional": False})):
            raise FormatError(f"two different records for {dep.manager} package {dep.name!r} "
                              f"on {dep.platform}")
    return list(out.values())


def normalized(lockfile: Lockfile) -> Lockfile:
    """Sorted records and dependencies, virtual packages left out (what is written)."""
    packages = sorted((p.model_copy(update={"dependencies": dict(sorted(p.dependencies.items()))})
                       for p in lockfile.package
                       if not (p.manager == "conda" and p.name.startswith("__"))),
                      key=LockedDependency.key)
    return lockfile.model_copy(update={"package": packages})


def to_data(lockfile: Lockfile) -> dict[str, Any]:
    """The document as conda-lock lays it out (field order, unset and ``None`` left out)."""
    meta = lockfile.metadata.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    meta["channels"] = [{"url": c.url, "used_env_vars": list(c.used_env_vars)}
                        for c in lockfile.metadata.channels]
    # conda-lock always sets dependencies, category and optional; a missing build,
    # source or hash is absent from its output
    packages = [p.model_dump(mode="json", exclude_none=True) for p in lockfile.package]
    return {"version": SCHEMA_VERSION, "metadata": meta, "package": packages}


def dump_yaml(data: Any) -> str:
    """``yaml.dump(data, sort_keys=False)`` text, through libyaml when it is byte-identical."""
    import yaml

    dumper: Any = yaml.Dumper
    if hasattr(yaml, "CSafeDumper") and all(_plain(s) for s in _strings(data)):
        dumper = yaml.CSafeDumper
    return str(yaml.dump(data, sort_keys=False, Dumper=dumper))


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _strings(data: Any) -> Iterable[str]:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
