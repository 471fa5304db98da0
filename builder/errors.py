"""One error base for the whole tool.

Every failure a user can act on is an :class:`EnvbuildError`: it carries the exit
code of the command-line contract (1 = a reported conflict or failed check,
2 = bad input or usage) and a hint saying what to do next.  Only
``builder.cli.main`` turns these into exits; library code never calls ``sys.exit``.
"""

from __future__ import annotations

from collections.abc import Sequence


class EnvbuildError(Exception):
    """Base error: a message, an optional hint, and the exit code to use."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(EnvbuildError):
    """Bad input or usage: exit 2."""

    exit_code = 2


class SpecError(UsageError):
    """A problem located in an input file: printed as ``path:line: message``."""

    def __init__(
        self, message: str, *, location: str | None = None, hint: str | None = None
    ) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message, hint=hint)


class ConflictError(EnvbuildError):
    """A combination that cannot work, explained: exit 1."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        constraint: str,
        alternatives: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        self.constraint = constraint
        self.alternatives = list(alternatives)
        if self.alternatives and hint is None:
            hint = "what would work instead: " + "; ".join(self.alternatives)
        super().__init__(message, hint=hint)


class CheckFailed(EnvbuildError):
    """A check (lock --check, sanity, preflight) that ran and failed: exit 1."""

    exit_code = 1


class CommandError(EnvbuildError):
    """An external command failed; keeps the command, its code and the stderr tail."""

    exit_code = 1

    def __init__(
        self,
        cmd: Sequence[str],
        returncode: int,
        stderr_tail: str,
        *,
        hint: str | None = None,
        log_path: str | None = None,
    ) -> None:
        from builder.util.cmd import quote

        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.log_path = log_path
        msg = f"command failed with exit code {returncode}: {quote(cmd)}"
        if stderr_tail.strip():
            msg += "\n" + _indent(stderr_tail.rstrip())
        if log_path:
            msg += f"\nfull log: {log_path}"
        super().__init__(msg, hint=hint)


class ExecutableNotFound(EnvbuildError):
    """An executable the tool needs is not on PATH."""

    exit_code = 1


def _indent(text: str, prefix: str = "  | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
