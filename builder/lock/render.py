"""The human-readable ``environment.yml`` rendered beside each lockfile (jinja2).

It is derived from the parsed lockfile alone, so ``--check`` can re-render and
compare it byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.lock.lockfile import EnvbuildMeta
from builder.spec.places import cuda_tag

TEMPLATE = "environment.yml.j2"


def environment_path(lockfile_path: Path) -> Path:
    """``NAME-cuXY.conda-lock.yml`` -> ``NAME-cuXY.environment.yml`` in the same directory."""
    stem = lockfile_path.name
    for suffix in (".conda-lock.yml", ".conda-lock.yaml", ".yml", ".yaml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return lockfile_path.with_name(f"{stem}.environment.yml")


def pip_option_lines(spec: Any, resolution: Any, env_dir: Path) -> list[str]:
    """The pip index options the lock used, as requirement-file lines for environment.yml.

    ``conda env create`` hands the ``pip:`` list to pip as a requirements file written
    beside environment.yml, so a ``find_links`` directory is written relative to
    ``env_dir`` (pip reads it relative to that file).  Without these lines a
    ``torch_from: pypi`` env (torch from the PyTorch wheel index) cannot be created.
    """
    import os

    from builder.util.redact import redact

    opts = spec.spec.pip_options
    lines = [f"--index-url {redact(opts.index_url)}"] if opts.index_url else []
    lines += [f"--extra-index-url {redact(u)}"
              for u in dict.fromkeys((*opts.extra_index_urls, *resolution.pip_index_urls))]
    spec_dir = spec.path.resolve().parent
    for link in opts.find_links:
        if "://" in link:
            lines.append(f"--find-links {redact(link)}")
        else:
            lines.append(f"--find-links {os.path.relpath(spec_dir / link, env_dir.resolve())}")
    if opts.no_index:
        lines.append("--no-index")
    return lines


def render_environment(lockfile: Any, meta: EnvbuildMeta, lockfile_name: str,
                       pip_options: list[str] | None = None) -> str:
    """The environment.yml text for a (parsed or freshly built) conda-lock ``Lockfile``.

    ``pip_options`` (from :func:`pip_option_lines`) open the ``pip:`` list.
    """
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
        conda=conda, pip=pip, pip_options=pip_options or [], sources=meta.sources,
        warnings=[" ".join(w.split()) for w in meta.warnings])
    return text if text.endswith("\n") else text + "\n"
