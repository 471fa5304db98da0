"""The two install backends, behind Protocols and listed in typed registries.

* :class:`CondaLinker` links verified conda archives into a directory, patching
  text files for the *final* prefix path (which may differ from where the files
  are written: see :mod:`builder.install.generations`).  Default: rattler.
* :class:`PipInstaller` installs exact wheels into a prefix's own python with
  hashes required and no dependency resolution.  Default: uv.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from builder.errors import EnvbuildError
from builder.install.plan import CondaRecord, PipRecord


class CondaLinker(Protocol):
    """Link conda packages into ``target`` as if installed at ``final_prefix``."""

    name: str

    def link(self, records: Sequence[CondaRecord], archives: Sequence[Path], target: Path,
             final_prefix: Path, cache: Path) -> None: ...


class PipInstaller(Protocol):
    """Install exact, hash-pinned wheels into the interpreter ``python``."""

    name: str

    def install(self, records: Sequence[PipRecord], python: Path, workdir: Path,
                cache: Path, *, offline: bool = False) -> None: ...


class RattlerLinker:
    """py-rattler: extracted-package cache + hardlinks, prefix replacement, no conda binary."""

    name = "rattler"

    def link(self, records: Sequence[CondaRecord], archives: Sequence[Path], target: Path,
             final_prefix: Path, cache: Path) -> None:
        """Install ``records`` (verified ``archives`` under ``cache``) into ``target``."""
        import asyncio

        import rattler

        repo = [_repodata_record(rattler, r, a, cache)
                for r, a in zip(records, archives, strict=True)]
        try:
            asyncio.run(rattler.install(
                repo, target_prefix=target, cache_dir=cache / "extracted", installed_packages=[],
                alternative_target_prefix=final_prefix, show_progress=False,
                execute_link_scripts=False,
            ))
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - rattler raises its own exception types
            raise EnvbuildError(f"linking conda packages failed: {exc}",
                                hint="the current environment was not changed") from None


def _repodata_record(rattler: Any, rec: CondaRecord, archive: Path, cache: Path) -> Any:
    """A rattler record from the lock's hashes and the package's own index.json."""
    from builder.install.fetch import index_json_of

    index = index_json_of(cache, rec)
    pkg = rattler.PackageRecord(
        name=rec.name, version=rec.version, build=rattler.BuildString(rec.build),
        build_number=int(index.get("build_number", 0)), subdir=rec.subdir,
        depends=list(index.get("depends", rec.depends)),
        constrains=list(index.get("constrains", [])),
        sha256=bytes.fromhex(rec.sha256) if rec.sha256 else None,
        md5=bytes.fromhex(rec.md5) if rec.md5 else None,
        size=archive.stat().st_size, noarch=index.get("noarch"),
        python_site_packages_path=index.get("python_site_packages_path"),
    )
    return rattler.RepoDataRecord(pkg, rec.file_name, archive.resolve().as_uri(), rec.channel)


class UvInstaller:
    """uv pip: ``--require-hashes --no-deps`` from exact wheel URLs."""

    name = "uv"

    def install(self, records: Sequence[PipRecord], python: Path, workdir: Path,
                cache: Path, *, offline: bool = False) -> None:
        """Install ``records`` into ``python``'s environment; hashes are checked by uv.

        ``offline``: wheels only from uv's cache (``--offline``); a missing one fails.
        """
        from builder.util.cmd import run

        reqs = workdir / "pip-requirements.txt"
        reqs.write_text("".join(f"{r.name} @ {r.url} --hash=sha256:{r.sha256}\n"
                                for r in records))
        env = {k: v for k, v in os.environ.items()
               if k not in {"VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME"}}
        env["UV_CACHE_DIR"] = str(cache)
        run([_uv_bin(), "pip", "install", "--python", str(python), "--require-hashes",
             "--no-deps", "--no-config", "--break-system-packages", "-r", str(reqs),
             *(["--offline"] if offline else [])],
            env=env, log_path=workdir / "uv.log",
            hint=("--offline: a wheel is not in the package cache yet; run once without "
                  "--offline (or with a mirror) to fill it. " if offline else "")
            + "a wheel that does not match its locked sha256 is refused; "
              "the current environment was not changed")


def _uv_bin() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return "uv"


CONDA_LINKERS: dict[str, Callable[[], CondaLinker]] = {"rattler": RattlerLinker}
PIP_INSTALLERS: dict[str, Callable[[], PipInstaller]] = {"uv": UvInstaller}
