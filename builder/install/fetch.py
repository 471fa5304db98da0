"""Hash-verified package archives in the shared package cache.

Layout under ``builder.paths.pkgs_cache()``::

    archives/<sha256>/<file name>   verified archives (published with os.replace);
                                    ``md5-<md5>`` for the few records a channel
                                    publishes with an md5 only
    extracted/                      rattler's extracted packages (hardlink source)

An archive is downloaded (``file://`` or ``http(s)://``) into a temp dir inside
``archives/``, its sha256 (and md5 when the lock gives one) checked against the
lockfile, and only then published under its hash: nothing unverified ever
reaches the cache or a prefix.  Rattler is then pointed at the verified copy.

An archive *already* in the cache is re-hashed before every use (its sha256, or its
md5 for an md5-only record), not trusted because it exists: the cache is shared by
every prefix of a user or a team, its files can change after they were verified,
and rattler does not check the record's hash when it extracts an archive.  Always,
rather than only when rattler has no extracted copy: which extracted copies rattler
reuses is rattler's business (it re-extracts one it judges stale), and the cost is
small where it is paid at all: about 0.65 s per GB (a ~1 GB CUDA torch archive),
only while a new generation is built, which is rare; an up-to-date prefix never
reaches this module.  A cached archive that fails the check is removed (the next
run downloads it again) and the install is refused with :class:`CheckFailed`
before anything is linked.  Files in ``extracted/`` are hardlinked into prefixes
and are not re-checked (as in conda's own package cache).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from builder.errors import CheckFailed, EnvbuildError
from builder.install import faults
from builder.install.mirrors import Mirrors
from builder.install.plan import CondaRecord
from builder.util.fs import ensure_cachedir_tag, remove_tree, temp_dir_in
from builder.util.hashing import md5_file, sha256_file
from builder.util.redact import redact

CHUNK = 1 << 20
UNREACHABLE_HINT = (
    "check the channel is reachable (or the local channel still exists); without access to "
    "it, fetch from a mirror with --channel NAME=URL (for a whole team: "
    "ENVBUILD_CHANNEL_ALIAS=URL), use packages already cached with --offline, or try "
    "`make demo`, which runs every stage with no conda channel at all")
INDEX_JSON = "index.json"


def archive_root(cache: Path) -> Path:
    """Where verified archives live."""
    return cache / "archives"


def cached_archive(cache: Path, rec: CondaRecord) -> Path:
    """Path a verified archive of ``rec`` has in the cache."""
    return archive_root(cache) / rec.key / rec.file_name


def fetch_all(records: Sequence[CondaRecord], cache: Path, *, progress: bool,
              mirrors: Mirrors | None = None, offline: bool = False) -> list[Path]:
    """Make sure every record has a verified archive in ``cache``; return their paths.

    Cached archives are re-hashed first (see the module docstring); one that no longer
    matches the lockfile is removed and the install refused.  ``mirrors`` says where to
    download from (the hash check is the same); ``offline`` downloads nothing and names
    every package the cache lacks.
    """
    mirrors = mirrors or Mirrors()
    ensure_cachedir_tag(cache)
    missing = []
    for rec in records:
        if cached_archive(cache, rec).is_file():
            verify_cached(rec, cache)
        else:
            missing.append(rec)
    if missing and offline:
        names = [f"{r.name}-{r.version}-{r.build}" for r in missing]
        raise CheckFailed(
            f"--offline: {len(missing)} of {len(records)} conda packages are not in the "
            f"package cache ({cache}):\n" + "\n".join(f"  - {n}" for n in names),
            hint="run the same command once without --offline (or with a mirror: --channel "
                 "NAME=URL, ENVBUILD_CHANNEL_ALIAS) to fill the cache; nothing was installed")
    if missing:
        from builder.util.progress import note, paused

        with paused(), _progress(progress) as bar:
            for i, rec in enumerate(missing, 1):
                faults.point("fetch")
                _fetch_one(rec, cache, bar, mirrors.url_for(rec.url))
                if bar is None:  # no bar (not a terminal): one line per download
                    size = cached_archive(cache, rec).stat().st_size
                    note("install", f"fetched {rec.file_name} ({size / 1e6:.1f} MB) "
                                    f"[{i}/{len(missing)}]")
    return [cached_archive(cache, r) for r in records]


def _fetch_one(rec: CondaRecord, cache: Path, bar: Any, url: str) -> None:
    root = archive_root(cache)
    with temp_dir_in(root, f".dl-{rec.key[:12]}-") as tmp:
        part = tmp / rec.file_name
        sha, md5 = _download(rec, url, part, bar)
        if rec.sha256 and sha != rec.sha256.lower():
            raise CheckFailed(
                f"hash mismatch for {rec.file_name} from {redact(url)}:\n"
                f"  expected sha256 {rec.sha256}\n  got      sha256 {sha}\n"
                "refused; nothing was installed",
                hint="the channel's file is not the one that was locked; "
                     "if the change is intended, run `make lock`")
        if rec.md5 and md5 != rec.md5.lower():
            raise CheckFailed(f"md5 mismatch for {rec.file_name}: expected {rec.md5}, got {md5}",
                              hint="refused; re-lock if the package was legitimately rebuilt")
        final = root / rec.key
        if final.exists():
            return
        holder = tmp / "publish"
        holder.mkdir()
        (holder / INDEX_JSON).write_bytes(read_index_json(part))
        os.replace(part, holder / rec.file_name)
        try:
            os.replace(holder, final)
        except OSError:
            if not final.is_dir():  # lost a race to an identical publish: fine
                raise


def verify_cached(rec: CondaRecord, cache: Path) -> None:
    """Re-hash ``rec``'s cached archive; on a mismatch remove the entry and raise CheckFailed.

    The key hash is enough here (sha256, or md5 for md5-only records): the md5 of a
    sha256-pinned record was checked when it was downloaded and adds nothing after.
    """
    path = cached_archive(cache, rec)
    algo, expected = ("sha256", rec.sha256) if rec.sha256 else ("md5", rec.md5)
    assert expected, "a conda record carries a sha256 or an md5"
    got = sha256_file(path) if algo == "sha256" else md5_file(path)
    if got == expected.lower():
        return
    _discard(archive_root(cache) / rec.key)
    raise CheckFailed(
        f"hash mismatch for {rec.file_name} in the package cache ({path}):\n"
        f"  expected {algo} {expected}\n  got      {algo} {got}\n"
        "the cached copy was changed after it was verified; it has been removed. "
        "Refused; nothing was installed",
        hint="run the command again to download the package afresh; if this recurs, "
             "something is modifying the package cache")


def _discard(entry: Path) -> None:
    """Remove a cache entry: renamed away first, so no reader sees it half-deleted."""
    trash = entry.with_name(f".bad-{entry.name}-{os.getpid()}")
    try:
        os.replace(entry, trash)
    except FileNotFoundError:
        return  # another process discarded it already
    remove_tree(trash, inside=entry.parent, ignore_errors=True)


def index_json_of(cache: Path, rec: CondaRecord) -> dict[str, Any]:
    """The package's own ``info/index.json`` (kept beside its verified archive)."""
    import json

    data: dict[str, Any] = json.loads((archive_root(cache) / rec.key / INDEX_JSON).read_text())
    return data


def read_index_json(archive: Path) -> bytes:
    """``info/index.json`` from a ``.conda`` or ``.tar.bz2`` archive."""
    import tarfile
    import zipfile

    if archive.name.endswith(".conda"):
        import zstandard

        with zipfile.ZipFile(archive) as zf:
            member = next(n for n in zf.namelist() if n.startswith("info-"))
            with zf.open(member) as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zs, \
                    tarfile.open(fileobj=zs, mode="r|") as tar:
                return _member(tar, archive)
    with tarfile.open(archive, mode="r|bz2") as tar:
        return _member(tar, archive)


def _member(tar: Any, archive: Path) -> bytes:
    for info in tar:
        if info.name.lstrip("./") == "info/index.json":
            fh = tar.extractfile(info)
            if fh is not None:
                return bytes(fh.read())
    raise CheckFailed(f"{archive.name} has no info/index.json: not a conda package")


def _download(rec: CondaRecord, url: str, dest: Path, bar: Any) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with _open(url) as src, open(dest, "wb") as out:
            total = int(getattr(src, "length", None) or 0) or None
            task = bar.add_task(rec.file_name, total=total) if bar else None
            for block in iter(lambda: src.read(CHUNK), b""):
                sha.update(block)
                md5.update(block)
                out.write(block)
                if bar:
                    bar.update(task, advance=len(block))
    except (urllib.error.URLError, ConnectionError, TimeoutError, FileNotFoundError) as exc:
        raise EnvbuildError(
            f"could not download {redact(url)}: {getattr(exc, 'reason', exc)}",
            hint=UNREACHABLE_HINT + "; the current environment was not changed") from None
    return sha.hexdigest(), md5.hexdigest()


def _open(url: str) -> Any:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        path = urllib.request.url2pathname(parsed.path) if parsed.scheme else url
        fh = open(path, "rb")  # noqa: SIM115 - closed by the caller's with
        fh.length = os.fstat(fh.fileno()).st_size  # type: ignore[attr-defined]
        return fh
    return urllib.request.urlopen(url, timeout=60)


class _progress:
    """A rich progress display for downloads, or nothing when not wanted."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), transient=False)
        self.bar.__enter__()
        return self.bar

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def clear_cache(cache: Path) -> None:
    """Remove the whole package cache (benchmarks and tests use it)."""
    remove_tree(cache, inside=cache.parent, ignore_errors=True)
