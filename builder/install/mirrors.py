"""Where ``install`` downloads each locked conda package: the locked URL, or a mirror of it.

A lockfile pins every package by URL *and* sha256, so a package may come from anywhere
that serves the same bytes: the hash is checked as always, and the lockfile and the
install key (which name the locked URLs) do not change.  Two ways to say where:

* ``--channel NAME=URL`` (repeatable; the syntax of ``lock --channel``): packages of
  channel NAME (``conda-forge``, ``nvidia/label/cuda-11.7.1``, or the channel's full URL)
  are fetched from URL instead.  URL may be a local directory.
* ``ENVBUILD_CHANNEL_ALIAS=URL``, set once for a team: every channel under
  ``https://conda.anaconda.org`` is fetched from ``URL/<channel>`` instead (conda's
  ``channel_alias``; a proxy of anaconda.org such as Artifactory, Nexus or quetz).
  ``--channel`` wins for the channels it names.  ``lock`` reads the same variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from builder.errors import UsageError
from builder.lock.channels import DEFAULT_ALIAS
from builder.util.redact import redact

ALIAS_VAR = "ENVBUILD_CHANNEL_ALIAS"


@dataclass(frozen=True)
class Mirrors:
    """Ordered (locked URL prefix, replacement prefix) pairs; the first match wins."""

    pairs: tuple[tuple[str, str], ...] = ()

    def url_for(self, url: str) -> str:
        """Where to fetch ``url`` from."""
        for old, new in self.pairs:
            if url.startswith(old + "/"):
                return new + url[len(old):]
        return url

    def describe(self) -> str:
        """One line naming the mirrors in use (credentials redacted)."""
        return ", ".join(f"{redact(o)} -> {redact(n)}" for o, n in self.pairs) or "none"


def channel_alias(environ: Mapping[str, str]) -> str | None:
    """The team's channel alias (``ENVBUILD_CHANNEL_ALIAS``), without a trailing slash."""
    value = environ.get(ALIAS_VAR, "").strip()
    return value.rstrip("/") or None


def parse_mirrors(channel_args: Sequence[str], environ: Mapping[str, str],
                  *, bare_ok: bool = False) -> Mirrors:
    """Mirrors from ``--channel NAME=URL`` arguments and ``ENVBUILD_CHANNEL_ALIAS``.

    Bare ``--channel URL`` values name no channel to replace: an error, unless
    ``bare_ok`` (``env`` passes them on to the lock stage, where they replace the list).
    """
    from builder.lock.channels import as_url

    pairs: list[tuple[str, str]] = []
    named = named_only(channel_args)
    for arg in channel_args:
        key, _, value = arg.partition("=")
        if arg not in named:
            if bare_ok:
                continue
            raise UsageError(f"--channel {redact(arg)!r}: install needs NAME=URL",
                             hint="say which channel the mirror replaces, e.g. "
                                  "--channel conda-forge=https://mirror.example/conda-forge")
        old = key.rstrip("/") if "://" in key else f"{DEFAULT_ALIAS}/{key.strip('/')}"
        pairs.append((old, as_url(value)))
    alias = channel_alias(environ)
    if alias is not None:
        pairs.append((DEFAULT_ALIAS, alias if "://" in alias else as_url(alias)))
    return Mirrors(tuple(pairs))


def named_only(channel_args: Sequence[str]) -> tuple[str, ...]:
    """The ``NAME=URL`` arguments (mirrors of one channel) among ``--channel`` values."""
    out = []
    for arg in channel_args:
        key, sep, value = arg.partition("=")
        if sep and value and key and not key.startswith(("/", ".", "~")):
            out.append(arg)
    return tuple(out)
