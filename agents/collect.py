"""Online collection for discrete-action agents in batched MinAtar: N training environments stepped
together on the training device, ε-greedy actions from the agent, and a device-resident replay.

One :meth:`MinAtarCollector.step` is one step of every environment (N environment steps). The
replay gets ``(obs, action, reward, final_obs, terminated)`` per environment: ``final_obs`` is the
true last observation where an episode ended (the environment has already reset that row of
``obs``), and ``terminated`` excludes truncation, so a time-limited transition still bootstraps.
Episode returns are summed on the device (no host synchronisation per step) and read when logging.
"""

from __future__ import annotations

from typing import Any

import torch

from envs.minatar import MinAtarBatch
from rlreg.data.replay import DiscreteReplay

__all__ = ["MinAtarCollector"]


class MinAtarCollector:
    """Training environments + replay for an agent with ``act(obs, epsilon) -> actions``."""

    def __init__(
        self,
        game: str,
        num_envs: int,
        device: torch.device,
        seed: int,
        replay_size: int,
        sticky_action_prob: float = 0.1,
        max_episode_steps: int | None = None,
    ) -> None:
        self.env = MinAtarBatch(
            game,
            num_envs,
            device,
            seed=seed,
            sticky_action_prob=sticky_action_prob,
            max_episode_steps=max_episode_steps,
            obs_dtype=torch.uint8,
        )
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.obs_shape = self.env.obs_shape
        self.num_actions = self.env.num_actions
        self.replay = DiscreteReplay(replay_size, self.obs_shape, self.device, obs_dtype=torch.uint8)
        self.obs = self.env.observation()
        self.ep_return = torch.zeros(num_envs, dtype=torch.float64, device=self.device)
        self.ep_length = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._stats = torch.zeros(3, dtype=torch.float64, device=self.device)  # episodes, Σ return, Σ length

    def step(self, agent: Any, epsilon: float) -> None:
        """Act in every environment, store the transitions, track finished episodes."""
        actions = agent.act(self.obs.float(), epsilon)
        next_obs, reward, terminated, truncated, final_obs = self.env.step(actions)
        self.replay.add(self.obs, actions, reward, final_obs, terminated)
        self.obs = next_obs
        done = terminated | truncated
        self.ep_return += reward.double()
        self.ep_length += 1
        d = done.double()
        self._stats += torch.stack([d.sum(), (self.ep_return * d).sum(), (self.ep_length * d).sum()])
        self.ep_return.masked_fill_(done, 0.0)
        self.ep_length.masked_fill_(done, 0)

    def pop_episode_stats(self) -> dict[str, float]:
        """Mean return and length of the training episodes finished since the last call (one sync)."""
        n, ret, length = self._stats.cpu().tolist()
        self._stats.zero_()
        if n == 0:
            return {}
        return {
            "rollout/episode_return": ret / n,
            "rollout/episode_length": length / n,
            "rollout/episodes": n,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "replay": self.replay.state_dict(),
            "obs": self.obs.cpu(),
            "ep_return": self.ep_return.cpu(),
            "ep_length": self.ep_length.cpu(),
            "stats": self._stats.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.replay.load_state_dict(state["replay"])
        self.obs = state["obs"].to(self.device)
        self.ep_return.copy_(state["ep_return"])
        self.ep_length.copy_(state["ep_length"])
        self._stats.copy_(state["stats"])
