"""The one base for envbuild's value models: strict (unknown fields are errors) and frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, and unknown fields are errors (never silently dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
