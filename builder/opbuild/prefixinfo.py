"""What a prefix's python has installed, asked of that python (``importlib.metadata``).

One run of the prefix's python answers everything the dependency and collision checks
need: the PEP 508 marker environment, every distribution's name and version, and which
distributions own any of a given list of files or top-level names.  Nothing is imported
beyond the standard library, so a prefix without ``packaging`` works too.
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.models import Frozen as _Frozen
from builder.util.cmd import run

_SCRIPT = r"""
import json, os, platform, sys
from importlib import metadata
ask = json.loads(sys.argv[1])
files, tops = set(ask["files"]), set(ask["tops"])
iv = sys.implementation.version
impl_version = "%d.%d.%d" % (iv.major, iv.minor, iv.micro)
if iv.releaselevel != "final":
    impl_version += iv.releaselevel[0] + str(iv.serial)
env = {"implementation_name": sys.implementation.name,
       "implementation_version": impl_version, "os_name": os.name,
       "platform_machine": platform.machine(), "platform_release": platform.release(),
       "platform_system": platform.system(), "platform_version": platform.version(),
       "python_full_version": platform.python_version(),
       "platform_python_implementation": platform.python_implementation(),
       "python_version": ".".join(platform.python_version_tuple()[:2]),
       "sys_platform": sys.platform}
dists, owners = {}, {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name or name in dists:
        continue  # an earlier sys.path entry shadows later copies, as import does
    dists[name] = dist.version
    for f in dist.files or ():
        path = f.as_posix()
        top = path.split("/", 1)[0]
        stem = top.split(".", 1)[0]
        hit = path if path in files else (stem if "/" not in path and stem in tops else None)
        if hit is None and "/" in path and top in tops and path.endswith("/__init__.py") \
                and path.count("/") == 1:
            hit = top
        if hit is not None:
            owners.setdefault(hit, []).append(name)
print(json.dumps({"env": env, "dists": dists, "owners": owners}))
"""


class PrefixInfo(_Frozen):
    """The prefix's marker environment, distributions and the owners asked about."""

    env: dict[str, str]
    dists: dict[str, str]  # distribution name (as its metadata spells it) -> version
    owners: dict[str, list[str]]  # asked-for file or top-level name -> owning distributions


def prefix_info(python: Path, env: dict[str, str], files: list[str] | None = None,
                tops: list[str] | None = None) -> PrefixInfo:
    """Ask ``python`` about its distributions (and the owners of ``files`` / ``tops``)."""
    ask = json.dumps({"files": sorted(files or []), "tops": sorted(tops or [])})
    res = run([python, "-c", _SCRIPT, ask], env=env)
    return PrefixInfo.model_validate(json.loads(res.stdout.strip().splitlines()[-1]))
