"""TransitionStore: bit-identical sampling against the two stores it replaced, episode structure,
reward columns, typed actions, state round trips and bad inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rlreg.data.transitions import STATE_FORMAT, TensorBatch, Transitions, TransitionStore
from rlreg.errors import RlregError


# ---------------------------------------------------------------------- references (the code replaced)
class RefPacked:
    """The packed TransitionStore as it was before episodes were kept (copied, trimmed to its core)."""

    def __init__(self, capacity, obs_dim, act_dim, device="cpu"):
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        self.device = torch.device(device)
        self.width = 2 * obs_dim + act_dim + 2
        self.data = torch.zeros(capacity, self.width, dtype=torch.float32, device=self.device)
        self.size = self.pos = 0
        self._splits = (obs_dim, act_dim, 1, obs_dim, 1)

    def add(self, observations, actions, rewards, next_observations, terminals):
        def t(x):
            x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
            return x.to(self.device, torch.float32).reshape(x.shape[0], -1)

        rows = torch.cat([t(observations), t(actions), t(rewards), t(next_observations), t(terminals)], dim=1)
        n = rows.shape[0]
        if n >= self.capacity:
            self.data.copy_(rows[-self.capacity :])
            self.pos, self.size = 0, self.capacity
            return
        end = self.pos + n
        if end <= self.capacity:
            self.data[self.pos : end] = rows
        else:
            k = self.capacity - self.pos
            self.data[self.pos :] = rows[:k]
            self.data[: n - k] = rows[k:]
        self.pos = end % self.capacity
        self.size = min(self.size + n, self.capacity)

    def split(self, rows, indices=None):
        o, a, r, no, d = torch.split(rows, self._splits, dim=1)
        return TensorBatch(o, a, r.squeeze(1), no, d.squeeze(1), indices)

    def sample(self, batch_size, generator=None):
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self.split(self.data.index_select(0, idx), idx)

    def state_dict(self):
        return {
            "data": self.data[: self.size].cpu() if self.size < self.capacity else self.data.cpu(),
            "size": self.size,
            "pos": self.pos,
        }


class RefDiscrete:
    """DiscreteReplay as it was (copied, trimmed to its core)."""

    def __init__(self, capacity, obs_shape, device="cpu", obs_dtype=torch.uint8):
        self.capacity, self.obs_shape = capacity, tuple(obs_shape)
        self.device = torch.device(device)
        self.obs = torch.zeros((capacity, *self.obs_shape), dtype=obs_dtype, device=self.device)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.rewards = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.size = self.pos = 0

    def add(self, obs, actions, rewards, next_obs, terminated):
        n = int(actions.shape[0])
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        self.obs[idx] = obs.to(self.device, self.obs.dtype)
        self.next_obs[idx] = next_obs.to(self.device, self.obs.dtype)
        self.actions[idx] = actions.to(self.device, torch.int64)
        self.rewards[idx] = rewards.to(self.device, torch.float32)
        self.terminated[idx] = terminated.to(self.device, torch.float32)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size, generator=None):
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return TensorBatch(
            self.obs.index_select(0, idx).float(),
            self.actions.index_select(0, idx),
            self.rewards.index_select(0, idx),
            self.next_obs.index_select(0, idx).float(),
            self.terminated.index_select(0, idx),
            idx,
        )

    def state_dict(self):
        n = self.size
        return {
            "obs": self.obs[:n].cpu(),
            "next_obs": self.next_obs[:n].cpu(),
            "actions": self.actions[:n].cpu(),
            "rewards": self.rewards[:n].cpu(),
            "terminated": self.terminated[:n].cpu(),
            "size": n,
            "pos": self.pos,
        }


def assert_same_batches(a, b, ga, gb, batch_size=32, draws=5):
    """``draws`` samples of each store with its generator: every field bit-identical, and the
    generators left in the same state."""
    for _ in range(draws):
        x, y = a.sample(batch_size, ga), b.sample(batch_size, gb)
        for f in ("observations", "actions", "rewards", "next_observations", "dones", "indices"):
            u, v = getattr(x, f), getattr(y, f)
            assert u.dtype == v.dtype and u.shape == v.shape, f
            assert torch.equal(u, v), f
    assert torch.equal(ga.get_state(), gb.get_state())


def transitions(n=12, s=3, a=2, seed=0, starts=(0, 4, 9), terminal=(3,), timeout=(8,)):
    rng = np.random.default_rng(seed)
    flags = np.zeros((3, n), bool)
    for row, idx in zip(flags, (starts, terminal, timeout)):
        row[list(idx)] = True
    return Transitions(
        observations=rng.normal(size=(n, s)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, a)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=rng.normal(size=(n, s)).astype(np.float32),
        terminals=flags[1],
        timeouts=flags[2],
        episode_starts=flags[0],
    )


def step_rows(rng, n, s=3, a=2):
    """One ``add`` worth of random packed transitions (float64 numpy, as the online loop gives)."""
    return (
        rng.normal(size=(n, s)),
        rng.uniform(-1, 1, (n, a)),
        rng.normal(size=n),
        rng.normal(size=(n, s)),
        (rng.uniform(size=n) < 0.2),
    )


def image_rows(gen, n, shape=(2, 4, 4), actions=5):
    obs = torch.randint(0, 2, (n, *shape), generator=gen, dtype=torch.uint8)
    nxt = torch.randint(0, 2, (n, *shape), generator=gen, dtype=torch.uint8)
    act = torch.randint(0, actions, (n,), generator=gen)
    rew = torch.randn(n, generator=gen)
    term = torch.rand(n, generator=gen) < 0.2
    return obs, act, rew, nxt, term


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ---------------------------------------------------------------------- bit-identical sampling
def test_packed_dataset_samples_bit_identical_to_the_old_store():
    t = transitions(200, seed=1, starts=(0, 50, 120), terminal=(49,), timeout=(119,))
    new, old = TransitionStore.from_transitions(t), RefPacked(200, 3, 2)
    old.add(t.observations, t.actions, t.rewards, t.next_observations, t.terminals)
    assert new.packed and new.width == old.width and torch.equal(new.data, old.data)
    assert_same_batches(new, old, torch.Generator().manual_seed(5), torch.Generator().manual_seed(5), 256)


def test_packed_online_ring_samples_bit_identical_to_the_old_store():
    rng_new, rng_old = np.random.default_rng(2), np.random.default_rng(2)
    new, old = TransitionStore(7, 3, 2), RefPacked(7, 3, 2)
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for i, n in enumerate([1, 1, 2, 1, 3, 1, 1, 4, 1, 1, 1, 2, 5]):  # wraps several times, n < capacity
        new.add(*step_rows(rng_new, n))
        old.add(*step_rows(rng_old, n))
        assert (new.size, new.pos) == (old.size, old.pos)
        assert torch.equal(new.data, old.data), i
        assert_same_batches(new, old, ga, gb, 16, draws=2)


def test_packed_batch_views_stay_adjacent_for_the_zero_copy_join():
    store = TransitionStore.from_transitions(transitions(20))
    b = store.sample(8, torch.Generator().manual_seed(0))
    o, a = b.observations, b.actions
    assert o.stride() == a.stride() == (store.width, 1)
    assert a.data_ptr() == o.data_ptr() + o.shape[1] * o.element_size()
    assert o.untyped_storage().data_ptr() == a.untyped_storage().data_ptr()
    assert b.timeouts is None and b.episode_ids is None  # not gathered unless asked


def test_captured_path_pieces_reproduce_sample():
    """What the CUDA-graph path does (randint + index_select into fixed buffers + split) equals sample()."""
    store = TransitionStore.from_transitions(transitions(30))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    idx, rows = torch.empty(16, dtype=torch.long), torch.empty(16, store.width)
    static = store.split(rows, idx)
    torch.randint(0, store.size, (16,), generator=g1, out=idx)
    torch.index_select(store.data, 0, idx, out=rows)
    ref = store.sample(16, g2)
    for u, v in zip(static[:6], ref[:6]):
        assert torch.equal(u, v)


def test_discrete_image_samples_bit_identical_to_discrete_replay():
    gen_new, gen_old = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    new = TransitionStore(25, obs_shape=(2, 4, 4), discrete=True, obs_dtype=torch.uint8)
    old = RefDiscrete(25, (2, 4, 4))
    assert isinstance(new, TransitionStore) and not new.packed and new.discrete
    ga, gb = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    for step in range(20):  # 3 environments per add, as the collector does; wraps (25 % 3 != 0)
        new.add(*image_rows(gen_new, 3))
        old.add(*image_rows(gen_old, 3))
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            assert torch.equal(getattr(new, name), getattr(old, name)), (step, name)
        assert_same_batches(new, old, ga, gb, 16, draws=2)
    b = new.sample(4, ga)
    assert b.observations.dtype == torch.float32 and b.observations.shape == (4, 2, 4, 4)
    assert b.actions.dtype == torch.int64 and b.actions.shape == (4,)
    assert b.dones.dtype == torch.float32 and b.rewards.shape == (4,)


def test_old_states_load_and_sample_the_same():
    rng = np.random.default_rng(0)
    old, new = RefPacked(6, 3, 2), TransitionStore(6, 3, 2)
    for _ in range(9):
        old.add(*step_rows(rng, 1))
    new.load_state_dict(roundtrip(old.state_dict()))
    assert_same_batches(new, old, torch.Generator().manual_seed(1), torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    dold, dnew = (
        RefDiscrete(10, (2, 4, 4)),
        TransitionStore(10, obs_shape=(2, 4, 4), num_actions=5, obs_dtype=torch.uint8),
    )
    for _ in range(4):
        dold.add(*image_rows(gen, 3))
    dnew.load_state_dict(roundtrip(dold.state_dict()))
    assert_same_batches(dnew, dold, torch.Generator().manual_seed(1), torch.Generator().manual_seed(1))
    # episodes rebuilt from the terminals (timeouts were not kept then), oldest row first
    order = dnew.insertion_order()
    term = dnew.terminated[order].bool()
    starts = torch.cat([torch.tensor([True]), term[:-1]])
    assert torch.equal(dnew.episode_starts[order], starts)
    assert torch.equal(dnew.episode_ids[order], starts.long().cumsum(0) - 1)


# ---------------------------------------------------------------------- episode structure
def test_from_transitions_keeps_timeouts_starts_and_ids():
    t = transitions(12, starts=(0, 4, 9), terminal=(3,), timeout=(8,))
    store = TransitionStore.from_transitions(t)
    assert torch.equal(store.timeouts, torch.from_numpy(t.timeouts))
    assert torch.equal(store.episode_starts, torch.from_numpy(t.episode_starts))
    assert store.episode_ids.tolist() == [0] * 4 + [1] * 5 + [2] * 3
    assert store.episode_steps.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1, 2]
    assert store.terminated.tolist() == t.terminals.astype(np.float32).tolist()  # dones: never timeouts
    assert store.episode_bounds().tolist() == [[0, 4], [4, 9], [9, 12]]
    b = store.sample(64, torch.Generator().manual_seed(0), extras=True)
    assert torch.equal(b.timeouts, store.timeouts[b.indices])
    assert torch.equal(b.episode_ids, store.episode_ids[b.indices])
    assert torch.equal(b.dones, store.terminated[b.indices])


def test_dataset_episodes_follow_the_starts_not_the_terminals():
    """As Transitions.episode_returns does: a terminal inside a dataset episode does not split it."""
    t = transitions(6, starts=(0,), terminal=(2,), timeout=())
    store = TransitionStore.from_transitions(t)
    assert store.episode_ids.tolist() == [0] * 6
    np.testing.assert_allclose(store.returns_to_go()[0].item(), t.episode_returns()[0], rtol=1e-6)


def add_steps(store, flags, start=0):
    """One row per call; ``flags[i]`` is '.', 'T' (terminal) or 'O' (timeout); obs = row number."""
    for i, f in enumerate(flags, start):
        store.add(
            np.array([[float(i)]]),
            np.zeros((1, 1)),
            np.array([float(i)]),
            np.array([[i + 1.0]]),
            np.array([f == "T"]),
            timeouts=np.array([f == "O"]),
        )


def test_online_episodes_continue_across_calls_and_end_at_terminals_or_timeouts():
    store = TransitionStore(20, 1, 1)
    add_steps(store, "..T..O.T...")
    assert store.episode_ids[:11].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert store.episode_steps[:11].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 0, 1, 2]
    assert store.timeouts[:11].tolist() == [f == "O" for f in "..T..O.T..."]
    assert store.terminated[:11].tolist() == [float(f == "T") for f in "..T..O.T..."]
    # the same rows in one call, or in uneven chunks, give the same columns
    for chunks in ([11], [4, 7], [1, 5, 5]):
        other, row = TransitionStore(20, 1, 1), 0
        for k in chunks:
            f = "..T..O.T..."[row : row + k]
            other.add(
                np.arange(row, row + k, dtype=float)[:, None],
                np.zeros((k, 1)),
                np.arange(row, row + k, dtype=float),
                np.arange(row + 1, row + k + 1, dtype=float)[:, None],
                np.array([c == "T" for c in f]),
                timeouts=np.array([c == "O" for c in f]),
            )
            row += k
        for name in ("episode_ids", "episode_steps", "episode_starts", "timeouts"):
            assert torch.equal(getattr(other, name)[:11], getattr(store, name)[:11]), (chunks, name)
        assert torch.equal(other.data, store.data)


def test_ring_wrap_keeps_ids_and_true_steps():
    store = TransitionStore(5, 1, 1)
    add_steps(store, ".....T...")  # rows 0-5 episode 0, rows 6-8 episode 1; rows 4..8 stay
    order = store.insertion_order()
    assert order.tolist() == [4, 0, 1, 2, 3] and store.pos == 4
    assert store.obs[order, 0].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert store.episode_ids[order].tolist() == [0, 0, 1, 1, 1]
    assert store.episode_steps[order].tolist() == [4, 5, 0, 1, 2]  # counted from the true start
    assert store.episode_bounds().tolist() == [[0, 2], [2, 5]]
    # one add of more rows than the ring holds is the same as adding them one by one
    once = TransitionStore(5, 1, 1)
    f = ".....T..."
    once.add(
        np.arange(9.0)[:, None],
        np.zeros((9, 1)),
        np.arange(9.0),
        np.arange(1.0, 10.0)[:, None],
        np.array([c == "T" for c in f]),
        timeouts=np.zeros(9, bool),
    )
    for name in ("data", "episode_ids", "episode_steps", "episode_starts"):
        assert torch.equal(getattr(once, name), getattr(store, name)), name
    assert once.pos == store.pos


def test_interleaved_environments_have_their_own_episodes():
    store = TransitionStore(16, 1, 1, num_envs=2)
    ends = [(False, False), (True, False), (False, False), (False, True), (False, False)]
    for t, (e0, e1) in enumerate(ends):
        store.add(
            np.full((2, 1), t), np.zeros((2, 1)), np.ones(2), np.full((2, 1), t + 1), np.array([e0, e1])
        )
    ids, steps = store.episode_ids[:10].view(5, 2), store.episode_steps[:10].view(5, 2)
    assert ids[:, 0].tolist() == [0, 0, 2, 2, 2] and ids[:, 1].tolist() == [1, 1, 1, 1, 3]
    assert steps[:, 0].tolist() == [0, 1, 0, 1, 2] and steps[:, 1].tolist() == [0, 1, 2, 3, 0]
    order = store.episode_order()
    assert store.episode_ids[order].tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 3]
    assert store.returns_to_go()[order].tolist() == [2, 1, 4, 3, 2, 1, 3, 2, 1, 1]
    with pytest.raises(RlregError, match="do not split evenly over the store's 2 environments"):
        store.add(np.zeros((3, 1)), np.zeros((3, 1)), np.zeros(3), np.zeros((3, 1)), np.zeros(3))


def test_explicit_episode_starts():
    store = TransitionStore(10, 1, 1)
    store.add(
        np.zeros((4, 1)),
        np.zeros((4, 1)),
        np.zeros(4),
        np.zeros((4, 1)),
        np.zeros(4),
        episode_starts=np.array([False, False, True, False]),
    )  # the first row starts one anyway
    store.add(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.zeros((2, 1)), np.array([0, 1]))
    store.add(
        np.zeros((2, 1)),
        np.zeros((2, 1)),
        np.zeros(2),
        np.zeros((2, 1)),
        np.zeros(2),
        episode_starts=np.array([False, True]),
    )  # told: the row after the terminal continues it
    assert store.episode_ids[:8].tolist() == [0, 0, 1, 1, 1, 1, 1, 2]
    assert store.episode_steps[:8].tolist() == [0, 1, 0, 1, 2, 3, 4, 0]


def test_returns_to_go_and_n_step_targets_by_hand():
    # episode A: rewards 1, 2, 3, ends terminal; B: 4, 5, ends by timeout; C: 6, 7, running
    r = np.array([1, 2, 3, 4, 5, 6, 7], np.float32)
    term = np.array([0, 0, 1, 0, 0, 0, 0], bool)
    tout = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    store = TransitionStore(7, 1, 1)
    store.add(np.arange(7.0)[:, None], np.zeros((7, 1)), r, np.arange(1.0, 8.0)[:, None], term, timeouts=tout)
    assert store.returns_to_go().tolist() == [6, 5, 3, 9, 5, 13, 7]
    assert store.returns_to_go(0.5).tolist() == [2.75, 3.5, 3, 6.5, 5, 9.5, 7]
    nt = store.n_step_targets(2, 0.5)
    assert nt.returns.tolist() == [2, 3.5, 3, 6.5, 5, 9.5, 7]
    assert nt.bootstrap.tolist() == [1, 2, 2, 4, 4, 6, 6]
    assert nt.discounts.tolist() == [0.25, 0, 0, 0.25, 0.5, 0.25, 0.5]  # terminal: 0; timeout: γ^m
    assert nt.steps.tolist() == [2, 2, 1, 2, 1, 2, 1]
    nt3 = store.n_step_targets(3, 0.5)
    assert nt3.returns[0].item() == 2.75 and nt3.discounts[0].item() == 0 and nt3.steps[0].item() == 3
    one = store.n_step_targets(1, 0.9)  # n = 1: the one-step target
    assert one.returns.tolist() == r.tolist() and one.bootstrap.tolist() == list(range(7))
    np.testing.assert_allclose(one.discounts.numpy(), 0.9 * (1 - term))


def test_returns_to_go_cache_follows_changes():
    store = TransitionStore(4, 1, 1)
    store.add(np.zeros((2, 1)), np.zeros((2, 1)), np.ones(2), np.zeros((2, 1)), np.zeros(2))
    assert store.returns_to_go().tolist() == [2, 1]
    store.add(np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1), np.zeros((1, 1)), np.ones(1))
    assert store.returns_to_go().tolist() == [3, 2, 1]
    store.set_rewards("reward", torch.tensor([1.0, 0.0, 2.0]))
    assert store.returns_to_go().tolist() == [3, 2, 2]


# ---------------------------------------------------------------------- reward columns
def test_named_reward_columns():
    store = TransitionStore(6, 1, 1, reward_columns=("shaped",))
    store.add(
        np.zeros((3, 1)),
        np.zeros((3, 1)),
        {"reward": [1, 2, 3], "shaped": [10, 20, 30]},
        np.zeros((3, 1)),
        np.zeros(3),
    )
    store.add(np.zeros((1, 1)), np.zeros((1, 1)), [4], np.zeros((1, 1)), np.zeros(1))
    assert store.reward_columns == ("reward", "shaped")
    assert store.rewards[:4].tolist() == [1, 2, 3, 4]
    assert store.reward_column("shaped")[:3].tolist() == [10, 20, 30]
    assert np.isnan(store.reward_column("shaped")[3].item())  # not written for that row
    store.set_rewards("learned", torch.tensor([0.5, 1.5, 2.5, 3.5]))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    b, ref = store.sample(8, g1, reward="learned"), store.sample(8, g2)
    assert torch.equal(b.indices, ref.indices)  # the column choice draws nothing
    assert torch.equal(b.rewards, store.reward_column("learned")[b.indices])
    assert torch.equal(ref.rewards, store.rewards[ref.indices])
    assert store.returns_to_go(reward="learned").tolist() == [8, 7.5, 6, 3.5]


def test_switching_the_default_reward_moves_it_into_the_packed_rows():
    store = TransitionStore.from_transitions(transitions(10))
    true = store.rewards[:10].clone()
    store.set_rewards("learned", torch.arange(10.0))
    store.reward_key = "learned"
    s, a = store.obs_dim, store.act_dim
    assert torch.equal(store.data[:10, s + a], torch.arange(10.0))
    assert torch.equal(store.reward_column("reward")[:10], true)
    b = store.sample(16, torch.Generator().manual_seed(1))
    assert torch.equal(b.rewards, b.indices.float())
    store.reward_key = "reward"
    assert torch.equal(store.data[:10, s + a], true)


def test_unknown_reward_column_raises():
    store = TransitionStore.from_transitions(transitions(10))
    for call in (
        lambda: store.sample(4, reward="learned"),
        lambda: store.returns_to_go(reward="learned"),
        lambda: store.n_step_targets(2, reward="learned"),
        lambda: TransitionStore(4, 1, 1, reward_key="learned"),
        lambda: store.add(
            np.zeros((1, 3)), np.zeros((1, 2)), {"reward": [0], "x": [1]}, np.zeros((1, 3)), [0]
        ),
    ):
        with pytest.raises(RlregError, match="unknown reward column"):
            call()


# ---------------------------------------------------------------------- typing and bad inputs
def test_continuous_and_discrete_are_typed():
    cont = TransitionStore(4, obs_shape=(2, 3), act_dim=2)
    assert not cont.packed  # image-shaped observations: column layout
    cont.add(np.ones((2, 2, 3)), np.full((2, 2), 0.5), np.zeros(2), np.ones((2, 2, 3)), np.zeros(2))
    b = cont.sample(3)
    assert (
        b.observations.shape == (3, 2, 3) and b.actions.dtype == torch.float32 and b.actions.shape == (3, 2)
    )
    disc = TransitionStore(4, 5, num_actions=3)
    assert not disc.packed and disc.act_dim is None and disc.num_actions == 3
    disc.add(np.ones((2, 5)), np.array([0, 2]), np.zeros(2), np.ones((2, 5)), np.zeros(2))
    b = disc.sample(3)
    assert b.actions.dtype == torch.int64 and b.actions.shape == (3,)
    with pytest.raises(RlregError, match="discrete actions must be integers"):
        disc.add(np.ones((1, 5)), np.array([0.5]), np.zeros(1), np.ones((1, 5)), np.zeros(1))
    img = TransitionStore(4, obs_shape=(1, 2, 2), num_actions=2, obs_dtype=torch.uint8)
    with pytest.raises(RlregError, match="are torch.float32 but the store keeps torch.uint8"):
        img.add(
            torch.rand(1, 1, 2, 2), torch.tensor([1]), torch.zeros(1), torch.rand(1, 1, 2, 2), torch.zeros(1)
        )
    with pytest.raises(RlregError, match=r"shape \(1, 4\), the store expects \(1, 1, 2, 2\)"):
        img.add(
            torch.zeros(1, 4, dtype=torch.uint8),
            torch.tensor([1]),
            torch.zeros(1),
            torch.zeros(1, 4, dtype=torch.uint8),
            torch.zeros(1),
        )
    with pytest.raises(RlregError, match="not both"):
        TransitionStore(4, 3, 2, num_actions=3)
    with pytest.raises(RlregError, match="needs act_dim"):
        TransitionStore(4, 3)
    with pytest.raises(RlregError, match="split\\(\\) needs the packed layout"):
        disc.split(torch.zeros(1, 5))


def test_bad_adds_raise_clear_errors():
    store = TransitionStore(4, 3, 2)
    with pytest.raises(RlregError, match="observations have width 4, the store expects 3"):
        store.add(np.zeros((1, 4)), np.zeros((1, 2)), np.zeros(1), np.zeros((1, 3)), np.zeros(1))
    with pytest.raises(RlregError, match="actions have width 1"):  # total width right, columns wrong
        store.add(np.zeros((1, 3)), np.zeros((1, 1)), np.zeros(1), np.zeros((1, 4)), np.zeros(1))
    with pytest.raises(RlregError, match="'terminals' has shape \\(2,\\) but 'observations' has 1 rows"):
        store.add(np.zeros((1, 3)), np.zeros((1, 2)), np.zeros(1), np.zeros((1, 3)), np.zeros(2))
    with pytest.raises(RlregError, match="'timeouts' has shape"):
        store.add(
            np.zeros((1, 3)),
            np.zeros((1, 2)),
            np.zeros(1),
            np.zeros((1, 3)),
            np.zeros(1),
            timeouts=np.zeros(3),
        )
    assert len(store) == 0  # nothing was written
    with pytest.raises(RlregError, match="sampling from an empty replay buffer"):
        store.sample(2)
    store.add(np.zeros((1, 3)), np.zeros((1, 2)), np.zeros(1), np.zeros((1, 3)), np.zeros(1))
    for n in (0, -1, 1.5, True):
        with pytest.raises(RlregError, match="integer n >= 1"):
            store.n_step_targets(n)
    with pytest.raises(RlregError, match="gamma must be a finite number"):
        store.returns_to_go(float("nan"))
    with pytest.raises(
        RlregError, match="set_rewards\\('x'\\): values have shape \\(3,\\), the store holds 1"
    ):
        store.set_rewards("x", np.zeros(3))


# ---------------------------------------------------------------------- state
def fill_online(store, seed=0, steps=13):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        o, a, r, no, d = step_rows(rng, 1)
        store.add(o, a, {"reward": r, "shaped": 2 * r}, no, d, timeouts=rng.uniform(size=1) < 0.2)


def test_state_dict_round_trip_with_weights_only_load():
    a = TransitionStore(8, 3, 2, reward_columns=("shaped",))
    fill_online(a)  # wraps
    state = roundtrip(a.state_dict())
    assert state["format"] == STATE_FORMAT
    b = TransitionStore(8, 3, 2, reward_columns=("shaped",))
    b.load_state_dict(state)
    for name in ("data", "timeouts", "episode_ids", "episode_steps", "episode_starts"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.reward_column("shaped"), b.reward_column("shaped"))
    assert (a.size, a.pos) == (b.size, b.pos)
    assert_same_batches(a, b, torch.Generator().manual_seed(0), torch.Generator().manual_seed(0))
    fill_online(a, seed=1, steps=5)  # the running episodes continue the same after loading
    fill_online(b, seed=1, steps=5)
    assert torch.equal(a.episode_ids, b.episode_ids) and torch.equal(a.episode_steps, b.episode_steps)
    # a store whose default reward is another column loads it too
    c = TransitionStore(8, 3, 2, reward_columns=("shaped",), reward_key="shaped")
    c.load_state_dict(state)
    assert torch.equal(c.data[:, 5], state["rewards"]["shaped"])
    assert torch.equal(c.reward_column("reward"), state["tensors"]["data"][:, 5])


def test_discrete_state_round_trip():
    gen = torch.Generator().manual_seed(0)
    a = TransitionStore(10, obs_shape=(2, 4, 4), num_actions=5, obs_dtype=torch.uint8, num_envs=2)
    for _ in range(3):
        a.add(*image_rows(gen, 2))
    b = TransitionStore(10, obs_shape=(2, 4, 4), num_actions=5, obs_dtype=torch.uint8, num_envs=2)
    b.load_state_dict(roundtrip(a.state_dict()))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.episode_ids, b.episode_ids)
    assert_same_batches(a, b, torch.Generator().manual_seed(0), torch.Generator().manual_seed(0))


def test_loading_a_state_of_another_store_raises():
    a = TransitionStore(8, 3, 2)
    fill = np.random.default_rng(0)
    for _ in range(10):
        a.add(*step_rows(fill, 1))
    state = roundtrip(a.state_dict())
    cases = [
        (
            TransitionStore(8, 4, 2),
            "observations \\(3,\\).*; this is a packed store \\(observations \\(4,\\)",
        ),
        (TransitionStore(8, obs_shape=(3,), num_actions=2), "this is a columns store"),
        (TransitionStore(9, 3, 2), "full ring of 8 rows; this store has capacity 9"),
        (TransitionStore(4, 3, 2), "holds 8 rows; this store has capacity 4"),
    ]
    for store, match in cases:
        with pytest.raises(RlregError, match=match) as e:
            store.load_state_dict(state)
        assert "fix: resume with" in str(e.value)
    with pytest.raises(RlregError, match="from a packed .* store; this is a columns store"):
        TransitionStore(8, obs_shape=(3,), num_actions=2).load_state_dict(
            {"data": torch.zeros(2, 7), "size": 2, "pos": 2}
        )
    with pytest.raises(
        RlregError, match="replay state's 'data' is \\(2, 9\\) float32; this store expects \\(2, 12\\)"
    ):
        TransitionStore(8, 4, 2).load_state_dict({"data": torch.zeros(2, 9), "size": 2, "pos": 2})
    with pytest.raises(RlregError, match="not those of a TransitionStore state"):
        a.load_state_dict({"weights": 1})
    # a state from a smaller, not yet wrapped store loads into a larger one
    small = TransitionStore(20, 3, 2)
    small.add(*step_rows(fill, 5))
    big = TransitionStore(30, 3, 2)
    big.load_state_dict(roundtrip(small.state_dict()))
    assert (big.size, big.pos) == (5, 5) and torch.equal(big.data[:5], small.data[:5])


def test_state_without_envs_and_actions_loads_into_a_store_that_knows_them():
    """A replay saved before the collector passed num_envs/num_actions resumes into one that does:
    episodes are rebuilt per environment from the saved terminals and timeouts."""
    gen = torch.Generator().manual_seed(3)
    old = TransitionStore(12, obs_shape=(2, 4, 4), discrete=True, obs_dtype=torch.uint8)
    ref = TransitionStore(12, obs_shape=(2, 4, 4), num_actions=5, obs_dtype=torch.uint8, num_envs=2)
    for _ in range(5):
        obs, act, rew, nxt, term = image_rows(gen, 2)
        tout = torch.rand(2, generator=gen) < 0.3
        old.add(obs, act, rew, nxt, term, timeouts=tout)
        ref.add(obs, act, rew, nxt, term, timeouts=tout)
    new = TransitionStore(12, obs_shape=(2, 4, 4), num_actions=5, obs_dtype=torch.uint8, num_envs=2)
    new.load_state_dict(roundtrip(old.state_dict()))
    for name in ("obs", "actions", "timeouts", "episode_starts", "episode_steps", "episode_ids"):
        assert torch.equal(getattr(new, name), getattr(ref, name)), name
    assert new.episode_ids[:10].view(5, 2)[:, 0].tolist() != new.episode_ids[:10].view(5, 2)[:, 1].tolist()
    with pytest.raises(RlregError, match="this is a columns store"):
        TransitionStore(12, obs_shape=(2, 4, 4), num_actions=6, obs_dtype=torch.uint8).load_state_dict(
            roundtrip(ref.state_dict())
        )
