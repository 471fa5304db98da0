"""Failure diagnosis on build logs recorded from real failures (tests/data/build-logs/README.md)."""

from __future__ import annotations

import pytest

from builder.build.diagnose import diagnose, explain, load_signatures
from tests.helpers import DATA

LOGS = DATA / "build-logs"


@pytest.mark.parametrize(("log", "expected", "in_cause"), [
    ("unsupported-gnu-version.log", "unsupported-gnu-version", "gcc <= 15"),
    ("unsupported-arch-sm70.log", "unsupported-gpu-arch", "sm_70"),
    ("cuda-version-mismatch.log", "cuda-version-mismatch", "major version"),
    ("cannot-find-lcudart.log", "cannot-find-lcudart", "libcudart.so"),
    ("missing-cusparse-h.log", "missing-cuda-header", "cusparse.h"),
    ("deprecated-type-properties.log", "deprecated-type-properties", "tensor.type()"),
    ("cuda-home-none.log", "cuda-home-none", "CUDA_HOME"),
    ("empty-arch-list-no-gpu.log", "empty-arch-list", "TORCH_CUDA_ARCH_LIST"),
    ("import-undefined-symbol.log", "undefined-symbol", "envbuild_relop_missing"),
])
def test_recorded_logs(log: str, expected: str, in_cause: str) -> None:
    found = diagnose((LOGS / log).read_text())
    assert [d.id for d in found][:1] == [expected]
    assert in_cause in found[0].cause
    assert found[0].fix and found[0].evidence


def test_deprecated_type_properties_points_at_the_fixup() -> None:
    [d] = diagnose((LOGS / "deprecated-type-properties.log").read_text())
    assert "dispatch-scalar-type" in d.fix


def test_explain_has_the_tail_and_says_when_nothing_matched() -> None:
    text = explain("line one\nsomething odd happened\n")
    assert "no known failure signature" in text
    assert "something odd happened" in text


def test_every_signature_has_a_recorded_log_or_is_documented() -> None:
    ids = {s.id for s in load_signatures()}
    recorded = {d.id for log in LOGS.glob("*.log") for d in diagnose(log.read_text())}
    assert recorded <= ids
    assert len(recorded) >= 8
