"""YAML loading that remembers where every key and item came from.

``load_located(path)`` returns plain Python data plus a map from a location tuple
(``("cuda", "allowed", 1)``) to a 1-based line number, so any validation error can be
reported as ``path:line``.  Malformed YAML becomes a :class:`SpecError` at the
parser's own line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.errors import SpecError

Loc = tuple[str | int, ...]


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
