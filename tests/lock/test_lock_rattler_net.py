"""builder.lock.rattler_net: rattler reads credentialed channels, and no credential is
ever left in its repodata cache (nor in the private cache used for such channels)."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from builder.demo.localchannel import LocalChannel
from builder.lock.channels import plan_channels
from builder.lock.conda_layer import CondaSolveRequest
from builder.lock.rattler_net import needs_private_cache
from builder.lock.solve_rattler import RattlerSolver
from tests.helpers.reliability import serve_directory


def test_private_cache_only_for_credentialed_channels() -> None:
    def plan(url: str) -> bool:
        return needs_private_cache(plan_channels(["x"], channel_args=[url]).all_entries)

    assert plan("https://bob:pw@conda.example/chan")
    assert plan("https://conda.example/t/tok-123/chan")
    assert plan("https://conda.example/chan?token=abc")
    assert not plan("https://conda.example/chan")


def _files_with(root: Path, *needles: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file()
            and any(n.encode() in p.read_bytes() for n in needles)]


def test_credentialed_channels_solve_without_leaving_secrets(
        local: LocalChannel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """user:password@ and /t/<token>/ channels: the credentials are used (the server sees
    them), solved records carry none, and nothing on disk keeps them afterwards."""
    www = tmp_path / "www"
    shutil.copytree(local.channel, www / "chan")
    shutil.copytree(local.channel, www / "t" / "tok123secret" / "tchan")
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the private cache goes
    cache = Path(os.environ["ENVBUILD_HOME"]) / "rattler"
    with serve_directory(www) as server:
        auth = server.url.replace("http://", "http://bob:pa55w0rd@") + "/chan"
        token = f"{server.url}/t/tok123secret/tchan"
        for url in (auth, token, f"{server.url}/chan"):
            plan = plan_channels(["main"], channel_args=[url])
            req = CondaSolveRequest(specs=(f"{url}::python", "envbuild-demo-tool"), plan=plan)
            records = RattlerSolver().solve(req)
            assert {"python", "envbuild-demo-tool"} <= {r.name for r in records}
            assert not any("tok123secret" in r.url or "w0rd" in r.url for r in records)
            assert RattlerSolver().has_match(req, "envbuild-demo-tool")
    basic = base64.b64encode(b"bob:pa55w0rd").decode()
    assert any(a == f"Basic {basic}" for p, a in server.requests if p.startswith("/chan/"))
    assert any(p.startswith("/t/tok123secret/") for p, _ in server.requests)
    assert _files_with(cache, "pa55w0rd", basic, "tok123secret") == []
    assert _files_with(cache, "/chan")  # the credential-free channel is cached as usual
    assert list(scratch.iterdir()) == []  # private caches removed
