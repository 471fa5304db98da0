"""Rattler's gateway to live channels, with credentials kept out of the shared cache.

Rattler's gateway caches repodata under ``$ENVBUILD_HOME/rattler`` and writes each
channel's full URL into that cache (``*.info.json``, ``*.shards-cache-v1``), so a
channel URL with ``user:password@``, a ``/t/<token>/`` segment or a ``token=`` query
would leave the secret there for good.  A solve that involves such a channel
therefore gets a gateway with a private cache directory of its own (``mkdtemp``:
mode 0700, under ``$TMPDIR``), removed as soon as the solve or query is done;
credential-free channels keep the shared, persistent cache.

Why not keep the cache and send the credentials as a header instead: py-rattler 0.28
can add per-request headers only through a Python callback
(``AddHeadersMiddleware``), which rattler's network threads call into; when a solve
fails while other requests are still in flight (one channel unreachable), those
threads re-enter the interpreter as it shuts down and the process aborts
(``PyGILState_Release``, exit -6), measured 2 of 5 runs of the credentials test.
rattler's own credential store (``AuthenticationMiddleware``) reads from the keyring
or files, i.e. it would need the secret written somewhere.  The cost of the private
cache is a repodata download per lock for credentialed channels only.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from builder.lock.channels import ChannelEntry
from builder.util.fs import remove_tree
from builder.util.redact import has_credentials


def needs_private_cache(entries: Sequence[ChannelEntry]) -> bool:
    """True when a channel URL rattler would see (and cache) carries a credential."""
    return any(has_credentials(e.fetch_url) for e in entries)


@contextlib.contextmanager
def live_gateway(entries: Sequence[ChannelEntry]) -> Iterator[tuple[list[Any], Any]]:
    """Rattler ``Channel`` objects for ``entries`` and a ``Gateway`` to query them with."""
    from rattler import Channel, Gateway

    from builder.paths import home

    channels = [Channel(e.fetch_url) for e in entries]
    if not needs_private_cache(entries):
        yield channels, Gateway(cache_dir=home() / "rattler")
        return
    private = Path(tempfile.mkdtemp(prefix="envbuild-rattler-"))
    try:
        yield channels, Gateway(cache_dir=private)
    finally:
        remove_tree(private, inside=private.parent, ignore_errors=True)
