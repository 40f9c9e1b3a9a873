"""Batched Seaquest: exact lockstep and statistical parity with MinAtar, hand-set mechanics (oxygen,
surfacing, the 6-diver bonus and the diver-count quirk, ramping, entity order), observation layout,
batching and devices.

The ``minatar`` package (GPL) is only a test-time reference; the tests that need it are skipped when
it is missing. For the lockstep tests the reference game's random numbers are replaced by the ones
our game drew in the same frame (the same heading/kind/row decisions), so both games must produce
identical observations, rewards and terminals at every frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rlreg.envs.minatar import MinAtarBatch
from rlreg.envs.minatar.base import CounterRNG
from rlreg.envs.minatar.seaquest import Seaquest

CPU = torch.device("cpu")
N_, L_, U_, R_, D_, F_ = range(6)


# ----------------------------------------------------------------------------------------------- helpers
class _RecordingRNG(CounterRNG):
    """A CounterRNG that keeps the last block of uniforms it handed out."""

    def uniform(self, n: int) -> torch.Tensor:
        self.last = super().uniform(n)
        return self.last


class _FixedRNG(CounterRNG):
    """Hands out the same uniforms every call (to force spawn decisions in hand-set tests)."""

    def __init__(self, n: int, values: list[float]) -> None:
        super().__init__(n, 0, CPU)
        self.values = torch.tensor(values, dtype=torch.float32)

    def uniform(self, n: int) -> torch.Tensor:
        return self.values[:n].expand(self.key.shape[0], n).clone()


class _ReplayRandom:
    """Stands in for the reference game's RandomState: replays a queue of our uniforms."""

    def __init__(self) -> None:
        self.queue: list[float] = []

    def rand(self) -> float:
        return self.queue.pop(0)

    def randint(self, low: int, high: int) -> int:
        return low + int(self.queue.pop(0) * (high - low))


def _game(n: int = 1, ramping: bool = True, rng: CounterRNG | None = None) -> Seaquest:
    game = Seaquest(n, rng or CounterRNG(n, 0, CPU), CPU, ramping=ramping)
    game.reset(torch.ones(n, dtype=torch.bool))
    return game


def _act(game: Seaquest, a: int) -> tuple[float, bool]:
    r, t = game.step(torch.full((game.num_envs,), a, dtype=torch.int64))
    return float(r[0]), bool(t[0])


def _enemy(game: Seaquest, slot: int, x: int, y: int, right: bool, sub: bool = False, timer: int = 3) -> None:
    """Put an enemy into slot ``slot`` of env 0 (ages follow the ring: see ``en_head``)."""
    game.en_on[0, slot], game.en_sub[0, slot], game.en_right[0, slot] = True, sub, right
    game.en_x[0, slot], game.en_y[0, slot], game.en_timer[0, slot], game.en_shot[0, slot] = x, y, timer, 9


def _policy(obs: torch.Tensor, u: torch.Tensor, eps: float, bob: bool = False) -> torch.Tensor:
    """A scripted policy on (N, 10, 10, 10) observations. Default: dive, chase the nearest diver,
    otherwise fire or swim sideways at random, and surface with 6 divers or when oxygen runs low
    with a diver aboard. ``bob``: alternate between rows 0 and 1 (surfacing every other frame),
    firing now and then. With probability ``eps`` a uniform action instead. ``u``: (N, 3) uniforms."""
    n = obs.shape[0]
    front = obs[:, 0].reshape(n, 100).float().argmax(1)
    y, x = front // 10, front % 10
    oxygen, aboard = obs[:, 7, 9].sum(1), obs[:, 8, 9].sum(1)
    cells = torch.arange(100)
    dist = (cells // 10 - y[:, None]).abs() + (cells % 10 - x[:, None]).abs()
    dist = torch.where(obs[:, 9].reshape(n, 100), dist, 1000)
    target = dist.argmin(1)
    has = dist.min(1).values < 1000
    ty, tx = target // 10, target % 10
    a = torch.where(u[:, 1] < 0.5, F_, torch.where(u[:, 2] < 0.5, L_, R_))
    a = torch.where(has & (tx < x), L_, torch.where(has & (tx > x), R_, a))
    a = torch.where(has & (ty < y), U_, torch.where(has & (ty > y), D_, a))
    a = torch.where(y == 0, D_, a)
    a = torch.where((aboard == 6) | ((oxygen <= 3) & (aboard > 0)), U_, a)
    if bob:
        a = torch.where(y == 0, D_, torch.where(u[:, 2] < 0.3, F_, U_))
    return torch.where(u[:, 0] < eps, (u[:, 1] * 6).long().clamp(max=5), a)


def _full_load(game: Seaquest, refs: list, mask: torch.Tensor) -> None:
    """Start the masked episodes one row down with 6 divers aboard (in both games)."""
    for i in torch.nonzero(mask)[:, 0].tolist():
        game.divers[i], game.sub_y[i], game.surface[i] = 6, 1, False
        refs[i].diver_count, refs[i].sub_y, refs[i].surface = 6, 1, False


# ---------------------------------------------------------------------------------- parity with MinAtar
@pytest.mark.parametrize(
    "eps,bob,ramping,steps",
    [(1.0, False, True, 300), (0.05, False, True, 500), (0.05, False, False, 300), (0.05, True, True, 400)],
    ids=["uniform", "divers", "divers-no-ramping", "quirk-bobbing"],
)
def test_lockstep_with_minatar(eps: float, bob: bool, ramping: bool, steps: int) -> None:
    """Same executed actions and spawn decisions -> the same frames, for 16 environments.

    ``divers``: a scripted diver hunter (pick-ups, surfacing with and without 6 divers, the count
    going negative). ``quirk-bobbing``: every episode starts with 6 divers and the policy bobs
    between rows 0 and 1, so the count runs far below 0, difficulty ramps to its limits and up to
    ~20 enemies are on screen at once (crowded rows, enemies sharing cells); no slot overflows."""
    ref_mod = pytest.importorskip("minatar.environments.seaquest")
    n = 16
    rng = _RecordingRNG(n, 0, CPU)
    game = _game(n, ramping, rng)
    refs = [ref_mod.Env(ramping=ramping) for _ in range(n)]
    for ref in refs:
        ref.random = _ReplayRandom()
    if bob:
        _full_load(game, refs, torch.ones(n, dtype=torch.bool))
    policy_rng = CounterRNG(n, 1, CPU)
    episodes, reward_sum, max_ramp, max_enemies, min_count = 0, 0.0, 0, 0, 0
    for t in range(steps):
        actions = _policy(game.observation(), policy_rng.uniform(3), eps, bob)
        reward, terminal = game.step(actions)
        u = rng.last.double().numpy()
        results = []
        for i, ref in enumerate(refs):
            queue = []
            if ref.e_spawn_timer == 0:
                queue += [u[i, 0], u[i, 1], u[i, 2]]
            if ref.d_spawn_timer == 0:
                queue += [u[i, 3], u[i, 4]]
            ref.random.queue = queue
            results.append(ref.act(int(actions[i])))
        ref_obs = np.stack([ref.state() for ref in refs])
        obs = game.observation().permute(0, 2, 3, 1).numpy()
        if results != list(zip(reward.tolist(), terminal.tolist(), strict=True)) or not np.array_equal(
            obs, ref_obs
        ):
            bad = [
                i for i in range(n) if results[i] != (reward[i], terminal[i]) or (obs[i] != ref_obs[i]).any()
            ]
            i = bad[0]
            raise AssertionError(
                f"frame {t}: envs {bad} differ; env {i}: ours {float(reward[i]), bool(terminal[i])}, "
                f"minatar {results[i]}, differing (row, col, channel): {np.argwhere(obs[i] != ref_obs[i])}"
            )
        for ref, (r, done) in zip(refs, results, strict=True):
            max_ramp = max(max_ramp, ref.ramp_index)
            max_enemies = max(max_enemies, len(ref.e_fish) + len(ref.e_subs))
            min_count = min(min_count, ref.diver_count)
            reward_sum += r
            if done:
                ref.reset()
                episodes += 1
        game.reset(terminal)
        if bob:
            _full_load(game, refs, terminal)
    assert episodes >= 40 and int(game.overflow.sum()) == 0
    if eps < 1:
        assert min_count < 0 and reward_sum > 0
    if bob:
        assert max_ramp >= 19 and max_enemies >= 15 and min_count <= -30
    if not ramping:
        assert max_ramp == 0


def _run_ours(
    n_envs: int, per_env: int, seed: int, policy_eps: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of the first ``per_env`` episodes of each of ``n_envs`` environments
    (a fixed count per environment, so short episodes are not favoured); uniform random actions, or
    the scripted diver policy when ``policy_eps`` is given."""
    env = MinAtarBatch("seaquest", n_envs, seed=seed)
    policy_rng = CounterRNG(n_envs, seed + 1, CPU)
    obs = env.reset()
    ret, length = torch.zeros(n_envs), torch.zeros(n_envs, dtype=torch.int64)
    done_count = torch.zeros(n_envs, dtype=torch.int64)
    returns, lengths = [], []
    while int(done_count.min()) < per_env:
        for _ in range(50):
            u = policy_rng.uniform(3)
            if policy_eps is None:
                actions = (u[:, 0] * 6).long().clamp(max=5)
            else:
                actions = _policy(obs.bool(), u, policy_eps)
            obs, r, term, trunc, _ = env.step(actions)
            ret += r
            length += 1
            done = term | trunc
            keep = done & (done_count < per_env)
            returns.append(ret[keep].clone())
            lengths.append(length[keep].clone())
            done_count += done.long()
            ret[done], length[done] = 0, 0
    return torch.cat(returns).numpy(), torch.cat(lengths).numpy()


def _run_reference(count: int, seed: int, policy_eps: float | None) -> tuple[np.ndarray, np.ndarray]:
    minatar = pytest.importorskip("minatar")
    env = minatar.Environment("seaquest")  # sticky 0.1, ramping on
    env.seed(seed)
    policy_rng, uniform = CounterRNG(1, seed + 1, CPU), np.random.RandomState(seed + 1)
    returns, lengths = [], []
    for _ in range(count):
        env.reset()
        total, steps, done = 0.0, 0, False
        while not done:
            if policy_eps is None:
                a = uniform.randint(6)
            else:
                obs = torch.from_numpy(env.state()).permute(2, 0, 1)[None]
                a = int(_policy(obs, policy_rng.uniform(3), policy_eps)[0])
            r, done = env.act(a)
            total, steps = total + r, steps + 1
        returns.append(total)
        lengths.append(steps)
    return np.array(returns), np.array(lengths)


def _parity(per_env: int, n_envs: int, ref_count: int, policy_eps: float | None, alpha: float = 1e-3) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    ours_r, ours_l = _run_ours(n_envs, per_env, seed=5, policy_eps=policy_eps)
    ref_r, ref_l = _run_reference(ref_count, seed=5, policy_eps=policy_eps)
    for name, a, b in (("return", ours_r, ref_r), ("length", ours_l, ref_l)):
        p = scipy_stats.ks_2samp(a, b).pvalue
        assert p > alpha, (
            f"{name}: ours mean {a.mean():.3f} (n={len(a)}), minatar {b.mean():.3f} (n={len(b)}), p={p:.2g}"
        )


def test_random_play_statistics_match_minatar() -> None:
    """Episode return and length distributions under uniform random actions with sticky actions 0.1
    and ramping (``minatar.Environment`` defaults): two-sample Kolmogorov-Smirnov, p > 0.001 each,
    on 1024 of our episodes (4 per env x 256 envs) against 1000 of the reference's (means ~0.12 /
    ~31). Random play mostly ends by surfacing without divers, so this only catches gross errors
    (an enemy spawn interval of 10 instead of 20 gives p ~ 1e-3 on lengths); the lockstep tests,
    which compare every frame, carry the evidence of faithfulness."""
    _parity(per_env=4, n_envs=256, ref_count=1000, policy_eps=None)


@pytest.mark.slow
def test_random_play_statistics_match_minatar_large() -> None:
    """As above with 8192 of ours against 8000 reference episodes."""
    _parity(per_env=8, n_envs=1024, ref_count=8000, policy_eps=None)


@pytest.mark.slow
def test_scripted_play_statistics_match_minatar() -> None:
    """The scripted diver policy (10 % uniform actions) under sticky actions and the reference's own
    randomness: KS p > 0.001 on returns and lengths, 1024 of ours against 1000 of the reference's."""
    _parity(per_env=4, n_envs=256, ref_count=1000, policy_eps=0.1)


# ------------------------------------------------------------------------------------ hand-set mechanics
def test_oxygen_runs_out() -> None:
    game = _game()
    _act(game, D_)
    game.oxygen.fill_(1)
    assert _act(game, N_) == (0.0, False)  # 1 -> 0 below the surface
    assert int(game.oxygen[0]) == 0
    assert _act(game, N_) == (0.0, True)  # at 0: the episode ends
    obs = game.observation()
    assert not obs[0, 7].any()  # empty gauge


def test_surfacing_without_divers_ends_the_episode() -> None:
    game = _game()
    assert _act(game, U_) == (0.0, False)  # on the surface from the start: not a surfacing
    assert _act(game, D_) == (0.0, False)
    assert _act(game, U_) == (0.0, True)


def test_surfacing_with_some_divers_drops_one_and_refills() -> None:
    game = _game()
    _act(game, D_)
    game.divers.fill_(3)
    game.oxygen.fill_(40)
    assert _act(game, U_) == (0.0, False)
    assert (int(game.divers[0]), int(game.oxygen[0]), int(game.ramp_index[0])) == (2, 200, 1)
    assert int(game.observation()[0, 8, 9].sum()) == 2


@pytest.mark.parametrize("ramping", [True, False])
def test_six_diver_bonus_and_the_negative_count_quirk(ramping: bool) -> None:
    game = _game(ramping=ramping)
    _act(game, D_)
    game.divers.fill_(6)
    game.oxygen.fill_(150)
    assert int(game.observation()[0, 8, 9].sum()) == 6
    assert _act(game, U_) == (7.0, False)  # bonus 150 * 10 // 200
    assert (int(game.divers[0]), int(game.oxygen[0])) == (-1, 200)  # reference quirk: -1, not 0
    assert not game.observation()[0, 8].any()  # the gauge shows nothing for negative counts
    assert (int(game.spawn_interval[0]), int(game.move_interval[0])) == ((19, 5) if ramping else (20, 5))
    for expected_count, ramp in ((-2, 2), (-3, 3)):
        _act(game, D_)
        assert _act(game, U_) == (0.0, False)  # surfacing with a negative count never ends it
        assert int(game.divers[0]) == expected_count and int(game.oxygen[0]) == 200
        assert int(game.ramp_index[0]) == (ramp if ramping else 0)
    # ramps so far: 3; the move interval drops on the 2nd (ramp index 1 before it), not the 1st or 3rd
    assert (int(game.spawn_interval[0]), int(game.move_interval[0])) == ((17, 4) if ramping else (20, 5))


def test_ramping_stops_at_its_limits() -> None:
    game = _game()
    game.spawn_interval.fill_(1)
    game.move_interval.fill_(2)
    game.ramp_index.fill_(25)
    _act(game, D_)
    game.divers.fill_(2)
    _act(game, U_)
    assert (int(game.spawn_interval[0]), int(game.move_interval[0]), int(game.ramp_index[0])) == (1, 2, 25)


def test_diver_pickup_respects_the_cap() -> None:
    for aboard, picked in ((5, True), (6, False), (-1, True)):
        game = _game()
        _act(game, D_)  # sub at (row 1, column 5)
        game.divers.fill_(aboard)
        game.dv_on[0, 0], game.dv_right[0, 0] = True, True
        game.dv_x[0, 0], game.dv_y[0, 0], game.dv_timer[0, 0] = 5, 1, 3
        _act(game, N_)
        assert bool(game.dv_on[0, 0]) != picked
        assert int(game.divers[0]) == aboard + picked


def test_when_the_cap_binds_the_newest_diver_is_picked_up() -> None:
    game = _game()
    _act(game, D_)  # sub at (row 1, column 5)
    game.divers.fill_(5)
    game.dv_head.fill_(0)  # ring order: slot 0 older, slot 1 newer
    for slot, right in ((0, True), (1, False)):
        game.dv_on[0, slot], game.dv_right[0, slot] = True, right
        game.dv_x[0, slot], game.dv_y[0, slot], game.dv_timer[0, slot] = 5, 1, 3
    _act(game, N_)
    assert int(game.divers[0]) == 6
    assert game.dv_on[0, :2].tolist() == [True, False]


def test_bullet_hits_the_oldest_fish_in_a_cell() -> None:
    game = _game()
    _act(game, D_)
    _act(game, D_)  # sub at (row 2, column 5), facing left
    game.cooldown.zero_()
    game.en_head.fill_(2)  # slot 0 is older than slot 1
    _enemy(game, 0, 3, 2, right=False, timer=4)
    _enemy(game, 1, 3, 2, right=False, timer=2)
    _act(game, F_)  # bullet appears at 5 and moves to 4
    r, t = _act(game, N_)  # bullet moves to 3: hits
    assert (r, t) == (1.0, False)
    assert game.en_on[0, :2].tolist() == [False, True]  # the oldest went, the newer stays


def test_enemy_landing_on_a_bullet_newest_first_and_subs_before_fish() -> None:
    game = _game()
    _act(game, D_)
    game.en_head.fill_(3)  # ages: slot 0 < slot 1 < slot 2
    game.fb_on[0, 0], game.fb_right[0, 0], game.fb_x[0, 0], game.fb_y[0, 0] = True, False, 2, 4  # moves to 1
    # all three move onto column 1 of row 4 this frame (where the bullet lands)
    _enemy(game, 0, 0, 4, right=True, sub=True, timer=0)
    _enemy(game, 1, 0, 4, right=True, sub=False, timer=0)
    _enemy(game, 2, 0, 4, right=True, sub=True, timer=0)
    r, _ = _act(game, N_)
    assert r == 1.0
    assert game.en_on[0, :3].tolist() == [True, True, False]  # the newest sub took the bullet


def test_enemy_contact_and_enemy_bullets_end_the_episode() -> None:
    game = _game()
    _act(game, D_)  # sub at (row 1, column 5)
    _enemy(game, 0, 6, 1, right=False, timer=0)  # fish moving onto the player
    assert _act(game, N_)[1]
    game = _game()
    _act(game, D_)
    game.eb[0, 0 * 100 + 1 * 10 + 6] = True  # a left-heading enemy bullet next to the player
    assert _act(game, N_)[1]
    game = _game()
    _act(game, D_)
    game.eb[0, 1 * 100 + 1 * 10 + 6] = True  # heading right, away from the player
    assert not _act(game, N_)[1]


def test_subs_shoot_every_eleven_frames() -> None:
    game = _game()
    _enemy(game, 0, 2, 6, right=True, sub=True, timer=50)
    game.en_shot[0, 0] = 0
    shots = []
    for _ in range(23):
        _act(game, N_)
        shots.append(bool(game.eb[0, 100 + 6 * 10 + 3]))  # a new shot moves one cell right at once
    assert [i for i, s in enumerate(shots) if s] == [0, 11, 22]


def test_spawn_rules() -> None:
    # uniforms: enemy heading right (0.1 < 0.5), a sub (0.2 < 1/3), row 1 + int(0.3 * 8) = 3;
    # diver heading left (0.9), row 1 + int(0.55 * 8) = 5
    game = _game(rng=_FixedRNG(1, [0.1, 0.2, 0.3, 0.9, 0.55]))
    game.enemy_timer.zero_()
    game.diver_timer.zero_()
    _act(game, N_)
    assert int(game.en_on[0].sum()) == 1 and bool(game.en_sub[0, 0]) and bool(game.en_right[0, 0])
    assert (int(game.en_x[0, 0]), int(game.en_y[0, 0])) == (0, 3)
    assert (int(game.dv_x[0, 0]), int(game.dv_y[0, 0]), bool(game.dv_right[0, 0])) == (9, 5, False)
    assert int(game.enemy_timer[0]) == 19 and int(game.diver_timer[0]) == 29
    # a proposal into a row held by an enemy heading the other way is dropped
    game = _game(rng=_FixedRNG(1, [0.1, 0.2, 0.3, 0.9, 0.55]))
    game.en_head.fill_(1)
    _enemy(game, 0, 7, 3, right=False, timer=9)
    game.enemy_timer.zero_()
    _act(game, N_)
    assert int(game.en_on[0].sum()) == 1 and int(game.en_head[0]) == 1


# ----------------------------------------------------------------------------- layout, batching, devices
def test_observation_layout() -> None:
    env = MinAtarBatch("seaquest", 3)
    obs = env.reset()
    assert obs.shape == (3, 10, 10, 10) and obs.dtype == torch.float32
    assert Seaquest.channels == (
        "sub_front",
        "sub_back",
        "friendly_bullet",
        "trail",
        "enemy_bullet",
        "enemy_fish",
        "enemy_sub",
        "oxygen_guage",
        "diver_guage",
        "diver",
    )
    raw = env.game.observation()
    assert raw.dtype == torch.bool
    assert raw[0, 0, 0, 5] and raw[0, 1, 0, 6] and raw[:, :2].sum() == 6  # facing left: back to the right
    assert raw[:, 7, 9].all() and raw[:, 7].sum() == 30  # full oxygen
    assert not raw[:, 8].any() and not raw[:, 2:7].any() and not raw[:, 9].any()
    assert Seaquest.minimal_actions == (0, 1, 2, 3, 4, 5)


def _trajectory(n: int, device: str, steps: int = 200) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards, terminals and an observation checksum of the first 4 envs (their actions fixed)."""
    env = MinAtarBatch("seaquest", n, device=device, seed=11)
    actions = torch.randint(0, 6, (steps, n), generator=torch.Generator().manual_seed(0))
    actions[:, :4] = torch.randint(0, 6, (steps, 4), generator=torch.Generator().manual_seed(1))
    rewards, terms, sums = [], [], []
    weights = torch.arange(1000, dtype=torch.float32).view(10, 10, 10)
    for t in range(steps):
        obs, r, term, _, _ = env.step(actions[t].to(device))
        rewards.append(r[:4].cpu())
        terms.append(term[:4].cpu())
        sums.append((obs[:4].cpu() * weights).sum((1, 2, 3)))
    return torch.stack(rewards), torch.stack(terms), torch.stack(sums)


def test_env_streams_do_not_depend_on_batch_size() -> None:
    small, large = _trajectory(4, "cpu"), _trajectory(64, "cpu")
    for a, b in zip(small, large, strict=True):
        assert torch.equal(a, b)
    assert small[1].any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_trajectories_are_identical() -> None:
    for a, b in zip(_trajectory(64, "cpu"), _trajectory(64, "cuda"), strict=True):
        assert torch.equal(a, b)


def test_compact_and_dense_enemy_paths_agree() -> None:
    """On CPU the live enemies (and shooting subs) are found on the host and handled alone; the
    all-slots path (CUDA's) gives the same trajectories and observations, in every dtype."""
    for dtype in (torch.bool, torch.float32):
        compact = MinAtarBatch("seaquest", 64, seed=4, obs_dtype=dtype)
        dense = MinAtarBatch("seaquest", 64, seed=4, obs_dtype=dtype)
        dense.game.dense_render = True
        gen = torch.Generator().manual_seed(4)
        drawn = 0
        for _ in range(150):
            a = torch.randint(0, 6, (64,), generator=gen)
            for x, y in zip(compact.step(a), dense.step(a), strict=True):
                assert torch.equal(x, y)
            drawn += int(compact.game.en_on.sum())
        assert drawn > 100 and int(compact.game.eb.sum()) > 0  # enemies and their shots were out
