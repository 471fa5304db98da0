"""Parsing nvidia-smi's machine-readable outputs (pure functions, no processes).

We query ``--format=csv,noheader,nounits`` so every value is a bare number or
string; the columns are exactly :data:`QUERY_FIELDS`.  Drivers print ``[N/A]``,
``N/A`` or ``[Not Supported]`` for values they cannot read; those become None.
The banner of plain ``nvidia-smi`` carries the one fact the CSV query lacks: the
CUDA version the driver supports ("CUDA Version: 12.0"; R610+ drivers print
"CUDA UMD Version: 13.3").
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

from builder.host.models import GpuInfo

QUERY_FIELDS: tuple[str, ...] = (
    "index", "pci.bus_id", "name", "uuid", "compute_cap",
    "memory.total", "memory.used", "utilization.gpu", "driver_version",
)
# Drivers older than ~510 reject compute_cap; we retry without it.
QUERY_FIELDS_NO_CC: tuple[str, ...] = tuple(f for f in QUERY_FIELDS if f != "compute_cap")
APPS_FIELDS: tuple[str, ...] = ("gpu_bus_id", "pid", "used_memory")

_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]",
            "[insufficient permissions]"}
_CUDA_LINE = re.compile(r"CUDA(?: UMD)? Version:\s*(\d+\.\d+)")
_DRIVER_LINE = re.compile(r"(?:Driver|KMD) Version:\s*([\d.]+)")


class SmiParseError(ValueError):
    """nvidia-smi printed something we do not understand."""


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text.lower() in _MISSING else text


def _int(text: str) -> int | None:
    value = _value(text)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def normalize_bus_id(bus_id: str) -> str:
    """``0000:4e:00.0`` or ``00000000:4E:00.0`` -> ``00000000:4E:00.0``."""
    text = bus_id.strip()
    if text.count(":") == 2:
        domain, rest = text.split(":", 1)
        return f"{domain[-8:].upper().rjust(8, '0')}:{rest.upper()}"
    if text.count(":") == 1:
        return f"00000000:{text.upper()}"
    return text.upper()


def parse_query_gpu(text: str, fields: tuple[str, ...] = QUERY_FIELDS
                    ) -> tuple[list[GpuInfo], str | None]:
    """Rows of ``--query-gpu=<fields> --format=csv,noheader,nounits`` -> GPUs, driver version."""
    gpus: list[GpuInfo] = []
    driver: str | None = None
    for lineno, row in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(fields):
            raise SmiParseError(
                f"line {lineno}: expected {len(fields)} columns ({','.join(fields)}), "
                f"got {len(row)}: {','.join(row)!r}")
        rec = dict(zip(fields, (c.strip() for c in row), strict=True))
        index = _int(rec["index"])
        if index is None:
            raise SmiParseError(f"line {lineno}: no GPU index in {','.join(row)!r}")
        driver = driver or _value(rec.get("driver_version", ""))
        gpus.append(GpuInfo(
            index=index,
            pci_bus_id=normalize_bus_id(rec["pci.bus_id"]),
            name=rec["name"],
            uuid=rec["uuid"],
            compute_capability=_value(rec.get("compute_cap", "")),
            memory_total_mib=_int(rec["memory.total"]),
            memory_used_mib=_int(rec["memory.used"]),
            utilization_pct=_int(rec["utilization.gpu"]),
            process_count=None,
        ))
    return sorted(gpus, key=lambda g: g.index), driver


def parse_banner(text: str) -> tuple[str | None, str | None]:
    """Plain ``nvidia-smi`` output -> (driver version, CUDA version); None where absent."""
    cuda = _CUDA_LINE.search(text)
    driver = _DRIVER_LINE.search(text)
    return (driver.group(1) if driver else None, cuda.group(1) if cuda else None)


def parse_compute_apps(text: str) -> Counter[str]:
    """``--query-compute-apps=gpu_bus_id,pid,used_memory`` -> processes per bus id."""
    counts: Counter[str] = Counter()
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not row[0].strip() or row[0].strip().lower().startswith("no running"):
            continue
        counts[normalize_bus_id(row[0])] += 1
    return counts
