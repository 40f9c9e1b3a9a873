"""DeepMind Control tasks as Gymnasium envs (envs/dmc.py), checked against dm_control itself."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("dm_control")

from dm_control import suite  # noqa: E402
from rlreg.envs.dmc import DMC_TASKS, DMCEnv, dmc_env_id, dmc_task  # noqa: E402
from rlreg.envs.registry import resolve_env_id  # noqa: E402

from rlreg.errors import RlregError  # noqa: E402


def dm_env(domain: str, task: str, seed: int):
    return suite.load(domain, task, task_kwargs={"random": seed})


def flat(time_step) -> np.ndarray:
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in time_step.observation.values()])


def test_every_bounded_suite_task_is_registered():
    assert set(DMC_TASKS) == {t for t in suite.ALL_TASKS if t[0] != "lqr"}
    for domain, task in DMC_TASKS:
        assert gym.spec(dmc_env_id(domain, task)).entry_point == "rlreg.envs.dmc:DMCEnv"


def test_spaces_and_flattening_in_the_dicts_order():
    env = gym.make("rlreg/dmc-walker-walk-v0")
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (24,), np.float32)
    assert env.action_space == gym.spaces.Box(-1, 1, (6,), np.float32)
    obs, _ = env.reset(seed=5)
    ref = dm_env("walker", "walk", 5).reset()
    assert list(ref.observation) == ["orientations", "height", "velocity"]  # height is a scalar
    assert obs.dtype == np.float32 and np.array_equal(obs, flat(ref).astype(np.float32))


def test_actions_are_rescaled_to_non_unit_bounds_and_clipped():
    env = DMCEnv("quadruped", "walk")
    spec = env._env.action_spec()
    assert (spec.maximum != 1).any()  # quadruped's bounds: [-1, 1.1] and [-0.8, 0.8]
    env.reset(seed=0)
    a = np.linspace(-1, 1, 12).astype(np.float32)
    env.step(a)
    want = spec.minimum + (a.astype(np.float64) + 1) * (spec.maximum - spec.minimum) / 2
    np.testing.assert_allclose(env._env.physics.data.ctrl, want, rtol=1e-6)
    # the same controls stepped in dm_control directly give the same observation and reward
    ref = dm_env("quadruped", "walk", 0)
    ref.reset()
    env2 = DMCEnv("quadruped", "walk")
    env2.reset(seed=0)
    ts = ref.step(want)
    obs, reward, *_ = env2.step(a)
    np.testing.assert_array_equal(obs, flat(ts).astype(np.float32))
    assert reward == ts.reward
    env.step(np.full(12, 5.0))  # out of [-1, 1]: clipped to the upper bounds
    np.testing.assert_allclose(env._env.physics.data.ctrl, spec.maximum)


def test_time_limit_is_truncation_never_termination_and_action_repeat_sums_rewards():
    env = DMCEnv("cheetah", "run", episode_length=10)
    env.reset(seed=1)
    flags = [env.step(np.zeros(6))[2:4] for _ in range(10)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])
    with pytest.raises(RlregError, match="step\\(\\) before reset\\(\\)"):
        env.step(np.zeros(6))
    rep = DMCEnv("cheetah", "run", episode_length=10, action_repeat=2)
    rep.reset(seed=1)
    ref = dm_env("cheetah", "run", 1)
    ref.reset()
    a = np.full(6, 0.3)
    for k in range(5):  # 10 control steps = 5 agent steps
        _, reward, terminated, truncated, _ = rep.step(a)
        r1, r2 = ref.step(a).reward, ref.step(a).reward
        assert reward == pytest.approx(r1 + r2)
        assert (terminated, truncated) == (False, k == 4)


def test_default_episode_is_1000_steps():
    env = gym.make("rlreg/dmc-cartpole-balance-v0")
    env.reset(seed=0)
    n = 0
    while True:
        n += 1
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert (n, terminated, truncated) == (1000, False, True)


def test_same_seed_same_episode_other_seed_other_episode():
    def rollout(seed: int) -> np.ndarray:
        env = DMCEnv("reacher", "hard")
        obs = [env.reset(seed=seed)[0]]
        rng = np.random.default_rng(0)
        for _ in range(20):
            obs.append(env.step(rng.uniform(-1, 1, 2))[0])
        return np.stack(obs)

    assert np.array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))
    ref = dm_env("reacher", "hard", 3).reset()
    np.testing.assert_array_equal(rollout(3)[0], flat(ref).astype(np.float32))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs(mode):
    envs = gym.make_vec("rlreg/dmc-cheetah-run-v0", num_envs=2, vectorization_mode=mode)
    try:
        obs, _ = envs.reset(seed=7)
        for i in range(2):
            single = DMCEnv("cheetah", "run")
            np.testing.assert_array_equal(obs[i], single.reset(seed=7 + i)[0])
        obs, reward, terminated, truncated, _ = envs.step(np.zeros((2, 6), np.float32))
        assert obs.shape == (2, 17) and reward.shape == (2,) and not terminated.any()
    finally:
        envs.close()


def test_bad_task_names_list_the_valid_ones():
    with pytest.raises(RlregError, match="(?s)unknown DMC task 'cheetah-walk'.*cheetah-run.*walker-walk"):
        dmc_task("cheetah-walk")
    with pytest.raises(RlregError, match="unbounded"):
        dmc_task("lqr-lqr_2_1")
    with pytest.raises(RlregError, match="unknown DMC task 'cheetah-runn'"):
        resolve_env_id("dmc:cheetah-runn")
    with pytest.raises(RlregError, match="unknown DMC task 'cheetah-fly'"):
        DMCEnv("cheetah", "fly")
    with pytest.raises(RlregError, match="action_repeat must be a positive integer"):
        DMCEnv("cheetah", "run", action_repeat=0)
    assert resolve_env_id("dmc:ball_in_cup-catch") == "rlreg/dmc-ball_in_cup-catch-v0"


def test_cli_spec_and_registered_id_make_the_same_env():
    from rlreg.envs.registry import make_env

    a, b = make_env("dmc:cheetah-run"), make_env("rlreg/dmc-cheetah-run-v0")
    assert np.array_equal(a.reset(seed=2)[0], b.reset(seed=2)[0])


def test_rendering_needs_a_gl_backend():
    try:
        env = DMCEnv("cartpole", "swingup", render_mode="rgb_array", render_size=(32, 48))
    except RlregError as e:  # no OpenGL backend on this machine: one clear line
        assert "needs an OpenGL backend" in e.problem and "MUJOCO_GL" in e.fix
        return
    env.reset(seed=0)
    assert env.render().shape == (32, 48, 3)
    assert DMCEnv("cartpole", "swingup").render() is None


def test_mujoco_and_dmc_extras_pin_the_same_mujoco_and_work_in_one_process():
    from pathlib import Path

    import tomllib

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra in ("mujoco", "dmc"):
        assert "mujoco>=3.1,<4" in extras[extra], extra  # dm-control 1.0.50 breaks on mujoco 4.0.0
    hopper = gym.make("Hopper-v5")
    cheetah = DMCEnv("cheetah", "run")
    assert hopper.reset(seed=0)[0].shape == (11,) and cheetah.reset(seed=0)[0].shape == (17,)


def test_without_dm_control_making_an_env_says_which_extra_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dm_control", None)  # import dm_control now raises ImportError
    with pytest.raises(RlregError, match="need the dm-control package") as e:
        DMCEnv("cheetah", "run")
    assert "rlreg[dmc]" in e.value.fix


def test_cli_trains_beer_on_a_dmc_task_and_logs_what_beer_controls(tmp_path, capsys):
    import csv

    from rlreg.agents.cli import main

    out = tmp_path / "beer"
    args = ["train", "beer", "--env", "dmc:cartpole-balance", "--steps", "300", "--out", str(out)]
    for kv in (
        "train.learning_starts=100",
        "train.eval_every=300",
        "train.eval_episodes=2",
        "beer.srank_every=50",
    ):
        args += ["--set", kv]
    assert main([*args, "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    for key in ("reg/beer/beer_loss", "reg/beer/cos", "reg/beer/bound", "reg/beer/active", "reg/beer/srank"):
        assert any(r.get(key) for r in rows), key
    (ev,) = csv.DictReader((out / "eval.csv").open())
    assert math.isfinite(float(ev["q_error"])) and float(ev["length_mean"]) == 1000
