"""Behaviour policies: the small weight files rlreg ships (``envs/policies/``) and makes datasets from.

A policy file is a ``torch.save`` dict (format ``rlreg-policy``) holding a deterministic actor
(:class:`rlreg.nets.Actor` weights, its sizes and action box), the observation normalizer it was
trained with, the env id, and a ``record`` of how it was made (command, steps, seed, evaluation).
Each shipped ``<name>.pt`` has a human-readable ``<name>.json`` copy of its record beside it.

Policies act on raw observations (normalization is inside) and add Gaussian noise of std
``noise × half-range`` when sampling data, as behaviour data is usually collected with some
stochasticity (D4RL's behaviour policies were stochastic SAC policies).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlreg.checkpoint import load_checkpoint, safe_load, save_atomic
from rlreg.data.transitions import ObsNormalizer
from rlreg.errors import RlregError, check
from rlreg.nets import Actor

__all__ = ["POLICY_DIR", "BehaviourPolicy", "save_policy", "load_policy", "policy_from_run", "shipped_policy"]

POLICY_DIR = Path(__file__).parent / "policies"
FORMAT = "rlreg-policy"


@dataclass
class BehaviourPolicy:
    """A deterministic actor on raw observations, with optional Gaussian action noise."""

    env_id: str
    actor: Actor
    normalizer: ObsNormalizer
    record: dict[str, Any] = field(default_factory=dict)
    noise: float = 0.0

    def with_noise(self, noise: float) -> BehaviourPolicy:
        """The same policy sampling with noise std ``noise`` × the action half-range."""
        check(noise >= 0, f"policy noise must be >= 0, got {noise}", "use 0 for the deterministic policy")
        return BehaviourPolicy(self.env_id, self.actor, self.normalizer, self.record, float(noise))

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = torch.as_tensor(self.normalizer(np.asarray(obs, np.float32).reshape(len(obs), -1)))
        a = self.actor(x).numpy()
        if self.noise > 0:
            check(rng is not None, "a noisy policy needs a random generator", "call policy(obs, rng)")
            mid, scale = self.actor.act_mid.numpy(), self.actor.act_scale.numpy()
            a = np.clip(a + rng.normal(0.0, self.noise, a.shape) * scale, mid - scale, mid + scale)
        return a.astype(np.float32)


def save_policy(
    path: str | os.PathLike,
    *,
    env_id: str,
    actor: Actor,
    normalizer: ObsNormalizer,
    record: dict[str, Any] | None = None,
) -> Path:
    """Write a policy file atomically (and ``<path>.json`` with its record)."""
    path = Path(path)
    net = actor.net
    state = {
        "format": FORMAT,
        "version": 1,
        "env_id": env_id,
        "obs_dim": net.in_dim,
        "act_dim": net.out_dim,
        "hidden": list(net.hidden),
        "activation": net.activation,
        "layer_norm": net.layer_norm,
        "action_low": (actor.act_mid - actor.act_scale).cpu(),
        "action_high": (actor.act_mid + actor.act_scale).cpu(),
        "weights": net.flat.detach().cpu().clone(),
        "normalizer": normalizer.state_dict(),
        "record": dict(record or {}),
    }
    save_atomic(state, path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"env_id": env_id, "hidden": list(net.hidden), **state["record"]}, indent=2))
    os.replace(tmp, path.with_suffix(".json"))
    return path


def load_policy(path: str | os.PathLike) -> BehaviourPolicy:
    """Load a policy file; any problem is one :class:`RlregError` (nothing is written)."""
    path = Path(path)
    if not path.is_file():
        raise RlregError(
            f"policy file {path} does not exist", "check the path; shipped policies live in envs/policies/"
        )
    state = safe_load(
        path, "policy file", "restore the file (git checkout) or export it again with `rlreg policy export`"
    )
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RlregError(
            f"{path} is not an rlreg policy file", "export one with `rlreg policy export RUN_DIR`"
        )
    try:
        nets = {"activation": state.get("activation", "relu"), "layer_norm": state.get("layer_norm", False)}
        actor = Actor(
            state["obs_dim"],
            state["act_dim"],
            state["hidden"],
            state["action_low"],
            state["action_high"],
            **nets,
        )
        weights = state["weights"]
        if weights.shape != actor.net.flat.shape:
            raise ValueError(f"{weights.numel()} weights for a network of {actor.net.flat.numel()}")
        with torch.no_grad():
            actor.net.flat.copy_(weights)
        normalizer = ObsNormalizer.from_state_dict(state["normalizer"])
        if normalizer.mean.shape != (state["obs_dim"],):
            raise ValueError("normalizer size does not match the observation size")
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise RlregError(
            f"policy file {path} is inconsistent ({e})",
            "restore the file or export it again with `rlreg policy export`",
        ) from e
    actor.eval()
    return BehaviourPolicy(state["env_id"], actor, normalizer, dict(state.get("record", {})))


def policy_from_run(run_dir: str | os.PathLike, step: int | None = None) -> BehaviourPolicy:
    """The actor of a training run: its latest checkpoint, or snapshot ``step`` (``snapshots/``)."""
    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise RlregError(
            f"{run} is not an rlreg run folder (no config.json)", "pass a folder made by `rlreg train`"
        )
    if step is not None:
        return load_policy(run / "snapshots" / f"step_{step:08d}.pt")
    cfg = json.loads(cfg_path.read_text())
    state = load_checkpoint(run / "checkpoint.pt")
    ac = cfg["agent_config"]
    env_id = cfg.get("env") or cfg.get("dataset_info", {}).get("env_id")
    check(env_id is not None, f"run {run} names no environment", "export from a run that trained on an env")
    from rlreg.envs.registry import make_env

    env = make_env(env_id)
    actor = Actor(
        env.observation_space.shape[0],
        env.action_space.shape[0],
        ac["actor_hidden"],
        torch.as_tensor(env.action_space.low),
        torch.as_tensor(env.action_space.high),
        activation=ac.get("activation", "relu"),
        layer_norm=ac.get("layer_norm", False),
    )
    env.close()
    actor.load_state_dict(state["agent"]["actor"])
    norm = ObsNormalizer.from_state_dict(cfg["obs_normalizer"])
    record = {"run": str(run), "step": int(state["step"]), "seed": cfg["seed"], "recipe": cfg["recipe"]}
    return BehaviourPolicy(env_id, actor.eval(), norm, record)


def shipped_policy(name: str) -> BehaviourPolicy:
    """A policy shipped with rlreg, e.g. ``hopper-expert`` (``envs/policies/hopper-expert.pt``)."""
    path = POLICY_DIR / f"{name}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in POLICY_DIR.glob("*.pt")) if POLICY_DIR.is_dir() else []
        raise RlregError(
            f"behaviour policy '{name}' is not shipped with this version of rlreg",
            "shipped: " + (", ".join(have) or "none yet") + "; train one with `rlreg train td3 --env ENV_ID "
            "--set train.snapshot_every=N` and export it with `rlreg policy export RUN_DIR --out "
            f"{path}`",
        )
    return load_policy(path)
