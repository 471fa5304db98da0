"""The second conda solver: conda-lock's own ``lock``, driving a real conda/mamba/micromamba.

Used with ``--solver conda-lock`` when such a binary is on PATH.  It gets the same
request as the rattler solver: the specs go into a temporary environment.yml, the
channels are the plan's fetch URLs (so credentials still work, and are stripped
with ``--strip-auth``), and the *target's* virtual packages go in through
``--virtual-package-spec`` (conda-lock's silent default ``__cuda=11.4`` is never
used).  The resulting lockfile is read back with envbuild's reader and turned
into :class:`CondaRecord` s; the lockfile itself is still written by envbuild.

Limits: conda-lock reads live channels or mirrors only (not a snapshot tree), and
has no ``exclude_newer``; both are refused with a clear message.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from builder.errors import CommandError, ConflictError, UsageError
from builder.lock.conda_layer import CondaRecord, CondaSolveRequest
from builder.util import cmd
from builder.util.redact import redact

CONDA_BINARIES = ("micromamba", "mamba", "conda")


def find_conda() -> str | None:
    """The first conda-compatible executable on PATH, or None."""
    for name in CONDA_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def records_from_lockfile(path: Path, platform: str) -> list[CondaRecord]:
    """The conda records of a lockfile conda-lock wrote (read as envbuild reads its own)."""
    from builder.lock.lockfile import read_lockfile

    lockfile = read_lockfile(path)
    out = []
    for dep in lockfile.package:
        if dep.manager != "conda" or dep.platform != platform:
            continue
        url = redact(dep.url)
        channel, subdir, _ = url.rsplit("/", 2)
        build = dep.build or ""
        tail = build.rsplit("_", 1)[-1]
        out.append(CondaRecord(
            name=dep.name, version=dep.version, build=build,
            build_number=int(tail) if tail.isdigit() else 0, subdir=subdir, url=url,
            channel=channel, md5=dep.hash.md5, sha256=dep.hash.sha256,
            depends=tuple(f"{k} {v}".strip() for k, v in dep.dependencies.items()),
        ))
    return sorted(out, key=lambda r: r.name)


class CondaLockSolver:
    """conda-lock's solver behind the :class:`~builder.lock.conda_layer.CondaSolver` protocol."""

    name = "conda-lock"

    def unavailable_reason(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("conda_lock") is None:
            return ("conda-lock is not installed (pip install 'envbuild[conda-lock]', or "
                    "make setup, which installs it for the tests)")
        if find_conda() is None:
            return ("conda-lock needs conda, mamba or micromamba on PATH and none was found "
                    f"(looked for {', '.join(CONDA_BINARIES)})")
        return None

    def solve(self, req: CondaSolveRequest) -> list[CondaRecord]:
        """Run ``conda-lock lock`` for ``req`` and read its records back."""
        if req.plan.snapshot is not None:
            raise UsageError("--solver conda-lock cannot read a --channel-snapshot tree",
                             hint="use --solver rattler (the default) with snapshots")
        if req.exclude_newer is not None:
            raise UsageError("--solver conda-lock does not support the spec's exclude_newer",
                             hint="use --solver rattler (the default)")
        conda = find_conda()
        assert conda is not None
        with tempfile.TemporaryDirectory(prefix="envbuild-condalock-") as tmp:
            work = Path(tmp)
            env_file = self._write_inputs(req, work)
            out = work / "out.conda-lock.yml"
            argv = [sys.executable, "-m", "conda_lock", "lock", "--file", str(env_file),
                    "--platform", req.platform, "--lockfile", str(out), "--conda", conda,
                    "--virtual-package-spec", str(work / "virtual.yml"), "--strip-auth",
                    "--kind", "lock"]
            try:
                cmd.run(argv, cwd=work, timeout=1800)
            except CommandError as exc:
                raise ConflictError(
                    f"conda-lock could not solve {req.context or 'this spec'}:\n"
                    + redact(exc.stderr_tail), constraint="conda",
                    hint="try the default solver (--solver rattler) for a detailed "
                         "explanation") from None
            return records_from_lockfile(out, req.platform)

    @staticmethod
    def _write_inputs(req: CondaSolveRequest, work: Path) -> Path:
        env = {"channels": [e.fetch_url for e in req.plan.all_entries],
               "dependencies": list(req.specs), "platforms": [req.platform]}
        (work / "environment.yml").write_text(json.dumps(env, indent=2), encoding="utf-8")
        vps = {"subdirs": {req.platform: {"packages": dict(req.virtual_packages)}}}
        (work / "virtual.yml").write_text(json.dumps(vps, indent=2), encoding="utf-8")
        return work / "environment.yml"

    def has_match(self, req: CondaSolveRequest, spec: str) -> bool:
        """Asked of the channels through rattler's gateway (same channels, same answer)."""
        from builder.lock.solve_rattler import RattlerSolver

        return RattlerSolver().has_match(req, spec)
