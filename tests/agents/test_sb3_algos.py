"""rlreg's SB3 subclasses (TD3, SAC, DQN, PPO) in SB3's test style: every subclass × every compatible
regularizer runs (``test_run``), saves and loads (``test_save_load``), repeats itself
(``test_deterministic``); parity with the parent class; incompatible pairs refused; SB3 features
(VecEnvs, callbacks, progress bar, policy_kwargs) keep working."""

from __future__ import annotations

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from rlreg.agents.sb3 import DQN, PPO, SAC, TD3, MinAtarCNN

from rlreg.errors import RlregError
from rlreg.regularizers import A2PR, BC, DVW, PRDC, Entropy, Munchausen

ENV = {TD3: "Pendulum-v1", SAC: "Pendulum-v1", DQN: "CartPole-v1", PPO: "CartPole-v1"}
KW = {
    TD3: {"learning_starts": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [32, 32]}},
    SAC: {"learning_starts": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [32, 32]}},
    DQN: {"learning_starts": 100, "batch_size": 32, "target_update_interval": 50, "train_freq": 2},
    PPO: {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
}
SMALL_A2PR = {"value_hidden": (16,), "vae_hidden": (16,)}
REGS = {
    TD3: [BC, PRDC, A2PR],
    SAC: [BC, PRDC, A2PR],
    DQN: [Munchausen, DVW],
    PPO: [Entropy],
}
MATRIX = [(cls, reg) for cls, regs in REGS.items() for reg in regs]
IDS = [f"{cls.__name__}-{reg.name}" for cls, reg in MATRIX]


def make(cls, reg=None, seed=0, **kw):
    regs = [] if reg is None else [reg(**SMALL_A2PR) if reg is A2PR else reg()]
    args = {**KW[cls], "seed": seed, "device": "cpu", **kw}
    if cls is TD3 and reg is not None:
        args["alpha"] = 2.5
    if reg is PRDC:  # PRDC needs a dataset: the model is trained offline first
        args.update(learning_starts=0, buffer_size=100_000)
    return cls("MlpPolicy", ENV[cls], regularizers=regs, **args)


def train(model, reg, dataset: str | None, steps: int = 300):
    if reg is PRDC:
        model.learn_offline(dataset, gradient_steps=steps // 2)
    return model.learn(steps)


def obs_of(cls) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((5, 3 if cls in (TD3, SAC) else 4)).astype(np.float32)


def term_keys(model, reg) -> dict[str, float]:
    return {k: v for k, v in model.logger.name_to_value.items() if k.startswith(f"train/{reg.name}/")}


@pytest.fixture
def dataset(request):
    return request.getfixturevalue("pendulum_medium") if "prdc" in request.node.name else None


@pytest.mark.parametrize(("cls", "reg"), MATRIX, ids=IDS)
def test_run(cls, reg, dataset):
    model = train(make(cls, reg), reg, dataset)
    terms = term_keys(model, reg)
    assert terms and all(np.isfinite(v) for v in terms.values()), terms


@pytest.mark.parametrize(("cls", "reg"), MATRIX, ids=IDS)
def test_save_load(cls, reg, dataset, tmp_path):
    model = train(make(cls, reg), reg, dataset, steps=200)
    model.save(tmp_path / "m.zip")
    loaded = cls.load(tmp_path / "m.zip", device="cpu")
    obs = obs_of(cls)
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    a, b = model.regularizers[0].state_dict(), loaded.regularizers[0].state_dict()
    assert a["config"] == b["config"]
    for name, module in a["modules"].items():
        for k, v in module.items():
            assert torch.equal(v, b["modules"][name][k]), (name, k)
    params = model.get_parameters()
    fresh = make(cls, reg, seed=5)
    fresh.set_parameters(params, exact_match=True)
    for key, state in params.items():
        for k, v in fresh.get_parameters()[key].items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, state[k]), (key, k)


@pytest.mark.parametrize(("cls", "reg"), MATRIX, ids=IDS)
def test_deterministic(cls, reg, dataset):
    a = train(make(cls, reg), reg, dataset, steps=200)
    b = train(make(cls, reg), reg, dataset, steps=200)
    obs = obs_of(cls)
    assert np.array_equal(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])
    assert term_keys(a, reg) == term_keys(b, reg)


@pytest.mark.parametrize("cls", [SAC, DQN, PPO], ids=lambda c: c.__name__)
def test_without_regularizers_it_is_the_parent_class_exactly(cls):
    args = {**KW[cls], "seed": 0, "device": "cpu"}
    ours = cls("MlpPolicy", ENV[cls], **args).learn(300)
    theirs = getattr(sb3, cls.__name__)("MlpPolicy", ENV[cls], **args).learn(300)
    for a, b in zip(ours.policy.parameters(), theirs.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    loss = "train/loss" if cls in (DQN, PPO) else "train/critic_loss"
    assert ours.logger.name_to_value[loss] == theirs.logger.name_to_value[loss]


def test_ppo_entropy_regularizer_equals_sb3s_ent_coef():
    """The bonus as a regularizer (ent_coef=0, Entropy(c)) is SB3's PPO with ent_coef=c."""
    for env in ("CartPole-v1", "Pendulum-v1"):  # categorical and diagonal Gaussian
        args = {**KW[PPO], "seed": 0, "device": "cpu"}
        ours = PPO("MlpPolicy", env, ent_coef=0.0, regularizers=[Entropy(coef=0.05)], **args).learn(256)
        theirs = sb3.PPO("MlpPolicy", env, ent_coef=0.05, **args).learn(256)
        for a, b in zip(ours.policy.parameters(), theirs.policy.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        logged = ours.logger.name_to_value
        assert logged["train/entropy/entropy"] == pytest.approx(-logged["train/entropy_loss"], rel=1e-5)


def test_dqn_munchausen_target_equals_rlregs_agent_on_the_same_weights():
    """SB3's DQN with MinAtarCNN holds rlreg's MinAtar Q-net: the same weights give the same target."""
    import gymnasium as gym
    import rlreg.envs.minatar  # noqa: F401
    from rlreg.agents.dqn import DQNAgent, DQNConfig

    from rlreg.data.transitions import TensorBatch

    env = gym.make("rlreg/MinAtar-Breakout-v0")
    kw = {"policy_kwargs": {"features_extractor_class": MinAtarCNN, "net_arch": []}, "device": "cpu"}
    model = DQN("MlpPolicy", env, regularizers=[Munchausen()], buffer_size=100, **kw)
    ours = DQNAgent(DQNConfig(), env.observation_space.shape, env.action_space.n, [Munchausen()])
    for sb3_net, rl_net in ((model.q_net, ours.q), (model.q_net_target, ours.q_target)):
        ext, head = sb3_net.features_extractor, sb3_net.q_net[0]
        with torch.no_grad():
            for dst, src in ((ext.conv, rl_net.conv), (ext.fc, rl_net.fc), (head, rl_net.out)):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
    g = torch.Generator().manual_seed(0)
    shape = (16, *env.observation_space.shape)
    batch = TensorBatch(
        (torch.rand(shape, generator=g) < 0.3).float(),
        torch.randint(0, env.action_space.n, (16,), generator=g),
        torch.randn(16, generator=g),
        (torch.rand(shape, generator=g) < 0.3).float(),
        (torch.rand(16, generator=g) < 0.2).float(),
    )
    torch.testing.assert_close(model.bellman_target(batch), ours.bellman_target(batch))


def test_dqn_previous_target_rotates_before_sb3s_target_update():
    model = make(DQN, DVW, target_update_interval=40)
    model.learn(39)
    target_before = [p.detach().clone() for p in model.q_net_target.parameters()]
    model.learn(1, reset_num_timesteps=False)  # the 40th step: q̄⁻ ← q̄, then q̄ ← q
    for prev, old in zip(model.q_net_prev_target.parameters(), target_before, strict=True):
        assert torch.equal(prev, old)
    for tgt, q in zip(model.q_net_target.parameters(), model.q_net.parameters(), strict=True):
        assert torch.equal(tgt, q)


@pytest.mark.parametrize(
    ("cls", "reg", "fits"),
    [
        (SAC, Munchausen, "a2pr, bc, beer, prdc"),
        (DQN, BC, "dvw, munchausen"),
        (PPO, PRDC, "entropy"),
        (TD3, Entropy, "bc"),
    ],
    ids=["sac-munchausen", "dqn-bc", "ppo-prdc", "td3-entropy"],
)
def test_incompatible_pairs_are_refused_listing_the_compatible_ones(cls, reg, fits):
    with pytest.raises(RlregError, match=f"do not fit SB3's {cls.__name__}") as e:
        cls("MlpPolicy", ENV[cls], regularizers=[reg()], **KW[cls])
    assert fits in str(e.value)


def test_regularizer_scale_anneals_the_terms():
    """Scale 0 leaves SB3's TD3 update (the terms still logged); a schedule follows progress."""
    args = {**KW[TD3], "seed": 0, "device": "cpu"}
    zero = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], regularizer_scale=0.0, **args).learn(300)
    plain = sb3.TD3("MlpPolicy", "Pendulum-v1", **args).learn(300)
    for a, b in zip(zero.policy.parameters(), plain.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "train/bc/bc_loss" in zero.logger.name_to_value
    schedule = lambda p: 0.5 + 0.5 * p  # noqa: E731  (SB3's progress remaining: 1 -> 0)
    annealed = TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], regularizer_scale=schedule, **args)
    annealed.learn(300)
    assert annealed.logger.name_to_value["train/regularizer_scale"] == 0.5  # the last train() call
    with pytest.raises(RlregError, match="regularizer_scale"):
        TD3("MlpPolicy", "Pendulum-v1", regularizers=[BC()], regularizer_scale=-1.0, **args)


def test_dqn_n_step_replay_is_refused_with_a_target_rewriting_regularizer():
    with pytest.raises(RlregError, match="n_steps=3"):
        DQN("MlpPolicy", "CartPole-v1", regularizers=[Munchausen()], n_steps=3, **KW[DQN])


def test_sb3_features_keep_working_vec_envs_callbacks_progress_bar():
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class Count(BaseCallback):
        calls = 0

        def _on_step(self) -> bool:
            Count.calls += 1
            return True

    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = PPO("MlpPolicy", venv, regularizers=[Entropy()], **KW[PPO], seed=0, device="cpu")
    model.learn(256, callback=Count(), progress_bar=True)
    assert Count.calls == 128 and "train/entropy/entropy" in model.logger.name_to_value
    dqn = DQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), regularizers=[Munchausen()], **KW[DQN])
    dqn.learn(400)
    assert np.isfinite(dqn.logger.name_to_value["train/munchausen/bonus"])


def test_regularizers_by_name_or_dict_as_in_a_zoo_file():
    model = TD3("MlpPolicy", "Pendulum-v1", regularizers=["bc", {"name": "a2pr", **SMALL_A2PR}], **KW[TD3])
    assert [r.name for r in model.regularizers] == ["bc", "a2pr"] and model.regularizers[
        1
    ].config.vae_hidden == (16,)
    with pytest.raises(RlregError, match="unknown regularizer 'bcc'"):
        TD3("MlpPolicy", "Pendulum-v1", regularizers=["bcc"], **KW[TD3])
    with pytest.raises(RlregError, match="a regularizers entry must be"):
        TD3("MlpPolicy", "Pendulum-v1", regularizers=[3], **KW[TD3])


def test_terms_reach_sb3s_logger_outputs(tmp_path):
    """Terms go through SB3's logger, so every output format has them (CSV here; TensorBoard too
    when it is installed: the same ``record`` calls)."""
    import csv

    from stable_baselines3.common.logger import configure

    model = make(TD3, BC)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(300, log_interval=1)
    with (tmp_path / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert "train/bc/bc_loss" in rows[0] and any(r["train/bc/bc_loss"] for r in rows)


def test_tensorboard_log(tmp_path):
    pytest.importorskip("tensorboard")
    model = make(DQN, Munchausen, tensorboard_log=str(tmp_path))
    model.learn(300)
    assert list(tmp_path.rglob("events.out.tfevents.*"))
