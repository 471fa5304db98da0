"""Where the conda layer's repodata comes from: live channels, mirrors or a snapshot.

* **live** (default): each channel name becomes ``https://conda.anaconda.org/<name>``,
  or ``$ENVBUILD_CHANNEL_ALIAS/<name>`` when a team points that variable at its mirror.
* **mirror** (``--channel``): ``NAME=URL`` replaces one named channel by a mirror
  (order kept); bare ``URL`` values replace the whole channel list, in the order
  given (like ``conda --override-channels -c URL``), and channel-qualified specs
  (``nvidia::cuda-nvcc``) then search those channels.  A local directory or a
  ``file://`` URL works like any other channel.
* **snapshot** (``--channel-snapshot DIR``): ``DIR/<channel>/<subdir>/repodata.json``
  plus ``DIR/channels.json`` mapping each directory to its real URL.  Records get
  the real URLs, so the lockfile installs from the real channels.

Credentials in channel URLs are used for fetching only; every URL that reaches a
lockfile, a message or a hash goes through :func:`builder.util.redact.redact`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builder.errors import EnvbuildError, UsageError
from builder.util.hashing import payload_digest, sha256_file
from builder.util.redact import redact

DEFAULT_ALIAS = "https://conda.anaconda.org"


class ChannelUnavailable(EnvbuildError):
    """A channel cannot be read (unreachable, or missing from a snapshot): exit 1."""

    exit_code = 1


@dataclass(frozen=True)
class ChannelEntry:
    """One channel: its name in the spec, the URL recorded, and where repodata is read."""

    name: str
    url: str  # recorded in the lockfile: no credentials, no trailing slash
    fetch_url: str  # used to fetch (may carry credentials; never printed)
    snapshot_dir: Path | None = None  # <snapshot>/<channel>: holds <subdir>/repodata.json

    def repodata(self, subdir: str) -> Path | None:
        """The snapshot's repodata.json for ``subdir`` (None for live channels or when absent)."""
        if self.snapshot_dir is None:
            return None
        path = self.snapshot_dir / subdir / "repodata.json"
        return path if path.is_file() else None


@dataclass(frozen=True)
class ChannelPlan:
    """The ordered channels of one solve and how they are identified in the input hash."""

    kind: Literal["live", "mirror", "snapshot"]
    entries: tuple[ChannelEntry, ...]
    snapshot: Path | None = None
    override_all: bool = False  # bare --channel URLs: channel-qualified specs are unqualified
    extra: tuple[ChannelEntry, ...] = ()  # added for channel-qualified specs, searched last
    missing: tuple[str, ...] = ()  # optional channels a snapshot lacks (specs naming them fail)

    @property
    def all_entries(self) -> tuple[ChannelEntry, ...]:
        return self.entries + self.extra

    def describe(self) -> str:
        """One line for logs and errors (redacted)."""
        urls = ", ".join(e.url for e in self.all_entries)
        if self.snapshot is not None:
            return f"snapshot {self.snapshot} ({urls})"
        return f"{self.kind} channels {urls}"


def channel_alias() -> str:
    """Where channel names point: ``ENVBUILD_CHANNEL_ALIAS`` (a team's mirror of
    anaconda.org, read at call time), else https://conda.anaconda.org."""
    import os

    return (os.environ.get("ENVBUILD_CHANNEL_ALIAS", "").strip() or DEFAULT_ALIAS).rstrip("/")


def _default_url(name: str) -> str:
    if "://" in name:
        return name.rstrip("/")
    if name.startswith(("/", "./", "~")):
        return Path(name).expanduser().resolve().as_uri()
    return f"{channel_alias()}/{name.strip('/')}"


def as_url(value: str) -> str:
    """A channel given as a name or a URL, as the URL rattler and conda fetch from."""
    if "://" in value:
        return value.rstrip("/")
    path = Path(value).expanduser()
    if path.exists():
        return path.resolve().as_uri()
    raise UsageError(f"--channel {redact(value)!r}: not a URL and not an existing directory",
                     hint="give a channel URL (https://..., file://...) or NAME=URL")


def plan_channels(
    names: Sequence[str], *, snapshot: Path | None = None, channel_args: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> ChannelPlan:
    """The channel plan for the resolution's ``names`` and the command-line choices.

    ``optional`` channels (used only through ``channel::`` specs, such as nvidia's
    ``label/cuda-X.Y.Z`` channels) may be absent from a snapshot: they are listed in
    ``missing`` and the specs naming them find no records.
    """
    if snapshot is not None and channel_args:
        raise UsageError("--channel-snapshot and --channel cannot be combined",
                         hint="use one source of repodata per lock")
    if snapshot is not None:
        present = _snapshot_map(snapshot)
        missing = tuple(n for n in names if n in optional and n not in present)
        return ChannelPlan("snapshot", tuple(_snapshot_entry(snapshot, n) for n in names
                                             if n not in missing),
                           snapshot=snapshot, missing=missing)
    if not channel_args:
        return ChannelPlan("live", tuple(ChannelEntry(n, redact(_default_url(n)),
                                                      _default_url(n)) for n in names))
    named: dict[str, str] = {}
    bare: list[str] = []
    for arg in channel_args:
        key, sep, value = arg.partition("=")
        if sep and "://" not in key and not key.startswith(("/", ".", "~")):
            named[key] = as_url(value)
        else:
            bare.append(as_url(arg))
    if named and bare:
        raise UsageError("mix of --channel URL and --channel NAME=URL",
                         hint="either replace every channel (URL ...) or mirror named ones")
    if bare:
        entries = tuple(ChannelEntry(redact(u), redact(u), u) for u in bare)
        return ChannelPlan("mirror", entries, override_all=True)
    unknown = sorted(set(named) - set(names))
    if unknown:
        raise UsageError(f"--channel mirrors unknown channel(s) {', '.join(unknown)}",
                         hint=f"the resolution uses: {', '.join(names)}")
    entries = tuple(ChannelEntry(n, redact(named.get(n, _default_url(n))),
                                 named.get(n, _default_url(n))) for n in names)
    return ChannelPlan("mirror", entries)


def _snapshot_map(snapshot: Path) -> dict[str, str]:
    path = snapshot / "channels.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{snapshot} is not a channel snapshot (no channels.json)",
                         hint="a snapshot is <channel>/<subdir>/repodata.json plus "
                              "channels.json mapping each directory to its real URL") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"{path}: expected an object mapping directory -> channel URL")
    return {str(k): str(v).rstrip("/") for k, v in data.items()}


def _snapshot_entry(snapshot: Path, name: str) -> ChannelEntry:
    mapping = _snapshot_map(snapshot)
    directory = name if name in mapping else None
    if directory is None:
        wanted = redact(_default_url(name))
        directory = next((d for d, u in mapping.items() if redact(u) == wanted), None)
    if directory is None or not (snapshot / directory).is_dir():
        raise ChannelUnavailable(
            f"channel {redact(name)!r} is not in the snapshot {snapshot} "
            f"(it has: {', '.join(sorted(mapping))})",
            hint="lock against the live channels (drop --channel-snapshot), a mirror "
                 "(--channel NAME=URL), or add the channel's repodata to the snapshot")
    url = mapping[directory]
    return ChannelEntry(name, redact(url), url, snapshot / directory)


def with_qualified_channel(plan: ChannelPlan, channel: str) -> tuple[ChannelPlan, str | None]:
    """Make sure a spec's ``channel::`` is searched; returns the plan and the URL to use.

    None means the channel qualifier should be dropped (bare ``--channel`` URLs).
    """
    if plan.override_all:
        return plan, None
    if channel in plan.missing:
        return plan, channel  # kept by name: no source has it, so nothing matches
    for entry in plan.all_entries:
        if channel in (entry.name, entry.url, entry.fetch_url):
            return plan, entry.fetch_url
    if plan.snapshot is not None:
        try:
            entry = _snapshot_entry(plan.snapshot, channel)
        except ChannelUnavailable:
            return (ChannelPlan(plan.kind, plan.entries, plan.snapshot, plan.override_all,
                                plan.extra, plan.missing + (channel,)), channel)
    else:
        entry = ChannelEntry(channel, redact(_default_url(channel)), _default_url(channel))
    new = ChannelPlan(plan.kind, plan.entries, plan.snapshot, plan.override_all,
                      plan.extra + (entry,), plan.missing)
    return new, entry.fetch_url


def identity(plan: ChannelPlan, subdirs: Sequence[str]) -> dict[str, Any]:
    """The channels' part of the input hash: URLs, and the snapshot's content digest."""
    out: dict[str, Any] = {"kind": plan.kind, "channels": [e.url for e in plan.entries],
                           "missing": list(plan.missing)}
    if plan.snapshot is not None:
        out["snapshot_sha256"] = snapshot_digest(plan, subdirs)
    return out


def snapshot_digest(plan: ChannelPlan, subdirs: Sequence[str]) -> str:
    """sha256 over channels.json and every repodata.json of the plan's channels."""
    assert plan.snapshot is not None
    files = {"channels.json": sha256_file(plan.snapshot / "channels.json")}
    for entry in plan.entries:
        for subdir in subdirs:
            path = entry.repodata(subdir)
            if path is not None:
                files[f"{entry.name}/{subdir}"] = sha256_file(path)
    return payload_digest({"schema": 1, "files": files})


def provenance(plan: ChannelPlan) -> str:
    """A one-line provenance note for the lockfile metadata."""
    if plan.snapshot is None:
        return f"{plan.kind} channels: " + ", ".join(e.url for e in plan.all_entries)
    note = (f"channel snapshot {plan.snapshot.name}: real repodata records, "
            "recorded with their real channel URLs")
    if (plan.snapshot / "PROVENANCE.md").is_file():
        note += "; per-record provenance in the snapshot's PROVENANCE.md / provenance.json"
    return note
