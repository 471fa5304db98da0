"""The pinned form of an envspec source, as the lockfile stores it.

Kept apart from :mod:`builder.sources.fetch` (pinning and fetching, which need the spec models,
git and tar) so that reading a lockfile does not import them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from builder.util import fields


class PinnedSource(BaseModel):
    """A source pinned to exact bytes: commit (git) and content sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # read back from lockfiles: untrusted until each field is what it claims to be
    name: fields.Name
    kind: Literal["git", "path"]
    url: str  # git URL, or the path as written in the spec (relative to the spec file)
    commit: fields.Commit | None = None  # full sha for git sources
    sha256: fields.Sha256
    rev: fields.GitRev | None = None  # the rev as written in the spec (checked at fetch)
    subdir: fields.Subdir | None = None

    @model_validator(mode="after")
    def _git_url(self) -> PinnedSource:
        if self.kind == "git":
            fields.git_url(self.url)
        elif "\n" in self.url or "\x00" in self.url:
            raise ValueError(f"not a path: {self.url!r}")
        return self
