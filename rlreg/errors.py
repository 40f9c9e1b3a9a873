"""One error type for bad input: every message names the problem and the fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["RlregError", "check", "check_number", "check_positive", "check_widths"]


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


def check_number(
    value: object, key: str, *, minimum: float = 0.0, strict: bool = False, example: str
) -> None:
    """A finite real number ``>= minimum`` (``> minimum`` when ``strict``), else a clear error.

    ``key`` names the setting (e.g. ``prdc.beta``); ``example`` is a good value for the fix line.
    """
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
    )
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    check(ok, f"{key} must be a finite number {bound}, got {value!r}", f"set {key} to e.g. {example}")


def check_widths(value: Sequence[int], key: str) -> None:
    """Hidden-layer widths: a non-empty sequence of positive integers."""
    check(
        len(value) > 0 and all(int(h) > 0 for h in value),
        f"{key} must be non-empty positive widths, got {value!r}",
        f"e.g. {key}=[256,256]",
    )


def check_positive(config: object, prefix: str, names: tuple[str, ...], *, integer: bool = False) -> None:
    """Each ``config.<name>`` is a positive finite number (a positive ``int`` when ``integer``), else
    a clear error naming ``<prefix>.<name>`` and the ``agent.<name>`` setting that fixes it."""
    for name in names:
        v = getattr(config, name)
        if integer:
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        check(
            ok and v > 0,
            f"{prefix}.{name} must be a positive {'integer' if integer else 'number'}, got {v!r}",
            f"set agent.{name} to a value > 0",
        )
