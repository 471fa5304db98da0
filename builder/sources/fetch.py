"""Pin and fetch an envspec's sources, Nix fixed-output style.

* :func:`pin_source` turns a ``git:`` source (URL + rev) into its commit sha and a
  sha256 of its content, and a ``path:`` source into a sha256 of its tree.  The
  result, :class:`PinnedSource`, is stored in the lockfile.
* :func:`fetch_source` materialises a pinned source into the sources cache and
  verifies that sha256 every time: a rewritten history (commit gone), a moved tag
  (the rev now names another commit) or a tampered tree is an error, never a
  silent rebuild from other bytes.

Content digest contract: ``builder.util.hashing.tree_digest`` of the tree.  For a
git source the tree is ``git archive <commit>`` extracted (VCS metadata never
counts); for a ``path:`` source (and a plain directory given for a git source)
it is the directory with :func:`builder.util.hashing.default_source_exclude`
applied for ``path:`` sources and only VCS metadata excluded for git sources.

Git needs the network to reach a URL; ``overrides`` (``--source NAME=PATH``)
point a source at a local git repository (bare or not) or a plain directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from builder.errors import CheckFailed, CommandError, EnvbuildError, UsageError
from builder.sources.pinned import PinnedSource as PinnedSource  # the lockfile's form, re-exported
from builder.spec.envspec import GitSource, LoadedSpec, PathSource
from builder.util import cmd
from builder.util.fs import (
    atomic_write_text,
    ensure_cachedir_tag,
    file_lock,
    remove_tree,
    temp_dir_in,
)
from builder.util.hashing import (
    default_source_exclude,
    payload_digest,
    tree_digest,
    walk_tree,
)

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHA_PREFIX = re.compile(r"^[0-9a-f]{7,40}$")
MARKER = ".envbuild-source.json"
GIT_TIMEOUT = 300.0


class SourceUnreachable(EnvbuildError):
    """A git URL could not be reached (no network, wrong URL): exit 1."""

    exit_code = 1


def _vcs_only(rel: str) -> bool:
    return rel.split("/", 1)[0] in {".git", ".hg", ".svn"}


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never hang on a credential prompt
    env.setdefault("GIT_ASKPASS", "true")
    return env


def _git(*args: str | os.PathLike[str], cwd: Path | None = None,
         env: dict[str, str] | None = None) -> str:
    return cmd.run(["git", *args], cwd=cwd, env=env or _git_env(),
                   timeout=GIT_TIMEOUT).stdout.strip()


def _url_for_argv(url: str) -> tuple[str, dict[str, str]]:
    """(the URL to put on git's command line, git's environment).

    A URL with credentials never goes on the command line (every user of the machine can
    read ``/proc/PID/cmdline``): git gets ``envbuild+<URL without them>``, and a
    ``url.<URL>.insteadOf`` rule in its environment (readable by this user only) turns it
    back into the real one.
    """
    from builder.util.redact import has_credentials, redact

    env = _git_env()
    if not has_credentials(url):
        return url, env
    shown = f"envbuild+{redact(url)}"  # no such transport: only the rule makes it work
    env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{url}.insteadOf",
                "GIT_CONFIG_VALUE_0": shown})
    return shown, env


def is_git_repo(path: Path) -> bool:
    """True when ``path`` is a git repository (a work tree or a bare repository)."""
    if not path.is_dir():
        return False
    out = cmd.run(["git", "-C", path, "rev-parse", "--git-dir"], check=False, env=_git_env())
    return out.returncode == 0 and (
        (path / ".git").exists() or Path(out.stdout.strip()).resolve() == path.resolve()
        or out.stdout.strip() == "."
    )


def _resolve_commit(repo: Path, rev: str) -> str | None:
    out = cmd.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                  check=False, env=_git_env())
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _archive_digest(repo: Path, commit: str) -> str:
    """sha256 of the content of ``commit`` (``git archive`` extracted to a temp dir).

    A commit id fixes its content, so the digest is kept per commit under the sources
    cache: a re-lock does not extract the tree again.  A wrong cached value cannot pass
    unnoticed: :func:`fetch_source` checks every materialised tree against it.
    """
    from builder.paths import sources_cache

    memo = sources_cache() / "digests" / "v2" / f"{commit}.sha256"  # v2: tree_digest 2, _vcs_only
    try:
        cached = memo.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{64}", cached):
            return cached
    except (OSError, UnicodeDecodeError):
        pass
    with tempfile.TemporaryDirectory(prefix="envbuild-src-") as tmp:
        _extract_archive(repo, commit, Path(tmp))
        digest = tree_digest(Path(tmp), _vcs_only)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        ensure_cachedir_tag(sources_cache())
        atomic_write_text(memo, digest + "\n")
    except OSError:
        pass  # a read-only cache only costs the extraction next time
    return digest


def _extract_archive(repo: Path, commit: str, dest: Path) -> None:
    tar_path = dest.parent / f".{dest.name}.tar"
    try:
        _git("-C", repo, "archive", "--format=tar", "-o", tar_path, commit)
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="tar")
    finally:
        tar_path.unlink(missing_ok=True)


def _mirror_dir(url: str) -> Path:
    from builder.paths import sources_cache

    key = payload_digest({"schema": 1, "git_url": url})[:24]
    return sources_cache() / "git" / key


def _unreachable(name: str, url: str, detail: str) -> SourceUnreachable:
    return SourceUnreachable(
        f"source {name!r}: cannot reach git URL {redact_url(url)}\n  {detail.strip()[-400:]}",
        hint=f"pass a local copy with --source {name}=PATH (a git clone, bare or not, "
             "or a plain directory of that commit); on a machine without network, "
             "`make demo` runs every stage offline")


def _fetch_into_mirror(name: str, url: str, rev: str) -> Path:
    """A bare cache repo holding ``rev`` of ``url`` (fetched over the network)."""
    mirror = _mirror_dir(url)
    ensure_cachedir_tag(mirror.parent.parent)
    with file_lock(mirror.parent / f"{mirror.name}.lock", what=f"git cache of {name}"):
        if not (mirror / "HEAD").exists():
            mirror.mkdir(parents=True, exist_ok=True)
            _git("init", "--bare", "--quiet", mirror)
        if _resolve_commit(mirror, rev) is not None:
            return mirror
        refspecs = [rev] if _FULL_SHA.match(rev) else [
            "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        try:
            shown, env = _url_for_argv(url)
            _git("-C", mirror, "fetch", "--quiet", "--no-write-fetch-head", shown, *refspecs,
                 env=env)
        except CommandError as exc:
            raise _unreachable(name, url, exc.stderr_tail) from None
    return mirror


def _git_location(name: str, url: str, rev: str, overrides: Mapping[str, Path]) -> Path | None:
    """The repo to read ``rev`` from; None when the override is a plain directory."""
    override = overrides.get(name)
    if override is None:
        return _fetch_into_mirror(name, url, rev)
    override = Path(override).expanduser().resolve()
    if not override.exists():
        raise UsageError(f"--source {name}={override}: no such directory")
    return override if is_git_repo(override) else None


def pin_source(
    name: str, source: GitSource | PathSource, loaded: LoadedSpec,
    overrides: Mapping[str, Path] | None = None,
) -> PinnedSource:
    """Pin one source of ``loaded`` (see module docstring for the digest contract)."""
    overrides = overrides or {}
    if isinstance(source, PathSource):
        root = Path(overrides.get(name) or loaded.source_path(name))
        if not root.is_dir():
            raise loaded.error(("sources", name, "path"),
                               f"path source {name!r}: {root} is not a directory")
        return PinnedSource(name=name, kind="path", url=source.path,
                            sha256=tree_digest(root, default_source_exclude))
    repo = _git_location(name, source.git, source.rev, overrides)
    if repo is None:  # a plain directory standing in for the commit
        plain = Path(overrides[name]).expanduser().resolve()
        if not _FULL_SHA.match(source.rev):
            raise loaded.error(
                ("sources", name, "rev"),
                f"source {name!r}: rev {source.rev!r} cannot be pinned from the plain "
                f"directory {plain}", hint="use a full 40-character commit sha in the spec, "
                "or pass a git clone with --source")
        return PinnedSource(name=name, kind="git", url=redact_url(source.git),
                            commit=source.rev, rev=source.rev, subdir=source.subdir,
                            sha256=tree_digest(plain, _vcs_only))
    commit = _resolve_commit(repo, source.rev)
    if commit is None:
        raise loaded.error(("sources", name, "rev"),
                           f"source {name!r}: rev {source.rev!r} not found in {repo}",
                           hint="check the rev, or fetch it into that repository")
    return PinnedSource(name=name, kind="git", url=redact_url(source.git), commit=commit,
                        rev=source.rev, subdir=source.subdir,
                        sha256=_archive_digest(repo, commit))


def pin_sources(loaded: LoadedSpec,
                overrides: Mapping[str, Path] | None = None) -> tuple[PinnedSource, ...]:
    """Pin every source of the spec, sorted by name; unknown override names are an error."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(loaded.spec.sources))
    if unknown:
        known = ", ".join(sorted(loaded.spec.sources)) or "none"
        raise UsageError(f"--source names unknown source(s) {', '.join(unknown)} "
                         f"(the spec defines: {known})")
    return _pin_parallel(loaded, overrides)


def _pin_parallel(loaded: LoadedSpec, overrides: Mapping[str, Path]) -> tuple[PinnedSource, ...]:
    """Pin sources concurrently (git fetches wait on the network), the first error first.

    Sources that share a git URL share one cache repository, whose file lock does not
    exclude threads of one process: they are pinned one after the other in one worker.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    groups: dict[str, list[str]] = {}
    for name in sorted(loaded.spec.sources):
        src = loaded.spec.sources[name]
        key = src.git if isinstance(src, GitSource) and name not in overrides else name
        groups.setdefault(key, []).append(name)
    if len(groups) <= 1:
        return tuple(pin_source(n, loaded.spec.sources[n], loaded, overrides)
                     for n in sorted(loaded.spec.sources))

    def run(names: list[str]) -> list[PinnedSource]:
        return [pin_source(n, loaded.spec.sources[n], loaded, overrides) for n in names]

    with ThreadPoolExecutor(max_workers=min(8, len(groups))) as pool:
        futures = [pool.submit(run, names) for names in groups.values()]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in pending:
            fut.cancel()
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        pinned = [p for f in futures for p in f.result()]
    return tuple(sorted(pinned, key=lambda p: p.name))


def fetch_source(
    pinned: PinnedSource, dest_root: Path, *,
    overrides: Mapping[str, Path] | None = None, spec_dir: Path | None = None,
) -> Path:
    """Materialise ``pinned`` under ``dest_root`` (verified) and return its directory.

    ``dest_root`` is normally :func:`builder.paths.sources_cache`.  A cached copy is
    re-verified on every call.  ``spec_dir`` resolves relative ``path:`` sources.
    """
    dest = dest_root / f"{pinned.name}-{pinned.sha256[:16]}"
    ensure_cachedir_tag(dest_root)
    with file_lock(dest_root / f".{dest.name}.lock", what=f"source {pinned.name}"):
        if (dest / MARKER).exists():
            _verify(pinned, dest, what="cached copy")
            return dest
        with temp_dir_in(dest_root, f".{pinned.name}-") as tmp:
            tree = tmp / "tree"
            _materialise(pinned, tree, overrides or {}, spec_dir)
            _verify(pinned, tree, what="fetched content")
            remove_tree(dest, inside=dest_root)
            os.replace(tree, dest)
        (dest / MARKER).write_text(json.dumps({"name": pinned.name, "commit": pinned.commit,
                                               "sha256": pinned.sha256}) + "\n")
    return dest


def _source_digest(pinned: PinnedSource, tree: Path) -> str:
    if pinned.kind == "path":
        return tree_digest(tree, lambda rel: rel == MARKER or default_source_exclude(rel))
    return tree_digest(tree, lambda rel: rel == MARKER or _vcs_only(rel))


def _verify(pinned: PinnedSource, tree: Path, *, what: str) -> None:
    got = _source_digest(pinned, tree)
    if got != pinned.sha256:
        raise CheckFailed(
            f"source {pinned.name!r}: {what} does not match the lockfile "
            f"(sha256 {got[:16]}..., locked {pinned.sha256[:16]}...) at {tree}",
            hint="the source was tampered with or changed since locking; remove the cached "
                 "copy, or re-run `envbuild lock` if the change is intended")


def _materialise(pinned: PinnedSource, tree: Path, overrides: Mapping[str, Path],
                 spec_dir: Path | None) -> None:
    if pinned.kind == "path":
        root = Path(overrides.get(pinned.name) or _path_root(pinned, spec_dir))
        _copy_content(root, tree, default_source_exclude)
        return
    assert pinned.commit is not None
    location = _git_location(pinned.name, pinned.url, pinned.commit, overrides)
    if location is None:  # plain directory override
        plain = Path(overrides[pinned.name]).expanduser().resolve()
        _copy_content(plain, tree, _vcs_only)
        return
    if _resolve_commit(location, pinned.commit) is None:
        raise CheckFailed(
            f"source {pinned.name!r}: commit {pinned.commit} is not in {location} "
            "(history rewritten or force-pushed?)",
            hint="the locked commit must stay reachable; re-lock only if the change is intended")
    _check_rev_not_moved(pinned, location)
    tree.mkdir(parents=True)
    _extract_archive(location, pinned.commit, tree)


def _check_rev_not_moved(pinned: PinnedSource, repo: Path) -> None:
    rev = pinned.rev
    if not rev or _SHA_PREFIX.match(rev):
        return
    now = _resolve_commit(repo, rev)
    if now is not None and now != pinned.commit:
        raise CheckFailed(
            f"source {pinned.name!r}: {rev!r} moved: it now names {now[:12]}, "
            f"the lockfile pins {pinned.commit}",
            hint="a tag or branch was moved; pin a commit sha in the spec, or re-lock "
                 "deliberately with `envbuild lock`")


def _path_root(pinned: PinnedSource, spec_dir: Path | None) -> Path:
    p = Path(pinned.url).expanduser()
    if p.is_absolute():
        return p
    if spec_dir is None:
        raise UsageError(f"path source {pinned.name!r} is relative ({pinned.url}); "
                         "pass spec_dir or an override")
    return (spec_dir / p).resolve()


def _copy_content(root: Path, tree: Path, exclude: Callable[[str], bool]) -> None:
    """Copy ``root``'s content (links dereferenced, as hashed) after checking it has no
    link out of the tree, no loop and no special file (copying a FIFO would hang)."""
    for _ in walk_tree(root, exclude):
        pass
    shutil.copytree(root, tree, symlinks=False, ignore=_copy_ignore(root, exclude))


def _copy_ignore(root: Path, exclude: Callable[[str], bool]
                 ) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel_dir = os.path.relpath(directory, root)
        out = set()
        for n in names:
            rel = n if rel_dir == "." else f"{rel_dir}/{n}".replace(os.sep, "/")
            if exclude(rel):
                out.add(n)
        return out

    return ignore


def parse_source_overrides(values: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """``NAME=PATH`` strings (``--source``) into a mapping; bad syntax is a usage error."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--source {value!r}: expected NAME=PATH")
        out[name] = Path(path).expanduser().resolve()
    return out


def redact_url(url: str) -> str:
    """``url`` without credentials (``user:token@`` and ``/t/<token>/`` segments)."""
    from builder.util.redact import redact

    return redact(url)
