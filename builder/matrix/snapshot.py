"""The validated matrix as plain data, and the models rebuilt from it without validation.

Validating the matrix means building pydantic's schema for every model (tens of
milliseconds per process) plus parsing seven YAML files; the answer is a pure function
of the data files' bytes, i.e. of :func:`~builder.matrix.load.version_of`.  So the
validated data is kept as JSON keyed by that version, in two places:

- ``data/validated.json`` beside the data files, written by ``make matrix-snapshot``
  (``python -m builder.matrix.snapshot``); tests/resolve/test_matrix.py fails when it no longer
  matches the data files, and until it is rewritten the loader simply does not use it;
- ``$ENVBUILD_HOME/matrix/validated-<version>.json``, written after a validating load.

A document is used only when its ``version`` equals the data's version and its
``digest`` equals the sha256 of its ``data``; anything else (missing, stale, corrupt,
not the shape the models expect) is a miss, and the loader validates from YAML.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

SCHEMA = 1
PACKAGED = Path(__file__).resolve().parent / "data" / "validated.json"


def _digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def document(version: str, matrix: Any) -> dict[str, Any]:
    """The snapshot document of a validated :class:`~builder.matrix.models.Matrix`."""
    data = matrix.model_dump(mode="json", exclude={"version"})
    return {"schema": SCHEMA, "version": version, "digest": _digest(data), "data": data}


def data_of(doc: Any, version: str) -> dict[str, Any] | None:
    """The plain data of a snapshot document, or None when it is not for ``version``."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return None
    data = doc.get("data")
    if doc.get("version") != version or not isinstance(data, dict):
        return None
    return data if doc.get("digest") == _digest(data) else None


def read(path: Path | None, version: str) -> dict[str, Any] | None:
    """:func:`data_of` a snapshot file; None when absent, unreadable or not for ``version``."""
    if path is None:
        return None
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data_of(doc, version)


def build(version: str, data: dict[str, Any]) -> Any:
    """The Matrix from snapshot data, no validation run; None when the shape is off."""
    from builder.matrix.models import Matrix

    try:
        return construct(Matrix, {"version": version, **data})
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@functools.cache
def _fields(cls: Any) -> tuple[tuple[str, Any, bool], ...]:
    return tuple((name, f.annotation, f.is_required())
                 for name, f in cls.model_fields.items())


def construct(cls: Any, data: dict[str, Any]) -> Any:
    """``cls`` (a pydantic model) from data shaped like its ``model_dump(mode="json")``."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected a mapping")
    values: dict[str, Any] = {}
    for name, ann, required in _fields(cls):
        if name in data:
            values[name] = _value(ann, data[name])
        elif required:
            raise KeyError(name)
    if set(data) - set(values):
        raise KeyError(f"{cls.__name__}: unknown field(s)")
    return cls.model_construct(**values)


def _value(ann: Any, value: Any) -> Any:
    from pydantic import BaseModel

    if value is None:
        return None
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return construct(ann, value)
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        if len(args) != len(value):
            raise ValueError("tuple length")
        return tuple(_value(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        return {k: _value(args[1], v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError("only optional unions are rebuilt")
        return _value(inner[0], value)
    return value  # str, int, Literal[...]: JSON keeps them as they are


def write_packaged() -> Path:
    """Validate the shipped data files and write :data:`PACKAGED` (``make matrix-snapshot``)."""
    from builder.matrix.load import DATA_DIR, validate_from_yaml
    from builder.util.fs import atomic_write_bytes

    version, matrix = validate_from_yaml(DATA_DIR)
    blob = json.dumps(document(version, matrix), sort_keys=True, indent=1) + "\n"
    atomic_write_bytes(PACKAGED, blob.encode())
    return PACKAGED


if __name__ == "__main__":
    print(write_packaged())
