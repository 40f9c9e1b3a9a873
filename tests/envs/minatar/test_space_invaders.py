"""Batched SpaceInvaders: exact lockstep and statistical parity with MinAtar, hand-set mechanics,
observation layout, batching and devices.

The ``minatar`` package (GPL) is only a test-time reference; the tests that need it are skipped when
it is missing. SpaceInvaders has no randomness of its own (only sticky actions), so driving our game
and the reference with the same executed actions must give identical observations, rewards and
terminals at every frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rlreg.envs.minatar import MinAtarBatch
from rlreg.envs.minatar.base import CounterRNG
from rlreg.envs.minatar.space_invaders import SpaceInvaders

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------------------------- helpers
def _game(n: int = 1, ramping: bool = True) -> SpaceInvaders:
    game = SpaceInvaders(n, CounterRNG(n, 0, CPU), CPU, ramping=ramping)
    game.reset(torch.ones(n, dtype=torch.bool))
    return game


def _rows(*cells: tuple[int, int]) -> torch.Tensor:
    """Row bitmasks (10,) with the given (row, column) cells set."""
    rows = torch.zeros(10, dtype=torch.int64)
    for r, c in cells:
        rows[r] |= 1 << c
    return rows


def _act(game: SpaceInvaders, a: int) -> tuple[float, bool]:
    r, t = game.step(torch.full((game.num_envs,), a, dtype=torch.int64))
    return float(r[0]), bool(t[0])


def _hunter(obs: torch.Tensor, u: torch.Tensor, eps: float) -> torch.Tensor:
    """A scripted policy on (N, 6, 10, 10) observations: dodge a bullet about to land on the cannon,
    fire when an alien is overhead, else move towards the nearest column with aliens; with
    probability ``eps`` a uniform action instead. ``u`` is (N, 2) uniforms."""
    n = obs.shape[0]
    cols = torch.arange(10)
    pos = obs[:, 0, 9].float().argmax(1)
    occupied = obs[:, 1].any(1)
    danger = obs[:, 5, 8]
    nearest = torch.where(occupied, (cols - pos[:, None]).abs(), 99).argmin(1)
    a = torch.where(nearest > pos, 3, 1)
    a = torch.where(occupied[torch.arange(n), pos], 5, a)
    a = torch.where(danger[torch.arange(n), pos], torch.where(pos > 0, 1, 3), a)
    return torch.where(u[:, 0] < eps, (u[:, 1] * 6).long().clamp(max=5), a)


# ---------------------------------------------------------------------------------- parity with MinAtar
def _thin_waves(game: SpaceInvaders, refs: list, mask: torch.Tensor) -> None:
    """Cut the masked environments' aliens (in both games) down to two on row 5 that hold still for
    10 frames, so that waves get cleared often."""
    for i in torch.nonzero(mask)[:, 0].tolist():
        game.aliens[i] = _rows((5, 4), (5, 5))
        game.move_timer[i] = 10
        refs[i].alien_map[:] = 0
        refs[i].alien_map[5, 4:6] = 1
        refs[i].alien_move_timer = 10


@pytest.mark.parametrize(
    "eps,ramping,thin,steps",
    [(1.0, True, False, 600), (0.1, True, True, 400), (0.1, False, True, 300)],
    ids=["uniform", "scripted", "scripted-no-ramping"],
)
def test_lockstep_with_minatar(eps: float, ramping: bool, thin: bool, steps: int) -> None:
    """Same executed actions (uniform, or a scripted hunter) -> the same frames.

    Compares every observation, reward and terminal of 16 environments, frame by frame, with
    ``minatar``'s game; the scripted runs cut every new wave down to two aliens so that cleared
    waves, the new block and the speed-up happen many times."""
    ref_mod = pytest.importorskip("minatar.environments.space_invaders")
    n = 16
    game = _game(n, ramping)
    refs = [ref_mod.Env(ramping=ramping) for _ in range(n)]
    if thin:
        _thin_waves(game, refs, torch.ones(n, dtype=torch.bool))
    policy_rng = CounterRNG(n, 1, CPU)
    episodes, max_ramp = 0, 0
    for t in range(steps):
        actions = _hunter(game.observation(), policy_rng.uniform(2), eps)
        reward, terminal = game.step(actions)
        results = [ref.act(a) for ref, a in zip(refs, actions.tolist(), strict=True)]
        ref_obs = np.stack([ref.state() for ref in refs])
        obs = game.observation().permute(0, 2, 3, 1).numpy()
        if results != list(zip(reward.tolist(), terminal.tolist(), strict=True)) or not np.array_equal(
            obs, ref_obs
        ):
            bad = [
                i for i in range(n) if results[i] != (reward[i], terminal[i]) or (obs[i] != ref_obs[i]).any()
            ]
            raise AssertionError(
                f"frame {t}: envs {bad} differ, e.g. cells {np.argwhere(obs[bad[0]] != ref_obs[bad[0]])}"
            )
        max_ramp = max(max_ramp, *(ref.ramp_index for ref in refs))
        for ref, (_, done) in zip(refs, results, strict=True):
            if done:
                ref.reset()
                episodes += 1
        new_wave = game.aliens.amax(1) == 0b0011111100  # a fresh block (after reset or a cleared wave)
        game.reset(terminal)
        if thin:
            _thin_waves(game, refs, terminal | new_wave)
    assert episodes >= 30
    if thin:
        assert max_ramp >= (3 if ramping else 0)
        assert int(game.move_interval.min()) == (12 - max_ramp)


def _our_episodes(n_envs: int, per_env: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of the first ``per_env`` episodes of each of ``n_envs`` environments under
    uniform random actions (a fixed count per environment, so short episodes are not favoured)."""
    env = MinAtarBatch("space_invaders", n_envs, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    ret, length = torch.zeros(n_envs), torch.zeros(n_envs, dtype=torch.int64)
    done_count = torch.zeros(n_envs, dtype=torch.int64)
    returns, lengths = [], []
    while int(done_count.min()) < per_env:
        for _ in range(50):
            _, r, term, trunc, _ = env.step(torch.randint(0, 6, (n_envs,), generator=gen))
            ret += r
            length += 1
            done = term | trunc
            keep = done & (done_count < per_env)
            returns.append(ret[keep].clone())
            lengths.append(length[keep].clone())
            done_count += done.long()
            ret[done], length[done] = 0, 0
    return torch.cat(returns).numpy(), torch.cat(lengths).numpy()


def _reference_episodes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    minatar = pytest.importorskip("minatar")
    env = minatar.Environment("space_invaders")  # sticky 0.1, ramping on
    env.seed(seed)
    rng = np.random.RandomState(seed + 1)
    returns, lengths = [], []
    for _ in range(count):
        env.reset()
        total, steps, done = 0.0, 0, False
        while not done:
            r, done = env.act(rng.randint(6))
            total, steps = total + r, steps + 1
        returns.append(total)
        lengths.append(steps)
    return np.array(returns), np.array(lengths)


def _parity(per_env: int, n_envs: int, ref_count: int, alpha: float) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    ours_r, ours_l = _our_episodes(n_envs, per_env, seed=3)
    ref_r, ref_l = _reference_episodes(ref_count, seed=3)
    for name, a, b in (("return", ours_r, ref_r), ("length", ours_l, ref_l)):
        p = scipy_stats.ks_2samp(a, b).pvalue
        assert p > alpha, (
            f"{name}: ours mean {a.mean():.3f} (n={len(a)}), minatar {b.mean():.3f} (n={len(b)}), p={p:.2g}"
        )


def test_random_play_statistics_match_minatar() -> None:
    """Episode return and length distributions under uniform random actions with sticky actions 0.1
    and ramping (``minatar.Environment`` defaults): two-sample Kolmogorov-Smirnov, p > 0.001 each,
    on 512 of our episodes (8 per env x 64 envs) against 500 of the reference's (means ~2.9 / ~51).
    It fails for an alien shot interval of 5 or 9 instead of 10 (p ~ 1e-20, 1e-12) or a fire
    cooldown of 2 instead of 5 (p ~ 3e-4); subtler mistakes are the lockstep test's job."""
    _parity(per_env=8, n_envs=64, ref_count=500, alpha=1e-3)


@pytest.mark.slow
def test_random_play_statistics_match_minatar_large() -> None:
    """As above with 4096 of ours against 4000 reference episodes."""
    _parity(per_env=16, n_envs=256, ref_count=4000, alpha=1e-3)


# ------------------------------------------------------------------------------------ hand-set mechanics
def test_fire_cooldown_is_five_frames() -> None:
    game = _game()
    shots = []
    for _ in range(11):
        _act(game, 5)
        shots.append(bool(game.f_bullets[0, 8] != 0))  # a new shot is on row 8 after its frame
    assert shots == [True, False, False, False, False, True, False, False, False, False, True]


def test_moving_the_cannon_is_clamped() -> None:
    game = _game()
    for _ in range(7):
        _act(game, 1)
    assert int(game.pos[0]) == 0
    for _ in range(12):
        _act(game, 3)
    assert int(game.pos[0]) == 9


def test_hitting_an_alien_scores_and_removes_both() -> None:
    game = _game()
    game.aliens[0] = _rows((4, 3), (0, 0))
    game.f_bullets[0] = _rows((5, 3))
    game.move_timer.fill_(5)
    r, t = _act(game, 0)
    assert (r, t) == (1.0, False)
    assert torch.equal(game.aliens[0], _rows((0, 0)))
    assert int(game.f_bullets[0].sum()) == 0


def test_block_drops_and_turns_at_the_edge() -> None:
    game = _game()
    game.aliens[0] = _rows((1, 0), (2, 1))
    game.move_timer.zero_()
    game.alien_dir.fill_(-1)
    _act(game, 0)
    assert torch.equal(game.aliens[0], _rows((2, 0), (3, 1)))
    assert int(game.alien_dir[0]) == 1
    assert int(game.move_timer[0]) == 2 - 1  # restarted at min(aliens left, 12), then counted down
    game.move_timer.zero_()
    _act(game, 0)  # now sliding right
    assert torch.equal(game.aliens[0], _rows((2, 1), (3, 2)))


@pytest.mark.parametrize("ramping", [True, False])
def test_cleared_wave_respawns_and_speeds_up(ramping: bool) -> None:
    game = _game(ramping=ramping)
    game.aliens[0] = _rows((3, 4))
    game.f_bullets[0] = _rows((4, 4))
    game.move_timer.fill_(5)
    r, t = _act(game, 0)
    assert (r, t) == (1.0, False)
    assert torch.equal(game.aliens[0], game._block)  # fresh block: rows 0..3, columns 2..7
    assert int(game.move_interval[0]) == (11 if ramping else 12)
    assert int(game.ramp_index[0]) == int(ramping)
    game.move_interval.fill_(6)
    game.aliens[0] = _rows((3, 4))
    game.f_bullets[0] = _rows((4, 4))
    _act(game, 0)
    assert int(game.move_interval[0]) == 6  # never below 6


def test_enemy_bullet_on_the_cannon_ends_the_episode() -> None:
    game = _game()
    game.e_bullets[0] = _rows((8, 5))
    game.alien_shot_timer.fill_(5)
    assert _act(game, 0) == (0.0, True)
    game = _game()
    game.e_bullets[0] = _rows((8, 5))
    game.alien_shot_timer.fill_(5)
    assert _act(game, 3) == (0.0, False)  # stepped aside


def test_nearest_alien_fires_from_its_lowest_cell() -> None:
    game = _game()
    game.aliens[0] = _rows((1, 2), (3, 2), (0, 8), (6, 0))
    game.move_timer.fill_(5)
    game.alien_shot_timer.zero_()
    _act(game, 0)  # cannon at 5: columns 2 and 8 are 3 away, ties go left; lowest alien is on row 3
    assert torch.equal(game.e_bullets[0], _rows((3, 2)))
    assert int(game.alien_shot_timer[0]) == 9


def test_aliens_reaching_the_cannon_end_the_episode() -> None:
    game = _game()
    game.aliens[0] = _rows((9, 9))
    game.move_timer.zero_()
    game.alien_dir.fill_(1)
    assert _act(game, 0)[1]  # at the right edge on row 9: dropping ends the episode


# ----------------------------------------------------------------------------- layout, batching, devices
def test_observation_layout() -> None:
    env = MinAtarBatch("space_invaders", 3)
    obs = env.reset()
    assert obs.shape == (3, 6, 10, 10) and obs.dtype == torch.float32
    assert SpaceInvaders.channels == (
        "cannon",
        "alien",
        "alien_left",
        "alien_right",
        "friendly_bullet",
        "enemy_bullet",
    )
    raw = env.game.observation()
    assert raw.dtype == torch.bool
    assert raw[:, 0].sum().item() == 3 and raw[0, 0, 9, 5]
    assert raw[:, 1].sum().item() == 3 * 24 and torch.equal(raw[:, 1], raw[:, 2])  # heading left
    assert not raw[:, 3].any()
    assert SpaceInvaders.minimal_actions == (0, 1, 3, 5)
    assert MinAtarBatch("space_invaders", 2, minimal_actions=True).num_actions == 4


def _trajectory(n: int, device: str, steps: int = 300) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards, terminals and a checksum of observations of the first 4 envs, actions fixed per env."""
    env = MinAtarBatch("space_invaders", n, device=device, seed=7)
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 6, (steps, n), generator=gen)
    actions[:, :4] = torch.randint(0, 6, (steps, 4), generator=torch.Generator().manual_seed(1))
    rewards, terms, sums = [], [], []
    for t in range(steps):
        obs, r, term, _, _ = env.step(actions[t].to(device))
        rewards.append(r[:4].cpu())
        terms.append(term[:4].cpu())
        sums.append((obs[:4].cpu() * torch.arange(600).view(6, 10, 10)).sum((1, 2, 3)))
    return torch.stack(rewards), torch.stack(terms), torch.stack(sums)


def test_env_streams_do_not_depend_on_batch_size() -> None:
    small, large = _trajectory(4, "cpu"), _trajectory(64, "cpu")
    for a, b in zip(small, large, strict=True):
        assert torch.equal(a, b)
    assert small[1].any()  # episodes ended (and restarted) along the way


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_trajectories_are_identical() -> None:
    for a, b in zip(_trajectory(64, "cpu"), _trajectory(64, "cuda"), strict=True):
        assert torch.equal(a, b)
