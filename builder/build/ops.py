"""Build one op: a list of named, timed steps.

``toolchain`` -> ``source-digest`` (also reads the source for automatic fixups and a GPU
gate) -> ``key`` -> (store miss: ``preflight`` -> ``copy`` -> ``fixups`` -> ``compile`` ->
``check-targets`` -> ``check-import`` -> publish) -> ``install``.

Every check runs on the candidate wheel inside the store's temp dir, before it is
published and before the prefix is touched: ``check-import`` unpacks it next to the
build and imports it (after torch) with the prefix's python.  A failed check publishes
nothing and leaves the prefix as it was, so the next run builds again.  A store hit is
import-checked the same way before it is installed (an entry that fails is evicted and
rebuilt once); install is skipped when the prefix already holds this exact build.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from builder import paths
from builder.build import checks
from builder.build.buildenv import build_env
from builder.build.ccache import summary as ccache_summary
from builder.build.diagnose import explain
from builder.build.fixups import PlannedFixup, apply_fixups, plan_fixups
from builder.build.gpugate import GpuGate, find_gate, gate_env
from builder.build.headers import header_preflight
from builder.build.preflight import Toolchain, full_preflight, quick_toolchain
from builder.build.store import KeyInputs, Store, StoreEntry, op_key
from builder.build.toolchain import find_cuobjdump
from builder.errors import CheckFailed, CommandError
from builder.models import Frozen as _Frozen
from builder.util.cmd import run
from builder.util.fs import atomic_write_text, remove_tree
from builder.util.hashing import default_source_exclude, tree_digest


class OpBuildRequest(_Frozen):
    """One op to build into one prefix."""

    name: str
    source_dir: Path  # the op's directory (the one with setup.py)
    prefix: Path
    arch_list: tuple[str, ...]
    fixups: tuple[str, ...] = ()  # requested (spec and matrix); more may be chosen from source
    skip_fixups: tuple[str, ...] = ()  # automatic fixups the spec switched off
    cxx_std: str | None = None  # from the resolution; else derived from torch's version
    require_cuobjdump: bool = False  # fail (not warn) when no cuobjdump can be found


class Step(_Frozen):
    """One named step and how long it took."""

    name: str
    seconds: float
    detail: str = ""


class OpBuildResult(_Frozen):
    """What happened: the key, the stored wheel, whether it was a hit, and every step."""

    name: str
    key: str
    wheel: Path
    cache_hit: bool
    installed: bool
    steps: tuple[Step, ...]
    warnings: tuple[str, ...]
    fixups_applied: tuple[PlannedFixup, ...] = ()
    gpu_gate: GpuGate | None = None


class BuildFailed(CheckFailed):
    """A compile failed; the message carries the diagnosis and the log tail."""


class _Steps:
    """Collects timed steps."""

    def __init__(self, op: str = "") -> None:
        self.op = op
        self.steps: list[Step] = []
        self.details: dict[str, str] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        from builder.util import progress

        start = time.perf_counter()
        try:
            with progress.stage("build", f"{self.op} {name}".strip()):
                yield
        finally:
            self.steps.append(Step(name=name, seconds=round(time.perf_counter() - start, 3),
                                   detail=self.details.pop(name, "")))


def _copy_source(src: Path, dest: Path) -> None:
    """Copy the op's tree without VCS data or stale build output (build/, *.so, *.egg-info)."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(src)
        return {n for n in names if default_source_exclude((rel / n).as_posix().lstrip("./"))}

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)


def key_inputs(req: OpBuildRequest, tc: Toolchain, source_digest: str,
               fixups: tuple[PlannedFixup, ...] = (), gate: GpuGate | None = None) -> KeyInputs:
    """The store key's inputs for this request and toolchain."""
    return KeyInputs(
        op=req.name, source_digest=source_digest, fixups=tuple(f.key for f in fixups),
        flags=(gate.key_flag(),) if gate else (),
        torch_version=tc.facts.torch_version or "", torch_cuda=tc.facts.torch_cuda or "",
        nvcc_version=tc.toolkit.full_version,
        compiler=f"{tc.compiler.cxx.name} {tc.compiler.version}",
        arch_list=req.arch_list, python_abi=tc.facts.soabi, cxx_std=tc.cxx_std,
    )


def _compile(req: OpBuildRequest, tc: Toolchain, out: Path, steps: _Steps,
             fixups: tuple[PlannedFixup, ...], gate: GpuGate | None) -> None:
    """Copy, fix up, compile and check inside the store's temp dir ``out``.

    On return ``out`` holds the checked wheel and ``build.log``, ready to publish.
    """
    work = out / "work"
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
    with steps.step("compile"):
        cmd: list[str | Path] = [tc.facts.python, "-m", "pip", "wheel", "--no-build-isolation",
                                 "--no-deps", "--no-index", "-v", "-w", out / "dist", src]
        try:
            run(cmd, cwd=src, env=env, log_path=log, echo=True)
        except CommandError as exc:
            raise _failure(req, log, exc, src) from None
        steps.details["compile"] = ccache_summary(work)
    wheels = sorted((out / "dist").glob("*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"expected one wheel from the build of {req.name}, got {wheels}")
    with steps.step("check-targets"):
        steps.details["check-targets"] = _check_targets(req, tc, wheels[0], work)
    with steps.step("check-import"):
        _check_candidate(tc, wheels[0], work / "candidate")
    shutil.move(str(wheels[0]), out / wheels[0].name)
    remove_tree(work, inside=out, ignore_errors=True)
    remove_tree(out / "dist", inside=out, ignore_errors=True)


def _check_targets(req: OpBuildRequest, tc: Toolchain, wheel: Path, work: Path) -> str:
    """cuobjdump the wheel's extensions; the tool is looked for in the toolkit, PATH, the
    prefix, the site dir torch comes from, and envbuild's own environment."""
    torch_site = tc.facts.torch_dir.parent if tc.facts.torch_dir else None
    tool = find_cuobjdump(tc.toolkit, tc.facts.site_packages, torch_site,
                          Path(sysconfig.get_paths()["purelib"]))
    if tool is None:
        if req.require_cuobjdump:
            raise CheckFailed("cuobjdump not found; cannot check the built sm targets",
                              hint="pip install nvidia-cuda-cuobjdump into the prefix")
        return "NOT CHECKED: no cuobjdump (toolkit, PATH, nvidia wheels, triton)"
    return f"{checks.check_targets(wheel, req.arch_list, tool, work)} (cuobjdump: {tool})"


def _prefix_env(tc: Toolchain) -> dict[str, str]:
    """The environment pip and python get in the prefix (nothing inherited by accident)."""
    return {"PATH": str(tc.prefix / "bin") + ":/usr/bin:/bin", "HOME": str(paths.home()),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}


def _check_candidate(tc: Toolchain, wheel: Path, where: Path) -> None:
    """Unpack ``wheel`` into ``where`` and import it there with the prefix's python."""
    checks.unpack_wheel(wheel, where)
    try:
        checks.check_import(tc.facts.python, checks.module_names(wheel), _prefix_env(tc),
                            where=where)
    finally:
        remove_tree(where, inside=where.parent, ignore_errors=True)


def _failure(req: OpBuildRequest, log: Path, exc: CommandError, copy: Path) -> BuildFailed:
    """Keep the log in ENVBUILD_HOME/logs and explain it."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else exc.stderr_tail
    keep = paths.home() / "logs" / f"{req.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(text, encoding="utf-8")
    return BuildFailed(f"building {req.name} failed (exit {exc.returncode})\n"
                       f"{explain(text, strip=str(copy))}\n"
                       f"full log: {keep}", hint="apply the fix named above and run build again")


def _installed_key(req: OpBuildRequest) -> str | None:
    """The store key of the build the prefix holds for this op, per its record."""
    record = req.prefix / ".envbuild" / "ops" / f"{req.name}.json"
    if not record.exists():
        return None
    key = json.loads(record.read_text()).get("key")
    return key if isinstance(key, str) else None


def _check_hit(tc: Toolchain, entry: StoreEntry, steps: _Steps) -> None:
    """Import-check a stored wheel before it is installed (outside the store: no lock)."""
    with steps.step("check-import"), tempfile.TemporaryDirectory(prefix="envbuild-check-") as d:
        _check_candidate(tc, entry.wheel, Path(d) / "candidate")


def _install(req: OpBuildRequest, tc: Toolchain, entry: StoreEntry, steps: _Steps) -> None:
    """pip-install the (already checked) stored wheel into the prefix and record it."""
    with steps.step("install"):
        run([tc.facts.python, "-m", "pip", "install", "--no-deps", "--force-reinstall",
             "--no-index", entry.wheel], env=_prefix_env(tc), echo=True)
    record = req.prefix / ".envbuild" / "ops" / f"{req.name}.json"
    atomic_write_text(record, json.dumps({"key": entry.key, "wheel": str(entry.wheel)},
                                         indent=2, sort_keys=True))


def build_op(req: OpBuildRequest, store: Store | None = None,
             log: Callable[[str], None] | None = None) -> OpBuildResult:
    """Build (or fetch from the store) and install one op; see the module docstring."""
    store = store or Store()
    steps = _Steps(req.name)
    with steps.step("toolchain"):
        tc = quick_toolchain(req.prefix, req.arch_list, req.cxx_std)
    with steps.step("source-digest"):
        digest = tree_digest(req.source_dir, default_source_exclude)
        fixups = plan_fixups(req.source_dir, tc.facts.torch_version or "", req.fixups,
                             req.skip_fixups)
        gate = find_gate(req.source_dir)
        steps.details["source-digest"] = _scan_detail(fixups, gate)
    inputs = key_inputs(req, tc, digest, fixups, gate)
    key = op_key(inputs)

    def build(out: Path) -> None:
        nonlocal tc
        with steps.step("preflight"):
            tc = full_preflight(tc)
            found = header_preflight(tc, req.source_dir, req.name)  # builder/build/headers.py
            tc = tc.model_copy(update={"warnings": (*tc.warnings, *found)})
        if log:
            log(f"building {req.name} for {';'.join(req.arch_list)} with nvcc "
                f"{tc.toolkit.full_version} ({tc.toolkit.root}), {inputs.compiler}"
                + (f"; {_scan_detail(fixups, gate)}" if fixups or gate else ""))
        _compile(req, tc, out, steps, fixups, gate)

    meta = {"inputs": inputs.model_dump(mode="json"), "schema": 1,
            "fixups_applied": [f.model_dump(mode="json") for f in fixups],
            "gpu_gate": gate.model_dump(mode="json") if gate else None}
    entry, hit = store.get_or_build(key, build, meta, log)
    installed = _installed_key(req) != key
    if installed:
        if hit:
            entry, hit = _recheck_hit(store, tc, entry, steps, build, meta, log)
        _install(req, tc, entry, steps)
    return OpBuildResult(name=req.name, key=key, wheel=entry.wheel, cache_hit=hit,
                         installed=installed, steps=tuple(steps.steps), warnings=tc.warnings,
                         fixups_applied=fixups, gpu_gate=gate)


def _scan_detail(fixups: tuple[PlannedFixup, ...], gate: GpuGate | None) -> str:
    parts = [f"fixup {f.key}{' (auto)' if f.automatic else ''}: {len(f.files)} file(s)"
             for f in fixups]
    if gate:
        parts.append(f"gpu gate at {', '.join(gate.found)}: {gate.mechanism}")
    return "; ".join(parts)


def _recheck_hit(store: Store, tc: Toolchain, entry: StoreEntry, steps: _Steps,
                 build: Callable[[Path], None], meta: dict[str, object],
                 log: Callable[[str], None] | None) -> tuple[StoreEntry, bool]:
    """Import-check a hit before installing it; a stored wheel that fails (published by an
    envbuild that checked after publishing) is evicted and rebuilt once, checked."""
    try:
        _check_hit(tc, entry, steps)
    except CheckFailed as exc:
        if log:
            log(f"stored build {entry.key[:12]} does not import ({exc.message.splitlines()[0]}); "
                "removing it and building again")
        store.evict(entry.key)
        return store.get_or_build(entry.key, build, meta, log)
    return entry, True
