"""What a prefix was built from: ``$PREFIX/.envbuild/state.json``.

Written last into a new generation (it is the generation's completeness
marker), read on every run to decide "up to date".  Cheap to read: json and a
pydantic model, no installer imports.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from builder.util.fs import atomic_write_text

STATE_SCHEMA = 1


class InstallState(BaseModel):
    """One generation's provenance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = STATE_SCHEMA
    install_key: str
    lockfile: str
    lock_input_hash: str | None
    generation: int
    previous_generation: int | None
    prefix: str
    created: str
    conda_packages: int
    pip_packages: int


def state_path(root: Path) -> Path:
    """The state file inside a prefix or generation dir."""
    return root / ".envbuild" / "state.json"


def read_state(root: Path) -> InstallState | None:
    """The state of ``root`` (a prefix or generation), or None when absent or unreadable."""
    try:
        return InstallState.model_validate(json.loads(state_path(root).read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def write_state(root: Path, state: InstallState) -> None:
    """Write the state file atomically (last step of building a generation)."""
    atomic_write_text(state_path(root), json.dumps(state.model_dump(), indent=2,
                                                   sort_keys=True) + "\n")
