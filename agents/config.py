"""Run configuration: the training settings, agent registry, and ``--set key=value`` handling.

A run is fully described by a JSON-able dict (``config.json`` in the run folder)::

    {"recipe": "td3bc", "agent": "td3", "dataset": "pendulum-medium-v0", "env": null,
     "seed": 0, "device": "cpu",
     "agent_config": {...TD3Config...}, "regularizers": [{"name": "bc", "config": {...}}],
     "train": {...TrainConfig...}, "sources": {...}, "applied": [...]}

``--set`` keys are ``section.field`` with section ``agent``, ``train`` or a regularizer's name
(``agent.alpha=3``, ``train.eval_every=1000``, ``bc.weight=0.5``); a bare ``field`` is accepted
when exactly one section has it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from rlreg.agents.base import agent_class

from rlreg.errors import RlregError, check
from rlreg.regularizers import REGISTRY

__all__ = ["TrainConfig", "coerce", "apply_sets", "config_from_dict", "section_fields"]


@dataclass
class TrainConfig:
    """Settings of the shared training loop."""

    steps: int = 1_000_000
    """Gradient updates (offline) or environment steps (online) in total."""
    eval_every: int = 5000
    """Evaluate every this many steps (and at the last step); 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Evaluation episodes, all run in parallel; 0 disables evaluation."""
    eval_seed_offset: int = 100
    """Evaluation episode i is reset with seed ``seed + eval_seed_offset + i`` (official code: +100)."""
    log_every: int = 1000
    """Average metrics over this many steps per row of metrics.csv."""
    checkpoint_every: int = 50_000
    """Write checkpoint.pt every this many steps (and at the end); 0 only at the end."""
    checkpoint_minutes: float = 10.0
    """Also write checkpoint.pt when this many minutes of wall-clock time have passed since the last
    one, so an interrupted run always has a recent point to resume from (0: by steps only). Any
    step is an exact resume point."""
    normalize_obs: bool = True
    """z-normalize states with the dataset's mean and std + 1e-3 (TD3+BC, PRDC, A2PR)."""
    obs_norm_eps: float = 1e-3
    """Added to the state std before dividing."""
    reward_scale: float = 1.0
    """Rewards become ``reward_scale * r + reward_shift`` (PRDC antmaze: 10000, -1)."""
    reward_shift: float = 0.0
    """See reward_scale."""
    learning_starts: int = 25_000
    """Online only: uniform random actions and no updates before this many env steps."""
    replay_size: int = 1_000_000
    """Online only: replay buffer capacity."""
    snapshot_every: int = 0
    """Save the actor as a policy file ``snapshots/step_<N>.pt`` every this many steps (0: never);
    the medium-replay datasets are rolled out from such snapshots."""
    cuda_graph: bool = False
    """On CUDA: replay each update from a CUDA graph (same computation, far less launch overhead;
    offline the sampling is captured too). Needs capturable regularizers."""
    tensorboard: bool = False
    """Also write TensorBoard scalars under the run folder (needs rlreg[tensorboard])."""
    threads: int = 0
    """On CPU, torch intra-op threads. 0: follow the load, usable cores // jobs, where jobs is the
    larger of ``$RLREG_JOBS`` (set by runners that start several jobs) and the rlreg runs training
    on this machine, re-read every few seconds (results do not change: the ``rlreg`` command makes
    matrix products thread-count independent, rlreg/threads.py). N > 0: exactly N threads."""
    num_envs: int = 1
    """Online MinAtar: training environments stepped together; ``steps``, ``learning_starts``, logging,
    evaluation and checkpoint intervals count environment steps summed over them (``steps`` must be
    a multiple of ``num_envs``)."""
    max_episode_steps: int = 10_000
    """Online MinAtar: episodes are truncated (and bootstrapped) after this many steps, in training and
    evaluation (DVW: TimeLimit 10000). 0: no limit in training (MinAtar's own behaviour);
    evaluation episodes are then still cut at 10000 steps."""
    sticky_action_prob: float = 0.1
    """Online MinAtar: probability of repeating the previous action (MinAtar default 0.1)."""
    greedy_envs: int = 0
    """Online MinAtar: also step this many environments with the greedy policy every iteration (DVW:
    1, a concurrent greedy environment; its returns are the paper's curves). Logged as
    ``greedy/episode_return`` (episodes finished in the log interval) and ``greedy/return_last50``
    (last 50 episodes); no replay, own random streams, so training itself is unchanged."""

    def validate(self) -> None:
        for name in ("steps", "log_every", "replay_size"):
            v = getattr(self, name)
            check(
                isinstance(v, int) and v > 0,
                f"train.{name} must be a positive integer, got {v!r}",
                f"set train.{name} to an integer >= 1",
            )
        for name in (
            "eval_every",
            "eval_episodes",
            "checkpoint_every",
            "learning_starts",
            "eval_seed_offset",
            "snapshot_every",
            "threads",
            "max_episode_steps",
            "greedy_envs",
        ):
            v = getattr(self, name)
            check(
                isinstance(v, int) and v >= 0,
                f"train.{name} must be an integer >= 0, got {v!r}",
                f"set train.{name} to an integer >= 0",
            )
        check(
            isinstance(self.num_envs, int) and self.num_envs >= 1,
            f"train.num_envs must be an integer >= 1, got {self.num_envs!r}",
            "set train.num_envs to e.g. 1 (DVW) or 64",
        )
        check(
            0 <= self.sticky_action_prob < 1,
            f"train.sticky_action_prob must lie in [0, 1), got {self.sticky_action_prob}",
            "use 0.1 (MinAtar's default) or 0 for none",
        )
        check(
            math.isfinite(self.checkpoint_minutes) and self.checkpoint_minutes >= 0,
            f"train.checkpoint_minutes must be a finite number >= 0, got {self.checkpoint_minutes}",
            "use e.g. 10, or 0 to checkpoint by steps only",
        )
        check(
            self.obs_norm_eps > 0,
            f"train.obs_norm_eps must be > 0, got {self.obs_norm_eps}",
            "use 1e-3 as TD3+BC does",
        )


def section_fields(cfg: dict[str, Any]) -> dict[str, type]:
    """Config dataclass of each ``--set`` section of a resolved run config."""
    agent_kind = cfg["agent"]
    out: dict[str, type] = {"agent": agent_class(agent_kind).Config, "train": TrainConfig}
    for reg in cfg["regularizers"]:
        out[reg["name"]] = REGISTRY[reg["name"]].Config
    return out


def _section_dict(cfg: dict[str, Any], section: str) -> dict[str, Any]:
    if section == "agent":
        return cfg["agent_config"]
    if section == "train":
        return cfg["train"]
    for reg in cfg["regularizers"]:
        if reg["name"] == section:
            return reg["config"]
    raise KeyError(section)


def coerce(raw: Any, annotation: Any, key: str) -> Any:
    """Convert ``raw`` (a string from the command line, or a YAML value) to the field's type.

    Raises :class:`RlregError` naming the key, the value and the expected type.
    """
    value = yaml.safe_load(raw) if isinstance(raw, str) else raw
    if isinstance(raw, str) and isinstance(value, str):
        # YAML 1.1 reads "3e-4" as a string: try a number first
        # (and float() reads "nan"/"inf", which annotation checks then reject by name)
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return coerce(value, others[0], key)
    if annotation in (bool, int, float, str):
        return _coerce_scalar(value, annotation, raw, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _bad_value(annotation, raw, key)
        return tuple(coerce(v, args[0], key) for v in value)
    return value


def _bad_value(annotation: Any, raw: Any, key: str) -> RlregError:
    """The error for a value of the wrong type: names the key, the raw value and the expected type."""
    return RlregError(
        f"--set {key}={raw!r}: expected {getattr(annotation, '__name__', annotation)}",
        f"give {key} a value of that type",
    )


def _coerce_scalar(value: Any, annotation: type, raw: Any, key: str) -> Any:
    """``value`` (already YAML/number parsed) as a bool, int, float or str ``annotation``."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _bad_value(annotation, raw, key)
    if annotation is int:
        if isinstance(value, bool):
            raise _bad_value(annotation, raw, key)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _bad_value(annotation, raw, key)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_value(annotation, raw, key)
        if not math.isfinite(value):
            raise RlregError(
                f"--set {key}={raw!r}: must be a finite number", f"give {key} a finite value, e.g. 1.0"
            )
        return float(value)
    return str(value)


def apply_sets(cfg: dict[str, Any], sets: dict[str, Any], origin: str = "--set") -> list[str]:
    """Apply ``{key: raw_value}`` to a resolved config in place; returns ``["key=value", ...]``."""
    sections = section_fields(cfg)
    applied = []
    for key, raw in sets.items():
        if "." in key:
            section, name = key.split(".", 1)
            if section not in sections:
                raise RlregError(
                    f"{origin} {key}: unknown section '{section}'", f"sections are: {', '.join(sections)}"
                )
        else:
            owners = [s for s, cls in sections.items() if key in _hints(cls)]
            if len(owners) != 1:
                raise RlregError(
                    f"{origin} {key}: " + ("unknown setting" if not owners else f"ambiguous, in {owners}"),
                    "valid keys: "
                    + ", ".join(f"{s}.{f}" for s, cls in sections.items() for f in _hints(cls)),
                )
            section, name = owners[0], key
        hints = _hints(sections[section])
        if name not in hints:
            raise RlregError(
                f"{origin} {key}: '{section}' has no setting '{name}'",
                f"valid {section} settings: {', '.join(hints)}",
            )
        value = coerce(raw, hints[name], f"{section}.{name}")
        _section_dict(cfg, section)[name] = list(value) if isinstance(value, tuple) else value
        shown = list(value) if isinstance(value, tuple) else value
        applied.append(f"{section}.{name}={json.dumps(shown) if not isinstance(shown, str) else shown}")
    return applied


def _hints(cls: type) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def config_from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build config dataclass ``cls`` from a dict (types coerced; unknown keys rejected)."""
    hints = _hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise RlregError(f"{where}: unknown setting(s) {unknown}", f"valid settings: {', '.join(hints)}")
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj
