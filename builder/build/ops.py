"""Build one op: a list of named, timed steps.

``toolchain`` -> ``source-digest`` -> ``key`` -> (store miss: ``preflight`` ->
``copy`` -> ``fixups`` -> ``compile`` -> ``check-targets`` -> publish) ->
``install`` -> ``check-import``.  A store hit skips straight to install, and
install is skipped when the prefix already holds this exact build.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from builder import paths
from builder.build import checks
from builder.build.buildenv import build_env
from builder.build.diagnose import explain
from builder.build.fixups import apply_fixups, fixup_keys
from builder.build.preflight import Toolchain, full_preflight, quick_toolchain
from builder.build.store import KeyInputs, Store, StoreEntry, op_key
from builder.build.toolchain import find_cuobjdump
from builder.errors import CheckFailed, CommandError
from builder.models import Frozen as _Frozen
from builder.util.cmd import run
from builder.util.fs import atomic_write_text
from builder.util.hashing import default_source_exclude, tree_digest


class OpBuildRequest(_Frozen):
    """One op to build into one prefix."""

    name: str
    source_dir: Path  # the op's directory (the one with setup.py)
    prefix: Path
    arch_list: tuple[str, ...]
    fixups: tuple[str, ...] = ()
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


class BuildFailed(CheckFailed):
    """A compile failed; the message carries the diagnosis and the log tail."""


class _Steps:
    """Collects timed steps."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.details: dict[str, str] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
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


def key_inputs(req: OpBuildRequest, tc: Toolchain, source_digest: str) -> KeyInputs:
    """The store key's inputs for this request and toolchain."""
    return KeyInputs(
        op=req.name, source_digest=source_digest, fixups=tuple(fixup_keys(req.fixups)),
        torch_version=tc.facts.torch_version or "", torch_cuda=tc.facts.torch_cuda or "",
        nvcc_version=tc.toolkit.full_version,
        compiler=f"{tc.compiler.cxx.name} {tc.compiler.version}",
        arch_list=req.arch_list, python_abi=tc.facts.soabi, cxx_std=tc.cxx_std,
    )


def _compile(req: OpBuildRequest, tc: Toolchain, out: Path, steps: _Steps) -> None:
    """Copy, fix up, compile and check inside the store's temp dir ``out``."""
    work = out / "work"
    src = work / "src"
    with steps.step("copy"):
        _copy_source(req.source_dir, src)
    with steps.step("fixups"):
        reports = apply_fixups(src, req.fixups)
        steps.details["fixups"] = "; ".join(f"{r.name}: {len(r.changed)} file(s)" for r in reports)
    log = out / "build.log"
    env = build_env(tc, work)
    with steps.step("compile"):
        cmd: list[str | Path] = [tc.facts.python, "-m", "pip", "wheel", "--no-build-isolation",
                                 "--no-deps", "--no-index", "-v", "-w", out / "dist", src]
        try:
            run(cmd, cwd=src, env=env, log_path=log, echo=True)
        except CommandError as exc:
            raise _failure(req, log, exc) from None
    wheels = sorted((out / "dist").glob("*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"expected one wheel from the build of {req.name}, got {wheels}")
    with steps.step("check-targets"):
        steps.details["check-targets"] = _check_targets(req, tc, wheels[0], work)
    shutil.move(str(wheels[0]), out / wheels[0].name)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out / "dist", ignore_errors=True)


def _check_targets(req: OpBuildRequest, tc: Toolchain, wheel: Path, work: Path) -> str:
    tool = find_cuobjdump(tc.toolkit, tc.facts.site_packages)
    if tool is None:
        if req.require_cuobjdump:
            raise CheckFailed("cuobjdump not found; cannot check the built sm targets",
                              hint="pip install nvidia-cuda-cuobjdump into the prefix")
        return "NOT CHECKED: no cuobjdump (toolkit, PATH, nvidia wheels, triton)"
    return checks.check_targets(wheel, req.arch_list, tool, work)


def _failure(req: OpBuildRequest, log: Path, exc: CommandError) -> BuildFailed:
    """Keep the log in ENVBUILD_HOME/logs and explain it."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else exc.stderr_tail
    keep = paths.home() / "logs" / f"{req.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(text, encoding="utf-8")
    return BuildFailed(f"building {req.name} failed (exit {exc.returncode})\n{explain(text)}\n"
                       f"full log: {keep}", hint="apply the fix named above and run build again")


def _install(req: OpBuildRequest, tc: Toolchain, entry: StoreEntry, steps: _Steps) -> bool:
    """pip-install the stored wheel into the prefix unless this exact build is there already."""
    record = req.prefix / ".envbuild" / "ops" / f"{req.name}.json"
    if record.exists() and json.loads(record.read_text()).get("key") == entry.key:
        return False
    env = {"PATH": str(tc.prefix / "bin") + ":/usr/bin:/bin", "HOME": str(paths.home()),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    with steps.step("install"):
        run([tc.facts.python, "-m", "pip", "install", "--no-deps", "--force-reinstall",
             "--no-index", entry.wheel], env=env, echo=True)
    with steps.step("check-import"):
        checks.check_import(tc.facts.python, checks.module_names(entry.wheel), env)
    atomic_write_text(record, json.dumps({"key": entry.key, "wheel": str(entry.wheel)},
                                         indent=2, sort_keys=True))
    return True


def build_op(req: OpBuildRequest, store: Store | None = None,
             log: Callable[[str], None] | None = None) -> OpBuildResult:
    """Build (or fetch from the store) and install one op; see the module docstring."""
    store = store or Store()
    steps = _Steps()
    with steps.step("toolchain"):
        tc = quick_toolchain(req.prefix, req.arch_list, req.cxx_std)
    with steps.step("source-digest"):
        digest = tree_digest(req.source_dir, default_source_exclude)
    inputs = key_inputs(req, tc, digest)
    key = op_key(inputs)

    def build(out: Path) -> None:
        nonlocal tc
        with steps.step("preflight"):
            tc = full_preflight(tc)
        if log:
            log(f"building {req.name} for {';'.join(req.arch_list)} with nvcc "
                f"{tc.toolkit.full_version} ({tc.toolkit.root}), {inputs.compiler}")
        _compile(req, tc, out, steps)

    meta = {"inputs": inputs.model_dump(mode="json"), "schema": 1}
    entry, hit = store.get_or_build(key, build, meta)
    installed = _install(req, tc, entry, steps)
    return OpBuildResult(name=req.name, key=key, wheel=entry.wheel, cache_hit=hit,
                         installed=installed, steps=tuple(steps.steps), warnings=tc.warnings)
