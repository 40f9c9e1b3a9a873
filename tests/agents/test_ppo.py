"""PPO agent: the update against a hand computation, the rollout source's schedule, LR annealing,
trainer integration (save/load, exact resume, determinism), bad input, short learning runs."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
import torch
from rlreg.agents.ppo import PPOAgent, PPOConfig
from rlreg.agents.recipes import resolve_config
from rlreg.agents.trainer import resume, train

from rlreg.errors import RlregError
from rlreg.regularizers import Entropy, Regularizer, SetupSource, Terms

OBS = 4


def agent(regs=(), **config) -> PPOAgent:
    a = PPOAgent(PPOConfig(hidden=(8,), batch_size=16, **config), (OBS,), num_actions=3, regularizers=regs)
    a.setup(SetupSource(obs_dim=OBS, num_actions=3, total_steps=1000))
    return a


def batch(n: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(n, OBS, generator=g),
        "actions": torch.randint(0, 3, (n,), generator=g),
        "log_probs": -torch.rand(n, generator=g) - 0.7,
        "values": torch.randn(n, generator=g),
        "advantages": torch.randn(n, generator=g),
        "returns": torch.randn(n, generator=g),
    }


def reference_loss(a: PPOAgent, b: dict[str, torch.Tensor], ent: float) -> torch.Tensor:
    """The CleanRL ppo.py loss written out: clipped surrogate, clipped value loss, entropy bonus."""
    c = a.config
    logits, v = a.net(b["observations"])
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(1, b["actions"][:, None])[:, 0]
    ratio = torch.exp(logp - b["log_probs"])
    adv = (b["advantages"] - b["advantages"].mean()) / (b["advantages"].std() + 1e-8)
    pg = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - c.clip, 1 + c.clip)).mean()
    unclipped = (v - b["returns"]) ** 2
    clipped = (b["values"] + torch.clamp(v - b["values"], -c.clip, c.clip) - b["returns"]) ** 2
    v_loss = 0.5 * torch.maximum(unclipped, clipped).mean()
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    return pg - ent * entropy + c.vf_coef * v_loss


def clipped(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    return [g * min(1.0, max_norm / (float(norm) + 1e-6)) for g in grads]


@pytest.mark.parametrize("ent", [0.0, 0.01])
def test_update_gradient_equals_cleanrl_loss(ent):
    """With ``Entropy(coef=c)`` the update's (clipped) gradient is CleanRL's ppo.py loss's; with no
    regularizer it is the loss without any entropy term (PPO has no built-in bonus)."""
    a = agent([Entropy(coef=ent)] if ent else [])
    b = batch()
    want = clipped(torch.autograd.grad(reference_loss(a, b, ent), list(a.net.parameters())), 0.5)
    metrics = a.update(b)
    for p, w in zip(a.net.parameters(), want):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-6)
    assert {"train/pg_loss", "train/value_loss", "train/entropy", "train/approx_kl"} <= set(metrics)
    assert ("reg/entropy/entropy_loss" in metrics) == bool(ent)
    assert a.num_updates == 1


def test_regularizer_sees_the_differentiable_distribution_and_the_hook_batch():
    seen = {}

    class Spy(Regularizer):
        name = "spy"
        families = frozenset({"policy_gradient"})

        def entropy_terms(self, dist, batch, view):
            seen.update(dist=dist, batch=batch, view=view, step=view.step)
            return Terms(losses={"zero": 0.0 * dist.logits.sum()}, stats={"n": torch.tensor(1.0)})

    a = agent([Spy()])
    a.update(batch())
    assert seen["dist"].logits.requires_grad
    assert set(seen["batch"]) == {"observations", "actions", "old_log_probs", "advantages", "returns"}
    adv = seen["batch"]["advantages"]
    assert abs(float(adv.mean())) < 1e-5 and abs(float(adv.std()) - 1) < 1e-3  # normalised
    v = seen["view"]
    assert v.discrete and v.num_actions == 3 and v.act_dim is None and seen["step"] == 0


def test_learning_rate_anneals_per_rollout_and_schedule_counts_minibatches():
    a = agent(lr=1e-3, epochs=3)
    assert a.schedule(0, 64).count("update") == 3 * 64 // 16
    assert a.learning_rate() == pytest.approx(1e-3)
    a.schedule(500, 564)
    assert a.learning_rate() == pytest.approx(1e-3 * 0.5)
    assert agent(lr=1e-3, anneal_lr=False).learning_rate() == 1e-3


def test_box_actions_sample_unbounded_and_send_clipped_actions():
    low, high = torch.tensor([-2.0]), torch.tensor([0.5])
    a = PPOAgent(PPOConfig(hidden=(8,), log_std_init=1.0), (3,), act_dim=1, action_low=low, action_high=high)
    obs = torch.zeros(256, 3)
    action, info = a.act_info(obs, 0)
    assert (action > high).any() and (action < low).any()  # log-prob of the unbounded draw
    assert torch.equal(info["env_actions"], action.clamp(low, high))
    torch.testing.assert_close(info["log_probs"], a.distribution(a.net(obs)[0]).log_prob(action))
    assert a.act(obs, "greedy").shape == (256, 1)


def test_state_dict_round_trip_weights_only():
    a = agent([Entropy(coef=0.01)])
    for s in range(3):
        a.update(batch(seed=s))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = agent([Entropy(coef=0.01)])
    b.load_state_dict(torch.load(buf, weights_only=True))
    nb = batch(seed=9)
    ma, mb = a.update(nb), b.update(nb)
    assert {k: float(v) for k, v in ma.items()} == {k: float(v) for k, v in mb.items()}
    obs = torch.randn(5, OBS)
    assert torch.equal(a.act(obs, "greedy"), b.act(obs, "greedy"))


def test_bad_settings_are_refused_with_the_field_named():
    for field, value in [("clip", 0), ("n_steps", 0), ("gamma", 1.5), ("activation", "gelu"), ("hidden", ())]:
        with pytest.raises(RlregError, match=field):
            PPOConfig(**{field: value}).validate()
    with pytest.raises(RlregError, match="num_actions"):
        PPOAgent(PPOConfig(), (3,))


# ---------------------------------------------------------------------- through the trainer
MINATAR = {
    "agent.conv_channels": "4",
    "agent.torso": "16",
    "agent.hidden": "[16]",
    "agent.n_steps": "16",
    "agent.batch_size": "32",
    "train.num_envs": "4",
    "train.log_every": "64",
    "train.eval_episodes": "2",
    "train.eval_every": "128",
}


def minatar_cfg(steps: int = 320, seed: int = 1, **extra: str) -> dict:
    sets = dict(MINATAR, **{"train.steps": str(steps)}, **extra)
    return resolve_config("ppo-minatar", None, env="minatar:breakout", seed=seed, device="cpu", sets=sets)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def losses(rows):
    return [
        {k: v for k, v in r.items() if k not in ("time", "updates_per_s", "env_steps_per_s")} for r in rows
    ]


class Crash(Exception):
    pass


def test_resume_after_crash_is_exact_on_batched_minatar(tmp_path):
    opts = {"train.checkpoint_every": "128"}
    full = tmp_path / "full"
    train(minatar_cfg(**opts), full, progress=False)

    def crash(step, run):
        if step == 256:
            raise Crash

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(minatar_cfg(**opts), crashed, progress=False, callback=crash)
    resume(crashed, progress=False)
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(crashed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 320
    for k, v in a["agent"]["net"].items():
        assert torch.equal(v, b["agent"]["net"][k]), k
    assert losses(read_csv(full / "metrics.csv")) == losses(read_csv(crashed / "metrics.csv"))
    assert read_csv(full / "eval.csv") == read_csv(crashed / "eval.csv")


def test_same_seed_same_run_and_the_seed_matters(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train(minatar_cfg(192, seed, **{"train.eval_episodes": "0"}), tmp_path / name, progress=False)
    ra, rb, rc = (losses(read_csv(tmp_path / n / "metrics.csv")) for n in "abc")
    assert ra == rb and ra != rc
    assert "reg/entropy/entropy" in ra[-1] and ra[-1]["train/clip_fraction"] != ""


def test_bad_problems_are_refused_in_one_line(tmp_path):
    with pytest.raises(RlregError, match="does not split into minibatches"):
        train(minatar_cfg(**{"agent.batch_size": "30"}), tmp_path / "x", progress=False)
    cfg = resolve_config("td3", None, env="CartPole-v1", seed=0, device="cpu", sets={"train.steps": "10"})
    with pytest.raises(RlregError, match="needs continuous actions"):
        train(cfg, tmp_path / "y", progress=False)
    cfg = resolve_config(
        "ppo",
        "hopper-medium-replay-v0",
        seed=0,
        device="cpu",
        sets={"train.steps": "10", "train.num_envs": "1"},
    )
    with pytest.raises(RlregError, match="trains from rollout"):
        train(cfg, tmp_path / "z", progress=False)


def cartpole(steps: int, seed: int = 0, **extra: str) -> dict:
    sets = {"train.steps": str(steps), "train.eval_every": str(steps), **extra}
    return resolve_config("ppo", None, env="CartPole-v1", seed=seed, device="cpu", sets=sets)


def test_learns_cartpole_on_a_short_budget(tmp_path):
    train(cartpole(20480), tmp_path / "cp", progress=False)
    final = float(read_csv(tmp_path / "cp" / "eval.csv")[-1]["return_mean"])
    assert final > 100, final  # random play: about 22


def test_entropy_regularizer_effect_is_visible(tmp_path):
    """A large entropy bonus keeps the policy nearer uniform (log 2) than no bonus does."""
    ent = {}
    for name, coef in (("none", "0"), ("bonus", "1.0")):
        train(cartpole(10240, **{"entropy.coef": coef}), tmp_path / name, progress=False)
        ent[name] = float(read_csv(tmp_path / name / "metrics.csv")[-1]["reg/entropy/entropy"])
    assert ent["bonus"] > 0.68 and ent["none"] < 0.665, ent  # log 2 = 0.693
    assert ent["bonus"] <= math.log(2) + 1e-6


def test_continuous_recipe_runs_on_pendulum(tmp_path):
    sets = {
        "train.steps": "512",
        "agent.n_steps": "256",
        "agent.batch_size": "64",
        "train.eval_episodes": "1",
    }
    cfg = resolve_config("ppo-continuous", None, env="Pendulum-v1", seed=0, device="cpu", sets=sets)
    train(cfg, tmp_path / "pend", progress=False)
    rows = read_csv(tmp_path / "pend" / "metrics.csv")
    assert rows and math.isfinite(float(rows[-1]["train/value_loss"]))
    assert len(read_csv(tmp_path / "pend" / "eval.csv")) >= 1
