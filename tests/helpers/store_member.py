"""One store member's action, run as another Unix user by the shared-store trials.

``python -m tests.helpers.store_member STORE KEY ACTION [WHEEL_TEXT]`` prints one JSON
line: ``{"hit": bool, "wheel": text, "log": [...]}`` for ``get`` (building ``WHEEL_TEXT``
on a miss), or ``{"ok": bool, "error": str}`` for the tampering actions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from builder.opbuild.store import MARKER, Store


def _get(store: Store, key: str, text: str) -> dict[str, object]:
    said: list[str] = []

    def build(out: Path) -> None:
        (out / "op-0.1-cp311-cp311-linux_x86_64.whl").write_text(text)
        (out / "build.log").write_text("ok\n")

    entry, hit = store.get_or_build(key, build, {"by": os.getuid()}, said.append)
    return {"hit": hit, "wheel": entry.wheel.read_text(), "log": said,
            "lock_mode": oct(store.lock_path(key).stat().st_mode & 0o777)}


def _overwrite(store: Store, key: str, text: str) -> dict[str, object]:
    """Write into another member's published wheel in place."""
    entry = store.lookup(key)
    assert entry is not None
    try:
        entry.wheel.write_text(text)
    except OSError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "error": ""}


def _replace(store: Store, key: str, text: str) -> dict[str, object]:
    """Move another member's entry aside and publish a consistent entry of one's own."""
    import hashlib

    d = store.entry_dir(key)
    try:
        os.rename(d, d.with_name(f"stolen-{key}"))
        d.mkdir()
        wheel = d / "op-0.1-cp311-cp311-linux_x86_64.whl"
        wheel.write_text(text)
        sha = hashlib.sha256(text.encode()).hexdigest()
        (d / MARKER).write_text(json.dumps({"key": key, "wheel": wheel.name, "sha256": sha}))
        os.chmod(wheel, 0o444)
        os.chmod(d, 0o555)
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "error": ""}


def main(argv: list[str]) -> int:
    root, key, action = argv[:3]
    text = argv[3] if len(argv) > 3 else ""
    store = Store(Path(root))
    actions = {"get": _get, "overwrite": _overwrite, "replace": _replace}
    try:
        out = actions[action](store, key, text)
    except Exception as exc:  # noqa: BLE001 - reported to the test as data
        out = {"exception": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
