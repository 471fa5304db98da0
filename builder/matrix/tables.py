"""Readable tables of the matrix for ``envbuild matrix`` (filterable by torch, CUDA, GPU)."""

from __future__ import annotations

from collections.abc import Sequence

from builder.errors import UsageError
from builder.matrix.load import load_matrix
from builder.matrix.models import Matrix, TorchRelease
from builder.matrix.query import (
    cuda_builds,
    cxx_std,
    family_floor,
    gpu_lookup,
    min_cuda_for,
    unknown_gpu_hint,
)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain fixed-width table (no colour: output is often piped or pasted)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(out)


def _span(versions: Sequence[str]) -> str:
    return f"{versions[0]}-{versions[-1]}" if len(versions) > 1 else "".join(versions)


def _torch_rows(m: Matrix, torch: str | None, cuda: str | None) -> list[list[str]]:
    rows = []
    for rel in m.torch.releases:
        if torch and not (rel.torch == torch or rel.torch.startswith(torch.rstrip(".") + ".")):
            continue
        if cuda and not any(cuda in cuda_builds(rel, p) for p in ("pytorch", "conda-forge",
                                                                    "pypi")):
            continue
        rows.append(_torch_row(m, rel))
    return rows


def _torch_row(m: Matrix, rel: TorchRelease) -> list[str]:
    pytorch = ", ".join(rel.pytorch) or "-"
    if rel.pytorch and rel.pytorch_python:
        pytorch += f" (py {_span(rel.pytorch_python)})"
    return [rel.torch, rel.torchvision, _span(rel.python), pytorch,
            ", ".join(rel.conda_forge) or "-", rel.pypi_default or "-",
            ", ".join(rel.wheel_index) or "-", cxx_std(m, rel.torch).std, rel.trust]


def _cuda_rows(m: Matrix, cuda: str | None) -> list[list[str]]:
    rows = []
    for c in m.cuda.releases:
        if cuda and c.cuda != cuda:
            continue
        nvcc = m.nvcc_row(c.cuda)
        gcc = f"<= {c.gcc_max}"
        if c.torch_gcc:
            gcc += f" (torch {c.torch_gcc[0]}..{c.torch_gcc[1] - 1})"
        newest = [s for s in c.sm if not s.endswith("a")]
        rows.append([c.cuda, c.driver_min, family_floor(m, c.cuda) or "-", gcc,
                     f"{newest[0]}..{newest[-1]}", nvcc.nvcc if nvcc else "-"])
    return rows


def _gpu_section(m: Matrix, gpu: str) -> str:
    if not gpu.strip():
        rows = [[row.cc, row.model, "; ".join(row.names)] for row in m.gpus.gpus]
        return "GPUs (names as nvidia-smi prints them)\n" + table(
            ["cc", "model", "nvidia-smi names"], rows)
    row = gpu_lookup(m, gpu)
    if row is None:
        raise UsageError(f"unknown GPU name {gpu!r}", hint=unknown_gpu_hint(m, gpu))
    first = min_cuda_for(m, row.cc)
    lines = [f"{gpu}: compute capability {row.cc} (sm_{row.cc.replace('.', '')}), "
             f"matched as {row.model!r}",
             f"  nvcc targets it natively from CUDA {first.cuda if first else '?'}"]
    return "\n".join(lines)


def _targets(m: Matrix, cuda: str, cc: str) -> bool:
    row = next(c for c in m.cuda.releases if c.cuda == cuda)
    return cc in row.sm


def _check_filters(m: Matrix, torch: str | None, cuda: str | None) -> None:
    """Unknown torch or CUDA versions are bad input, with the closest known ones."""
    import difflib

    torches = [r.torch for r in m.torch.releases]
    if torch and not any(t == torch or t.startswith(torch.rstrip(".") + ".") for t in torches):
        close = difflib.get_close_matches(torch, torches, n=3, cutoff=0.5)
        raise UsageError(f"--torch {torch}: no torch release in the matrix matches",
                         hint=(f"did you mean {' or '.join(close)}? " if close else "")
                         + f"known: {torches[0]} .. {torches[-1]} (`envbuild matrix`)")
    cudas = [c.cuda for c in m.cuda.releases]
    if cuda and cuda not in cudas:
        close = difflib.get_close_matches(cuda, cudas, n=3, cutoff=0.5)
        raise UsageError(f"--cuda {cuda}: not a CUDA version the matrix knows",
                         hint=(f"did you mean {' or '.join(close)}? " if close else "")
                         + f"known: {', '.join(cudas)}")


def render_tables(*, torch: str | None = None, cuda: str | None = None,
                  gpu: str | None = None) -> str:
    """All tables the filters leave, as one string.

    A torch or CUDA filter that matches nothing is bad input (:class:`UsageError`, with
    the closest known versions).  ``gpu`` alone shows that GPU and the CUDA toolkits
    that target it natively, nothing else.
    """
    m = load_matrix()
    parts = []
    if gpu is not None:
        parts.append(_gpu_section(m, gpu))
        if gpu.strip() and not (torch or cuda):
            row = gpu_lookup(m, gpu)
            assert row is not None  # _gpu_section raised otherwise
            rows = [r for r in _cuda_rows(m, None) if _targets(m, r[0], row.cc)]
            parts.append(f"CUDA toolkits that target compute capability {row.cc} natively\n"
                         + table(["cuda", "min driver", "minor-compat floor", "host gcc",
                                  "sm targets", "conda nvcc"], rows))
            parts.append(f"matrix {m.version}; sources and trust per row: "
                         "builder/matrix/data/*.yaml")
            return "\n\n".join(parts)
    _check_filters(m, torch, cuda)
    torch_rows = _torch_rows(m, torch, cuda)
    if torch_rows:
        parts.append("torch releases (CUDA builds per provider)\n" + table(
            ["torch", "vision", "python", "pytorch channel", "conda-forge", "PyPI default",
             "wheel index", "C++", "trust"], torch_rows))
    elif torch or cuda:
        parts.append(f"no torch release matches torch={torch or '*'} cuda={cuda or '*'}")
    cuda_rows = _cuda_rows(m, cuda)
    if cuda_rows and not (torch and not cuda):
        parts.append("CUDA toolkits\n" + table(
            ["cuda", "min driver", "minor-compat floor", "host gcc", "sm targets",
             "conda nvcc"], cuda_rows))
    if not (torch or cuda or gpu is not None):
        parts.append("source fixups\n" + table(
            ["fixup", "torch", "applies to", "why"],
            [[f.name, f.torch or "opt-in", ", ".join((*f.ops, *f.sanity)) or "-", f.why]
             for f in m.sources.fixups]))
        parts.append("source pins\n" + table(
            ["repository", "revs", "pip", "why"],
            [[p.repo, ", ".join(r[:8] for r in p.revs) if p.revs else "any",
              ", ".join(p.pip), p.why] for p in m.sources.pins]))
    parts.append(f"matrix {m.version}; sources and trust per row: builder/matrix/data/*.yaml")
    return "\n\n".join(parts)


TORCH_HEADERS = ("torch", "torchvision", "python", "pytorch_channel", "conda_forge",
                 "pypi_default", "wheel_index", "cxx_std", "trust")
CUDA_HEADERS = ("cuda", "driver_min", "minor_compat_floor", "host_gcc", "sm_targets",
                "conda_nvcc")


def matrix_json(*, torch: str | None = None, cuda: str | None = None,
                gpu: str | None = None) -> dict[str, object]:
    """``matrix --json``: ``{"matrix_version", "torch", "cuda", "gpu"}``, rows keyed by column.

    The same filters and errors as :func:`render_tables`.
    """
    m = load_matrix()
    out: dict[str, object] = {"matrix_version": m.version, "gpu": None}
    if gpu is not None and gpu.strip():
        row = gpu_lookup(m, gpu)
        if row is None:
            raise UsageError(f"unknown GPU name {gpu!r}", hint=unknown_gpu_hint(m, gpu))
        first = min_cuda_for(m, row.cc)
        out["gpu"] = {"name": gpu, "model": row.model, "cc": row.cc,
                      "first_native_cuda": first.cuda if first else None}
        if not (torch or cuda):
            out["torch"] = []
            out["cuda"] = [dict(zip(CUDA_HEADERS, r, strict=True)) for r in _cuda_rows(m, None)
                           if _targets(m, r[0], row.cc)]
            return out
    elif gpu is not None:
        out["gpus"] = [{"cc": r.cc, "model": r.model, "names": list(r.names)}
                       for r in m.gpus.gpus]
    _check_filters(m, torch, cuda)
    out["torch"] = [dict(zip(TORCH_HEADERS, r, strict=True)) for r in _torch_rows(m, torch, cuda)]
    out["cuda"] = [dict(zip(CUDA_HEADERS, r, strict=True)) for r in _cuda_rows(m, cuda)]
    return out
