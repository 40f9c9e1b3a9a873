"""Batched Asterix: exact lockstep and statistical parity with MinAtar, deterministic mechanics, batching.

The ``minatar`` package (GPL) is only a test-time reference here; tests that need it are skipped
when it is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import rlreg.envs.minatar.asterix as asterix_module
import torch
from rlreg.envs.minatar import MinAtarBatch
from rlreg.envs.minatar.asterix import Asterix
from rlreg.envs.minatar.base import CounterRNG

CPU = torch.device("cpu")
MOVES = np.array([[0, 0], [0, -1], [-1, 0], [0, 1], [1, 0], [0, 0]])  # (row, column) per action


# ----------------------------------------------------------------------------------------------- helpers
class _SpawnDraws:
    """Stands in for the reference game's RandomState with the three uniforms ours drew this frame."""

    def __init__(self, u: np.ndarray) -> None:
        self.u = [float(x) for x in u]
        self.used = 0

    def rand(self):
        self.used += 1
        return self.u[self.used - 1]  # side, then gold

    def randint(self, n):
        assert self.used == 2
        return min(int(self.u[2] * n), n - 1)  # which empty slot


def _game(n: int = 1, seed: int = 0, ramping: bool = True) -> Asterix:
    return Asterix(n, CounterRNG(n, seed, CPU), CPU, ramping=ramping)


def _put(game: Asterix, row: int, x: int, right: bool, gold: bool) -> None:
    slot = row - 1
    game.ent_alive[0, slot], game.ent_x[0, slot] = True, x
    game.ent_right[0, slot], game.ent_gold[0, slot] = right, gold


def _step(game: Asterix, action: int = 0) -> tuple[float, bool]:
    r, t = game.step(torch.full((game.num_envs,), action, dtype=torch.int64))
    return float(r[0]), bool(t[0])


def _episodes_ours(num_envs: int, per_env: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of each environment's first ``per_env`` episodes (uniform random actions).

    Taking the same number of episodes from every environment avoids the bias towards short
    episodes that "the first K episodes to finish" would have.
    """
    env = MinAtarBatch("asterix", num_envs, seed=seed, obs_dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed)
    ret = torch.zeros(num_envs)
    length = torch.zeros(num_envs, dtype=torch.int64)
    count = torch.zeros(num_envs, dtype=torch.int64)
    rets, lens = [[] for _ in range(num_envs)], [[] for _ in range(num_envs)]
    while int(count.min()) < per_env:
        _, r, term, trunc, _ = env.step(torch.randint(0, 6, (num_envs,), generator=gen))
        ret += r
        length += 1
        end = term | trunc
        for i in torch.nonzero(end).flatten().tolist():
            rets[i].append(float(ret[i]))
            lens[i].append(int(length[i]))
        count += end
        ret[end] = 0
        length[end] = 0
    return (
        np.array([x for row in rets for x in row[:per_env]]),
        np.array([x for row in lens for x in row[:per_env]]),
    )


def _episodes_reference(episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    minatar = pytest.importorskip("minatar")
    env = minatar.Environment("asterix")  # sticky 0.1, ramping on (defaults)
    env.seed(seed)
    actions = np.random.default_rng(seed)
    rets, lens = [], []
    for _ in range(episodes):
        env.reset()
        ret, length, term = 0.0, 0, False
        while not term:
            r, term = env.act(int(actions.integers(6)))
            ret += r
            length += 1
        rets.append(ret)
        lens.append(length)
    return np.array(rets), np.array(lens)


def _pvalues(seed: int = 3) -> list[float]:
    """KS and Welch p-values for returns and lengths: ours 128 envs x 16 episodes vs 2000 reference."""
    stats = pytest.importorskip("scipy.stats")
    pytest.importorskip("minatar")
    r_ours, l_ours = _episodes_ours(128, 16, seed)
    r_ref, l_ref = _episodes_reference(2000, seed)
    out = []
    for ours, ref in ((r_ours, r_ref), (l_ours, l_ref)):
        out += [stats.ks_2samp(ours, ref).pvalue, stats.ttest_ind(ours, ref, equal_var=False).pvalue]
    return out


# ----------------------------------------------------------------------------------------------- parity
def test_lockstep_matches_reference_exactly(recording_rng):
    """Driven with the same random numbers and actions, every frame equals MinAtar's (obs, reward,
    end, difficulty level).

    10 environments for 1600 frames; actions mostly pick at random among moves that keep away from
    enemies (so episodes run long enough for several difficulty ramps), 3% of frames uniform random.
    """
    minatar = pytest.importorskip("minatar")
    n, frames = 10, 1600
    rng = recording_rng(n, seed=1)
    game = Asterix(n, rng, CPU)
    refs = [minatar.Environment("asterix", sticky_action_prob=0.0) for _ in range(n)]
    for ref in refs:
        ref.reset()

    def check_obs():
        ours = game.observation().permute(0, 2, 3, 1).numpy()
        assert np.array_equal(ours, np.stack([ref.state() for ref in refs]))

    def cautious(pick: np.random.Generator) -> np.ndarray:
        """A random move (of n, l, u, r, d) among those not landing next to or on an enemy."""
        target = np.clip(game.player.numpy()[:, None] + MOVES[None, :5], [1, 0], [8, 9])  # (n, 5, 2)
        slot = target[..., 0] - 1
        enemy = np.take_along_axis((game.ent_alive & ~game.ent_gold).numpy(), slot, 1)
        near = np.abs(np.take_along_axis(game.ent_x.numpy(), slot, 1) - target[..., 1]) <= 1
        score = pick.random((n, 5)) + ~(enemy & near)  # safe moves score above 1
        return score.argmax(1)

    check_obs()
    pick = np.random.default_rng(0)
    total, ends, top_level = 0.0, 0, 0
    for _ in range(frames):
        a = cautious(pick) if pick.random() < 0.97 else pick.integers(0, 6, n)
        rng.log.clear()
        reward, term = game.step(torch.from_numpy(a))
        for i, ref in enumerate(refs):
            ref.env.random = _SpawnDraws(rng.log[-1][i].numpy())
        assert [ref.act(int(a[i])) for i, ref in enumerate(refs)] == list(zip(reward.tolist(), term.tolist()))
        assert [ref.env.difficulty_ramp() for ref in refs] == game.ramp_index.tolist()
        check_obs()
        total += float(reward.sum())
        ends += int(term.sum())
        top_level = max(top_level, int(game.ramp_index.max()))
        game.reset(term)
        for i in np.flatnonzero(term.numpy()):
            refs[i].reset()
        check_obs()
    assert ends > 10 and total > 100 and top_level >= 5


def test_random_policy_statistics_match_reference():
    """Episode return and length under uniform random actions (sticky 0.1) match MinAtar's.

    Ours: 128 envs x 16 episodes each (2048); reference: 2000 episodes of ``minatar.Environment``.
    Two-sample Kolmogorov-Smirnov and Welch's t-test on returns and on lengths, each p > 0.001
    (seeds fixed: deterministic). Observed: mean return 0.50 vs 0.48, mean length 70.5 vs 68.4;
    p-values 1.00 / 0.49 (returns, KS / Welch), 0.48 / 0.12 (lengths).
    """
    pvalues = _pvalues()
    assert min(pvalues) > 1e-3, pvalues


def test_statistics_detect_a_plausible_bug(monkeypatch):
    """The parity statistics have power: gold with probability 1/2 instead of 1/3 is rejected.

    Observed: mean return 0.96 vs 0.48, mean length 84.6 vs 68.4, largest p-value about 4e-16.
    (Subtler bugs are not all caught at this size: a spawn interval of 9 instead of 10 gives
    p = 0.09; a move interval of 4 instead of 5 gives p = 0.001.)
    """
    monkeypatch.setattr(asterix_module, "_GOLD_PROB", 0.5)
    assert min(_pvalues()) < 1e-3


# ----------------------------------------------------------------------------------------------- mechanics
def test_reset_state_and_observation_layout():
    game = _game(4)
    obs = game.observation()
    assert obs.shape == (4, 4, 10, 10) and obs.dtype == torch.bool
    assert Asterix.channels == ("player", "enemy", "trail", "gold")
    assert Asterix.minimal_actions == (0, 1, 2, 3, 4)
    assert obs[:, 0, 5, 5].all() and int(obs.sum()) == 4  # only the player
    _put(game, 2, 0, True, False)  # enemy entering on the left: trail off the board, not drawn
    _put(game, 3, 4, False, True)  # gold travelling left: trail to its right
    obs = game.observation()[0]
    assert obs[1, 2, 0] and obs[3, 3, 4] and obs[2, 3, 5] and int(obs.sum()) == 4


def test_player_moves_within_rows_1_to_8():
    game = _game(ramping=False)
    game.spawn_timer.fill_(10_000)
    path = []
    for a in (2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 3, 0, 5):
        _step(game, a)
        path.append(game.player[0].tolist())
    assert path[3:5] == [[1, 5], [1, 5]]  # top row 1
    assert path[9:11] == [[1, 0], [1, 0]]  # left wall
    assert path[17:19] == [[8, 0], [8, 0]]  # bottom row 8
    assert path[19:] == [[8, 1], [8, 1], [8, 1]]


def test_gold_gives_reward_and_disappears():
    game = _game(ramping=False)
    game.spawn_timer.fill_(10_000)
    _put(game, 5, 5, True, True)  # on the player
    assert _step(game) == (1.0, False)
    assert not game.ent_alive.any()
    _put(game, 5, 4, True, True)  # moving into the player this frame
    game.move_timer.fill_(0)
    assert _step(game) == (1.0, False)
    assert not game.ent_alive.any()
    _put(game, 4, 5, True, True)  # the player steps onto it
    assert _step(game, 2) == (1.0, False)
    _put(game, 4, 7, False, True)  # a frame without a move: no contact
    game.move_timer.fill_(3)
    assert _step(game) == (0.0, False) and bool(game.ent_alive[0, 3])


def test_enemy_contact_terminates():
    for setup, action in (
        (lambda g: _put(g, 5, 5, False, False), 0),  # already on the player
        (lambda g: _put(g, 4, 5, True, False), 2),  # the player steps onto it
        (lambda g: (_put(g, 5, 6, False, False), g.move_timer.fill_(0)), 0),  # enemy steps in
    ):
        game = _game(ramping=False)
        game.spawn_timer.fill_(10_000)
        setup(game)
        assert _step(game, action) == (0.0, True)
    game = _game(ramping=False)  # an enemy passing in another row does nothing
    _put(game, 6, 6, False, False)
    game.move_timer.fill_(0)
    assert _step(game) == (0.0, False)


def test_entities_leave_the_board():
    game = _game(ramping=False)
    game.spawn_timer.fill_(10_000)
    _put(game, 1, 9, True, False)
    _put(game, 2, 0, False, True)
    _put(game, 3, 8, True, True)
    game.move_timer.fill_(0)
    _step(game)
    assert game.ent_alive[0].tolist() == [False, False, True] + [False] * 5
    assert int(game.ent_x[0, 2]) == 9


def test_spawning_cadence_and_slots():
    game = _game(4000, seed=1, ramping=False)
    frames_with_new = []
    for t in range(1, 22):
        before = game.ent_alive.sum(1)
        game.player[:, 0] = 8  # keep the player out of the way (row 8) ...
        game.player[:, 1] = 4  # ... and away from both entry columns
        game.ent_gold.fill_(True)  # no enemy can end an episode
        game.step(torch.zeros(4000, dtype=torch.int64))
        if bool((game.ent_alive.sum(1) > before).all()):
            frames_with_new.append(t)
        if t == 11:
            alive, x, right = game.ent_alive, game.ent_x, game.ent_right
            assert (alive.sum(1) == 1).all()
            # entered at column 0 (travelling right) or 9, and moved once already (frame 11 moves)
            assert torch.equal(x[alive], torch.where(right[alive], 1, 8))
            per_slot = alive.sum(0).float()
            assert (per_slot - 500).abs().max() < 100  # uniform over the 8 slots
            assert abs(right[alive].float().mean() - 0.5) < 0.04
    assert frames_with_new == [11, 21]  # first spawn on frame 11, then every 10 frames

    game = _game(3000, seed=2, ramping=False)  # gold one time in three
    game.spawn_timer.zero_()
    game.step(torch.zeros(3000, dtype=torch.int64))
    assert abs(game.ent_gold[game.ent_alive].float().mean() - 1 / 3) < 0.03

    game = _game(ramping=False)  # a full board spawns nothing; a single gap gets the spawn
    game.ent_alive.fill_(True)
    game.ent_alive[0, 6] = False
    game.ent_x.fill_(2)
    game.spawn_timer.zero_()
    game.move_timer.fill_(3)
    game.player[0] = torch.tensor([1, 9])
    game.ent_gold.fill_(True)
    _step(game)
    assert bool(game.ent_alive.all())
    state = [t.clone() for t in (game.ent_x, game.ent_right, game.ent_gold)]
    game.spawn_timer.zero_()
    _step(game)
    assert bool(game.ent_alive.all())
    assert all(torch.equal(a, b) for a, b in zip(state, (game.ent_x, game.ent_right, game.ent_gold)))


def test_difficulty_ramping_schedule():
    game = _game()
    seen = {}
    for t in range(1, 1200):
        game.ent_alive.zero_()  # an empty board: the episode cannot end
        _step(game)
        level = (int(game.ramp_index[0]), int(game.spawn_interval[0]), int(game.move_interval[0]))
        seen.setdefault(level, t)
    # (ramps, spawn interval, move interval) -> first frame seen: a ramp every 102 frames, the move
    # interval shortened on the 2nd, 4th, 6th and 8th, all ramping over once both reach 1
    assert seen == {
        (0, 10, 5): 1,
        (1, 9, 5): 102,
        (2, 8, 4): 204,
        (3, 7, 4): 306,
        (4, 6, 3): 408,
        (5, 5, 3): 510,
        (6, 4, 2): 612,
        (7, 3, 2): 714,
        (8, 2, 1): 816,
        (9, 1, 1): 918,
    }
    # intervals take effect when a countdown restarts: from level 9 on, something spawns and moves
    # every frame
    game.spawn_timer.zero_()
    game.move_timer.zero_()
    game.player[0] = torch.tensor([1, 4])
    for _ in range(3):
        _step(game)
        assert int(game.spawn_timer[0]) == 0 and int(game.move_timer[0]) == 0

    flat = _game(ramping=False)
    for _ in range(400):
        flat.ent_alive.zero_()
        _step(flat)
    assert (int(flat.spawn_interval[0]), int(flat.move_interval[0]), int(flat.ramp_index[0])) == (10, 5, 0)
    reset = _game()
    reset.frames.fill_(800)
    assert (int(reset.spawn_interval[0]), int(reset.ramp_index[0])) == (3, 7)
    reset.reset(torch.tensor([True]))
    assert (int(reset.spawn_interval[0]), int(reset.move_interval[0]), int(reset.ramp_index[0])) == (10, 5, 0)


# ----------------------------------------------------------------------------------------------- batching
def _rollout(num_envs: int, frames: int, device: str = "cpu", seed: int = 11) -> list[torch.Tensor]:
    """Observations, rewards and ends of a MinAtarBatch run; env i's actions do not depend on N."""
    env = MinAtarBatch("asterix", num_envs, device=device, seed=seed, obs_dtype=torch.bool)
    table = torch.randint(0, 6, (frames, 16), generator=torch.Generator().manual_seed(seed))
    out = [env.observation().cpu()]
    for t in range(frames):
        obs, r, term, trunc, final = env.step(table[t, :num_envs].to(device))
        out += [obs.cpu(), r.cpu(), term.cpu(), final.cpu()]
    return out


def test_environments_are_independent_of_batch_size():
    """Env i's trajectory (its random stream included) is the same whether 3 or 16 envs run."""
    small, big = _rollout(3, 400), _rollout(16, 400)
    assert sum(int(x.any()) for x in small[3::4]) > 2  # episodes ended (and auto-reset) in between
    assert sum(float(x.sum()) for x in small[2::4]) > 0
    for a, b in zip(small, big):
        assert torch.equal(a, b[:3])


def test_reset_mask_touches_only_masked_envs():
    game = _game(6, seed=2)
    for _ in range(30):
        game.step(torch.tensor([1, 3, 0, 2, 4, 0]))
    names = ("player", "spawn_timer", "move_timer", "frames", "ent_x", "ent_alive", "ent_right", "ent_gold")
    before = {k: getattr(game, k).clone() for k in names}  # environment-major views of the state
    mask = torch.tensor([True, False, True, False, False, False])
    game.reset(mask)
    for key, value in before.items():
        assert torch.equal(getattr(game, key)[~mask], value[~mask]), key
    assert not game.ent_alive[mask].any() and (game.player[mask] == 5).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_trajectories_are_identical():
    for a, b in zip(_rollout(16, 600, "cpu"), _rollout(16, 600, "cuda")):
        assert torch.equal(a, b)
