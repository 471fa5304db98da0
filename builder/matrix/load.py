"""Loading the matrix data files, with a parsed-JSON cache.

``matrix_version`` is ``m<schema>-`` plus the first 16 hex digits of
``sha256(for each data file sorted by name: name NUL bytes NUL)``: any edit of a data
file changes it, and it goes into every Resolution (so into the lock's input hash).

Parsing YAML and building the models' validators cost tens of milliseconds on the hot
path of ``envbuild resolve``; validated data is therefore kept as JSON keyed by the
version (:mod:`builder.matrix.snapshot`: shipped beside the data files, and cached under
``$ENVBUILD_HOME/matrix/``; a stale, corrupt or unwritable one only costs the parse).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.errors import EnvbuildError

SCHEMA = 1
DATA_DIR = Path(__file__).resolve().parent / "data"
# data file stem -> Matrix field; one place to add a file
FILES = ("torch", "cuda", "toolchain", "buildtools", "builds", "gpus", "sources")


def _read_all(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / f"{name}.yaml").read_bytes() for name in FILES}


def version_of(blobs: dict[str, bytes]) -> str:
    """The matrix version string for these data file contents."""
    h = hashlib.sha256()
    for name in sorted(blobs):
        h.update(name.encode() + b"\0" + blobs[name] + b"\0")
    return f"m{SCHEMA}-{h.hexdigest()[:16]}"


def _yaml_loader() -> Callable[[bytes], Any]:
    """libyaml's safe loader when present (about 10x faster on a cold resolve), else ruamel.

    The data files need no line numbers, and tests/resolve/test_matrix.py checks that both
    parsers read every shipped file identically (no YAML 1.1 vs 1.2 surprises).
    """
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):
        from ruamel.yaml import YAML

        return YAML(typ="safe").load
    return lambda blob: yaml.load(blob, Loader=loader)  # noqa: S506 - the C *safe* loader


def _parse(blobs: dict[str, bytes]) -> dict[str, Any]:
    load = _yaml_loader()
    out: dict[str, Any] = {}
    for name, blob in blobs.items():
        try:
            out[name] = load(blob)
        except Exception as exc:  # noqa: BLE001 - a broken data file is a packaging bug
            raise EnvbuildError(f"matrix data file {name}.yaml is malformed: {exc}") from None
    return out


def _cache_path(version: str) -> Path | None:
    from builder import paths

    try:
        return paths.home() / "matrix" / f"validated-{version}.json"
    except (OSError, RuntimeError):  # no home directory at all
        return None


def _store(version: str, matrix: Any) -> None:
    path = _cache_path(version)
    if path is None:
        return
    from builder.matrix.snapshot import document
    from builder.util.fs import atomic_write_bytes

    # a read-only home only loses the cache
    with contextlib.suppress(OSError):
        blob = json.dumps(document(version, matrix), separators=(",", ":"))
        atomic_write_bytes(path, blob.encode())


def validate_from_yaml(data_dir: Path) -> tuple[str, Any]:
    """``(version, Matrix)`` parsed from the YAML files and validated by the models."""
    from pydantic import ValidationError

    from builder.matrix.models import Matrix

    blobs = _read_all(data_dir)
    version = version_of(blobs)
    try:
        return version, Matrix.model_validate({"version": version, **_parse(blobs)})
    except ValidationError as exc:
        raise EnvbuildError(f"matrix data does not match its schema: {exc}") from None


@functools.lru_cache(maxsize=4)
def load_matrix(data_dir: Path | None = None) -> Any:
    """The :class:`~builder.matrix.models.Matrix` (loaded once per process).

    Validated data of the same version (:mod:`builder.matrix.snapshot`: the one shipped
    beside the data files, else the one in ``$ENVBUILD_HOME``) is rebuilt without running
    validation; otherwise the YAML files are parsed and validated, and the result cached.
    """
    from builder.matrix import snapshot

    data_dir = data_dir or DATA_DIR
    version = version_of(_read_all(data_dir))
    for path in (snapshot.PACKAGED, _cache_path(version)):
        data = snapshot.read(path, version)
        matrix = snapshot.build(version, data) if data is not None else None
        if matrix is not None:
            return matrix
    version, matrix = validate_from_yaml(data_dir)
    _store(version, matrix)
    return matrix
