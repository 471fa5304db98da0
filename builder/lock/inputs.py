"""The lock's input hash: an explicit, versioned payload of everything that shapes a lock.

Contract: ``input_hash = payload_digest({"schema": LOCK_SCHEMA, "components": C})`` where
``C`` maps component name -> string:

* ``lock_schema``: :data:`builder.lock.lockfile.LOCK_SCHEMA`;
* ``spec``: digest of the envspec's data as loaded (comments and layout do not count);
* ``resolution``: digest of the resolution fields the lock consumes, listed
  explicitly in :func:`resolution_payload` (never a model dump);
* ``matrix_version``: the compatibility data version the resolution came from;
* ``channels``: digest of the channel identity (kind, URLs without credentials,
  and for a snapshot the sha256 of its channels.json and repodata files);
* ``solver``: the conda solver's name.

The components are stored in the lockfile, so ``--check`` can say which changed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from builder.resolve.resolution import Resolution
from builder.spec.envspec import LoadedSpec
from builder.util.hashing import payload_digest


def jsonable(value: Any) -> Any:
    """Plain YAML data as JSON-able data (dates become ISO strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def resolution_payload(res: Resolution) -> dict[str, Any]:
    """The resolution fields a lock depends on, by name."""
    tc = res.toolchain
    return {
        "python": res.python, "torch": res.torch, "torchvision": res.torchvision,
        "cuda": res.cuda, "provider": res.provider, "channels": list(res.channels),
        "conda": list(res.conda), "pip": list(res.pip),
        "pip_index_urls": list(res.pip_index_urls),
        "virtual_packages": dict(sorted(res.virtual_packages.items())),
        "host_compiler_spec": res.host_compiler.spec,
        "toolchain": None if tc is None else {
            "nvcc_source": tc.nvcc_source, "nvcc_spec": tc.nvcc_spec,
            "nvcc_fallback_specs": list(tc.nvcc_fallback_specs),
            "extra_conda": list(tc.extra_conda),
        },
        "build_toolchain": [[p.piece, [[o.kind, o.spec, o.include or ""] for o in p.providers]]
                            for p in res.build_toolchain],
    }


def components(loaded: LoadedSpec, res: Resolution, channel_identity: dict[str, Any],
               solver: str, lock_schema: int) -> dict[str, str]:
    """The named input components (see module docstring)."""
    return {
        "lock_schema": str(lock_schema),
        "spec": payload_digest({"spec": jsonable(loaded.located.data)}),
        "resolution": payload_digest(resolution_payload(res)),
        "matrix_version": res.matrix_version,
        "channels": payload_digest(channel_identity),
        "solver": solver,
    }


def input_hash(parts: dict[str, str], lock_schema: int) -> str:
    """The lock's input hash from its components."""
    return payload_digest({"schema": lock_schema, "components": parts})
