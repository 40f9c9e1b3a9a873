"""The locally made dataset suite: determinism, completeness, formats, status, bad input."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
from rlreg.envs.datasets import (
    dataset_status,
    export_d4rl,
    load_dataset,
    make_dataset,
    pendulum,
)
from rlreg.envs.datasets.rollout import collect_episodes

from rlreg.data.d4rl import read_d4rl_hdf5
from rlreg.data.minari_io import load_minari
from rlreg.data.transitions import DatasetInfo, Transitions
from rlreg.errors import RlregError


def test_generation_is_deterministic(tmp_path):
    digests = []
    for sub in ("a", "b"):
        root = tmp_path / sub
        ds_id = make_dataset("pendulum-expert-v0", size=700, seed=5, root=root)
        digests.append(json.loads((root / ds_id / "rlreg.json").read_text())["digest"])
        t = load_minari(ds_id, root=root)
        assert t.digest() == digests[-1]
        assert len(t) == 700
    assert digests[0] == digests[1]
    other = make_dataset("pendulum-expert-v0", size=700, seed=6, root=tmp_path / "c")
    assert json.loads((tmp_path / "c" / other / "rlreg.json").read_text())["digest"] != digests[0]


def test_episode_layout_and_exact_size():
    eps = collect_episodes("Pendulum-v1", pendulum.uniform, 450, seed=0, num_envs=3)
    assert sum(len(e["rewards"]) for e in eps) == 450
    for e in eps:
        assert len(e["observations"]) == len(e["actions"]) + 1
        assert e["truncations"][-1] and not e["truncations"][:-1].any()  # Pendulum only times out
        assert not e["terminations"].any()
    t = Transitions.from_episodes(eps, DatasetInfo(name="x"))
    assert t.episode_starts.sum() == len(eps)
    np.testing.assert_array_equal(t.next_observations[0], eps[0]["observations"][1])


def test_incomplete_folder_is_remade(tmp_path, capsys):
    root = tmp_path / "m"
    ds_id = make_dataset("pendulum-random-v0", size=300, root=root)
    (root / ds_id / "rlreg.json").unlink()  # as if the process died before finishing
    again = make_dataset("pendulum-random-v0", size=300, root=root)
    assert "incomplete" in capsys.readouterr().err
    assert (root / again / "rlreg.json").is_file()


@pytest.mark.parametrize("env", ["pendulum", "cartpole"])
def test_minari_and_d4rl_exports_agree(rlreg_home, tmp_path, env):
    make_dataset(f"{env}-expert-v0", size=1000, seed=1)
    path = export_d4rl(f"{env}-expert-v0", tmp_path / "p.hdf5", size=1000, seed=1)
    m = load_minari(f"rlreg/{env}/expert-size1000-seed1-v0", root=rlreg_home / "minari")
    d = read_d4rl_hdf5(path)
    # continuous actions are (N, A) float32, CartPole's discrete ones (N,) int64 in both readers
    want = (np.int64, 1) if env == "cartpole" else (np.float32, 2)
    assert (d.actions.dtype, d.actions.ndim) == (m.actions.dtype, m.actions.ndim) == want
    # the D4RL reader follows qlearning_dataset: timeout transitions and the final row are dropped
    keep = ~m.timeouts
    keep[-1] = False
    np.testing.assert_array_equal(d.observations, m.observations[keep])
    np.testing.assert_array_equal(d.next_observations, m.next_observations[keep])
    np.testing.assert_array_equal(d.actions, m.actions[keep])
    np.testing.assert_array_equal(d.rewards, m.rewards[keep])
    assert d.info.env_id == m.info.env_id == {"pendulum": "Pendulum-v1", "cartpole": "CartPole-v1"}[env]
    assert (d.info.ref_min_score, d.info.ref_max_score) == (m.info.ref_min_score, m.info.ref_max_score)
    # keeping timeouts, the D4RL reader returns exactly what the Minari reader returns
    full = read_d4rl_hdf5(path, keep_timeouts=True)
    assert m.timeouts.sum() > 0 and len(full) == len(m)
    keys = ["observations", "actions", "rewards", "next_observations", "terminals", "timeouts"]
    keys.append("episode_starts")
    for key in keys:
        np.testing.assert_array_equal(getattr(full, key), getattr(m, key), err_msg=key)


def test_reference_scores_bracket_the_levels(pendulum_medium):
    t = load_dataset(pendulum_medium)
    lo, hi = t.info.ref_min_score, t.info.ref_max_score
    assert lo < -1000 and -250 < hi < -100
    medium = t.info.normalized_score(float(t.episode_returns().mean()))
    assert 20 < medium < 80


def test_cartpole_suite_has_discrete_actions_and_ordered_levels(cartpole_medium, tmp_path):
    """The discrete suite: int64 action indices, D4RL-style references (uniform random 0, the
    noiseless controller 100) and levels in order of their normalized score."""
    from rlreg.envs.datasets import cartpole

    t = load_dataset(cartpole_medium, progress=False)
    assert t.discrete and t.actions.dtype == np.int64 and set(np.unique(t.actions)) == {0, 1}
    assert t.info.env_id == "CartPole-v1" and len(t) == 100_000
    lo, hi = t.info.ref_min_score, t.info.ref_max_score
    assert 15 < lo < 30 and hi == 500.0  # the controller balances the pole for all 500 steps
    scores = {}
    for level in ("random", "medium", "expert"):
        ds = make_dataset(f"cartpole-{level}-v0", size=5000, root=tmp_path, progress=False)
        d = load_minari(ds, root=tmp_path)
        scores[level] = d.info.normalized_score(float(d.episode_returns()[:-1].mean()))
    assert scores["random"] < 10 < scores["medium"] < 60 < scores["expert"]
    assert cartpole.controller(np.zeros((1, 4), np.float32)).dtype == np.int64


def test_status_lists_the_suite(pendulum_medium):
    rows = {r["name"]: r for r in dataset_status()}
    assert rows["pendulum-medium-v0"]["made"] is True
    assert {"pendulum-random-v0", "pendulum-expert-v0"} <= set(rows)


def test_bad_names_and_sizes():
    with pytest.raises(RlregError, match="(?s)unknown dataset 'pendulum-hard-v0'.*pendulum-medium-v0"):
        make_dataset("pendulum-hard-v0")
    with pytest.raises(RlregError, match="--size"):
        make_dataset("pendulum-medium-v0", size=0)
    with pytest.raises(RlregError, match="--size"):
        make_dataset("pendulum-medium-v0", size=-5)


def test_reference_returns_are_cached_on_disk_by_policy_identity(rlreg_home, monkeypatch):
    import rlreg.envs.datasets as ds

    calls = []

    def fake_mean_return(env_id, policy, episodes=100, seed=123, **kwargs):
        calls.append((env_id, policy))
        return -5.0

    monkeypatch.setattr(ds, "mean_return", fake_mean_return)
    monkeypatch.setattr(ds, "_REF_CACHE", {})
    assert ds._cached_ref("X-v0", "expert", "p1", "policy-aaa") == -5.0
    monkeypatch.setattr(ds, "_REF_CACHE", {})  # a new process: served from refs.json
    assert ds._cached_ref("X-v0", "expert", "p1", "policy-aaa") == -5.0
    assert len(calls) == 1
    assert ds._cached_ref("X-v0", "expert", "p2", "policy-bbb") == -5.0  # another policy: computed
    assert len(calls) == 2
    assert "X-v0|expert|policy-aaa" in (rlreg_home / "cache" / "refs.json").read_text()


def test_progress_counts_exactly_the_kept_transitions():
    from rlreg.envs.datasets import pendulum
    from rlreg.envs.datasets.rollout import collect_episodes

    ticks: list[int] = []
    eps = collect_episodes("Pendulum-v1", pendulum.uniform, 450, seed=0, num_envs=4, progress=ticks.append)
    assert sum(len(e["rewards"]) for e in eps) == 450
    assert sum(ticks) == 450  # the bar stops at the requested size, not at what was rolled out


def test_status_shows_no_size_where_it_depends_on_missing_policies(monkeypatch, tmp_path):
    import rlreg.envs.datasets.mujoco as mj
    import rlreg.envs.policies as pol

    monkeypatch.setattr(pol, "POLICY_DIR", tmp_path)
    monkeypatch.setattr(mj, "POLICY_DIR", tmp_path)
    rows = {r["name"]: r for r in dataset_status(root=tmp_path / "root")}
    assert rows["hopper-medium-replay-v0"]["missing"] and rows["hopper-medium-replay-v0"]["size"] is None
    assert rows["hopper-medium-v0"]["size"] == 1_000_000


# ---------------------------------------------------------------------- damaged made datasets
TINY = "pendulum-tiny-v0"
DATA = "data/main_data.hdf5"


@pytest.fixture
def tiny(rlreg_home, monkeypatch):
    """A registered 400-transition Pendulum dataset, so that ``load_dataset(name)`` (default size and
    seed, in the session's RLREG_HOME) is cheap; its folder is removed afterwards."""
    import shutil

    import rlreg.envs.datasets as ds

    recipe = replace(ds.DATASETS["pendulum-random-v0"], name=TINY, minari_id="rlreg/pendulum/tiny-v0")
    monkeypatch.setitem(ds.DATASETS, TINY, replace(recipe, default_size=400))
    folder = rlreg_home / "minari" / "rlreg" / "pendulum" / "tiny-v0"
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _damage(path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:  # one byte changed, same size
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["missing", "truncated", "changed"])
def test_damaged_data_file_is_listed_and_remade_on_load(tiny, capsys, how):
    first = load_dataset(TINY)
    sha = json.loads((tiny / "rlreg.json").read_text())["files"][DATA]["sha256"]
    capsys.readouterr()
    _damage(tiny / DATA, how)

    row = {r["name"]: r for r in dataset_status()}[TINY]
    assert (row["status"], row["made"], row["problem"]) == ("damaged", False, f"{DATA} {how}")
    assert row["fix"] == f"rlreg datasets make {TINY} --force"

    again = load_dataset(TINY, progress=False)
    err = capsys.readouterr().err
    assert f"rlreg: dataset {TINY} is damaged ({DATA} {how}); remaking it" in err
    assert again.digest() == first.digest()
    assert json.loads((tiny / "rlreg.json").read_text())["files"][DATA]["sha256"] == sha
    assert {r["name"]: r for r in dataset_status()}[TINY]["status"] == "made"
    load_dataset(TINY)
    assert capsys.readouterr().err == ""  # intact now: neither remade nor any progress shown


def test_damaged_dataset_that_cannot_be_remade_names_the_fix(tiny, monkeypatch):
    import rlreg.envs.datasets as ds

    make_dataset(TINY)
    (tiny / DATA).unlink()

    def no_policy() -> tuple[float, float]:
        raise RlregError("behaviour policy 'x' is not shipped", "ship it")

    monkeypatch.setitem(ds.DATASETS, TINY, replace(ds.DATASETS[TINY], reference=no_policy))
    with pytest.raises(RlregError) as e:
        load_dataset(TINY)
    msg = str(e.value)
    assert f"dataset {TINY} is damaged ({DATA} missing) and cannot be remade" in msg
    assert "ship it" in msg and f"rlreg datasets make {TINY} --force" in msg
    assert (tiny / "rlreg.json").is_file()  # left as it was


def test_dataset_made_by_older_code_still_loads(tiny, capsys):
    make_dataset(TINY)
    rec_path = tiny / "rlreg.json"
    rec = json.loads(rec_path.read_text())
    rec.pop("files", None)  # as written before files were recorded
    rec_path.write_text(json.dumps(rec))
    mtime = (tiny / DATA).stat().st_mtime_ns
    capsys.readouterr()
    assert len(load_dataset(TINY)) == 400
    assert capsys.readouterr().err == "" and (tiny / DATA).stat().st_mtime_ns == mtime  # not remade
    assert {r["name"]: r for r in dataset_status()}[TINY]["made"] is True
    # what can be checked without a record still is: a truncated or missing data file is remade
    for how in ("truncated", "missing"):
        _damage(tiny / DATA, how)
        assert {r["name"]: r for r in dataset_status()}[TINY]["problem"] == f"{DATA} {how}"
        assert len(load_dataset(TINY, progress=False)) == 400
        assert f"is damaged ({DATA} {how}); remaking it" in capsys.readouterr().err
        assert "files" in json.loads(rec_path.read_text())  # remade with the new record
        rec_path.write_text(json.dumps(rec))


def test_concurrent_makers_keep_the_first_complete_dataset(tmp_path, monkeypatch, capsys):
    """Another process finishes the same dataset while this one writes: its copy is kept."""
    import rlreg.data.minari_io as mio

    real = mio.write_minari
    root = tmp_path / "m"
    raced = []

    def racing_write(*args, **kwargs):
        if not raced:
            raced.append(True)
            make_dataset("pendulum-random-v0", size=300, root=root)  # "the other process"
        return real(*args, **kwargs)

    monkeypatch.setattr(mio, "write_minari", racing_write)
    import rlreg.envs.datasets as ds

    monkeypatch.setattr(ds, "write_minari", racing_write, raising=False)  # where imported at the top
    ds_id = make_dataset("pendulum-random-v0", size=300, root=root, progress=False)
    assert raced and len(load_minari(ds_id, root=root)) == 300
    assert [p.name for p in root.iterdir()] == ["rlreg"]  # no temporary folders left
    assert "remaking" not in capsys.readouterr().err


# ---------------------------------------------------------------------- progress
def test_progress_while_making_reference_returns_and_data(tmp_path, monkeypatch, capsys):
    import rlreg.envs.datasets as ds

    monkeypatch.setenv("RLREG_HOME", str(tmp_path / "home"))  # no cached reference returns
    monkeypatch.setattr(ds, "_REF_CACHE", {})
    make_dataset("pendulum-random-v0", size=2000, root=tmp_path / "m")
    err = capsys.readouterr().err
    for level in ("random", "expert"):
        assert f"reference return of Pendulum-v1 {level} policy, 100 episodes" in err
    assert "100/100 episodes done" in err
    assert "making pendulum-random-v0" in err and "2000/2000" in err
    make_dataset("pendulum-random-v0", size=2000, root=tmp_path / "m")
    assert capsys.readouterr().err == ""  # already made: silent
    monkeypatch.setattr(ds, "_REF_CACHE", {})
    (tmp_path / "home" / "cache" / "refs.json").unlink()
    make_dataset("pendulum-random-v0", size=100, root=tmp_path / "m", progress=False)
    assert capsys.readouterr().err == ""


def test_evaluator_progress_only_observes():
    from rlreg.envs.evaluation import Evaluator

    ticks: list[tuple[int, int]] = []
    results = []
    for progress in (None, lambda steps, done: ticks.append((steps, done))):
        ev = Evaluator("Pendulum-v1", 3, 7)
        results.append(ev.run(lambda obs: np.zeros((len(obs), 1), np.float32), progress=progress))
        ev.close()
    np.testing.assert_array_equal(results[0].returns, results[1].returns)
    assert ticks[0] == (1, 0) and ticks[-1] == (200, 3) and len(ticks) == 200


# ---------------------------------------------------------------------- cheap listing
def test_listing_datasets_imports_no_torch_minari_or_gymnasium(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import h5py

    # one dataset made by older code (no files in rlreg.json: its HDF5 file is opened to check it)
    folder = tmp_path / "minari" / "rlreg" / "pendulum" / "random-v0"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "metadata.json").write_text("{}")
    with h5py.File(folder / DATA, "w") as f:
        f["x"] = np.zeros(3)
    (folder / "rlreg.json").write_text(json.dumps({"name": "pendulum-random-v0", "size": 100000}))
    code = (
        "import sys, rlreg.envs.datasets as d; rows = d.dataset_status(); "
        "print([r['name'] for r in rows if r['made']], "
        "[m for m in ('torch', 'minari', 'gymnasium') if m in sys.modules])"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "RLREG_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo, env=env
    )
    assert out.stdout.strip() == "['pendulum-random-v0'] []"
