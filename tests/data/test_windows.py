"""WindowSampler: shapes, left padding and mask, returns-to-go and timesteps by hand, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlreg.data.transitions import Transitions, TransitionStore
from rlreg.data.windows import WindowSampler
from rlreg.errors import RlregError

# two episodes: rows 0-2 (rewards 1, 2, 3, terminal) and rows 3-6 (10, 20, 30, 40, timeout)
REWARDS = np.array([1, 2, 3, 10, 20, 30, 40], np.float32)
# end row -> (rows of its window of 3, padded places -1), timesteps and returns-to-go (γ = 1)
EXPECTED = {
    0: ([-1, -1, 0], [0, 0, 0], [0, 0, 6]),
    1: ([-1, 0, 1], [0, 0, 1], [0, 6, 5]),
    2: ([0, 1, 2], [0, 1, 2], [6, 5, 3]),
    3: ([-1, -1, 3], [0, 0, 0], [0, 0, 100]),
    4: ([-1, 3, 4], [0, 0, 1], [0, 100, 90]),
    5: ([3, 4, 5], [0, 1, 2], [100, 90, 70]),
    6: ([4, 5, 6], [1, 2, 3], [90, 70, 40]),
}


def two_episodes() -> TransitionStore:
    n = len(REWARDS)
    obs = np.arange(1, n + 1, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # row i: i + 1
    t = Transitions(
        observations=obs,
        actions=obs[:, :1] / 10,
        rewards=REWARDS,
        next_observations=obs + 1,
        terminals=np.eye(1, n, 2, dtype=bool)[0],
        timeouts=np.eye(1, n, 6, dtype=bool)[0],
        episode_starts=np.eye(1, n, 0, dtype=bool)[0] | np.eye(1, n, 3, dtype=bool)[0],
    )
    return TransitionStore.from_transitions(t)


def test_windows_by_hand():
    store = two_episodes()
    w = WindowSampler(store, 3, 200, torch.Generator().manual_seed(0)).sample()
    assert w.observations.shape == (200, 3, 2) and w.observations.dtype == torch.float32
    assert w.actions.shape == (200, 3, 1) and w.actions.dtype == torch.float32
    for f in ("rewards", "returns_to_go", "dones"):
        assert getattr(w, f).shape == (200, 3) and getattr(w, f).dtype == torch.float32
    assert w.timesteps.dtype == torch.int64 and w.attention_mask.dtype == torch.bool
    ends = w.indices[:, -1]
    assert set(ends.tolist()) == set(EXPECTED)  # every row ends some window
    for i in range(200):
        rows, steps, rtg = EXPECTED[int(ends[i])]
        mask = torch.tensor(rows) >= 0
        assert w.indices[i].tolist() == rows
        assert torch.equal(w.attention_mask[i], mask)
        assert w.timesteps[i].tolist() == steps
        assert w.returns_to_go[i].tolist() == rtg
        real = torch.tensor([r for r in rows if r >= 0])
        assert w.rewards[i].tolist() == [0.0] * int((~mask).sum()) + REWARDS[real.numpy()].tolist()
        assert torch.equal(w.observations[i][mask], store.obs[real])
        assert torch.equal(w.observations[i][~mask], torch.zeros(int((~mask).sum()), 2))  # left padding
        assert torch.equal(w.actions[i][~mask], torch.zeros(int((~mask).sum()), 1))
        assert w.dones[i].tolist() == [float(r == 2) for r in rows]
        assert w.timeouts[i].tolist() == [r == 6 for r in rows]
        assert w.episode_ids[i].tolist() == [-1 if r < 0 else int(r >= 3) for r in rows]


def test_discounted_returns_to_go_in_windows():
    store = two_episodes()
    w = WindowSampler(store, 2, 64, torch.Generator().manual_seed(1), gamma=0.5).sample()
    want = {
        2: 3.0,
        1: 2 + 0.5 * 3,
        0: 1 + 0.5 * 2 + 0.25 * 3,
        6: 40.0,
        5: 30 + 20,
        4: 20 + 15 + 10,
        3: 10 + 10 + 7.5 + 5,
    }
    for rows, rtg in zip(w.indices.tolist(), w.returns_to_go.tolist()):
        assert rtg == [want[r] if r >= 0 else 0.0 for r in rows]


def test_windows_are_deterministic_for_a_seeded_generator():
    store = two_episodes()
    a = WindowSampler(store, 4, 16, torch.Generator().manual_seed(3))
    b = WindowSampler(store, 4, 16, torch.Generator().manual_seed(3))
    c = WindowSampler(store, 4, 16, torch.Generator().manual_seed(4))
    for _ in range(3):
        x, y, z = a.sample(), b.sample(), c.sample()
        for u, v in zip(x, y):
            assert torch.equal(u, v)
    assert not torch.equal(x.indices, z.indices)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def test_discrete_image_windows_and_a_growing_ring():
    store = TransitionStore(6, obs_shape=(1, 2, 2), num_actions=4, obs_dtype=torch.uint8)
    for t in range(4):
        store.add(
            torch.full((1, 1, 2, 2), t, dtype=torch.uint8),
            torch.tensor([t % 4]),
            torch.ones(1),
            torch.full((1, 1, 2, 2), t + 1, dtype=torch.uint8),
            torch.zeros(1),
        )
    sampler = WindowSampler(store, 3, 32, torch.Generator().manual_seed(0))
    w = sampler.sample()
    assert w.observations.shape == (32, 3, 1, 2, 2) and w.observations.dtype == torch.float32
    assert w.actions.shape == (32, 3) and w.actions.dtype == torch.int64
    assert set(w.indices[:, -1].tolist()) == {0, 1, 2, 3}
    for t in range(4, 9):  # the ring wraps: rows 3..8 stay, one running episode
        store.add(
            torch.full((1, 1, 2, 2), t, dtype=torch.uint8),
            torch.tensor([t % 4]),
            torch.ones(1),
            torch.full((1, 1, 2, 2), t + 1, dtype=torch.uint8),
            torch.zeros(1),
        )
    w = sampler.sample()  # recomputed after the store changed
    step_of = {int(r): int(s) for r, s in zip(range(6), store.episode_steps.tolist())}
    oldest = int(store.insertion_order()[0])
    for rows, steps, mask, rtg in zip(
        w.indices.tolist(), w.timesteps.tolist(), w.attention_mask, w.returns_to_go
    ):
        assert steps == [step_of[r] if r >= 0 else 0 for r in rows]  # true steps 3..8
        if rows[-1] == oldest:  # the window never reaches across the write position
            assert mask.tolist() == [False, False, True]
        assert rtg[-1].item() == 9 - step_of[rows[-1]]
    assert sorted(step_of.values()) == [3, 4, 5, 6, 7, 8]


def test_bad_window_settings_raise():
    store = two_episodes()
    for k in (0, -2, 1.5, True):
        with pytest.raises(RlregError, match="context must be an integer >= 1"):
            WindowSampler(store, k, 4)
    with pytest.raises(RlregError, match="batch_size must be an integer >= 1"):
        WindowSampler(store, 2, 0)
    with pytest.raises(RlregError, match="unknown reward column 'learned'"):
        WindowSampler(store, 2, 4, reward="learned")
    with pytest.raises(RlregError, match="empty store"):
        WindowSampler(TransitionStore(4, 2, 1), 2, 4).sample()
