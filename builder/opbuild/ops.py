"""Build one op: a list of named, timed steps.

``toolchain`` -> ``source-digest`` (also reads the source for automatic fixups and a GPU
gate) -> ``key`` -> (store miss: ``preflight`` -> ``copy`` -> ``fixups`` -> ``compile`` ->
``check-targets`` -> ``check-deps`` -> ``check-import`` -> publish) -> install plan
(:mod:`install_plan`: collisions, dependencies) -> ``install``.

Every check runs on the candidate wheel inside the store's temp dir, before it is
published and before the prefix is touched: ``check-import`` unpacks it next to the
build and imports it (after torch) with the prefix's python.  A failed check publishes
nothing and leaves the prefix as it was, so the next run builds again.  A store hit is
import-checked the same way before it is installed (an entry that fails is evicted and
rebuilt once); install is skipped when the prefix already holds this exact build.

A CPU build (a CPU-only torch and no ``.cu`` source, see :mod:`preflight`) takes the same
steps without nvcc: its key records nvcc ``none`` and an empty arch list, and
``check-targets`` confirms the wheel has compiled extensions and no device code to check.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder import paths
from builder.errors import CheckFailed, CommandError
from builder.opbuild import checks, quarantine
from builder.opbuild.buildenv import build_env
from builder.opbuild.candidate import check_candidate, check_import_of, prefix_env
from builder.opbuild.ccache import find_ccache
from builder.opbuild.ccache import summary as ccache_summary
from builder.opbuild.collisions import wheel_dist
from builder.opbuild.diagnose import explain
from builder.opbuild.fixups import PlannedFixup, apply_fixups, plan_fixups
from builder.opbuild.gpugate import GpuGate, find_gate, gate_env
from builder.opbuild.headers import device_sources, header_preflight
from builder.opbuild.install_plan import check_plan
from builder.opbuild.opmodels import BuildFailed, OpBuildRequest, OpBuildResult, Step, Steps
from builder.opbuild.preflight import Toolchain, full_preflight, quick_toolchain
from builder.opbuild.records import OpRecord, read_record, write_record
from builder.opbuild.reproducible import (
    RECIPE,
    normalize_wheel,
    nvcc_flags,
    prefix_maps,
    reproducible_env,
)
from builder.opbuild.store import KeyInputs, Store, StoreEntry, op_key
from builder.util.cmd import run
from builder.util.fs import remove_tree
from builder.util.hashing import default_source_exclude, payload_digest, tree_digest

__all__ = ["BuildFailed", "OpBuildRequest", "OpBuildResult", "PreparedOp", "Step", "Steps",
           "build_op", "compile_wheel", "install_prepared", "prefix_env", "prepare_op"]


def _copy_source(src: Path, dest: Path) -> None:
    """Copy the op's tree without VCS data or stale build output (build/, *.so, *.egg-info)."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(src)
        return {n for n in names if default_source_exclude((rel / n).as_posix().lstrip("./"))}

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)


NO_NVCC = "none"  # the key's nvcc for a CPU build


def key_inputs(req: OpBuildRequest, tc: Toolchain, source_digest: str,
               fixups: tuple[PlannedFixup, ...] = (), gate: GpuGate | None = None) -> KeyInputs:
    """The store key's inputs for this request and toolchain."""
    return KeyInputs(
        op=req.name, source_digest=source_digest, fixups=tuple(f.key for f in fixups),
        torch_version=tc.facts.torch_version or "", torch_cuda=tc.facts.torch_cuda or "",
        nvcc_version=tc.toolkit.full_version if tc.toolkit else NO_NVCC,
        compiler=f"{tc.compiler.cxx.name} {tc.compiler.version}",
        arch_list=tc.arch_list if tc.cpu_only else req.arch_list, python_abi=tc.facts.soabi,
        cxx_std=tc.cxx_std,
        flags=(RECIPE, *_ccache_flag(), *((gate.key_flag(),) if gate else ())),
    )


def _ccache_flag() -> tuple[str, ...]:
    """ccache rewrites paths under the build dir to relative ones (``CCACHE_BASEDIR``), so
    a build through it differs in bytes from one without: the key says which it was."""
    return ("ccache=relative-paths",) if find_ccache() is not None else ()


def compile_wheel(req: OpBuildRequest, tc: Toolchain, out: Path, steps: Steps,
                  work: Path, fixups: tuple[PlannedFixup, ...] = (),
                  gate: GpuGate | None = None, uncached: bool = False) -> Path:
    """Copy, fix up and compile in the fixed dir ``work`` (emptied first; the caller holds
    its lock); returns the (normalised) wheel in ``out/dist`` with ``out/build.log`` beside
    it.  No checks: :func:`_compile` adds them.  ``uncached``: every object compiled anew,
    none taken from ccache (a reproducibility check must not compare a cache with itself).
    """
    try:
        remove_tree(work, inside=work.parent)
        work.mkdir(parents=True)
    except OSError as exc:  # a killed build of another store member left it behind
        raise CheckFailed(f"cannot empty the build dir {work}: {exc}",
                          hint="it is left over from a killed build by another user of this "
                               "store; they (or the store's owner) can remove it") from None
    src = work / "src"
    with steps.step("copy"):
        _copy_source(req.source_dir, src)
    with steps.step("fixups"):
        reports = apply_fixups(src, [f.name for f in fixups])
        steps.details["fixups"] = "; ".join(f"{r.name}: {len(r.changed)} file(s)" for r in reports)
    log = out / "build.log"
    env = build_env(tc, work)
    if gate is not None:
        env = gate_env(env, work)
    nvcc_extra, not_reproducible = nvcc_flags(tc.toolkit.nvcc if tc.toolkit else None)
    env.update(reproducible_env(_path_maps(tc, work), env, nvcc_extra))
    if uncached:  # compiled anew through the same ccache (which rewrites paths) as the first
        env["CCACHE_RECACHE"] = "1"
    steps.details["compile"] = not_reproducible or ""
    with steps.step("compile"):
        cmd: list[str | Path] = [tc.facts.python, "-m", "pip", "wheel", "--no-build-isolation",
                                 "--no-deps", "--no-index", "-v", "-w", out / "dist", src]
        try:
            run(cmd, cwd=src, env=env, log_path=log, echo=True)
        except CommandError as exc:
            raise _failure(req, log, exc, src) from None
        steps.details["compile"] = "; ".join(p for p in (ccache_summary(work),
                                                          not_reproducible) if p)
    wheels = sorted((out / "dist").glob("*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"expected one wheel from the build of {req.name}, got {wheels}")
    normalize_wheel(wheels[0])
    return wheels[0]


def build_ident(inputs: KeyInputs) -> str:
    """The name of the fixed build dir of an op's source: sha256 of the explicit payload
    ``{"schema": 1, "op", "source", "fixups"}`` (the key without the toolchain and arches)."""
    return payload_digest({"schema": 1, "op": inputs.op, "source": inputs.source_digest,
                           "fixups": list(inputs.fixups)})[:32]


def _compile(req: OpBuildRequest, tc: Toolchain, out: Path, steps: Steps, key: str,
             store: Store, ident: str, fixups: tuple[PlannedFixup, ...],
             gate: GpuGate | None) -> None:
    """Compile in the key's fixed build dir, then check, into the store's temp dir ``out``.

    On return ``out`` holds the checked wheel and ``build.log``, ready to publish.  A check
    that fails after the compile quarantines the wheel and log (:mod:`quarantine`).
    """
    with store.build_lock(ident) as work:
        try:
            wheel = compile_wheel(req, tc, out, steps, work, fixups, gate)
        finally:
            remove_tree(work, inside=store.root)
    check_candidate(req, tc, wheel, out, steps, key, store.root)


def _path_maps(tc: Toolchain, work: Path) -> list[tuple[Path, str]]:
    """The build dir, prefix, site dirs and toolkit, each mapped to a fixed name."""
    sites = [tc.facts.site_packages]
    if tc.facts.torch_dir is not None and tc.facts.torch_dir.parent not in sites:
        sites.append(tc.facts.torch_dir.parent)
    return prefix_maps(work, tc.prefix, sites, tc.toolkit.root if tc.toolkit else None)


def _failure(req: OpBuildRequest, log: Path, exc: CommandError, copy: Path) -> BuildFailed:
    """Keep the log in ENVBUILD_HOME/logs and explain it."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else exc.stderr_tail
    keep = paths.home() / "logs" / f"{req.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(text, encoding="utf-8")
    return BuildFailed(f"building {req.name} failed (exit {exc.returncode})\n"
                       f"{explain(text, strip=str(copy))}\n"
                       f"full log: {keep}", hint="apply the fix named above and run build again")


def _check_hit(req: OpBuildRequest, tc: Toolchain, entry: StoreEntry, steps: Steps) -> None:
    """Import-check a stored wheel before it is installed (outside the store: no lock)."""
    with steps.step("check-import"), tempfile.TemporaryDirectory(prefix="envbuild-check-") as d:
        check_import_of(req, tc, entry.wheel, Path(d) / "candidate")


def _install(p: PreparedOp) -> None:
    """pip-install the (already checked) stored wheel into the prefix and record it."""
    req, tc, entry = p.req, p.tc, p.entry
    with p.steps.step("install"):
        run([tc.facts.python, "-m", "pip", "install", "--no-deps", "--force-reinstall",
             "--no-index", entry.wheel], env=prefix_env(tc), echo=True)
    write_record(req.prefix, OpRecord(
        key=entry.key, wheel=str(entry.wheel), op=req.name, wheel_sha256=entry.sha256,
        dist=wheel_dist(entry.wheel), modules=tuple(checks.module_names(entry.wheel)),
        sanity=req.sanity, origin=req.origin))


@dataclass
class PreparedOp:
    """An op whose checked wheel is in the store, not yet installed (see :func:`prepare_op`)."""

    req: OpBuildRequest
    tc: Toolchain
    entry: StoreEntry
    hit: bool
    needs_install: bool
    steps: Steps
    rechecked: bool = False
    fixups: tuple[PlannedFixup, ...] = ()
    gate: GpuGate | None = None
    build_ident: str = ""  # which fixed build dir the op's source compiles in

    def result(self) -> OpBuildResult:
        """The result as ``envbuild build`` reports it."""
        return OpBuildResult(name=self.req.name, key=self.entry.key, wheel=self.entry.wheel,
                             cache_hit=self.hit, installed=self.needs_install,
                             wheel_sha256=self.entry.sha256, rechecked=self.rechecked,
                             steps=tuple(self.steps.steps), warnings=self.tc.warnings,
                             fixups_applied=self.fixups, gpu_gate=self.gate)


def prepare_op(req: OpBuildRequest, store: Store | None = None,
               log: Callable[[str], None] | None = None) -> PreparedOp:
    """Build the op (or take it from the store, or re-check its quarantined build); the
    prefix is not touched.  A hit that will be installed is import-checked first."""
    store = store or Store()
    steps = Steps(req.name)
    with steps.step("toolchain"):
        tc = quick_toolchain(req.prefix, req.arch_list, req.cxx_std,
                             device_code=bool(device_sources(req.source_dir)))
    with steps.step("source-digest"):
        digest = tree_digest(req.source_dir, default_source_exclude)
        fixups = plan_fixups(req.source_dir, tc.facts.torch_version or "", req.fixups,
                             req.skip_fixups)
        gate = find_gate(req.source_dir)
        steps.details["source-digest"] = _scan_detail(fixups, gate)
    inputs = key_inputs(req, tc, digest, fixups, gate)
    key = op_key(inputs)
    ident = build_ident(inputs)
    if not req.origin.digest:  # the record says which tree was built, whatever its source
        req = req.model_copy(update={"origin": req.origin.model_copy(update={"digest": digest})})
    rechecked = False

    def build(out: Path) -> None:
        nonlocal tc, rechecked
        kept = quarantine.kept(store.root, key)
        if kept is not None:
            if log:
                log(f"{req.name}: checking the kept build {key[:12]} again (it failed "
                    f"{kept.check} before) instead of compiling")
            rechecked = True
            check_candidate(req, tc, quarantine.restore(kept, out), out, steps, key, store.root,
                            kept=True)
            return
        with steps.step("preflight"):
            tc = full_preflight(tc)
            found = header_preflight(tc, req.source_dir, req.name)  # builder/opbuild/headers.py
            tc = tc.model_copy(update={"warnings": (*tc.warnings, *found)})
        if log:
            target = (f"{';'.join(req.arch_list)} with nvcc {tc.toolkit.full_version} "
                      f"({tc.toolkit.root}),"
                      if tc.toolkit else "the CPU (no device code) with")
            log(f"building {req.name} for {target} {inputs.compiler}"
                + (f"; {_scan_detail(fixups, gate)}" if fixups or gate else ""))
        _compile(req, tc, out, steps, key, store, ident, fixups, gate)

    meta = {"inputs": inputs.model_dump(mode="json"), "schema": 1,
            "fixups_applied": [f.model_dump(mode="json") for f in fixups],
            "gpu_gate": gate.model_dump(mode="json") if gate else None}
    entry, hit = store.get_or_build(key, build, meta, log)
    if not hit:
        quarantine.release(store.root, key)
    record = read_record(req.prefix, req.name)
    needs_install = record is None or record.key != key
    if needs_install and hit:
        entry, hit = _recheck_hit(store, req, tc, entry, steps, build, meta, log)
    return PreparedOp(req=req, tc=tc, entry=entry, hit=hit, needs_install=needs_install,
                      steps=steps, rechecked=rechecked, fixups=fixups, gate=gate,
                      build_ident=ident)


def _scan_detail(fixups: tuple[PlannedFixup, ...], gate: GpuGate | None) -> str:
    parts = [f"fixup {f.key}{' (auto)' if f.automatic else ''}: {len(f.files)} file(s)"
             for f in fixups]
    if gate:
        parts.append(f"gpu gate at {', '.join(gate.found)}: {gate.mechanism}")
    return "; ".join(parts)


def install_prepared(prepared: list[PreparedOp]) -> list[OpBuildResult]:
    """Check the install plan (collisions, dependencies), then install what needs it."""
    check_plan(prepared)
    for p in prepared:
        if p.needs_install:
            _install(p)
    return [p.result() for p in prepared]


def build_op(req: OpBuildRequest, store: Store | None = None,
             log: Callable[[str], None] | None = None) -> OpBuildResult:
    """Build (or fetch from the store) and install one op; see the module docstring."""
    return install_prepared([prepare_op(req, store, log)])[0]


def _recheck_hit(store: Store, req: OpBuildRequest, tc: Toolchain, entry: StoreEntry,
                 steps: Steps, build: Callable[[Path], None], meta: dict[str, object],
                 log: Callable[[str], None] | None) -> tuple[StoreEntry, bool]:
    """Import-check a hit before installing it; a stored wheel that fails (published by an
    envbuild that checked after publishing) is evicted and rebuilt once, checked."""
    try:
        _check_hit(req, tc, entry, steps)
    except CheckFailed as exc:
        if log:
            log(f"stored build {entry.key[:12]} does not import ({exc.message.splitlines()[0]}); "
                "removing it and building again")
        store.evict(entry.key)
        return store.get_or_build(entry.key, build, meta, log)
    return entry, True
