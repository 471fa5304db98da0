"""``make demo``: every stage of ``envbuild env`` offline, on ``envspecs/demo.yaml``.

Builds (once) a local conda channel of real packages and a wheelhouse under
``.envbuild/demo/`` (see :mod:`builder.localchannel`), then runs ``envbuild env``
with that channel.  A second run is a no-op.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "envspecs" / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    """Build the local channel, then run ``envbuild env`` on the demo spec."""
    from builder.cli import main as cli_main
    from builder.localchannel import ensure_local_channel

    local = ensure_local_channel(REPO / ".envbuild" / "demo")
    args = ["env", str(SPEC.relative_to(REPO)), "--cuda", "cpu",
            "--channel", local.channel_url, *(argv or [])]
    cli_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
