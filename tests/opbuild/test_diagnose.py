"""Failure diagnosis on build logs recorded from real failures (tests/data/build-logs/README.md)."""

from __future__ import annotations

import pytest

from builder.opbuild.diagnose import diagnose, explain, first_error, load_signatures
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
    ("setup-requires-visible-gpu.log", "setup-requires-visible-gpu", "CUDA is not available"),
    ("disk-full.log", "disk-full", "disk filled up"),
    ("wholepkg-type-dispatch.log", "deprecated-type-properties", "tensor.type()"),
    ("torch-th-removed.log", "torch-th-removed", "TH/TH.h"),
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


def test_the_gate_signature_knows_the_family_spellings() -> None:
    for message in ("NotImplementedError('Cuda is not availabel')",
                    "NotImplementedError: Cuda is not availabel",
                    "RuntimeError: CUDA is not available",
                    "NotImplementedError: No CUDA runtime is found. Please set FORCE_CUDA=1"):
        ids = [d.id for d in diagnose(f"Traceback (most recent call last):\n{message}\n")]
        assert ids == ["setup-requires-visible-gpu"], message
    assert diagnose("warning: CUDA is not available on this host\n") == []


# --- the first real error, before pip's wrapper text ----------------------------------------


def test_a_setup_py_traceback_is_found_above_pips_wrapper_text() -> None:
    log = (LOGS / "setup-requires-visible-gpu.log").read_text()
    first = first_error(log)
    assert first is not None and first.kind == "traceback"
    lines = first.excerpt.splitlines()
    assert "Traceback (most recent call last):" in first.excerpt
    assert lines[-1].strip() == "NotImplementedError: CUDA is not available"
    assert "No CUDA runtime is found" in first.excerpt  # context before the traceback
    assert "subprocess-exited-with-error" not in first.excerpt
    text = explain(log)
    assert text.index("NotImplementedError: CUDA is not available") < text.index(
        "note: This is an issue with the package mentioned above")
    assert text.startswith("first error (traceback, log line ")


def test_a_compiler_error_is_found_with_its_file_and_line() -> None:
    log = (LOGS / "wholepkg-type-dispatch.log").read_text()
    first = first_error(log, strip=_build_copy(log))
    assert first is not None and first.kind == "compiler"
    assert first.location is not None
    assert first.location.startswith("wholepkg/csrc/vision.cpp:7 (error reported in ")
    assert first.location.endswith("Dispatch.h:36)")
    assert "DeprecatedTypeProperties" in first.excerpt
    assert "Traceback" not in first.excerpt  # the compile error, not setup.py's own raise
    assert "Traceback" in log and log.index("Traceback") > log.index("DeprecatedTypeProperties")


def _build_copy(log: str) -> str:
    """The build copy's path as it appears in a recorded log (``.../work/src``)."""
    import re

    m = re.search(r"(/\S+/work/src)/", log)
    assert m, "no build copy path in the log"
    return m.group(1)


@pytest.mark.parametrize(("log", "kind", "needle"), [
    ("missing-cusparse-h.log", "compiler", "cusparse.h"),
    ("unsupported-arch-sm70.log", "compiler", "sm_70"),
    ("cannot-find-lcudart.log", "linker", "-lcudart"),
    ("deprecated-type-properties.log", "compiler", "DeprecatedTypeProperties"),
    ("disk-full.log", "os-error", "No space left on device"),
])
def test_the_first_error_of_each_recorded_log(log: str, kind: str, needle: str) -> None:
    first = first_error((LOGS / log).read_text())
    assert first is not None and first.kind == kind, first
    assert needle in first.excerpt


def test_no_first_error_in_a_clean_log_and_long_tracebacks_are_cut() -> None:
    assert first_error("building...\nok\n") is None
    frames = "".join(f'  File "x.py", line {i}, in f\n    f()\n' for i in range(40))
    first = first_error(f"Traceback (most recent call last):\n{frames}ValueError: bad\n")
    assert first is not None and first.excerpt.splitlines()[-1] == "ValueError: bad"
    assert "lines of frames" in first.excerpt and len(first.excerpt.splitlines()) <= 20


def test_context_lines_are_cut_and_stop_at_the_next_build_step() -> None:
    command = "  [1/2] /usr/bin/g++ " + "-I/some/include " * 100 + "-c k.cpp"
    log = "\n".join([command, "  FAILED: k.o",
                     "  k.cpp:3:10: fatal error: THC/THC.h: No such file or directory",
                     "      3 | #include <THC/THC.h>", "  [2/2] /usr/bin/g++ -c j.cpp",
                     "  compilation terminated."])
    first = first_error(log)
    assert first is not None and first.location == "k.cpp:3"
    lines = first.excerpt.splitlines()
    assert all(len(line) <= 250 for line in lines) and lines[0].endswith(" ...")
    assert lines[-1].strip() == "3 | #include <THC/THC.h>"  # not the next ninja step
    assert [d.id for d in diagnose(log)] == ["torch-th-removed"]
