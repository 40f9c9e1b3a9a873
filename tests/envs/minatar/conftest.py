"""Shared helpers of the MinAtar tests."""

from __future__ import annotations

import pytest
import torch
from rlreg.envs.minatar.base import CounterRNG


class RecordingRNG(CounterRNG):
    """A CounterRNG that remembers what it handed out (to drive the reference with the same values)."""

    def __init__(self, num_envs: int, seed: int) -> None:
        super().__init__(num_envs, seed, torch.device("cpu"))
        self.log: list[torch.Tensor] = []

    def uniform(self, n: int) -> torch.Tensor:
        u = super().uniform(n)
        self.log.append(u.clone())
        return u


@pytest.fixture
def recording_rng() -> type[RecordingRNG]:
    return RecordingRNG
