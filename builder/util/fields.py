"""What an untrusted field must look like before it reaches a path, a command or a file.

Every value read from a lockfile or a spec goes through one of these before envbuild
joins it into a path, passes it on a command line or writes it into a requirements
file.  Each returns the value unchanged, or raises :class:`ValueError` with a sentence
saying what was expected (callers turn that into a ``path:line`` usage error).

The ``Annotated`` types at the end carry the same checks into model fields
(``sha256: fields.Sha256``), so a model states what each field is instead of repeating
validator methods.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated

from pydantic import AfterValidator

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9_.+!*-]+$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]*$")
MAX_NAME = 100
MAX_URL = 4096
ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")
PIP_SUFFIXES = (".whl", ".tar.gz", ".zip")


def hex_digest(value: object, length: int, what: str = "sha256") -> str:
    """``length`` hex digits (a sha256 is 64, an md5 32, a git commit 40 or 64)."""
    if not isinstance(value, str) or len(value) != length or not _HEX.match(value):
        raise ValueError(f"{what} must be {length} hex digits, not {_show(value)}")
    return value


def name(value: object, what: str = "name") -> str:
    """A package, op, source or spec name: letters, digits, ``._+-``, at most 100."""
    if (not isinstance(value, str) or not _NAME.match(value) or len(value) > MAX_NAME
            or value in (".", "..")):
        raise ValueError(f"{what} must be letters, digits, '.', '_', '+' or '-' "
                         f"(at most {MAX_NAME}), not {_show(value)}")
    return value


def version(value: object, what: str = "version") -> str:
    """A package version or build string: no spaces, slashes or control characters."""
    if not isinstance(value, str) or not _VERSION.match(value) or len(value) > 200:
        raise ValueError(f"{what} must be letters, digits and '._+!*-', not {_show(value)}")
    return value


def file_name(value: object, suffixes: tuple[str, ...]) -> str:
    """A plain file name (no directory part, not ``.``/``..``) ending in one of ``suffixes``."""
    if (not isinstance(value, str) or not value or "/" in value or "\\" in value
            or value in (".", "..") or value.startswith(".") or _CONTROL.search(value)
            or not value.endswith(suffixes)):
        raise ValueError(f"the file name must be a plain name ending in "
                         f"{' or '.join(suffixes)}, not {_show(value)}")
    return value


def url(value: object, schemes: tuple[str, ...] = ("https", "http", "file")) -> str:
    """A URL with one of ``schemes``, a host for network schemes, no whitespace or control
    characters, no ``.``/``..`` path segments (also when percent-encoded), no query."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise ValueError(f"not a URL: {_show(value)}")
    if _CONTROL.search(value):
        raise ValueError(f"a URL must not contain spaces or control characters: {_show(value)}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"a URL must start with {', '.join(s + '://' for s in schemes)}: "
                         f"{_show(value)}")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError(f"a URL needs a host: {_show(value)}")
    segments = urllib.parse.unquote(parts.path).split("/")
    if any(s in (".", "..") for s in segments) or "\\" in urllib.parse.unquote(parts.path):
        raise ValueError(f"a URL must not contain '.' or '..' segments: {_show(value)}")
    if parts.query:
        raise ValueError(f"a package URL has no query string: {_show(value)}")
    return value


def relative_subpath(value: object, what: str = "path") -> str:
    """A path inside a tree: relative, no ``..``, no control characters."""
    if (not isinstance(value, str) or not value or value.startswith(("/", "-"))
            or _CONTROL.search(value.replace(" ", "_"))
            or any(p == ".." for p in value.replace("\\", "/").split("/"))):
        raise ValueError(f"{what} must be a relative path inside the source, without '..': "
                         f"{_show(value)}")
    return value


def git_url(value: object) -> str:
    """A git URL or local path git will not read as an option (no leading ``-``)."""
    if (not isinstance(value, str) or not value or value.startswith("-")
            or _CONTROL.search(value) or len(value) > MAX_URL):
        raise ValueError(f"not a git URL: {_show(value)}")
    scheme = urllib.parse.urlsplit(value).scheme
    if "::" in value or (scheme and scheme not in ("https", "http", "ssh", "git", "file")
                         and "://" in value):
        raise ValueError(f"a git URL must be https://, http://, ssh://, git://, file:// "
                         f"or user@host:path: {_show(value)}")
    return value


def git_rev(value: object) -> str:
    """A commit, tag or branch name (never an option, never a range)."""
    if (not isinstance(value, str) or not _REF.match(value) or ".." in value
            or len(value) > 255):
        raise ValueError(f"rev must be a commit, tag or branch name: {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _digest(length: int, what: str = "sha256") -> AfterValidator:
    return AfterValidator(lambda v: hex_digest(v, length, what))


Sha256 = Annotated[str, _digest(64)]
Md5 = Annotated[str, _digest(32, "md5")]
# a git commit: sha1 (40 hex digits) or sha256 (64)
Commit = Annotated[str, AfterValidator(
    lambda v: hex_digest(v, 64 if len(v) == 64 else 40, "commit"))]
Name = Annotated[str, AfterValidator(name)]
Url = Annotated[str, AfterValidator(url)]
GitUrl = Annotated[str, AfterValidator(git_url)]
GitRev = Annotated[str, AfterValidator(git_rev)]
Subdir = Annotated[str, AfterValidator(lambda v: relative_subpath(v, "subdir"))]
