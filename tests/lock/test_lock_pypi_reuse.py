"""When the PyPI layer asks PyPI: unchanged inputs, uv's cache offline, previous pins.

Every path must give the bytes a full online lock of the same inputs gives.  Offline
tests use a local wheelhouse (``find_links`` + ``no_index``) or a fake uv run; the
``network`` test locks against real PyPI and skips with the reason when it is unreachable.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from builder.lock import LockRequest, lock, pypi_cache
from builder.lock.lockfile import envbuild_metadata, read_lockfile
from builder.lock.pypi_layer import PypiRequest, solve_pypi
from builder.util import cmd
from tests.helpers import SNAPSHOT, snapshot_missing_reason
from tests.helpers.lock import cu117_resolution, mini_spec
from tests.helpers.reliability import write_wheel

needs_snapshot = pytest.mark.skipif(snapshot_missing_reason() is not None,
                                    reason=snapshot_missing_reason() or "")


class UvCalls:
    """Every ``uv pip compile`` argv run through the command wrapper."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.argvs: list[list[str]] = []
        real = cmd.run

        def spy(argv: Any, **kw: Any) -> Any:
            if "compile" in [str(a) for a in argv]:
                self.argvs.append([str(a) for a in argv])
            return real(argv, **kw)

        monkeypatch.setattr(cmd, "run", spy)

    @property
    def online(self) -> int:
        return sum("--offline" not in a for a in self.argvs)

    @property
    def offline(self) -> int:
        return sum("--offline" in a for a in self.argvs)


def _wheelhouse(root: Path, versions: dict[str, str]) -> Path:
    for name, version in versions.items():
        write_wheel(root, name, version, {f"{name.replace('-', '_')}/__init__.py": ""})
    return root


def _local_req(tmp_path: Path, house: Path, **kw: Any) -> LockRequest:
    spec = mini_spec(tmp_path, f"pip_options: {{find_links: [{house}], no_index: true}}\n")
    return LockRequest(spec=spec, resolution=cu117_resolution(pip=("tinya", "tinyb>=1")),
                       output=tmp_path / "lockfiles" / "m2f-mini-cu117.conda-lock.yml",
                       channel_snapshot=SNAPSHOT, **kw)


def _pins(path: Path) -> dict[str, str]:
    return {p.name: p.version for p in read_lockfile(path).package if p.manager == "pip"}


@needs_snapshot
def test_unchanged_inputs_skip_uv_and_give_the_same_bytes(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    house = _wheelhouse(tmp_path / "wheels", {"tinya": "1.0", "tinyb": "1.0"})
    calls = UvCalls(monkeypatch)
    req = _local_req(tmp_path, house)
    lock(req)
    first = req.output.read_bytes()
    assert calls.online == 1
    assert envbuild_metadata(read_lockfile(req.output)).pypi_key
    lock(req)
    assert calls.online == 1 and calls.offline == 0  # the previous lockfile answered
    assert req.output.read_bytes() == first
    from dataclasses import replace

    lock(replace(req, refresh=True))
    assert calls.online == 2  # --refresh asks again, and gets the same answer
    assert req.output.read_bytes() == first


@needs_snapshot
def test_new_release_does_not_churn_a_relock(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    house = _wheelhouse(tmp_path / "wheels", {"tinya": "1.0", "tinyb": "1.0"})
    req = _local_req(tmp_path, house)
    lock(req)
    assert _pins(req.output) == {"tinya": "1.0", "tinyb": "1.0"}
    _wheelhouse(house, {"tinya": "2.0"})  # the index changed: the key changes, uv runs
    calls = UvCalls(monkeypatch)
    lock(req)
    assert calls.online == 1
    assert _pins(req.output) == {"tinya": "1.0", "tinyb": "1.0"}  # the previous pin holds
    req.output.unlink()
    lock(req)  # without a previous lockfile the newest release is taken
    assert _pins(req.output) == {"tinya": "2.0", "tinyb": "1.0"}


@needs_snapshot
def test_edited_lockfile_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    house = _wheelhouse(tmp_path / "wheels", {"tinya": "1.0", "tinyb": "1.0"})
    req = _local_req(tmp_path, house)
    lock(req)
    first = req.output.read_bytes()
    text = req.output.read_text()
    req.output.write_text(text.replace("version: '1.0'\n  manager: pip", "version: '9.0'\n"
                                       "  manager: pip", 1))
    calls = UvCalls(monkeypatch)
    lock(req)
    assert calls.online == 1  # the packages digest no longer matches: uv is asked
    assert req.output.read_bytes() == first


# ------------------------------------------------------------ offline first, with a fake uv

def _fake_uv(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str],
             offline_fails: bool = False) -> list[list[str]]:
    """``uv pip compile`` replaced by a fake that writes a pylock.toml of ``versions``."""
    seen: list[list[str]] = []

    def fake(argv: Any, **kw: Any) -> cmd.Completed:
        args = [str(a) for a in argv]
        seen.append(args)
        if "--offline" in args and offline_fails:
            from builder.errors import CommandError

            raise CommandError(args, 2, "not cached")
        rows = "".join(
            f'[[packages]]\nname = "{n}"\nversion = "{v}"\n'
            f'wheels = [{{ url = "https://files.example/{n}-{v}-py3-none-any.whl", '
            f'hashes = {{ sha256 = "{"a" * 64}" }} }}]\n\n' for n, v in versions.items())
        (Path(kw["cwd"]) / "pylock.toml").write_text('lock-version = "1.0"\n\n' + rows)
        return cmd.Completed(args, 0, "", "")

    monkeypatch.setattr(cmd, "run", fake)
    return seen


def _preq(**kw: Any) -> PypiRequest:
    return PypiRequest(requirements=("tinya",), python_version="3.8.19", **kw)


def test_offline_first_when_the_cache_is_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_uv(monkeypatch, {"tinya": "1.0"})
    first, _ = solve_pypi(_preq())
    assert ["--offline" in a for a in seen] == [False]  # nothing stamped yet: online
    assert "--python" in seen[0]  # uv is given this interpreter, never left to search
    second, _ = solve_pypi(_preq())
    assert ["--offline" in a for a in seen] == [False, True]  # uv's cache answered
    assert first == second


def test_stale_cache_asks_online(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_uv(monkeypatch, {"tinya": "1.0"})
    pypi_cache.write_stamps(_preq(), ["tinya"], now=time.time() - 2 * pypi_cache.DEFAULT_TTL_S)
    solve_pypi(_preq())
    assert ["--offline" in a for a in seen] == [True, False]  # offline answer refused


def test_exclude_newer_before_the_cache_is_answered_offline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_uv(monkeypatch, {"tinya": "1.0"})
    fetched = time.time() - 30 * 24 * 3600  # a month ago: far past the TTL
    pypi_cache.write_stamps(_preq(), ["tinya"], now=fetched)
    before = dt.datetime.fromtimestamp(fetched - 3600, tz=dt.timezone.utc)
    solve_pypi(_preq(exclude_newer=before))
    assert ["--offline" in a for a in seen] == [True]  # the page already lists all it may
    after = dt.datetime.fromtimestamp(fetched + 3600, tz=dt.timezone.utc)
    solve_pypi(_preq(exclude_newer=after))
    assert ["--offline" in a for a in seen] == [True, True, False]


def test_refresh_and_cache_miss_go_online(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_uv(monkeypatch, {"tinya": "1.0"}, offline_fails=True)
    pypi_cache.write_stamps(_preq(), ["tinya"])
    solve_pypi(_preq(refresh=True))
    assert ["--offline" in a for a in seen] == [False]
    solve_pypi(_preq())  # not in uv's cache: the offline try fails, the online one runs
    assert ["--offline" in a for a in seen] == [False, True, False]


def test_key_covers_every_input() -> None:
    base = pypi_cache.pypi_key(_preq())
    changed = [_preq(provided={"numpy": "1.24.4"}), _preq(index_url="https://mirror/simple"),
               _preq(exclude_newer=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)),
               PypiRequest(requirements=("tinya>=2",), python_version="3.8.19"),
               PypiRequest(requirements=("tinya",), python_version="3.9.1"),
               _preq(glibc="2.28"), _preq(no_index=True), _preq(find_links=("https://x/",))]
    keys = {pypi_cache.pypi_key(r) for r in changed}
    assert base not in keys and len(keys) == len(changed)
    assert pypi_cache.pypi_key(_preq(preferences=(("tinya", "1.0"),))) == base


# ------------------------------------------------------------------- real PyPI, every path

@pytest.mark.network
@needs_snapshot
def test_every_path_gives_the_bytes_of_a_full_online_lock(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    calls = UvCalls(monkeypatch)
    req = LockRequest(spec=mini_spec(), resolution=cu117_resolution(pip=("scipy", "shapely")),
                      output=tmp_path / "a" / "m2f-mini-cu117.conda-lock.yml",
                      channel_snapshot=SNAPSHOT)
    lock(req)  # a full online lock: an empty uv cache (this test's own HOME)
    online = req.output.read_bytes()
    assert (calls.online, calls.offline) == (1, 0)
    lock(req)  # unchanged inputs: no uv at all
    assert (calls.online, calls.offline) == (1, 0)
    assert req.output.read_bytes() == online
    other = LockRequest(spec=req.spec, resolution=req.resolution,
                        output=tmp_path / "b" / req.output.name, channel_snapshot=SNAPSHOT)
    lock(other)  # no previous lockfile: uv's cache answers offline
    assert (calls.online, calls.offline) == (1, 1)
    assert other.output.read_bytes() == online
    from dataclasses import replace

    lock(replace(other, refresh=True))
    assert (calls.online, calls.offline) == (2, 1)
    assert other.output.read_bytes() == online
