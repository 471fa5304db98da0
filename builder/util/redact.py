"""Credentials never reach a lockfile or a log: one redaction function for URLs and text.

Recognised secrets: the ``user:password@`` part of a URL, anaconda.org-style
``/t/<token>/`` path segments, and ``token=``/``access_token=`` query values.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_TOKEN_PATH = re.compile(r"/t/[^/\s]+(?=/|$)")
_TOKEN_QUERY = re.compile(r"(?P<key>[?&](?:access_)?token=)[^&\s]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every URL credential removed (safe on any string, URL or log)."""
    text = _USERINFO.sub(lambda m: m.group("scheme"), text)
    text = _TOKEN_PATH.sub("", text)
    return _TOKEN_QUERY.sub(lambda m: m.group("key") + "***", text)


def has_credentials(url: str) -> bool:
    """True when :func:`redact` would change ``url``."""
    return redact(url) != url
