"""The human-readable ``environment.yml`` rendered beside each lockfile (jinja2).

It is derived from the parsed lockfile alone, so ``--check`` can re-render and
compare it byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.lock.lockfile import EnvbuildMeta
from builder.resolution import cuda_tag

TEMPLATE = "environment.yml.j2"


def environment_path(lockfile_path: Path) -> Path:
    """``NAME-cuXY.conda-lock.yml`` -> ``NAME-cuXY.environment.yml`` in the same directory."""
    stem = lockfile_path.name
    for suffix in (".conda-lock.yml", ".conda-lock.yaml", ".yml", ".yaml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return lockfile_path.with_name(f"{stem}.environment.yml")


def render_environment(lockfile: Any, meta: EnvbuildMeta, lockfile_name: str) -> str:
    """The environment.yml text for a (parsed or freshly built) conda-lock ``Lockfile``."""
    import jinja2

    root = Path(__file__).resolve().parent.parent / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root), autoescape=False,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    packages = [p for p in lockfile.package if p.platform == meta.platform]
    conda = sorted((p for p in packages if p.manager == "conda"), key=lambda p: p.name)
    pip = sorted((p for p in packages if p.manager == "pip"), key=lambda p: p.name)
    text = env.get_template(TEMPLATE).render(
        name=meta.spec_name, cuda=meta.cuda, cuda_tag=cuda_tag(meta.cuda), lockfile=lockfile_name,
        input_hash=meta.input_hash, channels=[c.url for c in lockfile.metadata.channels],
        conda=conda, pip=pip, sources=meta.sources,
        warnings=[" ".join(w.split()) for w in meta.warnings])
    return text if text.endswith("\n") else text + "\n"
