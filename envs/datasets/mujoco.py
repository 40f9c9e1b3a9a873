"""D4RL-style locomotion datasets on Gymnasium MuJoCo ``*-v5``, made from shipped behaviour policies.

Levels, following D4RL's recipe (Fu et al. 2020, §5):

================  ===========================================================================
random            uniform random actions
medium            the ``<env>-medium`` policy (about one third of the expert's return)
expert            the ``<env>-expert`` policy (the best the training budget reached)
medium-replay     the ``<env>-replay-<step>`` training snapshots up to medium, each contributing
                  transitions in proportion to the training time it stands for; the default
                  size is the number of environment steps that training took (as D4RL's
                  replay buffer)
medium-expert     medium followed by expert data (half each; D4RL concatenates the two datasets)
================  ===========================================================================

Behaviour policies are deterministic TD3 actors; data is collected with Gaussian action noise of
std ``BEHAVIOUR_NOISE`` × the action half-range (D4RL's SAC policies were sampled stochastically).
Normalized scores: 0 = the uniform random policy, 100 = the expert policy without noise (each the
mean over 100 episodes), stored in the Minari metadata. These are **not** D4RL's datasets or
scores: compare with D4RL's numbers only as a rough guide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rlreg.envs.datasets import DatasetRecipe, _cached_ref, register_dataset
from rlreg.envs.datasets.rollout import Episode, collect_episodes

from rlreg.errors import RlregError

__all__ = ["ENVS", "LEVELS", "BEHAVIOUR_NOISE", "replay_snapshots", "register_all"]

ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
BEHAVIOUR_NOISE = 0.1
D4RL_SIZE = 1_000_000
NUM_ENVS = 16

Progress = Callable[[int], None] | None

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
"""The shipped policies' folder, ``rlreg.envs.policies.POLICY_DIR`` (not imported from there: importing
``rlreg.envs.policies`` imports torch, and listing datasets must stay cheap; the policies themselves are
loaded with ``rlreg.envs.policies`` when a dataset is made)."""


def _uniform(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, (obs.shape[0], _ACT_DIM[obs.shape[1]])).astype(np.float32)


# observation size → action size of the three locomotion envs (all act in [-1, 1]^A)
_ACT_DIM = {11: 3, 17: 6}


def _refs(env: str) -> tuple[float, float]:
    from rlreg.envs.policies import shipped_policy

    env_id = ENVS[env]
    expert = shipped_policy(f"{env}-expert")  # raises with instructions when not shipped
    digest = hashlib.sha256((POLICY_DIR / f"{env}-expert.pt").read_bytes()).hexdigest()[:16]
    return (
        _cached_ref(env_id, "random", _uniform, "uniform-v0"),
        _cached_ref(env_id, "expert", expert, f"policy-{digest}"),
    )


def replay_snapshots(env: str) -> list[tuple[int, str]]:
    """Shipped medium-replay snapshots of ``env`` as ``(training step, path)``, in order."""
    out = []
    for p in POLICY_DIR.glob(f"{env}-replay-*.pt"):
        m = re.fullmatch(rf"{env}-replay-(\d+)\.pt", p.name)
        if m:
            out.append((int(m.group(1)), str(p)))
    return sorted(out)


def _replay_size(env: str) -> int:
    snaps = replay_snapshots(env)
    if not snaps:
        raise RlregError(
            f"no medium-replay snapshots of '{env}' are shipped",
            f"export training snapshots as envs/policies/{env}-replay-<step>.pt "
            "with `rlreg policy export RUN_DIR --step N`",
        )
    return snaps[-1][0]


def proportional_sizes(steps: list[int], size: int) -> list[int]:
    """Split ``size`` over snapshots at training ``steps`` in proportion to the interval each covers."""
    bounds = [0, *steps]
    weights = np.diff(bounds).astype(np.float64)
    raw = weights / weights.sum() * size
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes))[: size - sizes.sum()]:  # largest remainders get the rest
        sizes[i] += 1
    return sizes.tolist()


def _medium_replay(env: str) -> Callable[[int, int, Progress], list[Episode]]:
    def make(size: int, seed: int, progress: Progress) -> list[Episode]:
        from rlreg.envs.policies import load_policy

        _replay_size(env)
        snaps = replay_snapshots(env)
        sizes = proportional_sizes([s for s, _ in snaps], size)
        episodes: list[Episode] = []
        for k, ((_, path), n) in enumerate(zip(snaps, sizes)):
            if n > 0:
                policy = load_policy(path).with_noise(BEHAVIOUR_NOISE)
                episodes += collect_episodes(
                    ENVS[env], policy, n, seed * 100 + k, NUM_ENVS, progress=progress
                )
        return episodes

    return make


def _medium_expert(env: str) -> Callable[[int, int, Progress], list[Episode]]:
    def make(size: int, seed: int, progress: Progress) -> list[Episode]:
        from rlreg.envs.policies import shipped_policy

        half = size // 2
        medium = shipped_policy(f"{env}-medium").with_noise(BEHAVIOUR_NOISE)
        expert = shipped_policy(f"{env}-expert").with_noise(BEHAVIOUR_NOISE)
        return collect_episodes(
            ENVS[env], medium, half, seed * 100, NUM_ENVS, progress=progress
        ) + collect_episodes(ENVS[env], expert, size - half, seed * 100 + 1, NUM_ENVS, progress=progress)

    return make


def _policy(env: str, level: str) -> Callable[[], Callable]:
    def make() -> Callable:
        from rlreg.envs.policies import shipped_policy

        return shipped_policy(f"{env}-{level}").with_noise(BEHAVIOUR_NOISE)

    return make


def register_all() -> None:
    """Register ``<env>-<level>-v0`` for the three envs and five levels."""
    for env, env_id in ENVS.items():
        for level in LEVELS:
            needs = {"medium": ("medium",), "medium-expert": ("medium",)}.get(level, ())
            common = dict(
                requires=tuple(f"{env}-{n}" for n in ("expert", *needs)),
                name=f"{env}-{level}-v0",
                env_id=env_id,
                minari_id=f"rlreg/{env}/{level}-v0",
                reference=lambda env=env: _refs(env),
                num_envs=NUM_ENVS,
                description=f"{env_id}, D4RL-style '{level}' level made by rlreg; see "
                "envs/datasets/mujoco.py",
            )
            if level == "random":
                recipe = DatasetRecipe(behaviour=lambda: _uniform, default_size=D4RL_SIZE, **common)
            elif level == "medium-replay":
                recipe = DatasetRecipe(
                    behaviour=None,
                    default_size=0,
                    episodes=_medium_replay(env),
                    size_fn=lambda env=env: _replay_size(env),
                    **common,
                )
            elif level == "medium-expert":
                recipe = DatasetRecipe(
                    behaviour=None, default_size=2 * D4RL_SIZE, episodes=_medium_expert(env), **common
                )
            else:
                recipe = DatasetRecipe(behaviour=_policy(env, level), default_size=D4RL_SIZE, **common)
            register_dataset(recipe)
