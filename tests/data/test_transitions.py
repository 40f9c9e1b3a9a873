"""Transitions container and the device-resident store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlreg.data.transitions import ObsNormalizer, RewardTransform, Transitions, TransitionStore
from rlreg.errors import RlregError


def make(n=10, s=3, a=2):
    rng = np.random.default_rng(0)
    return Transitions(
        observations=rng.normal(size=(n, s)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, a)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=rng.normal(size=(n, s)).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.zeros(n, bool),
        episode_starts=np.eye(1, n, 0, dtype=bool)[0],
    )


def test_store_sample_is_a_row_gather():
    t = make(50)
    store = TransitionStore.from_transitions(t)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 50, (8,), generator=torch.Generator().manual_seed(0))
    b = store.sample(8, g)
    np.testing.assert_array_equal(b.observations.numpy(), t.observations[idx.numpy()])
    np.testing.assert_array_equal(b.actions.numpy(), t.actions[idx.numpy()])
    np.testing.assert_array_equal(b.rewards.numpy(), t.rewards[idx.numpy()])
    np.testing.assert_array_equal(b.next_observations.numpy(), t.next_observations[idx.numpy()])
    assert b.dones.shape == (8,)


def test_ring_buffer_wraps():
    store = TransitionStore(4, 1, 1)
    for i in range(6):
        store.add(np.array([[i]]), np.array([[0.0]]), np.array([i]), np.array([[i + 1]]), np.array([0]))
    assert len(store) == 4
    assert sorted(store.data[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    with pytest.raises(RlregError, match="width"):
        store.add(np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(1), np.zeros((1, 2)), np.zeros(1))


def test_validate_catches_each_problem():
    t = make()
    t.validate()
    bad = make()
    bad.rewards = bad.rewards[:-1]
    with pytest.raises(RlregError, match="'rewards' has 9 rows"):
        bad.validate()
    bad = make()
    bad.actions[3, 1] = np.inf
    with pytest.raises(RlregError, match="'actions' contains NaN or inf .first at row 3"):
        bad.validate()
    with pytest.raises(RlregError, match="empty"):
        make(0).validate()


def test_action_bounds_check():
    t = make()
    t.check_action_bounds(-1, 1)
    t.actions[4, 0] = 1.5
    with pytest.raises(RlregError, match="row 4.*outside the action space bounds"):
        t.check_action_bounds(-np.ones(2), np.ones(2))


def discrete(n: int = 10, num_actions: int = 3) -> Transitions:
    t = make(n)
    t.actions = np.arange(n, dtype=np.int64) % num_actions
    return t


def test_discrete_actions_are_integer_indices_and_validate():
    t = discrete().validate()
    assert t.discrete and not make().discrete and t.obs_dim == 3
    assert t.astype().actions.dtype == np.int64  # astype keeps indices as indices
    t.check_action_count(3)
    with pytest.raises(RlregError, match="action 3 at row 3 is outside the environment's 3 discrete"):
        discrete(num_actions=4).check_action_count(3)
    with pytest.raises(RlregError, match="discrete actions, which have no action dimension"):
        _ = t.act_dim
    with pytest.raises(RlregError, match="has discrete actions; the environment has a 1-D Box"):
        t.check_action_bounds(-np.ones(2), np.ones(2))
    with pytest.raises(RlregError, match="2-dim continuous actions; the environment has 3 discrete"):
        make().check_action_count(3)


def test_discrete_actions_bad_input():
    bad = discrete()
    bad.actions = bad.actions - 1
    with pytest.raises(RlregError, match="discrete action at row 0 is -1, below 0"):
        bad.validate()
    bad.actions = np.zeros((10, 2), np.int64)
    with pytest.raises(RlregError, match=r"integer actions have shape \(10, 2\)"):
        bad.validate()
    bad.actions = np.zeros(10, bool)
    with pytest.raises(RlregError, match="dtype bool, expected .N,. action indices"):
        bad.validate()
    bad.actions = np.zeros(10, np.float32)  # 1-D float: not coerced into either form
    with pytest.raises(RlregError, match=r"actions have shape \(10,\), expected \(N, action_dim\)"):
        bad.validate()


def test_from_episodes_keeps_discrete_actions_and_flattens_continuous_ones():
    from rlreg.data.transitions import DatasetInfo, action_array

    def episode(actions: np.ndarray) -> dict:
        t = len(actions)
        return {
            "observations": np.zeros((t + 1, 2)),
            "actions": actions,
            "rewards": np.ones(t),
            "terminations": np.eye(1, t, t - 1, dtype=bool)[0],
            "truncations": np.zeros(t, bool),
        }

    d = Transitions.from_episodes([episode(np.array([1, 0])), episode(np.array([[2]]))], DatasetInfo("d"))
    assert d.actions.dtype == np.int64 and d.actions.tolist() == [1, 0, 2]
    c = Transitions.from_episodes([episode(np.array([0.5, -0.5]))], DatasetInfo("c"))
    assert c.actions.dtype == np.float32 and c.actions.shape == (2, 1)
    assert action_array(np.array([[1], [2]], np.int32)).tolist() == [1, 2]
    assert action_array(np.array([[1, 2]], np.int32)).shape == (1, 2)  # (N, 2) integers: not indices


def test_store_from_discrete_transitions_samples_integer_actions():
    t = discrete(50)
    store = TransitionStore.from_transitions(t)
    assert store.discrete and not store.packed
    idx = torch.randint(0, 50, (8,), generator=torch.Generator().manual_seed(0))
    b = store.sample(8, torch.Generator().manual_seed(0))
    assert b.actions.dtype == torch.int64
    np.testing.assert_array_equal(b.actions.numpy(), t.actions[idx.numpy()])
    np.testing.assert_array_equal(b.observations.numpy(), t.observations[idx.numpy()])


def test_normalizer_and_reward_transform():
    obs = np.array([[0.0, 10.0], [2.0, 10.0]], np.float32)
    norm = ObsNormalizer.from_observations(obs, eps=1e-3)
    np.testing.assert_allclose(norm.mean, [1.0, 10.0])
    np.testing.assert_allclose(norm.std, [1.001, 0.001])
    np.testing.assert_allclose(norm(obs)[:, 0], [-1 / 1.001, 1 / 1.001], rtol=1e-6)
    assert ObsNormalizer.from_state_dict(norm.state_dict()).std.tolist() == norm.std.tolist()
    r = np.array([0.0, 1.0], np.float32)
    np.testing.assert_allclose(RewardTransform(10000, -1)(r), [-1.0, 9999.0])


def test_digest_changes_with_data():
    a, b = make(), make()
    assert a.digest() == b.digest()
    b.rewards[0] += 1e-3
    assert a.digest() != b.digest()
