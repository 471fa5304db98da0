"""``envbuild build --check-reproducible``: build each op a second time and compare.

The second build runs in its own fresh temp dir (another random path, as a teammate's
build would), from the same source, fixups and toolchain, compiles every object anew
(through ccache with ``CCACHE_RECACHE``: the same compiler command lines as the first, but
nothing taken from the cache, which compared with itself would prove nothing), and is
never published or installed.  Its wheel's sha256 is compared with the one the store
recorded when the first was published; when they differ every differing member is named.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from builder import paths
from builder.opbuild.ops import OpBuildRequest, PreparedOp, Steps, compile_wheel
from builder.opbuild.preflight import full_preflight
from builder.opbuild.reproducible import ReproCheck, compare_wheels
from builder.opbuild.store import Store
from builder.util.fs import remove_tree, temp_dir_in
from builder.util.hashing import sha256_file


def check_reproducible(req: OpBuildRequest, prepared: PreparedOp, store: Store,
                       log: Callable[[str], None] | None = None) -> ReproCheck:
    """Rebuild ``req`` from scratch and compare with the stored wheel of ``prepared``.

    The second build uses the source's fixed build dir (under the key's lock and the dir's),
    as every build of that key does, and a new random temp dir for its output.
    """
    start = time.perf_counter()
    tc = full_preflight(prepared.tc)
    if log:
        log(f"{req.name}: building again in a fresh dir to compare with "
            f"{prepared.entry.sha256[:16]}")
    key = prepared.entry.key
    with store.key_lock(key), store.build_lock(prepared.build_ident) as work, \
            temp_dir_in(paths.home() / "tmp", prefix=f"repro-{key[:12]}-") as out:
        try:
            wheel = compile_wheel(req, tc, out, Steps(req.name), work, prepared.fixups,
                                  prepared.gate, uncached=True)
        finally:
            remove_tree(work, inside=store.root)
        sha = sha256_file(wheel)
        diffs = compare_wheels(prepared.entry.wheel, wheel) if sha != prepared.entry.sha256 else []
    return ReproCheck(stored_sha256=prepared.entry.sha256, rebuilt_sha256=sha,
                      identical=sha == prepared.entry.sha256,
                      seconds=round(time.perf_counter() - start, 2), differing=tuple(diffs))
