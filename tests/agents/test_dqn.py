"""DQN agent on batched MinAtar: hooks, schedules, collection, trainer (resume, determinism), learning."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rlreg.agents.cli import main
from rlreg.agents.dqn import DQNAgent, DQNConfig
from rlreg.agents.recipes import load_recipe, resolve_config
from rlreg.agents.sources import MinAtarEnvs, ReplayCollector
from rlreg.agents.trainer import resume, train

from rlreg.data.transitions import TensorBatch, TransitionStore
from rlreg.errors import RlregError
from rlreg.regularizers import Munchausen, Regularizer, Terms

OBS = (2, 5, 5)
A = 3


def fixed_batch(n: int = 32, seed: int = 0, reward_scale: float = 1.0) -> TensorBatch:
    g = torch.Generator().manual_seed(seed)
    return TensorBatch(
        (torch.rand(n, *OBS, generator=g) < 0.3).float(),
        torch.randint(0, A, (n,), generator=g),
        torch.randn(n, generator=g) * reward_scale,
        (torch.rand(n, *OBS, generator=g) < 0.3).float(),
        (torch.rand(n, generator=g) < 0.2).float(),
    )


def small_agent(regs=(), **cfg) -> DQNAgent:
    return DQNAgent(DQNConfig(conv_channels=4, hidden=16, **cfg), OBS, A, regularizers=list(regs))


# ------------------------------------------------------------------ schedules
def test_schedule_counts_env_steps_over_all_envs():
    agent = small_agent(train_every=4, target_update=1000)
    assert agent.schedule(0, 10_000, 10_000) == []
    assert agent.schedule(10_000, 10_001, 10_000) == []
    assert agent.schedule(10_003, 10_004, 10_000) == ["update"]
    assert agent.schedule(10_999, 11_000, 10_000) == ["update", "target"]  # update first, then copy
    assert agent.schedule(10_000, 10_008, 10_000) == ["update", "update"]  # 8 envs: 2 updates per step
    for n_envs in (1, 3, 8, 64):
        events = []
        for step in range(9_000, 14_000 - n_envs + 1, n_envs):
            events += agent.schedule(step, step + n_envs, 10_000)
        done = 9_000 + ((14_000 - 9_000) // n_envs) * n_envs
        assert events.count("update") == (done - 10_000) // 4, n_envs
        assert events.count("target") == (done - 10_000) // 1000, n_envs


def test_epsilon_schedules():
    cleanrl = DQNConfig(eps_decay_fraction=0.1)
    assert cleanrl.epsilon(0, 1_000_000, 10_000) == 1.0
    assert cleanrl.epsilon(50_000, 1_000_000, 10_000) == pytest.approx(0.55)
    assert cleanrl.epsilon(100_000, 1_000_000, 10_000) == pytest.approx(0.1)
    assert cleanrl.epsilon(900_000, 1_000_000, 10_000) == 0.1
    minatar = DQNConfig(eps_decay_fraction=None, eps_decay_steps=100_000, eps_from_learning_starts=True)
    assert minatar.epsilon(4_999, 5_000_000, 5_000) == 1.0
    assert minatar.epsilon(5_000, 5_000_000, 5_000) == 1.0
    assert minatar.epsilon(55_000, 5_000_000, 5_000) == pytest.approx(0.55)
    assert minatar.epsilon(105_000, 5_000_000, 5_000) == pytest.approx(0.1)


# ------------------------------------------------------------------ the update
class Recorder(Regularizer):
    name = "recorder"
    families = frozenset({"q_learning"})

    def __init__(self, weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.w = weights

    def critic_target(self, batch, target, view):
        self.calls.append("critic_target")
        assert not torch.is_grad_enabled()
        return target

    def td_weights(self, batch, view):
        self.calls.append("td_weights")
        assert view.td_target is not None and not torch.is_grad_enabled()
        self.seen_target = view.td_target.clone()
        return self.w

    def critic_terms(self, batch, ctx, view):
        self.calls.append("critic_terms")
        assert ctx.q.shape == (1, len(batch.rewards)) and ctx.q.requires_grad
        return Terms(stats={"q_seen": ctx.q.detach().mean()})

    def update_extras(self, batch, view):
        self.calls.append("update_extras")
        return {"extra": torch.tensor(1.0)}

    def on_target_update(self, view):
        self.calls.append("on_target_update")


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_hook_order_and_weighted_loss(loss):
    w = torch.linspace(0.1, 3.0, 32)
    rec = Recorder(w)
    agent = small_agent([rec], loss=loss, huber_delta=1.0)
    batch = fixed_batch(reward_scale=5.0)  # large errors: Huber differs from MSE
    with torch.no_grad():
        q = agent.q(batch.observations).gather(1, batch.actions[:, None])[:, 0]
        y = batch.rewards + 0.99 * (1 - batch.dones) * agent.q_target(batch.next_observations).amax(1)
    per = (y - q).square() if loss == "mse" else F.huber_loss(q, y, reduction="none", delta=1.0)
    metrics = agent.update(batch)
    assert rec.calls == ["critic_target", "td_weights", "critic_terms", "update_extras"]
    assert torch.equal(rec.seen_target, y)
    torch.testing.assert_close(metrics["train/td_loss"], (w * per).mean())
    assert "reg/recorder/q_seen" in metrics and "reg/recorder/extra" in metrics
    agent.update_target()
    assert rec.calls[-1] == "on_target_update" and agent.num_target_updates == 1


def test_optimizers_and_their_settings():
    adam = small_agent(optimizer="adam", lr=1e-3)
    assert isinstance(adam.opt, torch.optim.Adam) and adam.opt.defaults["lr"] == 1e-3
    rms = small_agent(optimizer="rmsprop", lr=2.5e-4)
    d = rms.opt.defaults
    assert isinstance(rms.opt, torch.optim.RMSprop)
    assert (d["alpha"], d["eps"], d["centered"], d["momentum"]) == (0.95, 0.01, True, 0)
    before = [p.clone() for p in rms.q.parameters()]
    rms.update(fixed_batch())
    assert any(not torch.equal(a, b) for a, b in zip(before, rms.q.parameters()))


def test_acting_is_epsilon_greedy_with_a_stream_independent_of_epsilon():
    agent = small_agent()
    obs = fixed_batch(64).observations
    greedy = agent.greedy(obs)
    assert torch.equal(agent.act(obs, epsilon=0.0), greedy)
    state = agent.gen.get_state()
    random = agent.act(obs, epsilon=1.0)
    assert len(set(random.tolist())) == A
    after_random = agent.gen.get_state()
    agent.gen.set_state(state)
    mixed = agent.act(obs, epsilon=0.5)
    assert torch.equal(agent.gen.get_state(), after_random)  # same draws whatever ε
    same = mixed == greedy
    assert same.any() and (mixed == random)[~same].all()


def test_bad_agent_settings():
    with pytest.raises(RlregError, match="dqn.optimizer must be 'adam' or 'rmsprop'"):
        small_agent(optimizer="sgd")
    with pytest.raises(RlregError, match="dqn.loss must be 'mse' or 'huber'"):
        small_agent(loss="l1")
    with pytest.raises(RlregError, match="exactly one of dqn.eps_decay_fraction and dqn.eps_decay_steps"):
        small_agent(eps_decay_steps=1000)
    with pytest.raises(RlregError, match="dqn.train_every must be a positive integer"):
        small_agent(train_every=0)
    with pytest.raises(RlregError, match="needs image observations"):
        DQNAgent(DQNConfig(), (8,), 2)


# ------------------------------------------------------------------ collection
def test_collector_stores_final_observations_and_bootstraps_truncation():
    agent = DQNAgent(DQNConfig(conv_channels=4, hidden=16), (4, 10, 10), 6)
    agent.total_steps = 10_000  # ε = 1 throughout these 40 steps
    cpu = torch.device("cpu")
    envs = MinAtarEnvs("breakout", 3, cpu, seed=1, sticky_action_prob=0.1, max_episode_steps=5)
    replay = TransitionStore(1000, obs_shape=envs.obs_shape, num_actions=6, obs_dtype=torch.uint8, num_envs=3)
    col = ReplayCollector(envs, replay, 32, cpu, seed=1)
    dones = []
    for step in range(40):
        col.collect(agent, 3 * step)
        dones.append(envs.env.episode_steps == 0)  # an ended episode restarts at 0 steps
    r = col.store
    assert len(r) == 120
    obs, nxt = r.obs[:120].view(40, 3, -1), r.next_obs[:120].view(40, 3, -1)
    term = r.terminated[:120].view(40, 3)
    truncated = torch.zeros(40, 3, dtype=torch.bool)
    for t in range(39):
        for e in range(3):
            continues = torch.equal(nxt[t, e], obs[t + 1, e])
            ended = bool(dones[t][e])
            if not ended:
                assert continues and term[t, e] == 0
            elif term[t, e] == 0:  # cut by the time limit: stored as non-terminal, with the true last frame
                truncated[t, e] = True
                assert not continues
    assert truncated.any()  # 5-step limit: some episodes were cut and bootstrap
    stats = col.pop_stats()
    assert stats["rollout/episodes"] > 0 and stats["rollout/episode_length"] <= 5


# ------------------------------------------------------------------ trainer
TINY = {
    "agent.conv_channels": "4",
    "agent.hidden": "32",
    "agent.target_update": "100",
    "train.learning_starts": "200",
    "train.log_every": "100",
    "train.max_episode_steps": "300",
    "train.replay_size": "1000",
}


def tiny_cfg(recipe: str = "mdqn", steps: int = 600, seed: int = 3, **extra: str) -> dict:
    sets = dict(TINY, **{"train.steps": str(steps)}, **extra)
    return resolve_config(recipe, None, env="minatar:breakout", seed=seed, device="cpu", sets=sets)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def loss_columns(rows):
    drop = ("time", "updates_per_s", "env_steps_per_s")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


class Crash(Exception):
    pass


def assert_same_tree(a, b, where="replay"):
    """Nested dicts/lists of tensors and numbers are equal, entry by entry."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize(
    ("recipe", "extra"),
    [
        ("dqn", {}),
        ("mdqn", {"dvw": "true", "train.num_envs": "2"}),
        ("dqn", {"train.greedy_envs": "1", "train.log_every": "50"}),
    ],
    ids=["dqn", "mdqn-dvw", "dqn-greedy-env"],
)
def test_resume_after_crash_is_exact(tmp_path, recipe, extra):
    opts = {"train.checkpoint_every": "200", "train.eval_every": "300", "train.eval_episodes": "2", **extra}
    full = tmp_path / "full"
    train(tiny_cfg(recipe, **opts), full, progress=False)

    def crash_at_500(step, run):
        if step == 500:
            raise Crash

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(tiny_cfg(recipe, **opts), crashed, progress=False, callback=crash_at_500)
    resume(crashed, progress=False)  # from the checkpoint at step 400

    a = torch.load(full / "checkpoint.pt", weights_only=False)
    b = torch.load(crashed / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 600
    for part in ("q", "q_target", "q_prev_target"):
        for k, v in a["agent"][part].items():
            assert torch.equal(v, b["agent"][part][k]), (part, k)
    for ra, rb in zip(a["agent"]["regularizers"], b["agent"]["regularizers"]):
        for name, module in ra["modules"].items():
            for k, v in module.items():
                assert torch.equal(v, rb["modules"][name][k]), (ra["name"], name, k)
    assert_same_tree(a["source"]["replay"], b["source"]["replay"])
    assert a["agent"]["num_target_updates"] == 4  # targets at 300, 400, 500, 600
    assert loss_columns(read_csv(full / "metrics.csv")) == loss_columns(read_csv(crashed / "metrics.csv"))
    assert read_csv(full / "eval.csv") == read_csv(crashed / "eval.csv")
    if "dvw" in extra:
        assert "reg/dvw/weight_mean" in read_csv(full / "metrics.csv")[-1]
    if "train.greedy_envs" in extra:  # the concurrent greedy env resumed exactly too
        assert any(r.get("greedy/episodes") for r in read_csv(full / "metrics.csv"))
        assert torch.equal(a["source"]["greedy_obs"], b["source"]["greedy_obs"])


def test_same_seed_same_run_and_evaluation_does_not_touch_training(tmp_path):
    runs = {
        "a": tiny_cfg("mdqn", 400, **{"train.eval_episodes": "0"}),
        "b": tiny_cfg("mdqn", 400, **{"train.eval_episodes": "0"}),
        "eval": tiny_cfg("mdqn", 400, **{"train.eval_episodes": "3", "train.eval_every": "100"}),
        "greedy": tiny_cfg("mdqn", 400, **{"train.eval_episodes": "0", "train.greedy_envs": "2"}),
    }
    for name, cfg in runs.items():
        train(cfg, tmp_path / name, progress=False)
    ra, rb, re, rg = (loss_columns(read_csv(tmp_path / n / "metrics.csv")) for n in runs)
    # neither evaluation nor DVW's concurrent greedy environments change training
    greedy = [{k: v for k, v in r.items() if k.startswith("greedy/")} for r in rg]
    assert [{k: v for k, v in r.items() if not k.startswith("greedy/")} for r in rg] == ra
    assert ra == rb == re and len(ra) == 4
    assert float(greedy[-1]["greedy/episodes"]) >= 1 and float(greedy[-1]["greedy/return_last50"]) >= 0
    assert "reg/munchausen/bonus" in ra[-1] and ra[-1]["train/td_loss"] != ""
    other = tiny_cfg("mdqn", 400, seed=4, **{"train.eval_episodes": "0"})
    train(other, tmp_path / "other", progress=False)
    assert loss_columns(read_csv(tmp_path / "other" / "metrics.csv")) != ra


def test_cli_trains_mdqn_and_reports_raw_returns(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "mdqn", "--env", "minatar:breakout", "--steps", "400", "--eval-every", "400"]
    args += ["--eval-episodes", "4", "--device", "cpu", "--no-progress", "--out", str(out)]
    for k, v in TINY.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "final return" in printed and "not normalized" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["normalizer"] == "none" and summary["final_score"] is None
    assert summary["final_return"] is not None and summary["best_return"] is not None
    row = read_csv(out / "eval.csv")[-1]
    assert row["score"] == "nan" and float(row["length_mean"]) > 0
    header = read_csv(out / "metrics.csv")[-1]
    for key in (
        "updates_per_s",
        "env_steps_per_s",
        "train/epsilon",
        "train/td_loss",
        "rollout/episode_return",
    ):
        assert key in header, key
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sources"]["munchausen.kl_coef"].startswith("DVW MinAtar code")
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0


def test_recipes_resolve_with_sources():
    for recipe in ("dqn", "mdqn", "dqn-minatar"):
        cfg = resolve_config(recipe, None, env="minatar:breakout", device="cpu", sets={"dvw": "true"})
        assert cfg["regularizers"][-1]["name"] == "dvw" and cfg["switches"] == {"dvw": True}
        recipe_file = load_recipe(recipe)
        for section in ("agent_config", "train"):
            prefix = section.split("_")[0]
            missing = [k for k in recipe_file[section] if f"{prefix}.{k}" not in cfg["sources"]]
            missing = [k for k in missing if recipe_file[section][k] is not None]
            assert not missing, (recipe, section, missing)
        assert "dvw.log_eta_init" in cfg["sources"]
        off = resolve_config(recipe, None, env="minatar:breakout", device="cpu")
        assert "dvw" not in [r["name"] for r in off["regularizers"]] and off["switches"] == {"dvw": False}
    orig = resolve_config("dqn-minatar", None, env="minatar:breakout", device="cpu")["agent_config"]
    assert (orig["optimizer"], orig["loss"], orig["train_every"]) == ("rmsprop", "huber", 1)


# ------------------------------------------------------------------ bad input
def err(capsys) -> str:
    return capsys.readouterr().err


def test_bad_environments_and_settings(tmp_path, capsys):
    assert main(["train", "dqn", "--env", "minatar:pong", "--out", str(tmp_path / "a")]) == 2
    e = err(capsys)
    assert "unknown MinAtar game 'pong'" in e and "asterix, breakout, freeway, seaquest, space_invaders" in e
    assert main(["train", "td3", "--env", "minatar:breakout", "--out", str(tmp_path / "b")]) == 2
    assert "needs continuous actions" in err(capsys)
    assert main(["train", "dqn", "--env", "Pendulum-v1", "--out", str(tmp_path / "c")]) == 2
    assert "needs discrete actions" in err(capsys)
    assert main(["train", "dqn", "--env", "minatar:breakout", "--steps", "101", "--set", "num_envs=2"]) == 2
    assert "not a multiple of train.num_envs" in err(capsys)
    assert main(["train", "dqn", "--env", "minatar:breakout", "--set", "dvw=maybe"]) == 2
    assert "dvw" in err(capsys)
    assert (
        main(["train", "td3", "--env", "Pendulum-v1", "--add-reg", "dvw", "--out", str(tmp_path / "d")]) == 2
    )
    assert "does not fit a actor_critic agent" in err(capsys)
    assert (
        main(
            ["train", "td3", "--dataset", "nowhere.hdf5", "--set", "num_envs=2", "--out", str(tmp_path / "e")]
        )
        == 2
    )
    assert "parallel training environments are for online runs" in err(capsys)
    assert (
        main(["train", "td3", "--env", "Pendulum-v1", "--set", "greedy_envs=1", "--out", str(tmp_path / "f")])
        == 2
    )
    assert "concurrent greedy environments are for online MinAtar runs" in err(capsys)
    assert main(["train", "dqn", "--env", "minatar:breakout", "--set", "greedy_envs=-1"]) == 2
    assert "train.greedy_envs must be an integer >= 0" in err(capsys)
    assert not any((tmp_path / d).exists() for d in "abcdef")


# ------------------------------------------------------------------ learning
def corridor_img(pos: torch.Tensor, length: int = 5) -> torch.Tensor:
    x = torch.zeros(len(pos), 1, 3, length)
    x[torch.arange(len(pos)), 0, 1, pos] = 1.0
    return x


def corridor_batch(n: int, g: torch.Generator, length: int = 5) -> TensorBatch:
    """A corridor of 5 cells drawn as a (1, 3, 5) image, the goal in the middle: action 1 moves right,
    0 left, 2 stays; reaching the goal gives reward 1 and ends the episode."""
    s = torch.tensor([0, 1, 3, 4])[torch.randint(0, 4, (n,), generator=g)]
    a = torch.randint(0, 3, (n,), generator=g)
    s2 = (s + torch.where(a == 1, 1, torch.where(a == 0, -1, 0))).clamp(0, length - 1)
    done = (s2 == 2).float()
    return TensorBatch(corridor_img(s), a, done.clone(), corridor_img(s2), done)


@pytest.mark.parametrize("regs", [[], [Munchausen()]], ids=["dqn", "mdqn"])
def test_learns_a_small_corridor(regs):
    cfg = DQNConfig(conv_channels=8, hidden=32, lr=3e-3, gamma=0.9, batch_size=64)
    agent = DQNAgent(cfg, (1, 3, 5), 3, regularizers=regs, seed=0)
    g = torch.Generator().manual_seed(0)
    states = corridor_img(torch.tensor([0, 1, 3, 4]))
    best = torch.tensor([1, 1, 0, 0])  # towards the middle
    assert not torch.equal(agent.greedy(states), best)
    for i in range(600):
        agent.update(corridor_batch(64, g))
        if i % 25 == 24:
            agent.update_target()
    assert torch.equal(agent.greedy(states), best)
    if not regs:  # DQN's value of the best action: γ^(steps to the goal − 1)
        with torch.no_grad():
            q_best = agent.q(states).gather(1, best[:, None])[:, 0]
        torch.testing.assert_close(q_best, torch.tensor([0.9, 1.0, 1.0, 0.9]), atol=0.06, rtol=0)


@pytest.mark.slow
def test_mdqn_learns_breakout_from_a_small_budget(tmp_path):
    """About 40 s on one CPU core. Uniform random actions score 0.44 on Breakout (100 episodes);
    M-DQN's greedy policy reached 2.0 at 20k and 3.5 at 60k steps with these settings (seed 0)."""
    sets = {
        "train.steps": "32000",
        "train.learning_starts": "2000",
        "train.num_envs": "4",
        "train.eval_every": "16000",
        "train.eval_episodes": "10",
        "train.log_every": "4000",
        "train.checkpoint_every": "0",
    }
    cfg = resolve_config("mdqn", None, env="minatar:breakout", seed=0, device="cpu", sets=sets)
    summary = train(cfg, tmp_path / "learn", progress=False)
    assert summary["final_return"] > 1.5, summary
