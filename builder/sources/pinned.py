"""The pinned form of an envspec source, as the lockfile stores it.

Kept apart from :mod:`builder.sources.fetch` (pinning and fetching, which need the spec models,
git and tar) so that reading a lockfile does not import them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from builder.util import fields


class PinnedSource(BaseModel):
    """A source pinned to exact bytes: commit (git) and content sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["git", "path"]
    url: str  # git URL, or the path as written in the spec (relative to the spec file)
    commit: str | None = None  # full sha for git sources
    sha256: str
    rev: str | None = None  # the rev as written in the spec (a tag/branch is checked at fetch)
    subdir: str | None = None

    # read back from lockfiles: untrusted until each field is what it claims to be
    _name = field_validator("name")(fields.name)
    _sha256 = field_validator("sha256")(lambda v: fields.hex_digest(v, 64))
    _commit = field_validator("commit")(
        lambda v: v if v is None else fields.hex_digest(v, 64 if len(v) == 64 else 40,
                                                        "commit"))
    _rev = field_validator("rev")(lambda v: v if v is None else fields.git_rev(v))
    _subdir = field_validator("subdir")(
        lambda v: v if v is None else fields.relative_subpath(v, "subdir"))

    @model_validator(mode="after")
    def _git_url(self) -> PinnedSource:
        if self.kind == "git":
            fields.git_url(self.url)
        elif "\n" in self.url or "\x00" in self.url:
            raise ValueError(f"not a path: {self.url!r}")
        return self
