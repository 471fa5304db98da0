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


_CAPTURE = """
export PATH="$1/bin:$PATH" CONDA_PREFIX="$1"
for script in "$1"/etc/conda/activate.d/*.sh; do
    [ -f "$script" ] && . "$script"
done
env -0
"""


def activated_environ(prefix: Path, environ: dict[str, str]) -> dict[str, str]:
    """``environ`` as ``conda activate PREFIX`` leaves it: PATH, CONDA_PREFIX, CUDA_HOME, ...

    The env's own ``etc/conda/activate.d/*.sh`` scripts (envbuild's, and those of its
    packages, such as the compilers' ``CC``/``CXX``) are sourced by bash and the
    resulting environment read back, so ``envbuild run``/``shell`` and a shell that
    sourced ``PREFIX/activate`` see the same variables.
    """
    from builder.errors import UsageError
    from builder.util import cmd

    root = prefix.expanduser().absolute()
    if not (root / "bin").is_dir():
        raise UsageError(f"{prefix} is not an environment (no bin/ directory)",
                         hint="create it with `envbuild env SPEC` or `envbuild install LOCKFILE "
                              "--prefix DIR`")
    done = cmd.run(["bash", "-c", _CAPTURE, "envbuild-activate", str(root)],
                   env=environ, hint="activation needs bash")
    out: dict[str, str] = {}
    for item in done.stdout.split("\0"):
        key, sep, value = item.partition("=")
        if sep and key and key not in ("_", "SHLVL", "PWD", "OLDPWD"):
            out[key] = value
    for key in ("PWD", "OLDPWD"):
        if key in environ:
            out[key] = environ[key]
    return out
