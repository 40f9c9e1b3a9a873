"""SB3's DQN trained offline (``learn_offline``) on a dataset with discrete actions, then online."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from rlreg.agents.sb3 import DQN
from stable_baselines3.common.monitor import Monitor

from rlreg.data.transitions import Transitions
from rlreg.errors import RlregError
from rlreg.regularizers import DVW, Munchausen

KW = {
    "buffer_size": 100_000,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "target_update_interval": 200,
    "policy_kwargs": {"net_arch": [64, 64]},
    "seed": 0,
    "device": "cpu",
}


def model(regs=(), **kw) -> DQN:
    return DQN("MlpPolicy", "CartPole-v1", regularizers=list(regs), **dict(KW, **kw))


def dataset(name: str) -> Transitions:
    from rlreg.envs.datasets import load_dataset

    return load_dataset(name, progress=False)


def q_of_data(m: DQN, data: Transitions) -> torch.Tensor:
    obs = torch.as_tensor(m._normalize(data.observations), dtype=torch.float32)
    with torch.no_grad():
        return m.q_net(obs).gather(1, torch.as_tensor(data.actions)[:, None])[:, 0]


def test_learn_offline_fills_the_buffer_with_the_datasets_actions_and_reports_scores(cartpole_medium):
    data = dataset(cartpole_medium)
    m = model()
    out = m.learn_offline(
        cartpole_medium,
        gradient_steps=400,
        eval_env=Monitor(gym.make("CartPole-v1")),
        eval_freq=200,
        n_eval_episodes=2,
    )
    n = len(data)
    buf = m.replay_buffer
    assert buf.actions.dtype == np.int64 and np.array_equal(buf.actions[:n, 0, 0], data.actions)
    assert np.allclose(buf.observations[:n, 0], m._normalize(data.observations))
    assert np.array_equal(buf.dones[:n, 0], data.terminals) and not buf.timeouts[:n].any()
    assert [e["step"] for e in out["evals"]] == [200, 400]
    ref = data.info
    for e in out["evals"]:
        want = 100 * (e["return_mean"] - ref.ref_min_score) / (ref.ref_max_score - ref.ref_min_score)
        assert e["score"] == pytest.approx(want)
    assert m._n_updates == 400


def test_offline_target_updates_count_gradient_steps(cartpole_medium):
    m = model([Munchausen()], target_update_interval=150)
    m.learn_offline(cartpole_medium, gradient_steps=300)  # updates after steps 150 and 300
    for a, b in zip(m.q_net.parameters(), m.q_net_target.parameters(), strict=True):
        assert torch.equal(a, b)
    m2 = model([Munchausen()], target_update_interval=150)
    m2.learn_offline(cartpole_medium, gradient_steps=299)  # last update after step 150
    assert any(not torch.equal(a, b) for a, b in zip(m2.q_net.parameters(), m2.q_net_target.parameters()))
    # q̄⁻ is the target before the last update: m2's target equals what m's q̄⁻ was rotated from
    assert m._n_calls == 300 and m2._n_calls == 299


def steps_to_termination(data: Transitions) -> np.ndarray:
    """For each row, how many steps its episode has left before terminating (a large number for
    episodes that end by a timeout or are cut)."""
    left = np.full(len(data), 10**6)
    count = 10**6
    for i in range(len(data) - 1, -1, -1):
        ends_here = i + 1 == len(data) or data.episode_starts[i + 1]
        count = 0 if data.terminals[i] else (10**6 if ends_here else count + 1)
        left[i] = count
    return left


def test_offline_dqn_learns_the_terminal_structure_and_munchausen_lowers_q(cartpole_medium):
    """Learning: Q is lowest on transitions that end the episode (target r = 1), next lowest on the
    ten steps before them, highest elsewhere (targets that bootstrap). Munchausen's bonus
    ατ ln π(a|s) ≤ 0 is visible: lower Q on the data."""
    data = dataset(cartpole_medium)
    left = steps_to_termination(data)
    done, near = left == 0, (left > 0) & (left < 10)
    plain, mun = model(), model([Munchausen()])
    for m in (plain, mun):
        m.learn_offline(cartpole_medium, gradient_steps=1500)
    for m in (plain, mun):
        q = q_of_data(m, data).numpy()
        assert q[done].mean() < q[near].mean() < q[left >= 10].mean() - 0.2
    assert q_of_data(mun, data).mean() < q_of_data(plain, data).mean() - 0.2
    assert mun.logger.name_to_value["train/munchausen/bonus"] < 0


def test_offline_dvw_runs_with_the_previous_target(cartpole_medium):
    m = model([DVW()])
    m.learn_offline(cartpole_medium, gradient_steps=300)
    logged = m.logger.name_to_value
    assert any(k.startswith("train/dvw/") for k in logged)
    assert all(np.isfinite(v) for k, v in logged.items() if k.startswith("train/dvw/"))


def test_offline_dqn_save_load_keeps_the_normaliser_and_predictions(cartpole_medium, tmp_path):
    m = model([Munchausen()])
    m.learn_offline(cartpole_medium, gradient_steps=200)
    raw = dataset(cartpole_medium).observations[:50]
    want = m.predict(raw, deterministic=True)[0]
    m.save(tmp_path / "dqn.zip")
    loaded = DQN.load(tmp_path / "dqn.zip", device="cpu")
    assert np.array_equal(loaded.predict(raw, deterministic=True)[0], want)
    assert np.array_equal(loaded.obs_normalizer.mean, m.obs_normalizer.mean)


def test_offline_to_online_dqn_keeps_the_data_and_normalises_what_it_collects(cartpole_medium):
    m = model([Munchausen()], learning_starts=0, train_freq=4, buffer_size=100_300)
    m.learn_offline(cartpole_medium, gradient_steps=100)
    n = m._dataset_rows
    m.learn(200)
    buf = m.replay_buffer
    assert buf.pos == n + 200
    collected = buf.observations[n : n + 200, 0]
    assert np.abs(collected.mean(0)).max() < 3  # normalised like the data (raw cart velocity is not)
    assert np.array_equal(buf.actions[:n, 0, 0], dataset(cartpole_medium).actions)


def test_offline_dqn_bad_input(cartpole_medium, pendulum_medium):
    with pytest.raises(RlregError, match="continuous actions; the environment has 2 discrete actions"):
        DQN("MlpPolicy", "CartPole-v1", **KW).learn_offline(
            _continuous_like_cartpole(pendulum_medium), gradient_steps=10
        )
    data = dataset(cartpole_medium)
    data.actions = data.actions.copy()
    data.actions[7] = 5
    with pytest.raises(
        RlregError, match=r"action 5 at row 7 is outside the environment's 2 discrete actions"
    ):
        model().learn_offline(data, gradient_steps=10)
    with pytest.raises(RlregError, match=r"observations of 4 values; the model's are \(6,\)"):
        DQN("MlpPolicy", "Acrobot-v1", **KW).learn_offline(cartpole_medium, gradient_steps=10)
    with pytest.raises(RlregError, match="has discrete actions; the model's action space is Box"):
        from rlreg.agents.sb3 import TD3

        TD3("MlpPolicy", "Pendulum-v1", buffer_size=100_000, device="cpu").learn_offline(
            _discrete_like_pendulum(cartpole_medium), gradient_steps=10
        )


def minatar_transitions(n: int = 600) -> Transitions:
    """``n`` uniformly random MinAtar Breakout transitions with uint8 observations."""
    from rlreg.envs.datasets.rollout import collect_episodes
    from rlreg.envs.minatar.gym_env import register_envs

    from rlreg.data.transitions import DatasetInfo

    register_envs()

    def uniform(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 3, len(obs))

    eps = collect_episodes(
        "rlreg/MinAtar-Breakout-v0", uniform, n, seed=0, num_envs=4, env_kwargs={"obs_dtype": "uint8"}
    )
    return Transitions.from_episodes(eps, DatasetInfo(name="breakout-uniform"))


def test_learn_offline_on_image_observations_stores_them_unnormalised():
    from rlreg.agents.sb3 import MinAtarCNN

    data = minatar_transitions()
    assert data.discrete and data.obs_dim == 400  # flat in Transitions
    env = gym.make("rlreg/MinAtar-Breakout-v0", obs_dtype="uint8")
    kw = {"features_extractor_class": MinAtarCNN, "net_arch": []}
    m = DQN(
        "MlpPolicy",
        env,
        buffer_size=1000,
        batch_size=32,
        policy_kwargs=kw,
        regularizers=[Munchausen()],
        device="cpu",
        seed=0,
    )
    m.learn_offline(data, gradient_steps=50)
    assert m.obs_normalizer is None and m.replay_buffer.observations.dtype == np.uint8
    stored = m.replay_buffer.observations[: len(data), 0]
    assert np.array_equal(stored, data.observations.reshape(-1, 4, 10, 10))
    assert np.isfinite(m.logger.name_to_value["train/loss"])
    with pytest.raises(RlregError, match="normalize_obs=True, but the observations are uint8"):
        m.learn_offline(data, gradient_steps=1, normalize_obs=True)


def _continuous_like_cartpole(name: str) -> Transitions:
    import dataclasses

    d = dataset(name)
    obs = np.concatenate([d.observations, d.observations[:, :1]], 1)
    return dataclasses.replace(d, observations=obs, next_observations=obs)


def _discrete_like_pendulum(name: str) -> Transitions:
    import dataclasses

    d = dataset(name)
    return dataclasses.replace(
        d, observations=d.observations[:, :3], next_observations=d.next_observations[:, :3]
    )
