"""Training loop and CLI: exact resume, determinism, learning, outputs, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rlreg.agents.cli import main
from rlreg.agents.recipes import resolve_config
from rlreg.agents.trainer import resume, train

from rlreg.data.d4rl import write_d4rl_hdf5
from rlreg.errors import RlregError

SMALL = {"agent.actor_hidden": "[64,64]", "agent.critic_hidden": "[64,64]", "train.log_every": "10"}
SMALL_REGS = {"a2pr": {"a2pr.value_hidden": "[32,32]", "a2pr.vae_hidden": "[48,48]"}}
OFFLINE_RECIPES = ["td3bc", "prdc", "a2pr"]


def small_cfg(dataset: str, steps: int = 60, recipe: str = "td3bc", **extra: str) -> dict:
    sets = dict(SMALL, **SMALL_REGS.get(recipe, {}), **{"train.steps": str(steps)}, **extra)
    return resolve_config(recipe, dataset, seed=3, device="cpu", sets=sets)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def loss_columns(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in ("time", "updates_per_s")} for r in rows]


class Crash(Exception):
    pass


@pytest.mark.parametrize("recipe", OFFLINE_RECIPES)
def test_resume_after_crash_is_exact(pendulum_medium, tmp_path, recipe):
    extra = {"train.checkpoint_every": "20", "train.eval_every": "30", "train.eval_episodes": "2"}
    full = tmp_path / "full"
    train(small_cfg(pendulum_medium, 60, recipe, **extra), full, progress=False)

    crashed = tmp_path / "crashed"

    def crash_at_50(step, run):
        if step == 50:
            raise Crash

    with pytest.raises(Crash):
        train(small_cfg(pendulum_medium, 60, recipe, **extra), crashed, progress=False, callback=crash_at_50)
    assert not (crashed / "summary.json").exists()
    assert read_csv(crashed / "metrics.csv")[-1]["step"] == "50"  # rows past the checkpoint exist...
    resume(crashed, progress=False)  # ...and are dropped when resuming from step 40

    a = torch.load(full / "checkpoint.pt", weights_only=False)
    b = torch.load(crashed / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 60
    for part in ("actor", "critic", "actor_target", "critic_target"):
        for k in a["agent"][part]:
            assert torch.equal(a["agent"][part][k], b["agent"][part][k]), (part, k)
    for ra, rb in zip(a["agent"]["regularizers"], b["agent"]["regularizers"]):
        for name, module in ra["modules"].items():
            for k, v in module.items():
                assert torch.equal(v, rb["modules"][name][k]), (ra["name"], name, k)
    assert loss_columns(read_csv(full / "metrics.csv")) == loss_columns(read_csv(crashed / "metrics.csv"))
    assert read_csv(full / "eval.csv") == read_csv(crashed / "eval.csv")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (full, crashed))
    assert sa["final_score"] == sb["final_score"]


@pytest.mark.parametrize("recipe", OFFLINE_RECIPES)
def test_same_seed_twice_gives_identical_losses(pendulum_medium, tmp_path, recipe):
    for name in ("a", "b"):
        cfg = small_cfg(pendulum_medium, 40, recipe, **{"train.eval_episodes": "0"})
        train(cfg, tmp_path / name, progress=False)
    ra, rb = (loss_columns(read_csv(tmp_path / n / "metrics.csv")) for n in ("a", "b"))
    assert ra == rb and len(ra) == 4
    term = {"td3bc": "reg/bc/bc_loss", "prdc": "reg/prdc/dc_loss", "a2pr": "reg/a2pr/vae_loss"}[recipe]
    assert term in ra[0]


def test_td3bc_learns_pendulum_better_than_random(pendulum_medium, tmp_path):
    # Random policy ≈ score 0 by construction of the reference scores (-1269 ↔ 0, -156 ↔ 100).
    cfg = resolve_config(
        "td3bc",
        pendulum_medium,
        seed=0,
        device="cpu",
        sets={"train.steps": "1500", "train.eval_every": "1500", "train.eval_episodes": "10"},
    )
    summary = train(cfg, tmp_path / "learn", progress=False)
    assert summary["normalizer"] == "rlreg"
    assert summary["final_score"] > 40.0, summary


def test_cli_train_smoke_writes_every_term(pendulum_medium, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(
        [
            "train",
            "td3bc",
            "--dataset",
            pendulum_medium,
            "--steps",
            "110",
            "--eval-every",
            "110",
            "--eval-episodes",
            "2",
            "--seed",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(out),
            "--set",
            "agent.actor_hidden=[32,32]",
            "--set",
            "critic_hidden=[32,32]",
            "--set",
            "train.log_every=50",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "final normalized score" in printed
    header = read_csv(out / "metrics.csv")[0].keys()
    for key in ("train/critic_loss", "train/actor_loss", "train/lambda", "reg/bc/bc_loss"):
        assert key in header
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["agent_config"]["actor_hidden"] == [32, 32] and cfg["agent_config"]["alpha"] == 2.5
    assert cfg["sources"]["agent.alpha"].startswith("paper")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 110 and summary["finished"] is True
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0
    assert "normalized score" in capsys.readouterr().out


@pytest.mark.parametrize(("recipe", "add"), [("td3bc", "prdc"), ("prdc", "a2pr")])
def test_cli_stacks_regularizers(pendulum_medium, tmp_path, recipe, add):
    out = tmp_path / "stacked"
    args = ["train", recipe, "--dataset", pendulum_medium, "--steps", "20", "--eval-episodes", "0"]
    args += ["--add-reg", add, "--set", f"{add}.{'beta' if add == 'prdc' else 'mask'}=3", "--no-progress"]
    args += ["--set", "train.log_every=10", "--set", "a2pr.vae_hidden=[16]" if add == "a2pr" else "prdc.k=2"]
    assert main(args + ["--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert [r["name"] for r in cfg["regularizers"]] == [{"td3bc": "bc"}.get(recipe, recipe), add]
    header = read_csv(out / "metrics.csv")[0].keys()
    first = {"td3bc": "reg/bc/bc_loss", "prdc": "reg/prdc/dc_loss"}[recipe]
    assert first in header and f"reg/{add}/" + ("dc_loss" if add == "prdc" else "bc_loss") in header


def test_cli_add_reg_bad_names(capsys):
    assert main(["train", "td3bc", "--dataset", "x", "--add-reg", "nope"]) == 2
    assert "unknown regularizer" in capsys.readouterr().err
    assert main(["train", "td3bc", "--dataset", "x", "--add-reg", "bc"]) == 2
    assert "already has it" in capsys.readouterr().err


def test_cli_resume_extends_a_finished_run(pendulum_medium, tmp_path):
    out = tmp_path / "r"
    base = [
        "--no-progress",
        "--eval-episodes",
        "0",
        "--set",
        "train.log_every=20",
        "--set",
        "actor_hidden=[16]",
        "--set",
        "critic_hidden=[16]",
    ]
    assert (
        main(["train", "td3bc", "--dataset", pendulum_medium, "--steps", "40", "--out", str(out), *base]) == 0
    )
    assert main(["train", "--resume", str(out), "--steps", "60", "--no-progress"]) == 0
    assert [r["step"] for r in read_csv(out / "metrics.csv")] == ["20", "40", "60"]


# ------------------------------------------------------------------ bad input
def err(capsys) -> str:
    return capsys.readouterr().err


def test_unknown_agent_lists_valid(capsys):
    assert main(["train", "td4", "--dataset", "x"]) == 2
    assert "unknown agent 'td4'" in (e := err(capsys)) and "td3bc" in e


def test_unknown_dataset_lists_valid(rlreg_home, capsys, tmp_path):
    assert main(["train", "td3bc", "--dataset", "hopper-mediun-v0", "--out", str(tmp_path / "x")]) == 2
    e = err(capsys)
    assert "unknown dataset 'hopper-mediun-v0'" in e and "pendulum-medium-v0" in e and "d4rl:" in e


@pytest.mark.parametrize("recipe", ["td3bc", "dqn"])
def test_a_discrete_dataset_is_refused_by_rlregs_offline_trainer(cartpole_medium, capsys, tmp_path, recipe):
    out = tmp_path / recipe
    assert main(["train", recipe, "--dataset", cartpole_medium, "--out", str(out), "--steps", "10"]) == 2
    e = err(capsys)
    problem = {"td3bc": "dataset cartpole-medium-v0 has discrete actions", "dqn": "trains online only"}
    assert problem[recipe] in e and "learn_offline" in e
    assert len(e.strip().splitlines()) == 2  # the problem and its fix, no traceback
    assert not (out / "checkpoint.pt").exists()


def test_set_unknown_key_and_bad_type(capsys):
    assert main(["train", "td3bc", "--dataset", "pendulum-medium-v0", "--set", "agent.alpah=2"]) == 2
    assert "'agent' has no setting 'alpah'" in (e := err(capsys)) and "alpha" in e
    assert main(["train", "td3bc", "--dataset", "pendulum-medium-v0", "--set", "batch_size=big"]) == 2
    assert "agent.batch_size" in err(capsys)
    assert main(["train", "td3bc", "--dataset", "pendulum-medium-v0", "--set", "nonsense"]) == 2
    assert "KEY=VALUE" in err(capsys)


def test_resume_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not an rlreg run folder" in err(capsys)


def test_resume_from_truncated_checkpoint(pendulum_medium, tmp_path, capsys):
    out = tmp_path / "t"
    train(small_cfg(pendulum_medium, 20, **{"train.eval_episodes": "0"}), out, progress=False)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert main(["train", "--resume", str(out)]) == 2
    assert "truncated or corrupt" in err(capsys)


def test_resume_from_a_checkpoint_of_the_old_format_says_so(pendulum_medium, tmp_path, capsys):
    out = tmp_path / "old"
    train(small_cfg(pendulum_medium, 20, **{"train.eval_episodes": "0"}), out, progress=False)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["version"] = 1  # written before the data sources held their own state
    torch.save(state, out / "checkpoint.pt")
    assert main(["train", "--resume", str(out)]) == 2
    assert "format version 1" in (e := err(capsys)) and "start a new run" in e


def write_pendulum_file(path: Path, actions: np.ndarray | None = None, obs_nan: bool = False) -> str:
    rng = np.random.default_rng(0)
    n = 50
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    write_d4rl_hdf5(
        path,
        observations=obs,
        actions=actions if actions is not None else rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.arange(n) % 25 == 24,
        env_id="Pendulum-v1",
        ref_min_score=-1000.0,
        ref_max_score=-100.0,
    )
    if obs_nan:  # our writer refuses NaN, so corrupt the file afterwards as a foreign writer might
        import h5py

        with h5py.File(path, "r+") as f:
            f["observations"][7, 1] = np.nan
    return f"d4rl:{path}"


def test_action_outside_bounds(tmp_path, capsys):
    spec = write_pendulum_file(tmp_path / "p.hdf5", actions=np.full((50, 1), 3.0, np.float32))
    assert main(["train", "td3bc", "--dataset", spec, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "outside the action space bounds" in err(capsys)


def test_nan_in_dataset(tmp_path, capsys):
    spec = write_pendulum_file(tmp_path / "p.hdf5", obs_nan=True)
    assert main(["train", "td3bc", "--dataset", spec, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "NaN or inf" in err(capsys)


@pytest.mark.parametrize("recipe", OFFLINE_RECIPES)
def test_d4rl_file_trains_end_to_end(tmp_path, recipe):
    spec = write_pendulum_file(tmp_path / "p.hdf5")
    cfg = resolve_config(
        recipe,
        spec,
        device="cpu",
        sets={
            "train.steps": "20",
            "train.eval_every": "20",
            "train.eval_episodes": "2",
            "train.log_every": "10",
            **SMALL_REGS.get(recipe, {}),
        },
    )
    s = train(cfg, tmp_path / "run", progress=False)
    assert s["normalizer"] == "rlreg" and s["env_id"] == "Pendulum-v1" and s["final_score"] is not None


def test_out_folder_with_a_run_is_refused(pendulum_medium, tmp_path):
    cfg = small_cfg(pendulum_medium, 10, **{"train.eval_episodes": "0"})
    train(cfg, tmp_path / "x", progress=False)
    with pytest.raises(RlregError, match="already holds a run"):
        train(cfg, tmp_path / "x", progress=False)


def test_online_td3_collects_learns_and_resumes(tmp_path):
    out = tmp_path / "online"
    args = [
        "train",
        "td3",
        "--env",
        "Pendulum-v1",
        "--steps",
        "300",
        "--eval-every",
        "300",
        "--eval-episodes",
        "2",
        "--no-progress",
        "--out",
        str(out),
        "--set",
        "train.learning_starts=100",
        "--set",
        "train.log_every=100",
        "--set",
        "actor_hidden=[32]",
        "--set",
        "critic_hidden=[32]",
    ]
    assert main(args) == 0
    rows = read_csv(out / "metrics.csv")
    assert [r["step"] for r in rows] == ["100", "200", "300"]
    assert rows[0]["train/critic_loss"] == "" and rows[1]["train/critic_loss"] != ""  # updates start at 100
    assert rows[1]["rollout/episode_return"] != ""  # Pendulum episodes end every 200 steps
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["source"]["replay"]["size"] == 300 and state["agent"]["num_updates"] == 200
    assert main(["train", "--resume", str(out), "--steps", "400", "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 400


def test_plain_d4rl_file_resolves_env_and_d4rl_scores_from_its_name(tmp_path):
    import h5py
    from rlreg.envs.registry import env_id_for_dataset

    assert env_id_for_dataset("halfcheetah-medium-expert-v2") == "HalfCheetah-v5"
    assert env_id_for_dataset("walker2d_medium_replay_v2") == "Walker2d-v5"
    assert env_id_for_dataset("unknown-thing") is None
    rng = np.random.default_rng(0)
    n = 120
    path = tmp_path / "hopper-medium-v2.hdf5"
    with h5py.File(path, "w") as f:  # written as D4RL's own files are: no rlreg attributes
        f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = np.arange(n) % 40 == 39
    cfg = resolve_config(
        "td3bc",
        f"d4rl:{path}",
        device="cpu",
        sets={"train.steps": "10", "train.eval_every": "10", "train.eval_episodes": "1"},
    )
    s = train(cfg, tmp_path / "run", progress=False)
    assert s["env_id"] == "Hopper-v5" and s["normalizer"] == "d4rl-v2"
    assert (s["ref_min_score"], s["ref_max_score"]) == (-20.272305, 3234.3)


def test_tensorboard_missing_fails_before_writing(pendulum_medium, tmp_path, capsys):
    pytest.importorskip("torch")
    try:
        import tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    out = tmp_path / "tb"
    assert main(["train", "td3bc", "--dataset", pendulum_medium, "--tensorboard", "--out", str(out)]) == 2
    assert "tensorboard" in err(capsys) and not out.exists()


def test_cuda_graph_on_cpu_stops_before_writing(pendulum_medium, tmp_path, capsys):
    out = tmp_path / "g"
    assert (
        main(
            [
                "train",
                "td3bc",
                "--dataset",
                pendulum_medium,
                "--device",
                "cpu",
                "--set",
                "train.cuda_graph=true",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 2
    )
    e = err(capsys)
    assert "train.cuda_graph needs a CUDA device" in e and "--device cuda" in e and not out.exists()


def test_train_threads_setting_is_checked():
    from rlreg.agents.config import TrainConfig

    from rlreg.errors import RlregError

    TrainConfig(threads=1).validate()
    with pytest.raises(RlregError, match="train.threads"):
        TrainConfig(threads=-1).validate()
