"""Activation scripts, rendered from jinja2 templates into the generation being built.

* ``etc/conda/activate.d/envbuild.sh`` and ``deactivate.d/envbuild.sh``: run by
  ``conda activate``/``deactivate``; set ``CUDA_HOME`` to the env's own toolkit
  (or unset it for a CPU env) and ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, restoring
  the previous values on deactivate.
* ``activate``: for shells without conda, ``. PREFIX/activate`` also puts
  ``PREFIX/bin`` first on ``PATH``.

Every path written is the final ``PREFIX`` (see :mod:`builder.install.generations`).
Nothing outside the prefix is touched.
"""

from __future__ import annotations

from pathlib import Path

from builder.util.fs import atomic_write_text

TEMPLATES = {
    "envbuild-activate.sh.j2": "etc/conda/activate.d/envbuild.sh",
    "envbuild-deactivate.sh.j2": "etc/conda/deactivate.d/envbuild.sh",
    "envbuild-plain-activate.sh.j2": "activate",
}


def cuda_home(gen_dir: Path, final_prefix: Path) -> str | None:
    """The env's own toolkit root when it has an nvcc, else None."""
    for rel in ("bin/nvcc", "targets/x86_64-linux/bin/nvcc"):
        if (gen_dir / rel).exists():
            return str(final_prefix)
    return None


def write_activation(gen_dir: Path, final_prefix: Path, name: str) -> list[Path]:
    """Render the activation scripts into ``gen_dir``; return what was written."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("builder", "templates"),
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )
    values = {"prefix": str(final_prefix), "name": name,
              "cuda_home": cuda_home(gen_dir, final_prefix)}
    written = []
    for template, rel in TEMPLATES.items():
        out = gen_dir / rel
        atomic_write_text(out, env.get_template(template).render(**values))
        written.append(out)
    return written
