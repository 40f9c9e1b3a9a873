"""Batched Freeway: exact lockstep and statistical parity with MinAtar, deterministic mechanics, batching.

The ``minatar`` package (GPL) is only a test-time reference here; tests that need it are skipped
when it is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import rlreg.envs.minatar.freeway as freeway_module
import torch
from rlreg.envs.minatar import MinAtarBatch
from rlreg.envs.minatar.base import CounterRNG
from rlreg.envs.minatar.freeway import Freeway

CPU = torch.device("cpu")
EPISODE = 2501  # frames in every Freeway episode


# ----------------------------------------------------------------------------------------------- helpers
class _CarDraws:
    """Stands in for the reference game's RandomState: the car speeds and directions ours drew."""

    def __init__(self, u: np.ndarray) -> None:
        self.k = np.minimum((u * 10).astype(np.int64), 9)

    def randint(self, low, high, size):
        assert (low, high, size) == (1, 6, 8)
        return self.k % 5 + 1

    def rand(self, size):
        assert size == 8
        return np.where(self.k >= 5, 0.75, 0.25)  # the reference moves right when this is > 1/2


def _game(n: int = 1, seed: int = 0) -> Freeway:
    return Freeway(n, CounterRNG(n, seed, CPU), CPU)


def _quiet(game: Freeway) -> None:
    """Parks every car in column 0 with a timer that will not run out during a test."""
    game.car_x.zero_()
    game.car_timer.fill_(10_000)


def _step(game: Freeway, action: int = 0) -> tuple[float, bool]:
    r, t = game.step(torch.full((game.num_envs,), action, dtype=torch.int64))
    return float(r[0]), bool(t[0])


def _actions(gen: torch.Generator | np.random.Generator, up_bias: torch.Tensor | float, n: int):
    """Uniform over the 6 actions, replaced by ``u`` with probability ``up_bias``."""
    if isinstance(gen, np.random.Generator):
        a = int(gen.integers(6))
        return 2 if gen.random() < up_bias else a
    a = torch.randint(0, 6, (n,), generator=gen)
    return torch.where(torch.rand(n, generator=gen) < up_bias, 2, a)


def _returns_ours(num_envs: int, up_bias: torch.Tensor, seed: int) -> np.ndarray:
    """One episode per environment (they all last 2501 frames); env i's up-bias is ``up_bias[i]``."""
    env = MinAtarBatch("freeway", num_envs, seed=seed, obs_dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed)
    ret = torch.zeros(num_envs)
    for t in range(EPISODE):
        _, r, term, _, _ = env.step(_actions(gen, up_bias, num_envs))
        ret += r
        assert bool(term.all()) == (t == EPISODE - 1)
    return ret.numpy()


def _returns_reference(episodes: int, up_bias: float, seed: int) -> np.ndarray:
    minatar = pytest.importorskip("minatar")
    env = minatar.Environment("freeway")  # sticky 0.1 (defaults)
    env.seed(seed)
    gen = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        env.reset()
        ret, length, term = 0.0, 0, False
        while not term:
            r, term = env.act(_actions(gen, up_bias, 1))
            ret += r
            length += 1
        assert length == EPISODE
        out.append(ret)
    return np.array(out)


def _compare(num_envs: int, ref_episodes: int, seed: int) -> dict[float, float]:
    """Welch's t-test p-value on mean episode return for each policy (half the envs each)."""
    stats = pytest.importorskip("scipy.stats")
    pytest.importorskip("minatar")
    biases = (0.0, 0.5)
    up_bias = torch.tensor(biases).repeat_interleave(num_envs // 2)
    ours = _returns_ours(num_envs, up_bias, seed)
    pvalues = {}
    for b in biases:
        ref = _returns_reference(ref_episodes, b, seed)
        mine = ours[(up_bias == b).numpy()]
        pvalues[b] = stats.ttest_ind(mine, ref, equal_var=False).pvalue
    return pvalues


# ----------------------------------------------------------------------------------------------- parity
def test_lockstep_matches_reference_exactly(recording_rng):
    """Driven with the same random numbers and actions, every frame equals MinAtar's (obs, reward, end).

    10 environments for 2600 frames (so every episode ends at frame 2501 and a new one starts),
    actions ``u`` with probability 0.6 and uniform otherwise (many crossings, re-randomised cars and
    collisions).
    """
    minatar = pytest.importorskip("minatar")
    n, frames = 10, 2600
    rng = recording_rng(n, seed=1)
    game = Freeway(n, rng, CPU)
    refs = []
    for i in range(n):
        ref = minatar.Environment("freeway", sticky_action_prob=0.0)
        ref.env.random = _CarDraws(rng.log[-1][i].numpy())
        ref.reset()
        refs.append(ref)

    def check_obs():
        ours = game.observation().permute(0, 2, 3, 1).numpy()
        assert np.array_equal(ours, np.stack([ref.state() for ref in refs]))

    check_obs()
    pick = np.random.default_rng(0)
    total, ends = 0.0, 0
    for _ in range(frames):
        a = np.where(pick.random(n) < 0.6, 2, pick.integers(0, 6, n))
        rng.log.clear()
        reward, term = game.step(torch.from_numpy(a))
        for i, ref in enumerate(refs):
            ref.env.random = _CarDraws(rng.log[-1][i].numpy())
        assert [ref.act(int(a[i])) for i, ref in enumerate(refs)] == list(zip(reward.tolist(), term.tolist()))
        check_obs()
        total += float(reward.sum())
        ends += int(term.sum())
        rng.log.clear()
        game.reset(term)
        for i in np.flatnonzero(term.numpy()):
            refs[i].env.random = _CarDraws(rng.log[-1][i].numpy())
            refs[i].reset()
        check_obs()
    assert ends == n and total > 100


def test_statistics_match_reference():
    """Episode returns under two i.i.d. policies (sticky 0.1) match MinAtar's.

    Policies: uniform over the 6 actions, and ``u`` with probability 0.5 else uniform (uniform play
    rarely crosses, so the second carries the power). Ours: 64 envs per policy, one episode each;
    reference: 24 episodes per policy. Welch's t-test on the mean return, p > 0.001 for each
    (seeds fixed: deterministic). Every episode lasts exactly 2501 frames in both (asserted).
    Observed: mean return uniform 0.14 vs 0.17 (p 0.78), biased 13.8 vs 14.2 (p 0.67).
    """
    pvalues = _compare(128, 24, seed=3)
    assert min(pvalues.values()) > 1e-3, pvalues


@pytest.mark.slow
def test_statistics_match_reference_large():
    """As above with 512 envs per policy and 200 reference episodes per policy (15-40 s).

    Observed: p 0.61 (uniform policy) and 0.18 (up-biased policy).
    """
    pvalues = _compare(1024, 200, seed=4)
    assert min(pvalues.values()) > 1e-3, pvalues


def test_statistics_detect_a_plausible_bug(monkeypatch):
    """The parity statistics have power: a 2-frame move cooldown (instead of 3) is rejected.

    Observed: biased-policy mean return 27.9 vs the reference's 14.2, p about 1e-25.
    """
    monkeypatch.setattr(freeway_module, "_MOVE_COOLDOWN", 2)
    pvalues = _compare(128, 24, seed=3)
    assert pvalues[0.5] < 1e-3, pvalues


# ----------------------------------------------------------------------------------------------- mechanics
def test_reset_state_and_observation_layout():
    game = _game(256, seed=5)
    obs = game.observation()
    assert obs.shape == (256, 7, 10, 10) and obs.dtype == torch.bool
    assert Freeway.channels == ("chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5")
    assert Freeway.minimal_actions == (0, 2, 4)
    assert obs[:, 0, 9, 4].all() and obs[:, 0].sum() == 256
    assert obs[:, 1, 1:9, 0].all() and obs[:, 1].sum() == 256 * 8  # every car in column 0
    trail_col = torch.where(game.car_dir > 0, 9, 1)  # the cell behind, wrapping
    trails = obs[:, 2:].nonzero()  # (env, speed channel, row, column)
    assert len(trails) == 256 * 8
    lane = trails[:, 2] - 1
    assert torch.equal(trails[:, 1] + 1, game.car_speed[trails[:, 0], lane])
    assert torch.equal(trails[:, 3], trail_col[trails[:, 0], lane])
    assert torch.equal(game.car_timer, game.car_speed)
    counts = torch.bincount(((game.car_speed - 1) * 2 + (game.car_dir > 0)).flatten(), minlength=10)
    assert counts.min() > 150  # all 10 speed/direction pairs drawn, about 205 each
    assert (game.chicken == 9).all() and (game.cooldown == 3).all() and (game.time_left == 2500).all()


def test_chicken_cooldown_and_bounds():
    game = _game()
    _quiet(game)
    rows = []
    for _ in range(7):
        _step(game, 2)  # u every frame
        rows.append(int(game.chicken[0]))
    assert rows == [9, 9, 9, 8, 8, 8, 7]  # cooldown 3 at the start, then once every 3 frames
    for a in (0, 1, 3, 5):  # n, l, r, f never move it
        game.cooldown.zero_()
        _step(game, a)
        assert int(game.chicken[0]) == 7
    game.chicken[0], game.cooldown[0] = 9, 0
    _step(game, 4)  # d against the bottom edge: no move, but the cooldown restarts
    assert int(game.chicken[0]) == 9 and int(game.cooldown[0]) == 2


def test_reaching_row_0_scores_and_rerolls_the_cars():
    game = _game(1, seed=9)
    _quiet(game)
    game.car_x[0] = torch.arange(8)
    game.chicken[0], game.cooldown[0] = 1, 0
    speed, direction = game.car_speed.clone(), game.car_dir.clone()
    assert _step(game, 2) == (1.0, False)
    assert int(game.chicken[0]) == 9 and int(game.cooldown[0]) == 2
    assert not game.observation()[0, 0, 0].any()  # never shown on row 0
    assert torch.equal(game.car_x[0], torch.arange(8))  # positions kept...
    assert not (torch.equal(game.car_speed, speed) and torch.equal(game.car_dir, direction))  # ...rerolled
    assert torch.equal(game.car_timer, game.car_speed - 1)  # restarted at the new speed, one frame run
    assert _step(game) == (0.0, False)


def test_cars_move_every_speed_plus_one_frames_and_wrap():
    game = _game()
    _quiet(game)
    game.car_speed[0, 0], game.car_dir[0, 0], game.car_timer[0, 0], game.car_x[0, 0] = 2, 1, 0, 8
    game.car_speed[0, 1], game.car_dir[0, 1], game.car_timer[0, 1], game.car_x[0, 1] = 1, -1, 0, 1
    xs = []
    for _ in range(6):
        _step(game)
        xs.append(game.car_x[0, :2].tolist())
    assert [x[0] for x in xs] == [9, 9, 9, 0, 0, 0]  # right, wraps 9 -> 0, every 3 frames
    assert [x[1] for x in xs] == [0, 0, 9, 9, 8, 8]  # left, wraps 0 -> 9, every 2 frames
    obs = game.observation()[0]
    assert obs[1, 1, 0] and obs[3, 1, 9]  # car 0 (speed 2) trail behind it, wrapped
    assert obs[1, 2, 8] and obs[2, 2, 9]  # car 1 (speed 1) trail to its right


def test_collisions_send_the_chicken_back():
    game = _game()
    _quiet(game)
    game.chicken[0], game.cooldown[0] = 5, 2
    game.car_x[0, 4] = 4  # lane 4 is row 5: the car is on the chicken
    _step(game)
    assert int(game.chicken[0]) == 9
    _quiet(game)  # a car driving into the chicken
    game.chicken[0], game.cooldown[0] = 5, 2
    game.car_x[0, 4], game.car_dir[0, 4], game.car_timer[0, 4] = 3, 1, 0
    _step(game)
    assert int(game.chicken[0]) == 9
    _quiet(game)  # the chicken stepping onto a car
    game.chicken[0], game.cooldown[0] = 6, 0
    game.car_x[0, 4] = 4
    _step(game, 2)
    assert int(game.chicken[0]) == 9
    _quiet(game)  # a car on the chicken's column in another lane does nothing
    game.chicken[0], game.cooldown[0] = 5, 2
    game.car_x[0, 3] = game.car_x[0, 5] = 4
    assert _step(game) == (0.0, False)
    assert int(game.chicken[0]) == 5


def test_episode_ends_after_2500_frames_then_2501st():
    game = _game()
    game.time_left.fill_(2)
    assert _step(game)[1] is False
    assert _step(game)[1] is False  # frame 2500
    assert _step(game)[1] is True  # frame 2501
    env = MinAtarBatch("freeway", 2)
    assert (env.game.time_left == 2500).all()


# ----------------------------------------------------------------------------------------------- batching
def _rollout(num_envs: int, frames: int, device: str = "cpu", seed: int = 11) -> list[torch.Tensor]:
    """Observations, rewards and ends of a MinAtarBatch run; env i's actions do not depend on N."""
    env = MinAtarBatch("freeway", num_envs, device=device, seed=seed, obs_dtype=torch.bool)
    env.game.time_left.fill_(frames // 2)  # so episodes end (and auto-reset) within the rollout
    gen = torch.Generator().manual_seed(seed)
    table = torch.where(
        torch.rand(frames, 16, generator=gen) < 0.6, 2, torch.randint(0, 6, (frames, 16), generator=gen)
    )
    out = [env.observation().cpu()]
    for t in range(frames):
        obs, r, term, trunc, final = env.step(table[t, :num_envs].to(device))
        out += [obs.cpu(), r.cpu(), term.cpu(), final.cpu()]
    return out


def test_environments_are_independent_of_batch_size():
    """Env i's trajectory (its random stream included) is the same whether 3 or 16 envs run."""
    small, big = _rollout(3, 400), _rollout(16, 400)
    assert sum(float(x.sum()) for x in small[2::4]) > 3  # crossings (rerolls) happened
    assert sum(int(x.any()) for x in small[3::4]) == 1  # and one episode end, with a reset
    for a, b in zip(small, big):
        assert torch.equal(a, b[:3])


def test_reset_mask_touches_only_masked_envs():
    game = _game(6, seed=2)
    for _ in range(5):
        game.step(torch.full((6,), 2))
    before = game.state_dict()
    mask = torch.tensor([True, False, True, False, False, False])
    game.reset(mask)
    after = game.state_dict()
    for key, value in before.items():
        if not key.startswith("_"):
            assert torch.equal(after[key][~mask], value[~mask]), key
    assert (game.time_left[mask] == 2500).all() and (game.car_x[mask] == 0).all()


def test_minimal_action_set_maps_to_n_u_d():
    env = MinAtarBatch("freeway", 2, sticky_action_prob=0.0, minimal_actions=True)
    env.game.cooldown.zero_()
    env.game.chicken.fill_(5)
    _quiet(env.game)
    env.step(torch.tensor([1, 2]))  # u, d
    assert env.game.chicken.tolist() == [4, 6]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_trajectories_are_identical():
    for a, b in zip(_rollout(16, 600, "cpu"), _rollout(16, 600, "cuda")):
        assert torch.equal(a, b)
