"""``make demo``: every stage of ``envbuild env`` on ``envspecs/demo.yaml``, no conda channel.

Builds (once) a local conda channel of real packages under ``.envbuild/demo/`` (the host
python packaged as a conda package, see :mod:`builder.demo.localchannel`) and fills the local
wheelhouse with the pip layer's torch wheel and its dependencies (``pip download``, once:
from the machine's pip configuration and caches, or PyPI and the PyTorch CPU index), then
runs ``envbuild env`` with that channel.  A second run is a no-op.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "envspecs" / "demo.yaml"


def fill_wheelhouse(wheelhouse: Path, spec: Path = SPEC) -> None:
    """Download the resolution's pip requirements (with dependencies) into ``wheelhouse``.

    Skipped when every requirement already has a wheel there, or a marker names the
    same requirements.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec
    from builder.util.cmd import run
    from builder.util.fs import atomic_write_text

    res = resolve(load_spec(spec), ResolveRequest(cuda="cpu"))
    # requirements that already have a wheel here (the local channel builder's own, or an
    # earlier download) need none
    local = {canonicalize_name(w.name.split("-")[0]) for w in wheelhouse.glob("*.whl")}
    reqs = [r for r in res.pip if canonicalize_name(Requirement(r).name) not in local]
    if not reqs:
        return
    marker = wheelhouse / ".torch-complete"
    key = "\n".join(reqs + list(res.pip_index_urls)) + "\n"
    if marker.exists() and marker.read_text() == key:
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
           "--dest", str(wheelhouse), "--python-version", res.python,
           "--platform", "manylinux_2_28_x86_64", "--implementation", "cp", *reqs]
    for url in res.pip_index_urls:
        cmd += ["--extra-index-url", url]
    print(f"filling the demo wheelhouse with {', '.join(reqs)} and dependencies (once) ...",
          file=sys.stderr)
    run(cmd, hint="the wheelhouse is filled once with pip download: it needs the wheels in "
                  "pip's configured find-links/index or access to PyPI")
    atomic_write_text(marker, key)


def _drop_if_stale(lockfile: Path, channel_url: str) -> None:
    """The demo's own lockfile (never committed) is re-locked when the demo spec changed;
    a committed lockfile that is stale stays an error in ``env``."""
    if not lockfile.is_file():
        return
    from builder.lock import LockRequest, check
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    loaded = load_spec(SPEC)
    diffs = check(LockRequest(spec=loaded, resolution=resolve(loaded, ResolveRequest()),
                              output=lockfile, channels=(channel_url,)))
    if diffs:
        print(f"the demo's lockfile is stale ({'; '.join(diffs)}): locking it again",
              file=sys.stderr)
        lockfile.unlink()


def main(argv: list[str] | None = None) -> int:
    """Build the local channel and wheelhouse, then run ``envbuild env`` on the demo spec."""
    from builder.cli import main as cli_main
    from builder.demo.localchannel import ensure_local_channel
    from builder.errors import EnvbuildError

    local = ensure_local_channel(REPO / ".envbuild" / "demo")
    try:
        fill_wheelhouse(local.wheelhouse)
    except EnvbuildError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    # the demo's lockfile names this machine's local channel: it stays beside it, never in
    # the committed lockfiles/
    lockfile = local.channel.parent / "demo-cpu.conda-lock.yml"
    _drop_if_stale(lockfile, local.channel_url)
    args = ["env", str(SPEC.relative_to(REPO)), "--cuda", "cpu", "--lockfile", str(lockfile),
            "--channel", local.channel_url, *(argv or [])]
    cli_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
