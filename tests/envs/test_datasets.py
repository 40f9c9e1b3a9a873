"""The locally made dataset suite: determinism, completeness, formats, status, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.datasets import (
    dataset_status,
    export_d4rl,
    load_dataset,
    make_dataset,
    pendulum,
)
from envs.datasets.rollout import collect_episodes
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
    assert "incomplete" in capsys.readouterr().out
    assert (root / again / "rlreg.json").is_file()


def test_minari_and_d4rl_exports_agree(rlreg_home, tmp_path):
    make_dataset("pendulum-expert-v0", size=1000, seed=1)
    path = export_d4rl("pendulum-expert-v0", tmp_path / "p.hdf5", size=1000, seed=1)
    m = load_minari("rlreg/pendulum/expert-size1000-seed1-v0", root=rlreg_home / "minari")
    d = read_d4rl_hdf5(path)
    # the D4RL reader follows qlearning_dataset: timeout transitions and the final row are dropped
    keep = ~m.timeouts
    keep[-1] = False
    np.testing.assert_array_equal(d.observations, m.observations[keep])
    np.testing.assert_array_equal(d.next_observations, m.next_observations[keep])
    np.testing.assert_array_equal(d.actions, m.actions[keep])
    np.testing.assert_array_equal(d.rewards, m.rewards[keep])
    assert d.info.env_id == m.info.env_id == "Pendulum-v1"
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
    import envs.datasets as ds

    calls = []

    def fake_mean_return(env_id, policy, episodes=100, seed=123):
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
    from envs.datasets import pendulum
    from envs.datasets.rollout import collect_episodes

    ticks: list[int] = []
    eps = collect_episodes("Pendulum-v1", pendulum.uniform, 450, seed=0, num_envs=4, progress=ticks.append)
    assert sum(len(e["rewards"]) for e in eps) == 450
    assert sum(ticks) == 450  # the bar stops at the requested size, not at what was rolled out


def test_status_shows_no_size_where_it_depends_on_missing_policies(monkeypatch, tmp_path):
    import envs.datasets.mujoco as mj
    import envs.policies as pol

    monkeypatch.setattr(pol, "POLICY_DIR", tmp_path)
    monkeypatch.setattr(mj, "POLICY_DIR", tmp_path)
    rows = {r["name"]: r for r in dataset_status(root=tmp_path / "root")}
    assert rows["hopper-medium-replay-v0"]["missing"] and rows["hopper-medium-replay-v0"]["size"] is None
    assert rows["hopper-medium-v0"]["size"] == 1_000_000
