"""One error type for bad input: every message names the problem and the fix."""

from __future__ import annotations

__all__ = ["RlregError", "check"]


class RlregError(ValueError):
    """Bad input to rlreg.

    The message always has two parts: what is wrong, and what to do about it.
    The command line prints it without a traceback and exits with status 2.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


def check(condition: bool, problem: str, fix: str | None = None) -> None:
    """Raise :class:`RlregError` with ``problem`` and ``fix`` unless ``condition`` holds."""
    if not condition:
        raise RlregError(problem, fix)
