"""``envbuild resolve``, ``envbuild matrix`` and ``envbuild schema``: parse, call, print.

Heavy modules (the resolver, the matrix) are imported inside the commands so that
``envbuild --help`` and the other subcommands never pay for them.

``resolve`` memoizes its answer (Nix-style: same inputs, same output) under
``$ENVBUILD_HOME/resolve/<key>.json``.  The key is the sha256 of an explicit payload:
schema version, the spec file's absolute path and bytes, the request flags, and the
bytes of every module and data file the answer depends on (:data:`_INPUT_GLOBS`).  A hit
skips loading pydantic, ruamel and the matrix; failures are never cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

_MEMO_SCHEMA = 1
# everything resolve() reads besides the spec: edit any of these and the memo misses
_INPUT_GLOBS = ("spec.py", "yamlloc.py", "errors.py", "resolution.py", "resolve.py",
                "resolve_parts.py", "matrix/*.py", "matrix/data/*.yaml")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cuda", help="target CUDA major.minor (e.g. 11.7), or 'cpu'")
@click.option("--torch", "torch_version", help="exact torch version within the spec's range")
@click.option("--python", help="override the spec's python (e.g. 3.10)")
@click.option("--gpu", "gpus", multiple=True,
              help="GPU name as nvidia-smi prints it (repeatable)")
@click.option("--driver", help="NVIDIA driver version to check against (e.g. 525.60.13)")
@click.option("--json", "as_json", is_flag=True, help="print the Resolution as one JSON object")
def resolve(spec: Path, cuda: str | None, torch_version: str | None, python: str | None,
            gpus: tuple[str, ...], driver: str | None, as_json: bool) -> None:
    """Resolve SPEC to exact pins, toolchain and GPU arch list (or explain the conflict)."""
    flags = {"cuda": cuda, "torch": torch_version, "python": python, "gpus": list(gpus),
             "driver": driver}
    key = _memo_key(spec, flags)
    data = _memo_get(key) if key else None
    if data is None:
        from builder.resolve.resolver import ResolveRequest
        from builder.resolve.resolver import resolve as do_resolve
        from builder.spec.envspec import load_spec

        request = ResolveRequest(cuda=cuda, torch=torch_version, python=python, gpus=gpus,
                                 driver=driver)
        data = do_resolve(load_spec(spec), request).to_json()
        if key:
            _memo_put(key, data)
    if as_json:
        from builder.cli import echo_json

        echo_json(data)
        return
    click.echo(render(data))


def _memo_key(spec: Path, flags: dict[str, Any]) -> str | None:
    import hashlib
    import json

    root = Path(__file__).resolve().parent.parent
    try:
        inputs = {"spec": spec.read_bytes().hex()}
        for pattern in _INPUT_GLOBS:
            for path in sorted(root.glob(pattern)):
                inputs[path.relative_to(root).as_posix()] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
    except OSError:
        return None  # let the real load report the unreadable spec
    payload = {"schema": _MEMO_SCHEMA, "path": str(spec.resolve()), "flags": flags,
               "inputs": inputs}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _memo_path(key: str) -> Path:
    from builder import paths

    return paths.home() / "resolve" / f"{key}.json"


def _memo_get(key: str) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(_memo_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "torch" in data else None


def _memo_put(key: str, data: dict[str, Any]) -> None:
    import contextlib
    import json

    from builder.util.fs import atomic_write_bytes

    with contextlib.suppress(OSError):  # a read-only home only loses the memo
        atomic_write_bytes(_memo_path(key), json.dumps(data, sort_keys=True).encode())


def render(res: dict[str, Any]) -> str:
    """The human-readable summary of a Resolution (as its ``to_json()`` object)."""
    tc, hc = res.get("toolchain"), res["host_compiler"]
    pad = "\n                 "
    lines = [
        f"{res['name']}: torch {res['torch']}"
        + (f" + torchvision {res['torchvision']}" if res["torchvision"] else "")
        + ", python "
        f"{res['python']}, {'CPU only' if res['cuda'] == 'cpu' else 'CUDA ' + res['cuda']} "
        f"({res['provider']})",
        "",
        f"  arch list      {';'.join(res['arch_list']) or '(none)'}",
        f"  host compiler  {hc['name']} {hc['min_major']}..{hc['max_major']}"
        + (f"  [{hc['spec']}]" if hc.get("spec") else ""),
    ]
    if tc:
        lines.append(f"  nvcc           {tc['nvcc_spec']}  ({tc['cxx_std']})")
        lines += [f"    fallback     {s}" for s in tc["nvcc_fallback_specs"]]
        lines += [f"    with         {s}" for s in tc["extra_conda"]]
    for piece in res.get("build_toolchain", []):
        if piece["piece"] in {"compiler", "nvcc"}:
            continue  # shown above
        provs = [p["spec"] + (" (pypi)" if p["kind"] == "pypi" else "")
                 for p in piece["providers"]] or ["(no provider known)"]
        head = piece["headers"][0] if piece["headers"] else piece["piece"]
        lines.append(f"  {piece['piece']:<13}  {head}: " + (pad + "  or ").join(provs))
    if res.get("driver_min"):
        lines.append(f"  driver         >= {res['driver_min']}")
    lines.append(f"  channels       {', '.join(res['channels'])}")
    lines.append("  conda          " + pad.join(res["conda"]))
    if res["pip"]:
        lines.append("  pip            " + pad.join(res["pip"]))
    if res.get("pip_index_urls"):
        lines.append(f"  pip index      {', '.join(res['pip_index_urls'])}")
    for op in res.get("ops", []):
        fix = f"  fixups: {', '.join(op['fixups'])}" if op["fixups"] else ""
        lines.append(f"  op             {op['name']} ({op['source']}:{op['path']}){fix}")
    lines.append(f"  matrix         {res.get('matrix_version', '')}")
    if res["warnings"]:
        lines += ["", "warnings:"] + [f"  ! {w}" for w in res["warnings"]]
    if res.get("explain"):
        lines += ["", "why:"] + [f"  - {e}" for e in res["explain"]]
    return "\n".join(lines)


@click.command()
@click.option("--torch", "torch_version", help="only torch versions starting with this")
@click.option("--cuda", help="only this CUDA major.minor")
@click.option("--gpu", help="show a GPU's compute capability and what targets it "
                            "('' lists every known GPU)")
@click.option("--json", "as_json", is_flag=True, help="the same rows as one JSON object")
def matrix(torch_version: str | None, cuda: str | None, gpu: str | None, as_json: bool) -> None:
    """Print the compatibility matrix as tables, filterable by torch, CUDA or GPU."""
    if as_json:
        from builder.cli import echo_json
        from builder.matrix.tables import matrix_json

        echo_json(matrix_json(torch=torch_version, cuda=cuda, gpu=gpu))
        return
    from builder.matrix.tables import render_tables

    click.echo(render_tables(torch=torch_version, cuda=cuda, gpu=gpu))


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write the schema to this file instead of stdout")
@click.option("--json", "as_json", is_flag=True, hidden=True,
              help="accepted for uniformity: the schema is JSON already")
def schema(output: Path | None, as_json: bool) -> None:
    """Write the envspec JSON Schema (for editors' YAML validation)."""
    import json

    from builder.spec.envspec import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    from builder.util.fs import atomic_write_bytes

    atomic_write_bytes(output, text.encode("utf-8"))
    click.echo(f"wrote {output}", err=True)
