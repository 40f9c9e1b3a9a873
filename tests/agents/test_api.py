"""The notebook-level API (issue 14, item 9): rlreg.train / rlreg.load_run and the run object."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import rlreg
from rlreg.errors import RlregError

TINY = {"agent.actor_hidden": [16], "agent.critic_hidden": [16], "train.log_every": 20}


def test_train_returns_a_run_with_summary_metrics_evaluate_and_predict(pendulum_medium, tmp_path):
    settings = {**TINY, "train.eval_every": 40, "train.eval_episodes": 2}
    run = rlreg.train("td3bc", dataset=pendulum_medium, steps=40, out=tmp_path / "r", settings=settings)
    assert run.summary["steps"] == 40 and run.summary["final_score"] is not None
    assert run.config["agent_config"]["actor_hidden"] == [16]
    assert list(run.metrics["step"]) == [20.0, 40.0]
    assert np.isfinite(run.metrics["train/critic_loss"]).all()
    assert len(run.evals) == 1 and run.evals["return_mean"][0] == pytest.approx(run.summary["final_return"])
    again = run.evaluate(episodes=2, seed=run.config["seed"] + run.config["train"]["eval_seed_offset"])
    assert again["return_mean"] == pytest.approx(run.summary["final_return"], rel=1e-6)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    actions = run.predict(obs)
    assert actions.shape == (5, 1) and (np.abs(actions) <= 2.0 + 1e-6).all()  # Pendulum's box
    loaded = rlreg.load_run(run.dir)
    assert np.array_equal(loaded.predict(obs), actions) and loaded.summary == run.summary
    with pytest.raises(KeyError, match="columns"):
        run.metrics["nope"]


def test_bad_calls_are_clear(tmp_path):
    with pytest.raises(RlregError, match="no dataset"):
        rlreg.train("td3bc")
    with pytest.raises(RlregError, match="not an rlreg run folder"):
        rlreg.load_run(tmp_path)
    with pytest.raises(RlregError, match="unknown agent"):
        rlreg.train("td4", dataset="pendulum-medium-v0")


def test_import_rlreg_imports_no_torch():
    probe = "import sys, rlreg; rlreg.__version__; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
        == "False"
    )
