"""Trajectory windows for sequence models (Decision Transformer style), sampled from a
:class:`~rlreg.data.transitions.TransitionStore` on its device.

A window is the ``K`` consecutive steps of one episode that end at a sampled row. End rows are
drawn uniformly over all stored rows (every row ends exactly one window), with one ``randint`` per
batch from the sampler's generator, so a seeded generator gives the same windows (the generator's
state is the sampler's whole state).

**Left padding.** A window whose end lies fewer than ``K - 1`` steps after its episode's first
stored step is padded on the *left*: padding first, real steps last (the newest step is always at
``[:, -1]``). Padded places hold zeros (observations, actions (index 0 for discrete actions),
rewards, returns-to-go, timesteps, dones), False timeouts, -1 indices and episode ids, and
``attention_mask`` False. Left padding is what the Decision Transformer reference uses; it draws
windows by their first step, so its short windows lie at episodes' ends, while here they lie at
episodes' starts, as an agent's context does when it acts from an episode's first step.

Returns-to-go are computed within each episode, from a step to the episode's last stored step
(a running episode: to its newest row), with discount ``gamma``; timesteps are the steps' indices
within their episodes (counted from the true start even when the ring overwrote the first steps).
Windows never cross the ring's write position (see ``TransitionStore.episode_bounds``). The episode
grouping and the returns-to-go are computed once and recomputed only after the store changes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from rlreg.data.transitions import TransitionStore
from rlreg.errors import check, check_number

__all__ = ["WindowBatch", "WindowSampler"]


class WindowBatch(NamedTuple):
    """``B`` windows of ``K`` steps (left-padded; the newest step at ``[:, -1]``), on the store's device.

    * ``observations``: ``(B, K, *obs_shape)`` float32.
    * ``actions``: ``(B, K, A)`` float32 (continuous) or ``(B, K)`` int64 (discrete).
    * ``rewards``, ``returns_to_go``, ``dones`` (terminals as float): ``(B, K)`` float32.
    * ``timesteps``: ``(B, K)`` int64, step index within the episode.
    * ``attention_mask``: ``(B, K)`` bool, True on real steps.
    * ``timeouts``: ``(B, K)`` bool.
    * ``indices``, ``episode_ids``: ``(B, K)`` int64 storage rows and episode ids, -1 where padded.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    returns_to_go: torch.Tensor
    timesteps: torch.Tensor
    attention_mask: torch.Tensor
    dones: torch.Tensor
    timeouts: torch.Tensor
    indices: torch.Tensor
    episode_ids: torch.Tensor


class WindowSampler:
    """Uniform trajectory windows of ``context`` steps from ``store`` (see the module docstring).

    ``reward`` names the store's reward column for ``rewards`` and the returns-to-go (default: the
    store's ``reward_key``).
    """

    def __init__(
        self,
        store: TransitionStore,
        context: int,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        gamma: float = 1.0,
        reward: str | None = None,
    ) -> None:
        for name, value in (("context", context), ("batch_size", batch_size)):
            check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"WindowSampler {name} must be an integer >= 1, got {value!r}",
                f"pass e.g. {name}={20 if name == 'context' else 64}",
            )
        check_number(gamma, "gamma", example="1.0")
        store.reward_column(reward)  # unknown names fail here, not at the first sample
        self.store, self.context, self.batch_size = store, context, batch_size
        self.generator, self.gamma, self.reward = generator, float(gamma), reward
        self._offsets = torch.arange(1 - context, 1, device=store.device)

    def sample(self) -> WindowBatch:
        """One batch of windows: one ``randint`` over the stored rows, then gathers on the device."""
        s, b, k = self.store, self.batch_size, self.context
        check(len(s) > 0, "sampling windows from an empty store", "add transitions before sampling")
        index = s.episode_index()
        rtg = s.returns_to_go(self.gamma, self.reward)
        end = torch.randint(0, len(s), (b,), device=s.device, generator=self.generator)
        place = end[:, None] + self._offsets
        mask = place >= index.seg_start[end][:, None]
        rows = index.order[place.clamp(min=0)].reshape(-1)
        batch = s.gather(rows, reward=self.reward, extras=True)

        def pad(x: torch.Tensor, fill: float | bool = 0) -> torch.Tensor:
            x = x.reshape(b, k, *x.shape[1:])
            return torch.where(mask.view(b, k, *([1] * (x.dim() - 2))), x, fill)

        return WindowBatch(
            observations=pad(batch.observations),
            actions=pad(batch.actions),
            rewards=pad(batch.rewards),
            returns_to_go=pad(rtg.index_select(0, rows)),
            timesteps=pad(s.episode_steps.index_select(0, rows)),
            attention_mask=mask,
            dones=pad(batch.dones),
            timeouts=pad(batch.timeouts, False),
            indices=pad(rows, -1),
            episode_ids=pad(batch.episode_ids, -1),
        )
