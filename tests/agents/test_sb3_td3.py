"""SB3's TD3 with rlreg regularizers (issue 15, first slice), in SB3's test style: parity with the
parent class, a run with a regularizer, save/load, determinism, incompatible regularizers refused."""

from __future__ import annotations

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
import torch.nn.functional as F
from rlreg.agents.sb3 import TD3
from rlreg.agents.sb3.offline import sample_with_rows

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError
from rlreg.regularizers import BC, DVW, Munchausen

KW = {
    "learning_starts": 100,
    "batch_size": 32,
    "policy_kwargs": {"net_arch": [32, 32]},
    "seed": 0,
    "device": "cpu",
}


def params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def test_without_regularizers_it_is_sb3_td3_exactly():
    ours = TD3("MlpPolicy", "Pendulum-v1", **KW).learn(300)
    theirs = sb3.TD3("MlpPolicy", "Pendulum-v1", **KW).learn(300)
    for a, b in zip(params(ours), params(theirs), strict=True):
        assert torch.equal(a, b)
    assert ours.logger.name_to_value["train/critic_loss"] == theirs.logger.name_to_value["train/critic_loss"]


def test_run_with_bc_logs_the_term_and_it_equals_rlregs_bc():
    model = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], alpha=2.5, **KW)
    model.learn(300)
    logged = model.logger.name_to_value
    assert "train/bc/bc_loss" in logged and np.isfinite(logged["train/bc/bc_loss"])
    assert "train/lambda" in logged
    data = model.replay_buffer.sample(64)
    batch = TensorBatch(
        data.observations, data.actions, data.rewards[:, 0], data.next_observations, data.dones[:, 0]
    )
    pi = model.actor(batch.observations)
    got = model.regularizers[0].actor_terms(batch, pi, model._view).losses["bc_loss"]
    torch.testing.assert_close(got, F.mse_loss(pi, data.actions))  # TD3+BC's term on SB3's weights


def test_regularizer_changes_the_update_and_gradients_reach_the_actor_only_through_its_terms():
    plain = TD3("MlpPolicy", "Pendulum-v1", **KW).learn(300)
    bc = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC(weight=5.0)], **KW).learn(300)
    actor_differs = any(
        not torch.equal(a, b) for a, b in zip(plain.actor.parameters(), bc.actor.parameters(), strict=True)
    )
    assert actor_differs


def test_same_seed_same_actions_and_losses():
    a = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], alpha=2.5, **KW).learn(300)
    b = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], alpha=2.5, **KW).learn(300)
    obs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    assert np.array_equal(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])
    assert a.logger.name_to_value["train/bc/bc_loss"] == b.logger.name_to_value["train/bc/bc_loss"]


def test_save_load_keeps_predictions_and_rebuilds_the_regularizers(tmp_path):
    model = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC(weight=0.5)], alpha=2.5, **KW).learn(200)
    model.save(tmp_path / "m.zip")
    loaded = TD3.load(tmp_path / "m.zip", device="cpu")
    obs = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert [r.name for r in loaded.regularizers] == ["bc"] and loaded.regularizers[0].config.weight == 0.5
    assert loaded.alpha == 2.5
    params_before = model.get_parameters()
    loaded.set_parameters(params_before)
    for k, v in loaded.get_parameters()["policy"].items():
        assert torch.equal(v, params_before["policy"][k])


@pytest.mark.parametrize("reg", [DVW, Munchausen])
def test_incompatible_regularizers_are_refused(reg):
    with pytest.raises(RlregError, match="do not fit SB3's TD3") as e:
        TD3("MlpPolicy", "Pendulum-v1", regularizers=[reg()], **KW)
    assert "bc" in str(e.value) and "prdc" in str(e.value)


# ---------------------------------------------------------------------- offline
def offline_model(regs, alpha=2.5, **kw):
    import gymnasium as gym

    args = {**KW, "learning_starts": 0, "batch_size": 64, "buffer_size": 100_000, **kw}
    return TD3("MlpPolicy", gym.make("Pendulum-v1"), regularizers=regs, alpha=alpha, **args)


def test_learn_offline_td3bc_on_a_made_dataset_reports_normalized_scores(pendulum_medium, tmp_path):
    import gymnasium as gym

    model = offline_model([BC()])
    out = model.learn_offline(
        pendulum_medium, gradient_steps=1500, eval_env=gym.make("Pendulum-v1"), eval_freq=750
    )
    assert [e["step"] for e in out["evals"]] == [750, 1500] and model._n_updates == 1500
    assert all(np.isfinite(e["score"]) for e in out["evals"])  # the made dataset has reference scores
    assert model.obs_normalizer is not None
    # the buffer holds the normalised states and SB3-scaled actions; predict normalises the same way
    buf = model.replay_buffer
    assert (
        abs(float(buf.observations[: buf.size(), 0].mean())) < 0.05
        and float(np.abs(buf.actions[: buf.size()]).max()) <= 1
    )
    raw = np.zeros((1, 3), np.float32)
    want = model.policy.predict(model.obs_normalizer(raw), deterministic=True)[0]
    assert np.array_equal(model.predict(raw, deterministic=True)[0], want)
    model.save(tmp_path / "offline.zip")  # the normaliser is saved with the model
    loaded = TD3.load(tmp_path / "offline.zip", device="cpu")
    assert np.array_equal(loaded.predict(raw, deterministic=True)[0], want)


def test_learn_offline_prdc_finds_neighbours_in_the_scaled_data(pendulum_medium):
    from rlreg.regularizers import PRDC

    model = offline_model([PRDC(candidates=8)])
    model.learn_offline(pendulum_medium, gradient_steps=200)
    logged = model.logger.name_to_value
    assert np.isfinite(logged["train/prdc/dc_loss"]) and logged["train/prdc/nn_distance"] >= 0
    assert "train/lambda" in logged and logged["train/n_updates"] == 200


def test_learn_offline_bad_input(pendulum_medium):
    with pytest.raises(RlregError, match="buffer_size >= 100000"):
        offline_model([BC()], buffer_size=1000).learn_offline(pendulum_medium, gradient_steps=10)
    with pytest.raises(RlregError, match="gradient_steps must be a positive integer"):
        offline_model([BC()]).learn_offline(pendulum_medium, gradient_steps=0)
    with pytest.raises(RlregError, match=r"observations of 3 values; the model's are \(2,\)"):
        TD3("MlpPolicy", "MountainCarContinuous-v0", **dict(KW, buffer_size=100_000)).learn_offline(
            pendulum_medium, gradient_steps=10
        )


def test_learn_offline_refuses_to_normalise_twice_under_vecnormalize(pendulum_medium):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1))
    model = TD3("MlpPolicy", env, regularizers=[BC()], alpha=2.5, **dict(KW, buffer_size=100_000))
    with pytest.raises(RlregError, match="normalise them twice"):
        model.learn_offline(pendulum_medium, gradient_steps=10)


def test_prdc_online_is_refused_until_offline_data_is_given():
    from rlreg.regularizers import PRDC

    model = TD3("MlpPolicy", "Pendulum-v1", regularizers=[PRDC()], **KW)
    with pytest.raises(RlregError, match="learn_offline"):
        model.learn(10)


def test_save_load_restores_regularizer_state(pendulum_medium, tmp_path):
    """A2PR's V-net, VAE, their optimizers and its generator come back with the model."""
    from rlreg.regularizers import A2PR

    model = offline_model([A2PR(value_hidden=(16,), vae_hidden=(16,))])
    model.learn_offline(pendulum_medium, gradient_steps=60)
    model.save(tmp_path / "a2pr.zip")
    loaded = TD3.load(tmp_path / "a2pr.zip", device="cpu")
    a, b = model.regularizers[0].state_dict(), loaded.regularizers[0].state_dict()
    for name, module in a["modules"].items():
        for k, v in module.items():
            assert torch.equal(v, b["modules"][name][k]), (name, k)
    assert torch.equal(a["extra"]["gen"], b["extra"]["gen"])
    assert b["optimizers"]["value"]["state"]  # Adam moments restored, not fresh
    fresh = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], **KW)
    with pytest.raises(RlregError, match="saved regularizers"):
        fresh.set_parameters(str(tmp_path / "a2pr.zip"))


def test_offline_to_online_keeps_the_data_and_normalises_what_it_collects(pendulum_medium):
    model = offline_model([BC()], buffer_size=100_300)
    model.learn_offline(pendulum_medium, gradient_steps=50)
    offline_rows = model.replay_buffer.observations[:100].copy()
    model.learn(300)  # online, on Pendulum-v1
    buf, norm = model.replay_buffer, model.obs_normalizer
    assert buf.pos == 100_300 % buf.buffer_size and np.array_equal(buf.observations[:100], offline_rows)
    for rows in (buf.observations[100_000:100_300, 0], buf.next_observations[100_000:100_300, 0]):
        raw = rows * norm.std + norm.mean  # stored normalised: undo it
        np.testing.assert_allclose(raw[:, 0] ** 2 + raw[:, 1] ** 2, 1.0, atol=1e-4)  # (cos θ, sin θ)
        assert abs(float(rows[:, 2].std() - raw[:, 2].std())) > 0  # not the raw values


def test_offline_batches_carry_dataset_rows_until_online_data_overwrites_them(pendulum_medium):
    """SB3 batches drawn as ReplayBuffer.sample draws them, with their rows as indices while the
    buffer holds the dataset: PRDC's certified search and overlap work inside SB3 too."""
    from rlreg.regularizers import PRDC

    model = offline_model([PRDC(candidates=8)])
    model.learn_offline(pendulum_medium, gradient_steps=100)
    assert model._dataset_rows == 100_000 and np.isfinite(model.logger.name_to_value["train/prdc/certified"])
    np.random.seed(3)
    data, rows = sample_with_rows(model, 16)
    np.random.seed(3)
    want = model.replay_buffer.sample(16)
    assert torch.equal(data.observations, want.observations) and rows is not None
    assert torch.equal(
        data.observations, model.replay_buffer.to_torch(model.replay_buffer.observations[rows.numpy(), 0])
    )
    model.learn(5)  # online: the buffer was full, so collected rows overwrite dataset rows
    assert model._dataset_rows == 0 and sample_with_rows(model, 16)[1] is None


def test_load_rebuilds_prdcs_index_from_the_dataset_name(pendulum_medium, tmp_path):
    from rlreg.regularizers import PRDC

    model = offline_model([PRDC(candidates=8)])
    model.learn_offline(pendulum_medium, gradient_steps=20)
    model.save(tmp_path / "prdc.zip")
    import gymnasium as gym

    loaded = TD3.load(tmp_path / "prdc.zip", env=gym.make("Pendulum-v1"), device="cpu")
    assert loaded._offline_only == [] and loaded.offline_dataset == pendulum_medium
    assert torch.equal(loaded.regularizers[0].keys, model.regularizers[0].keys)  # same normalised data
    loaded.learn(5)  # not refused: PRDC has its dataset again


def test_offline_to_online_can_drop_the_offline_data(pendulum_medium):
    model = offline_model([BC()], buffer_size=100_300)
    model.learn_offline(pendulum_medium, gradient_steps=20)
    model.learn(150, keep_offline_data=False)
    assert model.replay_buffer.size() == 150 and model._dataset_rows == 0
