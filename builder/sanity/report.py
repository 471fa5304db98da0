"""Run the kernel checks in a prefix and keep the report beside the env.

The checks run in the PREFIX's python (``run_checks.py`` shipped beside this
module), so they see exactly the torch and ops the env will use.  The report is
written to ``$PREFIX/.envbuild/sanity.json``; any FAIL makes it a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from builder.errors import CheckFailed
from builder.opbuild.toolchain import prefix_python
from builder.util.cmd import run
from builder.util.fs import atomic_write_text

SCRIPT = Path(__file__).with_name("run_checks.py")


class CheckRow(BaseModel):
    """One check on one device (device None: not device-specific, or skipped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str
    device: str | None
    status: Literal["PASS", "FAIL", "SKIPPED"]
    reason: str
    seconds: float
    op: str | None = None  # the op whose build this check tested (None: torch, or unrecorded)
    source: str | None = None  # "source NAME (URL or path @ commit)", from the op's record
    commit: str | None = None


class SanityReport(BaseModel):
    """Everything ``envbuild sanity`` prints and keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str
    python: str
    torch: str
    torch_cuda: str | None
    devices: list[dict[str, Any]]
    no_gpu_reason: str | None
    kinds: list[str]
    checks: list[CheckRow]

    @property
    def failed(self) -> bool:
        """True when any check FAILed (SKIPPED is not a failure, and never a PASS)."""
        return any(c.status == "FAIL" for c in self.checks)

    @property
    def summary(self) -> str:
        """``3 PASS, 0 FAIL, 2 SKIPPED`` style counts."""
        counts = {s: sum(1 for c in self.checks if c.status == s)
                  for s in ("PASS", "FAIL", "SKIPPED")}
        return ", ".join(f"{n} {s}" for s, n in counts.items())


def _env(prefix: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
            "ENVBUILD_SANITY_TRACE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = f"{prefix / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _recorded_ops(prefix: Path) -> list[dict[str, Any]]:
    """What run_checks.py needs of each op envbuild installed into ``prefix``."""
    from builder.opbuild.records import read_records

    return [{"op": r.op, "sanity": r.sanity, "modules": list(r.modules),
             "source": r.origin.describe(), "commit": r.origin.commit}
            for r in read_records(prefix)]


def run_sanity(prefix: Path, kinds: tuple[str, ...] = ()) -> SanityReport:
    """Run the checks in ``prefix`` (every op recorded there, or only ``kinds``) and write
    ``$PREFIX/.envbuild/sanity.json``."""
    py = prefix_python(prefix)
    args = [a for k in kinds for a in ("--check", k)]
    args += ["--ops", json.dumps(_recorded_ops(prefix))]
    res = run([py, SCRIPT, *args], env=_env(prefix), check=False, timeout=1800)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise CheckFailed(f"the sanity script failed in {prefix} (exit {res.returncode}): "
                          + "\n".join(res.stderr.strip().splitlines()[-15:]),
                          hint="does torch import in the prefix? try: "
                               f"{py} -c 'import torch'")
    data = json.loads(lines[-1])
    report = SanityReport(prefix=str(prefix), **data)
    atomic_write_text(prefix / ".envbuild" / "sanity.json",
                      json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True))
    return report


def table(report: SanityReport) -> str:
    """A plain-text table: check, device, status, the op and source tested, reason."""
    rows = [("CHECK", "DEVICE", "STATUS", "TESTED", "DETAIL")]
    rows += [(c.check, c.device or "-", c.status,
              f"{c.op} {c.source}" if c.op else (c.source or "-"), c.reason)
             for c in report.checks]
    if len(rows) == 1:
        rows.append(("(none)", "-", "SKIPPED", "-", "no known ops installed in this prefix"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    head = (f"torch {report.torch} (CUDA {report.torch_cuda}) in {report.prefix}; "
            + (", ".join(f"cuda:{d['index']} {d['name']}" for d in report.devices)
               or f"no GPU: {report.no_gpu_reason}"))
    return head + "\n" + "\n".join(lines)
