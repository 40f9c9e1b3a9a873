"""Evaluation-time quantities: recorded evaluation episodes and the Q-estimation error against
discounted Monte-Carlo returns (issue 16)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rlreg.envs.evaluation import EvalEpisode, Evaluator, discounted_returns, q_estimation_error


def test_discounted_returns_by_hand():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5), [1 + 1 + 0.75, 2 + 1.5, 3])


def test_q_error_against_a_hand_computed_return():
    # a terminated 3-step episode: G = (1 + .9·0 + .81·2, 0 + .9·2, 2) = (2.62, 1.8, 2)
    ep = EvalEpisode(np.zeros((3, 1)), np.zeros((3, 1)), np.array([1.0, 0.0, 2.0]), terminated=True)
    q = np.array([3.0, 1.0, 2.0])
    out = q_estimation_error([ep], lambda o, a: q, 0.9)
    g = np.array([2.62, 1.8, 2.0])
    assert out["q_bias"] == pytest.approx((q - g).mean())
    assert out["q_error"] == pytest.approx(np.abs(q - g).mean() / np.abs(g).mean())
    assert out["q_mc"] == pytest.approx(g.mean())


def test_truncated_episodes_keep_only_steps_whose_return_is_known():
    # γ = 0.5: h = ⌈ln 0.01 / ln 0.5⌉ = 7, so a truncated 10-step episode keeps steps 0..2
    seen = []
    ep = EvalEpisode(np.arange(10.0)[:, None], np.zeros((10, 1)), np.ones(10), terminated=False)
    out = q_estimation_error([ep], lambda o, a: seen.append(o[:, 0].tolist()) or np.full(len(o), 2.0), 0.5)
    assert seen == [[0.0, 1.0, 2.0]]
    g = discounted_returns(np.ones(10), 0.5)[:3]
    assert out["q_bias"] == pytest.approx((2.0 - g).mean())
    short = EvalEpisode(np.zeros((5, 1)), np.zeros((5, 1)), np.ones(5), terminated=False)
    assert all(
        math.isnan(v) for v in q_estimation_error([short], lambda o, a: np.zeros(len(o)), 0.5).values()
    )


def test_evaluator_records_each_episode_as_the_env_gave_it():
    ev = Evaluator("Pendulum-v1", 3, seed=4)
    rng = np.random.default_rng(0)
    plain = ev.run(lambda obs: rng.uniform(-2, 2, (len(obs), 1)).astype(np.float32))
    rng = np.random.default_rng(0)
    rec = ev.run(lambda obs: rng.uniform(-2, 2, (len(obs), 1)).astype(np.float32), record=True)
    ev.close()
    np.testing.assert_array_equal(plain.returns, rec.returns)  # recording changes nothing
    assert plain.episodes is None and len(rec.episodes) == 3
    for i, e in enumerate(rec.episodes):
        assert len(e.rewards) == rec.lengths[i] == 200 and not e.terminated
        assert e.observations.shape == (200, 3) and e.actions.shape == (200, 1)
        assert e.rewards.sum() == pytest.approx(rec.returns[i])
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    first, _ = env.reset(seed=5)
    np.testing.assert_allclose(rec.episodes[1].observations[0], first)  # episode i is seeded seed + i


def test_training_evaluations_carry_the_agents_q_error(tmp_path):
    import csv

    import rlreg

    run = rlreg.train(
        "ddpg",
        env="Pendulum-v1",
        steps=600,
        out=tmp_path / "ddpg",
        settings={"train.learning_starts": 200, "train.eval_every": 300, "train.eval_episodes": 2},
        progress=False,
    )
    rows = list(csv.DictReader((tmp_path / "ddpg" / "eval.csv").open()))
    assert [int(r["step"]) for r in rows] == [300, 600]
    for r in rows:  # Pendulum's episodes are cut at 200 steps, shorter than h = 459 (γ = 0.99): no step
        assert all(math.isnan(float(r[k])) for k in ("q_bias", "q_error", "q_mc"))  # has a known return
    assert run.summary["steps"] == 600


def test_q_error_on_dmc_evaluations(tmp_path):
    pytest.importorskip("dm_control")
    import csv

    import rlreg

    rlreg.train(
        "ddpg",
        env="dmc:cartpole-balance",
        steps=300,
        out=tmp_path / "dmc",
        settings={"train.learning_starts": 100, "train.eval_every": 300, "train.eval_episodes": 2},
        progress=False,
    )
    (row,) = csv.DictReader((tmp_path / "dmc" / "eval.csv").open())
    # 1000-step episodes: steps 0..540 have a known return; DMC rewards are in [0, 1]
    assert 0 < float(row["q_mc"]) < 100 and math.isfinite(float(row["q_error"]))
