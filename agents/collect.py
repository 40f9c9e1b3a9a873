"""Online collection for discrete-action agents in batched MinAtar: N training environments stepped
together on the training device, ε-greedy actions from the agent, and a device-resident replay.

One :meth:`MinAtarCollector.step` is one step of every environment (N environment steps). The
replay gets ``(obs, action, reward, final_obs, terminated)`` per environment: ``final_obs`` is the
true last observation where an episode ended (the environment has already reset that row of
``obs``), and ``terminated`` excludes truncation, so a time-limited transition still bootstraps.
Episode returns are summed on the device (no host synchronisation per step) and read when logging.

With ``greedy_envs`` > 0, that many more environments are stepped beside them every step with the
agent's greedy action (DVW's protocol: one concurrent greedy environment whose episode returns,
smoothed over 50 episodes, are the reported curve; matsuolab/Deep-Variance-Weighting-MinAtar @
dd3d7c8). Their transitions never reach the replay and their random streams are their own, so
training is the same with or without them. Their finished episodes' returns go to a small ring on
the device, read when logging.
"""

from __future__ import annotations

from typing import Any

import torch
from rlreg.envs.minatar import MinAtarBatch

from rlreg.data.replay import DiscreteReplay
from rlreg.errors import check

__all__ = ["GREEDY_SEED_OFFSET", "MinAtarCollector"]

GREEDY_SEED_OFFSET = 10_000
"""The concurrent greedy environments use seed ``seed + GREEDY_SEED_OFFSET`` (their own streams)."""
SMOOTHING_EPISODES = 50
"""``greedy/return_last50``: mean over this many last greedy episodes (DVW's smoothing)."""


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
        greedy_envs: int = 0,
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
        self.greedy_env: MinAtarBatch | None = None
        if greedy_envs:
            self.greedy_env = MinAtarBatch(
                game,
                greedy_envs,
                device,
                seed=seed + GREEDY_SEED_OFFSET,
                sticky_action_prob=sticky_action_prob,
                max_episode_steps=max_episode_steps,
                obs_dtype=torch.uint8,
            )
            self.greedy_obs = self.greedy_env.observation()
            self.greedy_return = torch.zeros(greedy_envs, dtype=torch.float64, device=self.device)
            # returns of finished greedy episodes, the k-th ever at k mod capacity (one step ends at
            # most greedy_envs episodes, so they never collide), plus a scratch slot for the others
            self._ring_size = SMOOTHING_EPISODES + greedy_envs
            self.greedy_ring = torch.zeros(self._ring_size + 1, dtype=torch.float64, device=self.device)
            # episodes and Σ return since the last log, episodes ever
            self.greedy_stats = torch.zeros(3, dtype=torch.float64, device=self.device)

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
        if self.greedy_env is not None:
            self._greedy_step(agent)

    def _greedy_step(self, agent: Any) -> None:
        """One step of the greedy environments; finished returns go to the ring (no host sync)."""
        obs, reward, terminated, truncated, _ = self.greedy_env.step(agent.greedy(self.greedy_obs.float()))
        self.greedy_obs = obs
        ret = self.greedy_return.add_(reward.double())
        done = terminated | truncated
        d = done.double()
        at = (self.greedy_stats[2] + d.cumsum(0) - 1).remainder(self._ring_size).long()
        self.greedy_ring[torch.where(done, at, self._ring_size)] = ret
        self.greedy_stats += torch.stack([d.sum(), (ret * d).sum(), d.sum()])
        ret.masked_fill_(done, 0.0)

    def pop_episode_stats(self) -> dict[str, float]:
        """Mean return and length of the training episodes finished since the last call (one sync)."""
        n, ret, length = self._stats.cpu().tolist()
        self._stats.zero_()
        out = {}
        if n:
            out = {
                "rollout/episode_return": ret / n,
                "rollout/episode_length": length / n,
                "rollout/episodes": n,
            }
        if self.greedy_env is not None:
            n, ret, ever = self.greedy_stats.cpu().tolist()
            self.greedy_stats[:2].zero_()
            if n:
                k = int(ever)
                newest = [(k - 1 - j) % self._ring_size for j in range(min(k, SMOOTHING_EPISODES))]
                recent = self.greedy_ring.cpu()[newest]
                out["greedy/episode_return"] = ret / n
                out["greedy/episodes"] = int(n)
                out["greedy/return_last50"] = float(recent.mean())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "replay": self.replay.state_dict(),
            "obs": self.obs.cpu(),
            "ep_return": self.ep_return.cpu(),
            "ep_length": self.ep_length.cpu(),
            "stats": self._stats.cpu(),
            **(
                {
                    "greedy_env": self.greedy_env.state_dict(),
                    "greedy_obs": self.greedy_obs.cpu(),
                    "greedy_return": self.greedy_return.cpu(),
                    "greedy_ring": self.greedy_ring.cpu(),
                    "greedy_stats": self.greedy_stats.cpu(),
                }
                if self.greedy_env is not None
                else {}
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.replay.load_state_dict(state["replay"])
        self.obs = state["obs"].to(self.device)
        self.ep_return.copy_(state["ep_return"])
        self.ep_length.copy_(state["ep_length"])
        self._stats.copy_(state["stats"])
        check(
            ("greedy_env" in state) == (self.greedy_env is not None),
            "the checkpoint and this run disagree on train.greedy_envs (concurrent greedy environments)",
            "resume with the train.greedy_envs the run was started with",
        )
        if self.greedy_env is not None:
            self.greedy_env.load_state_dict(state["greedy_env"])
            self.greedy_obs = state["greedy_obs"].to(self.device)
            self.greedy_return.copy_(state["greedy_return"])
            self.greedy_ring.copy_(state["greedy_ring"])
            self.greedy_stats.copy_(state["greedy_stats"])
