"""Writing local Minari datasets with Minari's own API and loading them back as transitions."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from rlreg.data import load_minari, write_minari
from rlreg.data.minari_io import minari_root
from rlreg.errors import RlregError

DATASET_ID = "rlreg/pendulum/random-v0"
OBS_SPACE = gym.spaces.Box(
    low=np.array([-1.0, -1.0, -8.0], np.float32), high=np.array([1.0, 1.0, 8.0], np.float32)
)
ACT_SPACE = gym.spaces.Box(low=-2.0, high=2.0, shape=(1,), dtype=np.float32)


@pytest.fixture(autouse=True)
def _isolated_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Any call without ``root`` lands in tmp_path too, never in ~/.minari."""
    default = tmp_path / "default_root"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(default))
    return default


def make_episodes(seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Three short episodes: one terminated, two truncated (one of them a single step)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for length, terminated in ((5, False), (3, True), (1, False)):
        episodes.append(
            {
                "observations": rng.uniform(-1, 1, (length + 1, 3)).astype(np.float32),
                "actions": rng.uniform(-2, 2, (length, 1)).astype(np.float32),
                "rewards": rng.normal(-5, 2, length).astype(np.float32),
                "terminations": np.r_[np.zeros(length - 1, bool), [terminated]],
                "truncations": np.r_[np.zeros(length - 1, bool), [not terminated]],
            }
        )
    return episodes


def write_default(root: Path, **kwargs) -> Path:
    args = {
        "env_id": "Pendulum-v1",
        "observation_space": OBS_SPACE,
        "action_space": ACT_SPACE,
        "ref_min_score": -1200.0,
        "ref_max_score": -150.0,
    }
    args.update(kwargs)
    return write_minari(DATASET_ID, make_episodes(), root=root, **args)


def test_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "minari"
    path = write_default(root, algorithm_name="uniform random")
    assert path == root / DATASET_ID
    assert (path / "data" / "main_data.hdf5").is_file()

    t = load_minari(DATASET_ID, root=root)
    episodes = make_episodes()
    np.testing.assert_array_equal(t.observations, np.concatenate([e["observations"][:-1] for e in episodes]))
    np.testing.assert_array_equal(
        t.next_observations, np.concatenate([e["observations"][1:] for e in episodes])
    )
    np.testing.assert_array_equal(t.actions, np.concatenate([e["actions"] for e in episodes]))
    np.testing.assert_array_equal(t.rewards, np.concatenate([e["rewards"] for e in episodes]))
    np.testing.assert_array_equal(t.terminals, np.concatenate([e["terminations"] for e in episodes]))
    # truncated last transitions are kept (Minari has the true next observation)
    np.testing.assert_array_equal(t.timeouts, np.concatenate([e["truncations"] for e in episodes]))
    assert len(t) == 9 and int(t.timeouts.sum()) == 2 and int(t.terminals.sum()) == 1
    np.testing.assert_array_equal(np.flatnonzero(t.episode_starts), [0, 5, 8])
    for arr in (t.observations, t.actions, t.rewards, t.next_observations):
        assert arr.dtype == np.float32

    assert t.info.name == DATASET_ID
    assert t.info.env_id == "Pendulum-v1"
    assert t.info.env_kwargs == {}
    assert (t.info.ref_min_score, t.info.ref_max_score, t.info.normalizer) == (-1200.0, -150.0, "minari")
    assert t.info.source == str(path)
    assert t.info.normalized_score(-150.0) == pytest.approx(100.0)


def test_minari_reads_what_we_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_default(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = minari.load_dataset(DATASET_ID, download=False)
    assert ds.total_episodes == 3 and ds.total_steps == 9
    np.testing.assert_allclose(
        minari.get_normalized_score(ds, np.array([-150.0, -1200.0, -675.0])), [1.0, 0.0, 0.5]
    )
    assert ds.spec.env_spec is not None and ds.spec.env_spec.id == "Pendulum-v1"
    assert ds.storage.metadata["jpeg_encoding"] is False
    assert ds.storage.metadata["author"] == {"rlreg"}


def test_without_env_ref_scores_are_still_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Minari itself drops ref scores when no env is given; write_minari stores them anyway
    write_default(tmp_path, env_id=None)
    t = load_minari(DATASET_ID, root=tmp_path)
    assert t.info.env_id is None
    assert (t.info.ref_min_score, t.info.ref_max_score) == (-1200.0, -150.0)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    score = minari.get_normalized_score(minari.load_dataset(DATASET_ID), np.array([-150.0]))
    assert score[0] == pytest.approx(1.0)


def test_no_ref_scores_and_env_kwargs(tmp_path: Path) -> None:
    write_default(tmp_path, ref_min_score=None, ref_max_score=None, env_kwargs={"g": 9.81})
    t = load_minari(DATASET_ID, root=tmp_path)
    assert t.info.ref_min_score is None and t.info.normalizer == "none"
    assert t.info.env_kwargs == {"g": 9.81}


def test_spaces_default_to_the_env(tmp_path: Path) -> None:
    write_minari(DATASET_ID, make_episodes(), root=tmp_path, env_id="Pendulum-v1")
    assert len(load_minari(DATASET_ID, root=tmp_path)) == 9


def test_root_restores_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = os.environ["MINARI_DATASETS_PATH"]
    write_default(tmp_path / "a")
    load_minari(DATASET_ID, root=tmp_path / "a")
    assert os.environ["MINARI_DATASETS_PATH"] == before
    monkeypatch.delenv("MINARI_DATASETS_PATH")
    load_minari(DATASET_ID, root=tmp_path / "a")
    assert "MINARI_DATASETS_PATH" not in os.environ


def test_default_root_is_the_environment_variable(tmp_path: Path, _isolated_default_root: Path) -> None:
    assert minari_root() == _isolated_default_root
    write_minari(DATASET_ID, make_episodes(), observation_space=OBS_SPACE, action_space=ACT_SPACE)
    assert (_isolated_default_root / DATASET_ID / "data").is_dir()
    assert len(load_minari(DATASET_ID)) == 9


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(RlregError) as e:
        load_minari("rlreg/pendulum/missing-v0", root=tmp_path)
    msg = str(e.value)
    assert "is not in the local Minari root" in msg
    assert str(tmp_path) in msg
    assert "never downloads" in msg
    assert "MINARI_DATASETS_PATH" in msg


def test_existing_directory(tmp_path: Path) -> None:
    write_default(tmp_path)
    with pytest.raises(RlregError, match="already exists"):
        write_default(tmp_path)
    (tmp_path / "rlreg" / "other-v0").mkdir(parents=True)
    with pytest.raises(RlregError, match="already exists"):
        write_minari(
            "rlreg/other-v0",
            make_episodes(),
            root=tmp_path,
            observation_space=OBS_SPACE,
            action_space=ACT_SPACE,
        )


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(RlregError, match="malformed Minari dataset id"):
        write_minari(
            "no-version", make_episodes(), root=tmp_path, observation_space=OBS_SPACE, action_space=ACT_SPACE
        )
    with pytest.raises(RlregError, match="only one of ref_min_score"):
        write_default(tmp_path, ref_min_score=None)
    with pytest.raises(RlregError, match="not registered"):
        write_default(tmp_path, env_id="NoSuchEnv-v3")
    with pytest.raises(RlregError, match="only Box and Discrete are supported"):
        write_default(tmp_path, env_id=None, action_space=gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(RlregError, match=r"actions have shape \(5, 1\), expected \(5,\)"):
        write_default(tmp_path, env_id=None, action_space=gym.spaces.Discrete(3))
    with pytest.raises(RlregError, match="required when env_id is None"):
        write_minari(DATASET_ID, make_episodes(), root=tmp_path)
    episodes = make_episodes()
    episodes[1]["observations"] = episodes[1]["observations"][:-1]
    with pytest.raises(RlregError, match="episode 1 observations have shape"):
        write_minari(DATASET_ID, episodes, root=tmp_path, observation_space=OBS_SPACE, action_space=ACT_SPACE)
    episodes = make_episodes()
    del episodes[2]["truncations"]
    with pytest.raises(RlregError, match="episode 2 lacks truncations"):
        write_minari(DATASET_ID, episodes, root=tmp_path, observation_space=OBS_SPACE, action_space=ACT_SPACE)
    assert not (tmp_path / DATASET_ID).exists()


def _write_buffers(root: Path, dataset_id: str, actions: np.ndarray, space: gym.spaces.Space) -> None:
    from minari.data_collector import EpisodeBuffer

    buf = EpisodeBuffer(
        observations=np.arange(9, dtype=np.float32).reshape(3, 3),
        actions=actions,
        rewards=np.array([1.0, 2.0]),
        terminations=np.array([False, True]),
        truncations=np.zeros(2, bool),
    )
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers(dataset_id, [buf], observation_space=OBS_SPACE, action_space=space)


def test_load_discrete_dataset_keeps_integer_action_indices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    _write_buffers(tmp_path, "discrete-v0", np.array([2, 1]), gym.spaces.Discrete(3))
    t = load_minari("discrete-v0", root=tmp_path)
    assert t.discrete and t.actions.dtype == np.int64 and t.actions.tolist() == [2, 1]
    assert t.observations.tolist() == [[0, 1, 2], [3, 4, 5]] and t.terminals.tolist() == [False, True]
    with pytest.raises(RlregError, match="discrete actions, which have no action dimension"):
        _ = t.act_dim


def test_load_rejects_an_action_space_neither_box_nor_discrete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    _write_buffers(tmp_path, "multi-v0", np.array([[0, 1], [1, 0]]), gym.spaces.MultiBinary(2))
    with pytest.raises(RlregError, match="action space is MultiBinary, only Box and Discrete are supported"):
        load_minari("multi-v0", root=tmp_path)


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_missing_or_truncated_data_file_is_one_clear_error(
    tmp_path: Path, _isolated_default_root: Path, how: str
) -> None:
    path = write_default(_isolated_default_root) / "data" / "main_data.hdf5"
    if how == "missing":
        path.unlink()
    else:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 3)
    from rlreg.envs.datasets import load_dataset

    for load in (lambda: load_minari(DATASET_ID), lambda: load_dataset(f"minari:{DATASET_ID}")):
        with pytest.raises(RlregError) as e:
            load()
        msg = str(e.value)
        assert f"its data file {path} is {how}" in msg
        assert "restore the file" in msg and "rlreg datasets make NAME --force" in msg


def test_unreadable_metadata_is_one_clear_error(tmp_path: Path) -> None:
    meta = write_default(tmp_path) / "data" / "metadata.json"
    meta.write_text("{not json")
    with pytest.raises(RlregError, match=r"metadata\.json is unreadable"):
        load_minari(DATASET_ID, root=tmp_path)
