"""The envspec: a team's declarative description of one environment.

Strict, frozen pydantic models (unknown keys are errors) loaded from YAML with
``path:line`` errors.  Only ``name``, ``python`` and ``torch`` are required.
Relative ``path:`` values are resolved against the spec file's directory by
:meth:`LoadedSpec.source_path`, never by mutating the model.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from builder.errors import SpecError
from builder.util import fields
from builder.util.yamlloc import Loc, Located, load_located

_VERSION_XY = re.compile(r"^\d+\.\d+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _quoted_version(v: Any) -> Any:
    """YAML reads ``3.10`` as the number 3.1: insist on quotes instead of guessing."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(f"write the version in quotes, e.g. \"{_as_written(v)}\" "
                         "(YAML reads an unquoted 3.10 as the number 3.1)")
    return v


def _as_written(v: float) -> str:
    """The number as the file spelled it: ruamel's float keeps its width (``3.10``, not 3.1)."""
    width, dot = getattr(v, "_width", None), getattr(v, "_prec", None)
    if isinstance(v, float) and isinstance(width, int) and isinstance(dot, int) and width > dot:
        return f"{v:.{width - dot - 1}f}"
    return str(v)


class CudaSpec(Strict):
    """Which CUDA versions the env may target; ``allowed`` defaults to ``[default]``.

    ``cpu`` is a target too (a CPU-only torch: ``torch_from: pypi``), so a CPU-only spec
    says so once and every command targets it without ``--cuda cpu``.
    """

    default: str
    allowed: tuple[str, ...] = ()

    _q_default = field_validator("default", mode="before")(_quoted_version)

    @field_validator("allowed", mode="before")
    @classmethod
    def _q_allowed(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            for item in v:
                _quoted_version(item)
        return v

    @field_validator("default")
    @classmethod
    def _xy(cls, v: str) -> str:
        if not _VERSION_XY.match(v) and v != "cpu":
            raise ValueError(f"CUDA version must look like '11.7' (or be 'cpu'), got {v!r}")
        return v

    @field_validator("allowed")
    @classmethod
    def _allowed_xy(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            if not _VERSION_XY.match(item) and item != "cpu":
                raise ValueError(f"CUDA version must look like '11.7' (or be 'cpu'), "
                                 f"got {item!r}")
        return v

    @model_validator(mode="after")
    def _default_allowed(self) -> CudaSpec:
        if self.allowed and self.default not in self.allowed:
            raise ValueError(
                f"default CUDA {self.default} is not in allowed {list(self.allowed)}"
            )
        return self

    @property
    def allowed_versions(self) -> tuple[str, ...]:
        """``allowed``, or just the default when none were listed."""
        return self.allowed or (self.default,)


class GitSource(Strict):
    """A git repository at a pinned commit (a full or abbreviated sha; tags are pinned at lock)."""

    kind: Literal["git"] = "git"
    git: fields.GitUrl
    rev: fields.GitRev
    subdir: fields.Subdir | None = None


class PathSource(Strict):
    """A local checkout, hashed at lock time; relative to the spec file."""

    kind: Literal["path"] = "path"
    path: str


def _source_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "kind" in value:
            return str(value["kind"])
        if "git" in value:
            return "git"
        if "path" in value:
            return "path"
        return None
    return getattr(value, "kind", None)


Source = Annotated[
    Annotated[GitSource, Tag("git")] | Annotated[PathSource, Tag("path")],
    Discriminator(_source_kind, custom_error_type="source_kind",
                  custom_error_message="a source needs either 'git:' (+ 'rev:') or 'path:'"),
]

def _sanity_kind(v: str | None) -> str | None:
    from builder.sanity.kinds import KINDS  # the one list of kinds

    if v is not None and v not in KINDS:
        raise ValueError(f"unknown sanity kind {v!r}; known: {', '.join(sorted(KINDS))}")
    return v


def _fixup_names(v: tuple[str, ...]) -> tuple[str, ...]:
    from builder.opbuild.fixups import REGISTRY  # the one list of fixups

    for name in v:
        if name not in REGISTRY:
            raise ValueError(f"unknown fixup {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return v


class OpSpec(Strict):
    """A CUDA extension to build from a source (``path`` inside it, default its root)."""

    name: str
    source: str
    path: str = "."
    sanity: str | None = None  # a kind of builder.sanity.kinds.KINDS
    fixups: tuple[str, ...] = ()  # names of builder.opbuild.fixups.REGISTRY
    # fixups not to apply even when the matrix or the source calls for them
    skip_fixups: tuple[str, ...] = ()

    _sanity = field_validator("sanity")(_sanity_kind)
    _fixups = field_validator("fixups", "skip_fixups")(_fixup_names)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or len(v) > fields.MAX_NAME:
            raise ValueError(f"op name must be letters, digits, '.', '_' or '-' "
                             f"(at most {fields.MAX_NAME}): {v!r}")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return fields.relative_subpath(v)


class PipOptions(Strict):
    """Where the PyPI layer looks (mirrors, offline wheelhouses); paths relative to the spec."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False


class EnvSpec(Strict):
    """The whole envspec (see DESIGN.md)."""

    name: str
    python: str
    torch: str
    torch_from: Literal["conda", "pypi"] = "conda"
    torchvision: bool = True  # false: a project that needs torch alone
    cuda: CudaSpec | None = None
    channels: tuple[str, ...] | None = None
    conda: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    pip_options: PipOptions = PipOptions()
    sources: dict[str, Source] = Field(default_factory=dict)
    ops: tuple[OpSpec, ...] = ()
    exclude_newer: _dt.date | None = None
    platform: Literal["linux-64"] = "linux-64"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or len(v) > fields.MAX_NAME:
            raise ValueError(f"name must be letters, digits, '.', '_' or '-' "
                             f"(at most {fields.MAX_NAME} characters): {v[:60]!r}"
                             + ("..." if len(v) > 60 else ""))
        return v

    _q_python = field_validator("python", mode="before")(_quoted_version)

    @field_validator("python")
    @classmethod
    def _python(cls, v: str) -> str:
        if not _VERSION_XY.match(v):
            raise ValueError(f"python must be a major.minor version like '3.8', got {v!r}")
        return v

    @field_validator("torch")
    @classmethod
    def _torch(cls, v: str) -> str:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        text = v.strip()
        if re.match(r"^\d", text):
            text = f"=={text}"
        try:
            SpecifierSet(text)
        except InvalidSpecifier:
            raise ValueError(
                f"torch must be a version or a range like '>=1.9,<2.5', got {v!r}"
            ) from None
        return v

    @model_validator(mode="after")
    def _references(self) -> EnvSpec:
        for i, op in enumerate(self.ops):
            if op.source not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none defined"
                raise _RefError(("ops", i, "source"),
                                f"op {op.name!r} names source {op.source!r}, "
                                f"which is not under 'sources' (known: {known})")
        return self

    @property
    def torch_specifier(self) -> Any:
        """The torch range as a ``packaging`` SpecifierSet."""
        from packaging.specifiers import SpecifierSet

        text = self.torch.strip()
        return SpecifierSet(f"=={text}" if re.match(r"^\d", text) else text)


class _RefError(ValueError):
    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc


class LoadedSpec:
    """An :class:`EnvSpec` together with its file and the line of every key."""

    def __init__(self, spec: EnvSpec, located: Located) -> None:
        self.spec = spec
        self.located = located

    @property
    def path(self) -> Path:
        return self.located.path

    def where(self, *loc: str | int) -> str:
        """``path:line`` of a key, for errors that arise after loading."""
        return self.located.where(*loc)

    def error(self, loc: Loc, message: str, hint: str | None = None) -> SpecError:
        """A :class:`SpecError` pointing at ``loc`` in this spec."""
        return SpecError(message, location=self.located.where(*loc), hint=hint)

    def source_path(self, name: str) -> Path:
        """Absolute path of a ``path:`` source (relative to the spec file)."""
        src = self.spec.sources[name]
        if not isinstance(src, PathSource):
            raise TypeError(f"source {name} is not a path source")
        p = Path(src.path).expanduser()
        return p if p.is_absolute() else (self.path.parent / p).resolve()


def load_spec(path: str | Path) -> LoadedSpec:
    """Load and validate an envspec; every problem is a ``path:line`` :class:`SpecError`."""
    located = load_located(Path(path))
    if not isinstance(located.data, dict):
        raise SpecError("an envspec must be a YAML mapping (name:, python:, torch:, ...)",
                        location=located.where())
    try:
        spec = EnvSpec.model_validate(located.data)
    except ValidationError as exc:
        raise _spec_error(exc, located) from None
    return LoadedSpec(spec, located)


def _spec_error(exc: ValidationError, located: Located) -> SpecError:
    """Every problem pydantic found, one ``path:line: message`` line each (first one leads)."""
    problems = sorted((_problem(err, located) for err in exc.errors(include_url=False)),
                      key=lambda p: int(p[0].rsplit(":", 1)[1]))
    (where, first), rest = problems[0], problems[1:]
    msg = first + "".join(f"\n{w}: {m}" for w, m in rest)
    return SpecError(msg, location=where)


_EXPECTED = {"tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping",
             "model_type": "a mapping", "model_attributes_type": "a mapping",
             "string_type": "a string", "bool_type": "true or false",
             "bool_parsing": "true or false", "date_type": "a date (YYYY-MM-DD)",
             "date_from_datetime_parsing": "a date (YYYY-MM-DD)"}


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"{value!r}"


def _problem(err: Any, located: Located) -> tuple[str, str]:
    """``(path:line, message)`` for one pydantic error."""
    loc = _clean_loc(tuple(err["loc"]), located)
    ctx_err = err.get("ctx", {}).get("error") if err.get("ctx") else None
    if isinstance(ctx_err, _RefError):
        return located.where(*ctx_err.loc), str(ctx_err)
    key = ".".join(str(p) for p in loc) or "(top level)"
    etype = err["type"]
    if etype == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], located)
        msg = f"unknown key {key!r}"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        if allowed:
            msg += f" (allowed here: {', '.join(allowed)})"
    elif etype == "missing":
        msg = f"missing required key {key!r}"
        loc = loc[:-1]
    elif etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        msg = f"{key}: got {err.get('input')!r}; allowed: {expected}"
    elif etype in _EXPECTED:
        msg = f"{key}: expected {_EXPECTED[etype]}, got {_kind_of(err.get('input'))}"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"{key}: {text}"
    return located.where(*loc), msg


def _clean_loc(loc: Loc, located: Located) -> Loc:
    """Drop pydantic's union tags (``'git'``, ``'path'``) that are not keys in the file."""
    out: list[str | int] = []
    for part in loc:
        candidate = (*out, part)
        if candidate in located.lines or not isinstance(part, str) or part not in {"git", "path"}:
            out.append(part)
    return tuple(out)


def _allowed_keys(parent: Loc, located: Located) -> list[str]:
    model: Any = EnvSpec
    for part in parent:
        if isinstance(part, int):
            continue
        if model is EnvSpec and part == "sources":
            return []
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            if model is EnvSpec:
                return []
            break
        ann = field.annotation
        model = _first_model(ann)
        if model is None:
            return []
    if len(parent) >= 2 and parent[0] == "sources":
        value = located.data.get("sources", {}).get(parent[1], {})
        model = GitSource if isinstance(value, dict) and "git" in value else PathSource
    fields = getattr(model, "model_fields", {})
    return [k for k in fields if k != "kind"]


def _first_model(ann: Any) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the envspec, for editors."""
    schema = EnvSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "envbuild envspec"
    return schema
