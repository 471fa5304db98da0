"""YAML loading that remembers where every key and item came from.

``load_located(path)`` returns plain Python data plus a map from a location tuple
(``("cuda", "allowed", 1)``) to a 1-based line number, so any validation error can be
reported as ``path:line``.  Malformed YAML becomes a :class:`SpecError` at the
parser's own line.

Before any loader builds data, :func:`refuse_bombs` walks the file's parse events once
(linear in the file, libyaml when present) and refuses, at the alias's ``path:line``, a
document whose aliases would expand past :data:`ALIAS_NODES` nodes, a recursive alias, or
a file larger than :data:`MAX_BYTES` (a "billion laughs" would otherwise take minutes and
gigabytes in a line-tracking loader or in validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.errors import SpecError

Loc = tuple[str | int, ...]

ALIAS_NODES = 100_000  # nodes aliases may add by expansion (envbuild's own files add none)
MAX_BYTES = 64 << 20  # no spec or lockfile comes near this


def refuse_bombs(path: Path, text: str) -> None:
    """A :class:`SpecError` at ``path:line`` when ``text`` is too large or its aliases
    expand past :data:`ALIAS_NODES` nodes (see module docstring); otherwise nothing."""
    import yaml

    if len(text) > MAX_BYTES:
        raise SpecError(f"{len(text)} bytes: larger than the {MAX_BYTES >> 20} MiB envbuild "
                        "reads", location=f"{path}:1", hint="is this the right file?")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    sizes: dict[str, int] = {}  # anchor -> nodes of its (expanded) value
    open_nodes: list[list[Any]] = [[None, 0]]  # [anchor, nodes so far] per open collection
    added = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            size = 0
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                open_nodes.append([event.anchor, 1])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, size = open_nodes.pop()
                if anchor is not None:
                    sizes[anchor] = size
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                size = sizes.get(event.anchor, 0)
                line = event.start_mark.line + 1
                if event.anchor not in sizes and any(a == event.anchor for a, _ in open_nodes):
                    raise SpecError(f"the alias *{event.anchor} refers to itself",
                                    location=f"{path}:{line}",
                                    hint="YAML aliases must not be recursive")
                added += size
                if added > ALIAS_NODES:
                    raise SpecError(
                        f"YAML aliases expand past {ALIAS_NODES} nodes (at *{event.anchor})",
                        location=f"{path}:{line}",
                        hint="write the values out; envbuild refuses alias bombs")
            if size:
                open_nodes[-1][1] += size
    except yaml.MarkedYAMLError:
        return  # malformed: the loader reports it at its own line
    except yaml.YAMLError:
        return


class Located:
    """Data loaded from a file, with line numbers for every location."""

    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line(self, loc: Loc) -> int:
        """Line of the deepest known prefix of ``loc`` (1 when nothing is known)."""
        for n in range(len(loc), -1, -1):
            found = self.lines.get(tuple(loc[:n]))
            if found is not None:
                return found
        return 1

    def where(self, *loc: str | int) -> str:
        """``path:line`` for ``loc``."""
        return f"{self.path}:{self.line(tuple(loc))}"


def load_located(path: Path) -> Located:
    """Parse ``path`` (YAML) into plain data and a location map."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    refuse_bombs(path, text)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError(f"malformed YAML: {problem}", location=f"{path}:{line}") from None
    except YAMLError as exc:
        raise SpecError(f"malformed YAML: {exc}", location=f"{path}:1") from None
    lines: dict[Loc, int] = {(): 1}
    data = _plain(doc, (), lines)
    return Located(path, data, lines)


def _plain(node: Any, loc: Loc, lines: dict[Loc, int]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            try:
                ln = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):
                ln = lines.get(loc, 1)
            child = (*loc, str(key))
            lines[child] = ln
            out[key] = _plain(value, child, lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            try:
                ln = node.lc.item(i)[0] + 1
            except (KeyError, TypeError, AttributeError):
                ln = lines.get(loc, 1)
            child = (*loc, i)
            lines[child] = ln
            items.append(_plain(value, child, lines))
        return items
    if node is None or isinstance(node, (bool, int, float)):
        return node
    if isinstance(node, str):
        return str(node)
    return node
