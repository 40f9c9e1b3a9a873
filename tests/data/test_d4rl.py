"""D4RL-schema HDF5 reading (qlearning_dataset semantics), writing, reference scores and bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rlreg.data import D4RL_REF_SCORES, d4rl_ref_scores, normalized_score, read_d4rl_hdf5, write_d4rl_hdf5
from rlreg.errors import RlregError

OBS_DIM, ACT_DIM = 3, 2


def raw_file(path: Path, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> Path:
    """Write arrays verbatim with h5py (no validation), as a third-party D4RL file would be."""
    with h5py.File(path, "w") as f:
        for key, arr in arrays.items():
            f.create_dataset(key, data=arr)
        f.attrs.update(attrs or {})
    return path


def three_episodes() -> dict[str, np.ndarray]:
    """10 steps: episode A (rows 0-3) ends by terminal, B (4-6) by timeout, C (7-9) is cut by the file end."""
    n = 10
    obs = np.arange(n * OBS_DIM, dtype=np.float32).reshape(n, OBS_DIM)
    actions = (np.arange(n * ACT_DIM, dtype=np.float32).reshape(n, ACT_DIM) / 100.0) - 0.5
    rewards = np.arange(n, dtype=np.float32) * 0.5
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[3] = True
    timeouts[6] = True
    return {
        "observations": obs,
        "actions": actions,
        "rewards": rewards,
        "terminals": terminals,
        "timeouts": timeouts,
    }


def reference_qlearning(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """d4rl.qlearning_dataset (terminate_on_end=False, with timeouts) written as the plain loop."""
    n = data["rewards"].shape[0]
    out: dict[str, list] = {k: [] for k in ("obs", "next", "act", "rew", "done", "start")}
    new_episode = True
    for i in range(n - 1):
        if data["timeouts"][i]:
            new_episode = True
            continue
        out["obs"].append(data["observations"][i])
        if "next_observations" in data:
            out["next"].append(data["next_observations"][i])
        else:
            out["next"].append(data["observations"][i + 1])
        out["act"].append(data["actions"][i])
        out["rew"].append(data["rewards"][i])
        out["done"].append(bool(data["terminals"][i]))
        out["start"].append(new_episode)
        new_episode = bool(data["terminals"][i])
    return {k: np.array(v) for k, v in out.items()}


def assert_matches_reference(t, data: dict[str, np.ndarray]) -> None:
    ref = reference_qlearning(data)
    np.testing.assert_array_equal(t.observations, ref["obs"].astype(np.float32))
    np.testing.assert_array_equal(t.next_observations, ref["next"].astype(np.float32))
    np.testing.assert_array_equal(t.actions, ref["act"].astype(np.float32))
    np.testing.assert_array_equal(t.rewards, ref["rew"].astype(np.float32))
    np.testing.assert_array_equal(t.terminals, ref["done"])
    np.testing.assert_array_equal(t.episode_starts, ref["start"])
    assert not t.timeouts.any()
    assert t.observations.dtype == np.float32 and t.terminals.dtype == bool


def test_qlearning_semantics_on_three_episodes(tmp_path: Path) -> None:
    data = three_episodes()
    t = read_d4rl_hdf5(raw_file(tmp_path / "toy.hdf5", data))
    assert_matches_reference(t, data)
    obs = data["observations"]
    # rows 0..8 minus the timeout row 6; row 9 (the file's last) is never a transition
    kept = [0, 1, 2, 3, 4, 5, 7, 8]
    assert len(t) == len(kept)
    np.testing.assert_array_equal(t.observations, obs[kept])
    np.testing.assert_array_equal(t.next_observations, obs[[k + 1 for k in kept]])
    assert not any(np.array_equal(row, obs[6]) for row in t.observations)
    np.testing.assert_array_equal(t.terminals, [False, False, False, True, False, False, False, False])
    np.testing.assert_array_equal(t.episode_starts, [True, False, False, False, True, False, True, False])
    np.testing.assert_allclose(t.episode_returns(), [0 + 0.5 + 1.0 + 1.5, 2.0 + 2.5, 3.5 + 4.0])


def test_next_observations_key_is_used(tmp_path: Path) -> None:
    data = three_episodes()
    data["next_observations"] = data["observations"] + 1000.0
    t = read_d4rl_hdf5(raw_file(tmp_path / "toy.hdf5", data))
    assert_matches_reference(t, data)
    np.testing.assert_array_equal(t.next_observations, t.observations + 1000.0)


def test_keep_timeouts_keeps_every_row(tmp_path: Path) -> None:
    data = three_episodes()
    data["next_observations"] = data["observations"] + 1000.0
    t = read_d4rl_hdf5(raw_file(tmp_path / "toy.hdf5", data), keep_timeouts=True)
    assert len(t) == 10  # the timeout row 6 and the file's last row 9 are transitions too
    np.testing.assert_array_equal(t.observations, data["observations"])
    np.testing.assert_array_equal(t.next_observations, data["next_observations"])
    np.testing.assert_array_equal(t.timeouts, data["timeouts"])
    np.testing.assert_array_equal(t.terminals, data["terminals"])
    np.testing.assert_array_equal(t.episode_starts, [1, 0, 0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(t.episode_returns(), [3.0, 2.0 + 2.5 + 3.0, 3.5 + 4.0 + 4.5])


def test_keep_timeouts_needs_next_observations(tmp_path: Path) -> None:
    with pytest.raises(RlregError, match="no .next_observations. so keep_timeouts"):
        read_d4rl_hdf5(raw_file(tmp_path / "toy.hdf5", three_episodes()), keep_timeouts=True)


@pytest.mark.parametrize("seed", range(5))
def test_random_flags_match_reference_loop(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    terminals = rng.random(n) < 0.05
    timeouts = (rng.random(n) < 0.05) & ~terminals
    if seed == 0:
        timeouts[0] = True  # the very first row dropped
        timeouts[5] = timeouts[6] = True  # a one-step timeout episode right after another
    data = {
        "observations": rng.standard_normal((n, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }
    if seed % 2:
        data["next_observations"] = rng.standard_normal((n, OBS_DIM)).astype(np.float32)
    assert_matches_reference(read_d4rl_hdf5(raw_file(tmp_path / "r.hdf5", data)), data)


def test_rewards_with_trailing_axis_are_flattened(tmp_path: Path) -> None:
    data = three_episodes()
    data["rewards"] = data["rewards"][:, None]
    t = read_d4rl_hdf5(raw_file(tmp_path / "toy.hdf5", data))
    assert t.rewards.shape == (8,)


# --- reference scores ---------------------------------------------------------------------------


def test_normalized_score_hopper_endpoints() -> None:
    ref = d4rl_ref_scores("hopper-medium-v2")
    assert ref == (-20.272305, 3234.3)
    assert normalized_score(3234.3, *ref) == pytest.approx(100.0)
    assert normalized_score(-20.272305, *ref) == pytest.approx(0.0)
    assert normalized_score(0.5, 0.0, 1.0) == pytest.approx(50.0)


def test_normalized_score_rejects_equal_references() -> None:
    with pytest.raises(RlregError, match="reference scores are equal"):
        normalized_score(1.0, 2.0, 2.0)


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("hopper-medium-replay-v2", "hopper"),
        ("halfcheetah-medium-expert-v2", "halfcheetah"),
        ("walker2d-random-v0", "walker2d"),
        ("ant-expert-v2", "ant"),
        ("hopper_medium_v2", "hopper"),
        ("Walker2d-Full-Replay-v2", "walker2d"),
        ("data/halfcheetah-medium-v2.hdf5", "halfcheetah"),
        ("antmaze-large-diverse-v2", "antmaze"),
        ("antmaze-umaze-v0", "antmaze"),
        ("antmaze_medium_play_v2", "antmaze"),
        ("hopper-medium", "hopper"),
    ],
)
def test_ref_score_name_resolution(name: str, env: str) -> None:
    assert d4rl_ref_scores(name) == D4RL_REF_SCORES[env]


@pytest.mark.parametrize(
    "name",
    [
        "Hopper-v5",
        "hopper",
        "mujoco/hopper/medium-v0",
        "pendulum-random-v0",
        "antmaze-ultra-diverse-v0",
        "antmaze-v2",
        "ant-mydata-v0",
        "",
    ],
)
def test_ref_score_unknown_names(name: str) -> None:
    assert d4rl_ref_scores(name) is None


def test_info_from_file_name(tmp_path: Path) -> None:
    t = read_d4rl_hdf5(raw_file(tmp_path / "hopper_medium_replay-v2.hdf5", three_episodes()))
    assert t.info.name == "hopper_medium_replay-v2"
    assert (t.info.ref_min_score, t.info.ref_max_score) == D4RL_REF_SCORES["hopper"]
    assert t.info.normalizer == "d4rl-v2"
    assert t.info.env_id is None
    assert t.info.source == str(tmp_path / "hopper_medium_replay-v2.hdf5")
    assert t.info.normalized_score(3234.3) == pytest.approx(100.0)

    other = read_d4rl_hdf5(tmp_path / "hopper_medium_replay-v2.hdf5", name="antmaze-umaze-v2")
    assert other.info.name == "antmaze-umaze-v2"
    assert (other.info.ref_min_score, other.info.ref_max_score) == (0.0, 1.0)

    unknown = read_d4rl_hdf5(raw_file(tmp_path / "mine.hdf5", three_episodes()))
    assert unknown.info.ref_min_score is None and unknown.info.normalizer == "none"


# --- writer ---------------------------------------------------------------------------------------


def test_write_then_read_round_trip_with_attributes(tmp_path: Path) -> None:
    data = three_episodes()
    path = tmp_path / "sub" / "hopper-medium-v2.hdf5"
    out = write_d4rl_hdf5(
        path,
        **{k: data[k].astype(np.float64) if k == "observations" else data[k] for k in data},
        env_id="Hopper-v5",
        env_kwargs={"terminate_when_unhealthy": True},
        ref_min_score=-5.0,
        ref_max_score=5.0,
        normalizer="rlreg",
    )
    assert out == path and path.exists()
    assert not Path(str(path) + ".tmp").exists()
    with h5py.File(path, "r") as f:
        assert f["observations"].dtype == np.float32 and f["rewards"].dtype == np.float32
        assert f["terminals"].dtype == bool and f["timeouts"].dtype == bool
        assert "next_observations" not in f
        assert f.attrs["rlreg_env_id"] == "Hopper-v5"
    t = read_d4rl_hdf5(path)
    assert_matches_reference(t, data)
    # the file's own attributes win over the D4RL table looked up by name
    assert t.info.env_id == "Hopper-v5"
    assert t.info.env_kwargs == {"terminate_when_unhealthy": True}
    assert (t.info.ref_min_score, t.info.ref_max_score, t.info.normalizer) == (-5.0, 5.0, "rlreg")


def test_discrete_actions_round_trip_as_int64_indices(tmp_path: Path) -> None:
    data = three_episodes()
    data["actions"] = np.arange(len(data["rewards"])) % 3
    path = write_d4rl_hdf5(tmp_path / "discrete.hdf5", **data)
    with h5py.File(path, "r") as f:
        assert f["actions"].dtype == np.int64 and f["actions"].ndim == 1
    t = read_d4rl_hdf5(path)
    assert t.discrete and t.actions.dtype == np.int64
    assert_matches_reference(t, data)


def test_write_overwrites_atomically_and_keeps_next_observations(tmp_path: Path) -> None:
    data = three_episodes()
    path = tmp_path / "d.hdf5"
    write_d4rl_hdf5(path, **data)
    data["next_observations"] = data["observations"] * 2
    write_d4rl_hdf5(path, **data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5"]
    t = read_d4rl_hdf5(path)
    assert_matches_reference(t, data)
    assert t.info.normalizer == "none" and t.info.env_id is None


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    data = three_episodes()
    with pytest.raises(RlregError, match="only one of ref_min_score"):
        write_d4rl_hdf5(tmp_path / "a.hdf5", **data, ref_min_score=0.0)
    short = dict(data, rewards=data["rewards"][:-1])
    with pytest.raises(RlregError, match="'rewards' has shape"):
        write_d4rl_hdf5(tmp_path / "b.hdf5", **short)
    bad = dict(data, actions=data["actions"].copy())
    bad["actions"][2, 0] = np.nan
    with pytest.raises(RlregError, match="'actions' contains NaN or inf"):
        write_d4rl_hdf5(tmp_path / "c.hdf5", **bad)
    empty = {k: v[:0] for k, v in data.items()}
    with pytest.raises(RlregError, match="no steps to write"):
        write_d4rl_hdf5(tmp_path / "d.hdf5", **empty)
    assert list(tmp_path.iterdir()) == []


# --- bad files ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RlregError, match="does not exist"):
        read_d4rl_hdf5(tmp_path / "nope.hdf5")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(RlregError, match="is not a file"):
        read_d4rl_hdf5(tmp_path)


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "fake.hdf5"
    path.write_text("observations,actions\n1,2\n")
    with pytest.raises(RlregError, match="is not an HDF5 file") as e:
        read_d4rl_hdf5(path)
    assert "fix:" in str(e.value)


def test_truncated_file(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "cut.hdf5", three_episodes())
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RlregError, match="truncated or corrupt"):
        read_d4rl_hdf5(path)


def test_missing_key(tmp_path: Path) -> None:
    data = three_episodes()
    del data["timeouts"]
    with pytest.raises(RlregError, match="has no 'timeouts' dataset") as e:
        read_d4rl_hdf5(raw_file(tmp_path / "k.hdf5", data))
    assert "actions, observations, rewards, terminals" in str(e.value)


def test_mismatched_lengths(tmp_path: Path) -> None:
    data = three_episodes()
    data["actions"] = data["actions"][:-2]
    with pytest.raises(RlregError, match="'actions' has 8 rows but 'observations' has 10"):
        read_d4rl_hdf5(raw_file(tmp_path / "m.hdf5", data))


def test_nan_in_observations(tmp_path: Path) -> None:
    data = three_episodes()
    data["observations"][2, 1] = np.nan
    with pytest.raises(RlregError, match="'observations' contains NaN or inf"):
        read_d4rl_hdf5(raw_file(tmp_path / "n.hdf5", data))


def test_inf_in_rewards(tmp_path: Path) -> None:
    data = three_episodes()
    data["rewards"][4] = np.inf
    with pytest.raises(RlregError, match="'rewards' contains NaN or inf"):
        read_d4rl_hdf5(raw_file(tmp_path / "i.hdf5", data))


@pytest.mark.parametrize("rows", [0, 1])
def test_empty(tmp_path: Path, rows: int) -> None:
    data = {k: v[:rows] for k, v in three_episodes().items()}
    with pytest.raises(RlregError, match="no transitions"):
        read_d4rl_hdf5(raw_file(tmp_path / "e.hdf5", data))


def test_all_timeouts(tmp_path: Path) -> None:
    data = three_episodes()
    data["timeouts"][:] = True
    with pytest.raises(RlregError, match="every step is a timeout"):
        read_d4rl_hdf5(raw_file(tmp_path / "t.hdf5", data))
