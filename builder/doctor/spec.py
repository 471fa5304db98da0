"""The doctor's spec half: resolve the spec for this machine and check the result.

The resolver gets the detected GPU names and driver, so the Resolution (or the
conflict) is the one this machine would get.  Then every GPU's compute
capability is checked against the build's arch list and the toolkit's newest
sm, the driver against the CUDA floor, and the host compiler against nvcc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.doctor.checks import (
    Finding,
    Knowledge,
    arch_verdict,
    can_run_cuda,
    gpu_cc,
    parse_arch,
    vkey,
)
from builder.errors import ConflictError
from builder.host.models import HostFacts
from builder.matrix.arch import sm as arch_sm
from builder.resolve.resolution import Resolution


def spec_findings(spec: Path, cuda: str | None, host: HostFacts, know: Knowledge
                  ) -> tuple[list[Finding], dict[str, Any] | None]:
    """Findings for ``spec`` on this host, and the resolution as JSON (None on conflict)."""
    from builder.resolve.resolver import ResolveRequest, resolve
    from builder.spec.envspec import load_spec

    loaded = load_spec(spec)  # a SpecError propagates: bad input, exit 2
    drv = host.driver
    names = tuple(g.name for g in drv.gpus)
    try:
        res = resolve(loaded, ResolveRequest(cuda=cuda, gpus=names, driver=drv.driver_version))
    except ConflictError as exc:
        return [Finding("FAIL", "spec", f"{loaded.spec.name}: {exc.message}",
                        exc.hint or "try another --cuda")], None
    return resolution_findings(res, host, know) + env_findings(res, host, spec), res.to_json()


def env_findings(res: Resolution, host: HostFacts, spec: Path) -> list[Finding]:
    """The env's real torch, CUDA and ops against what the spec resolves to."""
    t = host.torch
    if t is None or not t.version:
        return []  # no prefix, or torch_findings already said why
    out: list[Finding] = []
    fix = f"re-install it for the spec: envbuild env {spec} --cuda {res.cuda} --prefix {t.prefix}"
    have = t.version.split("+")[0]
    if have != res.torch.split("+")[0]:
        out.append(Finding("FAIL", "env", f"{t.prefix} has torch {t.version}; the spec "
                           f"resolves to {res.torch}", fix))
    want_cuda = None if res.cuda == "cpu" else res.cuda
    if (t.cuda or None) != want_cuda:
        out.append(Finding("FAIL", "env", f"{t.prefix}'s torch is built for "
                           f"{'CUDA ' + t.cuda if t.cuda else 'CPU only'}; the spec resolves to "
                           f"{'CUDA ' + res.cuda if want_cuda else 'CPU only'}", fix))
    names = tuple(op.name for op in res.ops)
    from builder.host.envtorch import probe_modules

    found = probe_modules(t.prefix, names) or {}
    missing = [n for n in names if found.get(n) is False]
    if missing:
        out.append(Finding("FAIL", "env", f"op(s) not installed in {t.prefix}: "
                           f"{', '.join(missing)}",
                           f"envbuild build {spec} --prefix {t.prefix} --cuda {res.cuda}"))
    if not out:
        ops = f" and op(s) {', '.join(names)}" if names and found else ""
        out.append(Finding("OK", "env", f"{t.prefix}: torch {t.version} (CUDA "
                           f"{t.cuda or 'cpu'}){ops} match the spec"))
    return out


def resolution_findings(res: Resolution, host: HostFacts, know: Knowledge) -> list[Finding]:
    """Check one Resolution against the host's GPUs, driver and compiler."""
    out = [Finding("OK", "spec",
                   f"{res.name} resolves to torch {res.torch} + CUDA {res.cuda} "
                   f"(python {res.python}), arch list {';'.join(res.arch_list) or 'none'}")]
    out.extend(_driver_floor(res, host, know))
    out.extend(_gpu_archs(res, host, know))
    out.extend(_compiler(res, host))
    out.extend(Finding("WARN", "spec", w) for w in res.warnings)
    return out


def _driver_floor(res: Resolution, host: HostFacts, know: Knowledge) -> list[Finding]:
    drv = host.driver
    if res.cuda == "cpu":
        return []
    if not drv.driver_version:
        return [Finding("WARN", "driver", f"cannot check the CUDA {res.cuda} driver floor: "
                        "no driver here", "run `envbuild doctor SPEC` on the GPU machine")]
    level, why = can_run_cuda(drv.driver_version, drv.cuda_version, res.cuda, know)
    if res.driver_min and vkey(drv.driver_version) < vkey(res.driver_min):
        level, why = "FAIL", (f"CUDA {res.cuda} needs driver >= {res.driver_min}; "
                              f"this machine has {drv.driver_version}")
    fix = None if level == "OK" else (
        f"pick an older CUDA (<= {drv.cuda_version}) with --cuda, or upgrade the driver")
    return [Finding(level, "driver", why, fix)]


def _gpu_archs(res: Resolution, host: HostFacts, know: Knowledge) -> list[Finding]:
    out: list[Finding] = []
    toolkit = res.toolchain.nvcc_version if res.toolchain else None
    newest = know.max_sm(toolkit) if toolkit else None
    for g in host.driver.gpus:
        cc = gpu_cc(g, know)
        if cc is None:
            out.append(Finding("WARN", f"gpu {g.index}", f"{g.name}: compute capability unknown"))
            continue
        level, why = arch_verdict(cc, res.arch_list) if res.arch_list else (
            "WARN", "the resolution has no arch list")
        sm = arch_sm(cc)
        built = ";".join(res.arch_list) or "no arch list"
        parts = [f"{g.name} ({sm}), ops built for {built}: {why}"]
        fix = None
        cc_key, top = parse_arch(cc), parse_arch(newest) if newest else None
        if toolkit and cc_key and top and cc_key[:2] > top[:2]:
            parts.append(f"nvcc {toolkit} cannot compile {sm} (newest: sm_{top[0]}{top[1]})")
            fix = f"for native {sm} kernels choose a CUDA whose nvcc knows {sm} (--cuda)"
            level = "WARN" if level == "OK" else level
        if level == "FAIL":
            fix = fix or f"choose a --cuda whose torch build covers {sm}"
        elif level == "WARN" and fix is None:
            fix = f"works; for native {sm} kernels pick a newer --cuda"
        out.append(Finding(level, f"gpu {g.index}", "; ".join(parts), fix))
    return out


def _compiler(res: Resolution, host: HostFacts) -> list[Finding]:
    hc = res.host_compiler
    if res.toolchain is None:
        return []
    if hc.name != "g++":
        spec = hc.spec or f"{hc.name} <= {hc.max_major}"
        return [Finding("OK", "compiler",
                        f"the env brings its own host compiler ({spec}); system g++ not used")]
    gxx = host.gxx
    if gxx.major is None:
        return [Finding("FAIL", "compiler", "the build needs a system g++ and none was found",
                        f"install g++ {hc.min_major}..{hc.max_major}")]
    if not hc.min_major <= gxx.major <= hc.max_major:
        return [Finding("FAIL", "compiler",
                        f"g++ {gxx.version} is outside {hc.min_major}..{hc.max_major} "
                        f"required by nvcc {res.toolchain.nvcc_version}",
                        f"install g++ {hc.max_major} and export CXX=g++-{hc.max_major}")]
    return [Finding("OK", "compiler", f"g++ {gxx.version} fits nvcc {res.toolchain.nvcc_version}")]
