"""The default conda solver: py-rattler, in process.

Snapshot channels are read as ``SparseRepoData`` bound to the channel's *real*
URL, so solved records carry real download URLs; live channels and mirrors go
through a rattler ``Gateway`` whose cache lives under ``$ENVBUILD_HOME/rattler``
(credentials kept out of it: see :mod:`builder.lock.rattler_net`).
Strict channel priority, highest versions, ``exclude_newer`` as a timestamp
cutoff (records without a timestamp are kept: nothing can be said about them).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from builder.errors import ConflictError
from builder.lock.channels import ChannelEntry, ChannelPlan, ChannelUnavailable
from builder.lock.conda_layer import CondaRecord, CondaSolveRequest
from builder.lock.rattler_net import live_gateway
from builder.util.redact import redact

MAX_EXPLAIN_LINES = 40
_sparse_cache: dict[tuple[str, str, str], Any] = {}


def _sparse(entry: ChannelEntry, subdir: str) -> Any | None:
    """``SparseRepoData`` of a snapshot channel (cached per process: loading is lazy)."""
    from rattler import Channel, SparseRepoData

    path = entry.repodata(subdir)
    if path is None:
        return None
    key = (entry.fetch_url, subdir, str(path))
    if key not in _sparse_cache:
        _sparse_cache[key] = SparseRepoData(Channel(entry.fetch_url), subdir, path)
    return _sparse_cache[key]


def _sparse_sources(plan: ChannelPlan, subdirs: Sequence[str]) -> list[Any]:
    return [s for e in plan.all_entries for sd in subdirs if (s := _sparse(e, sd)) is not None]


def _virtual(vps: dict[str, str] | Any) -> list[Any]:
    from rattler import GenericVirtualPackage, PackageName, Version
    from rattler.package.build_string import BuildString

    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString("0"))
            for n, v in sorted(vps.items())]


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value else None


def to_record(rec: Any) -> CondaRecord:
    """A rattler ``RepoDataRecord`` as our :class:`CondaRecord` (credentials removed)."""
    ts = rec.timestamp
    return CondaRecord(
        name=rec.name.normalized, version=str(rec.version), build=str(rec.build),
        build_number=int(rec.build_number), subdir=str(rec.subdir),
        url=redact(str(rec.url)), channel=redact(str(rec.channel)).rstrip("/"),
        md5=_hex(rec.md5), sha256=_hex(rec.sha256), depends=tuple(rec.depends),
        timestamp_ms=int(ts.timestamp() * 1000) if ts is not None else None,
    )


class RattlerSolver:
    """py-rattler in process (see module docstring)."""

    name = "rattler"

    def unavailable_reason(self) -> str | None:
        return None

    def solve(self, req: CondaSolveRequest) -> list[CondaRecord]:
        """Solve ``req``; an unsatisfiable request becomes an explained ConflictError."""
        from rattler import MatchSpec
        from rattler.exceptions import SolverError

        specs = [MatchSpec(s) for s in req.specs]
        try:
            records = asyncio.run(self._solve(req, specs))
        except SolverError as exc:
            raise explain_unsat(self, req, str(exc)) from None
        return sorted((to_record(r) for r in records), key=lambda r: r.name)

    async def _solve(self, req: CondaSolveRequest, specs: list[Any]) -> list[Any]:
        from rattler import solve, solve_with_sparse_repodata

        common: dict[str, Any] = {
            "virtual_packages": _virtual(req.virtual_packages),
            "exclude_newer": req.exclude_newer,
            "timestamp_policy": "allow-missing",
        }
        if req.plan.snapshot is not None:
            return list(await solve_with_sparse_repodata(
                specs, _sparse_sources(req.plan, req.subdirs), **common))
        try:
            with live_gateway(req.plan.all_entries) as (channels, gateway):
                return list(await solve(channels, specs, gateway=gateway,
                                        platforms=[*req.subdirs],  # type: ignore[list-item]
                                        **common))
        except Exception as exc:
            if type(exc).__name__ in {"GatewayError", "FetchRepoDataError", "IoError"}:
                raise _unreachable(req.plan, str(exc)) from None
            raise

    def has_match(self, req: CondaSolveRequest, spec: str) -> bool:
        """True when some channel of the plan holds a record matching ``spec``."""
        return bool(self.matching(req, spec))

    def matching(self, req: CondaSolveRequest, spec: str) -> list[Any]:
        """Records matching ``spec`` (honouring its ``channel::``) in the plan's channels."""
        from rattler import MatchSpec, PackageName

        channel, _, rest = spec.rpartition("::")
        ms = MatchSpec(rest)
        entries = [e for e in req.plan.all_entries
                   if not channel or channel in (e.name, e.url, e.fetch_url)]
        if channel and channel in req.plan.missing:
            return []
        sub = ChannelPlan(req.plan.kind, tuple(entries), req.plan.snapshot)
        name = ms.name.normalized if hasattr(ms.name, "normalized") else str(ms.name)
        if req.plan.snapshot is not None:
            found: list[Any] = []
            for source in _sparse_sources(sub, req.subdirs):
                found.extend(source.load_records(PackageName(name)))
        else:
            found = self._query_live(sub, req.subdirs, name)
        return [r for r in found if ms.matches(r)]

    def _query_live(self, plan: ChannelPlan, subdirs: Sequence[str], name: str) -> list[Any]:
        try:
            with live_gateway(plan.all_entries) as (channels, gateway):
                per_channel = asyncio.run(gateway.query(channels, list(subdirs), [name],
                                                        recursive=False))
        except Exception as exc:  # noqa: BLE001 - rattler raises several network types
            raise _unreachable(plan, str(exc)) from None
        return [r for recs in per_channel for r in recs if r.name.normalized == name]


def _unreachable(plan: ChannelPlan, detail: str) -> ChannelUnavailable:
    url_match = re.search(r"https?://\S+|file://\S+", detail)
    which = redact(url_match.group(0)) if url_match else plan.describe()
    return ChannelUnavailable(
        f"cannot read conda channel repodata ({which}): {redact(detail).splitlines()[0]}",
        hint="use a reachable mirror (--channel NAME=URL or --channel URL; for a whole team "
             "ENVBUILD_CHANNEL_ALIAS=URL) or an offline snapshot (lock --channel-snapshot DIR); "
             "`make demo` runs every stage with no conda channel at all")


def explain_unsat(solver: RattlerSolver, req: CondaSolveRequest, text: str) -> ConflictError:
    """The solver's explanation in the spec's terms: which key, which package, what works."""
    from rattler import MatchSpec

    body = redact(text).replace("Cannot solve the request because of: ", "").strip()
    lines = body.splitlines()
    if len(lines) > MAX_EXPLAIN_LINES:
        lines = lines[:MAX_EXPLAIN_LINES] + [f"... ({len(lines) - MAX_EXPLAIN_LINES} more lines)"]
    involved = []
    for spec in req.specs:
        name = str(MatchSpec(spec.rpartition("::")[2]).name.normalized)
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", body):
            involved.append((spec, name))
    involved = involved or [(s, str(MatchSpec(s.rpartition("::")[2]).name.normalized))
                            for s in req.specs]
    blame = [f"  {spec}  <- {req.origins.get(spec, 'added by envbuild')}"
             for spec, _ in involved]
    alternatives = []
    for spec, name in involved[:6]:
        versions = _available_versions(solver, req, name)
        line = f"{name}: the channels have " + (", ".join(versions) if versions
                                                 else "no records at all")
        build = spec.rpartition("::")[2].split()[2:3]
        if build and versions:
            with_build = _available_versions(solver, req, f"{name} * {build[0]}")
            line += (f"; with a {build[0]} build: " + (", ".join(with_build) or "none"))
        alternatives.append(line)
    message = (f"the conda packages for {req.context or 'this spec'} cannot be solved from "
               f"{req.plan.describe()}:\n" + "\n".join("  " + ln for ln in lines)
               + "\nrequested by:\n" + "\n".join(blame))
    return ConflictError(message, constraint=involved[0][0] if involved else "conda",
                         alternatives=alternatives)


def _available_versions(solver: RattlerSolver, req: CondaSolveRequest, name: str,
                        limit: int = 12) -> list[str]:
    from rattler import Version

    try:
        records = solver.matching(req, name)
    except Exception:  # noqa: BLE001 - explanations must never fail the explanation
        return []
    versions = sorted({str(r.version) for r in records}, key=Version)
    return versions[-limit:]


def clear_cache() -> None:
    """Forget loaded snapshot repodata (tests, benchmarks)."""
    _sparse_cache.clear()
