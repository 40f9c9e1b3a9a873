"""D4RL reference scores and the normalized score.

The values are D4RL's ``REF_MIN_SCORE`` / ``REF_MAX_SCORE`` tables from ``d4rl/infos.py``
(Farama-Foundation/D4RL, HEAD 89141a6). Gym-MuJoCo v0/v1/v2 use one pair per environment for every
dataset type (random, medium, expert, medium-replay, full-replay, medium-expert); antmaze uses
``(0, 1)`` for every maze, so its normalized score is 100 x the success rate.

The normalized score is ``100 * (R - min) / (max - min)`` where ``R`` is the mean undiscounted
episode return (D4RL's ``get_normalized_score`` returns the fraction; papers report x100).

These references only apply to D4RL's own datasets and environments (``<env>-v2`` MuJoCo-py era
envs). Minari's ``mujoco/*`` datasets are different data on Gymnasium v5 envs and have their own
references: :func:`d4rl_ref_scores` deliberately returns None for their ids.
"""

from __future__ import annotations

import re

from rlreg.errors import check

__all__ = ["D4RL_REF_SCORES", "d4rl_ref_scores", "normalized_score"]

D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
    "antmaze": (0.0, 1.0),
}
"""Reference ``(min, max)`` undiscounted returns per D4RL environment family (``d4rl/infos.py``)."""

_MUJOCO_DATASETS = frozenset({"random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"})
_ANTMAZE_DATASETS = frozenset(
    {"umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"}
)
_VERSION_RE = re.compile(r"-v\d+$")


def d4rl_ref_scores(dataset_name: str) -> tuple[float, float] | None:
    """D4RL reference ``(min, max)`` scores for a D4RL dataset name, or None if it is not one.

    Accepts D4RL names (``"hopper-medium-replay-v2"``, ``"antmaze-large-diverse-v2"``), the same
    with underscores (file stems such as ``"hopper_medium_v2"``), any letter case, an optional
    directory prefix and an optional ``.hdf5``/``.h5`` suffix. The version suffix is optional.
    Names whose dataset part is not one of D4RL's (e.g. Gymnasium ids like ``"Hopper-v5"`` or
    Minari ids like ``"mujoco/hopper/medium-v0"``) give None, so D4RL references are never applied
    to data they were not made for.

    Args:
        dataset_name: dataset name or file name.

    Returns:
        ``(ref_min_score, ref_max_score)`` or None.
    """
    name = dataset_name.strip().lower().replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".hdf5", ".h5"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    name = _VERSION_RE.sub("", name.replace("_", "-"))
    env, _, dataset = name.partition("-")
    if env == "antmaze":
        return D4RL_REF_SCORES["antmaze"] if dataset in _ANTMAZE_DATASETS else None
    if env in D4RL_REF_SCORES and dataset in _MUJOCO_DATASETS:
        return D4RL_REF_SCORES[env]
    return None


def normalized_score(mean_return: float, ref_min: float, ref_max: float) -> float:
    """D4RL-convention normalized score ``100 * (R - min) / (max - min)``.

    Args:
        mean_return: mean undiscounted episode return ``R``.
        ref_min: reference score mapped to 0 (random policy).
        ref_max: reference score mapped to 100 (expert policy).

    Returns:
        The normalized score (0 = random, 100 = expert).

    Raises:
        RlregError: if ``ref_min == ref_max``.
    """
    check(
        float(ref_max) != float(ref_min),
        f"reference scores are equal (min = max = {ref_min}); the normalized score is undefined",
        "use reference scores with ref_max != ref_min",
    )
    return 100.0 * (float(mean_return) - float(ref_min)) / (float(ref_max) - float(ref_min))
