"""Recipe overrides by dataset: every dataset form resolves to the same (env, level) and settings."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rlreg.agents.recipes import dataset_key, env_name, load_recipe, recipe_names, resolve_config
from rlreg.envs.datasets import DATASETS

REPO = Path(__file__).resolve().parents[2]


def _d4rl_file(path: Path, env_id: str | None) -> Path:
    """A tiny D4RL file written by rlreg (with the ``rlreg_env_id`` attribute when ``env_id``)."""
    from rlreg.data.d4rl import write_d4rl_hdf5

    n = 4
    return write_d4rl_hdf5(
        path,
        observations=np.zeros((n, 17), np.float32),
        actions=np.zeros((n, 6), np.float32),
        rewards=np.zeros(n, np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.array([0, 0, 0, 1], bool),
        env_id=env_id,
    )


def _minari_dataset(root: Path, dataset_id: str, env_id: str, algorithm_name: str = "test") -> Path:
    """A one-episode local Minari dataset recorded as collected in ``env_id``."""
    import gymnasium as gym

    from rlreg.data.minari_io import write_minari

    obs_dim, act_dim = {"HalfCheetah-v5": (17, 6), "Hopper-v5": (11, 3)}[env_id]
    episode = {
        "observations": np.zeros((4, obs_dim)),
        "actions": np.zeros((3, act_dim), np.float32),
        "rewards": np.zeros(3),
        "terminations": np.zeros(3, bool),
        "truncations": np.array([0, 0, 1], bool),
    }
    return write_minari(
        dataset_id,
        [episode],
        root=root,
        env_id=env_id,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64),
        action_space=gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32),
        algorithm_name=algorithm_name,
    )


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _a2pr(cfg: dict) -> tuple[float, float, float, float]:
    reg = next(r["config"] for r in cfg["regularizers"] if r["name"] == "a2pr")
    return cfg["agent_config"]["alpha"], reg["vae_weight"], reg["mask"], cfg["agent_config"]["gamma"]


def _prdc(cfg: dict) -> dict:
    reg = next(r["config"] for r in cfg["regularizers"] if r["name"] == "prdc")
    return {
        "alpha": cfg["agent_config"]["alpha"],
        "beta": reg["beta"],
        "reward_scale": cfg["train"]["reward_scale"],
        "reward_shift": cfg["train"]["reward_shift"],
    }


# ---------------------------------------------------------------------- every form, halfcheetah
HALFCHEETAH_FORMS = [
    "halfcheetah-medium-v0",
    "d4rl:/data/halfcheetah-medium-replay-v2.hdf5",
    "d4rl:halfcheetah_medium_v2.hdf5",
    "d4rl:ATTRS",  # data.hdf5 written by write_d4rl_hdf5 with env_id HalfCheetah-v5
    "minari:mujoco/halfcheetah/medium-v0",
    "minari:rlreg/halfcheetah/medium-expert-v0",
    "minari:METADATA",  # my-data-v0, a local Minari dataset whose metadata names HalfCheetah-v5
]


@pytest.mark.parametrize("form", HALFCHEETAH_FORMS)
def test_prdc_halfcheetah_alpha_40_in_every_form(form, tmp_path, minari_root):
    if form == "d4rl:ATTRS":
        form = f"d4rl:{_d4rl_file(tmp_path / 'data.hdf5', 'HalfCheetah-v5')}"
    elif form == "minari:METADATA":
        _minari_dataset(minari_root, "my-data-v0", "HalfCheetah-v5")
        form = "minari:my-data-v0"
    cfg = resolve_config("prdc", form, device="cpu")
    assert cfg["agent_config"]["alpha"] == 40.0
    assert cfg["dataset_key"]["env"] == "halfcheetah"
    assert [o["match"] for o in cfg["overrides"]] == ["halfcheetah*"]
    assert cfg["applied"] == ["agent.alpha=40.0  # PRDC README: halfcheetah alpha 40"]


def test_minari_halfcheetah_records_why():
    """The case the old rule (last path component only) missed: alpha stayed 2.5."""
    cfg = resolve_config("prdc", "minari:mujoco/halfcheetah/medium-v0", device="cpu")
    assert cfg["agent_config"]["alpha"] == 40.0
    assert cfg["dataset_key"] == {
        "env": "halfcheetah",
        "level": "medium",
        "key": "halfcheetah-medium-v0",
        "resolved_from": "minari id mujoco/halfcheetah/medium-v0",
    }
    assert cfg["overrides"] == [
        {
            "match": "halfcheetah*",
            "matched": "halfcheetah-medium-v0",
            "resolved_from": "minari id mujoco/halfcheetah/medium-v0",
            "set": ["agent.alpha=40.0"],
            "source": "PRDC README: halfcheetah alpha 40",
        }
    ]


def test_d4rl_file_attributes_and_env_fallback(tmp_path):
    with_attr = _d4rl_file(tmp_path / "a" / "data.hdf5", "HalfCheetah-v5")
    cfg = resolve_config("prdc", f"d4rl:{with_attr}", device="cpu")
    assert cfg["dataset_key"]["key"] == "halfcheetah"
    assert cfg["dataset_key"]["level"] is None
    assert "rlreg_env_id HalfCheetah-v5" in cfg["dataset_key"]["resolved_from"]
    assert cfg["overrides"][0]["resolved_from"] == cfg["dataset_key"]["resolved_from"]

    plain = _d4rl_file(tmp_path / "b" / "data.hdf5", None)
    cfg = resolve_config("prdc", f"d4rl:{plain}", device="cpu")
    assert cfg["overrides"] == [] and cfg["dataset_key"]["key"] is None
    assert "no rlreg_env_id attribute" in cfg["dataset_key"]["resolved_from"]
    assert cfg["agent_config"]["alpha"] == 2.5
    # --env names the environment when the file does not
    cfg = resolve_config("prdc", f"d4rl:{plain}", env="HalfCheetah-v5", device="cpu")
    assert cfg["agent_config"]["alpha"] == 40.0
    assert cfg["dataset_key"]["resolved_from"].startswith("--env HalfCheetah-v5")


def test_minari_metadata_of_a_made_dataset_gives_the_level(minari_root):
    _minari_dataset(minari_root, "copy-v0", "Hopper-v5", algorithm_name="rlreg:hopper-medium-replay-v0")
    cfg = resolve_config("a2pr", "minari:copy-v0", device="cpu")
    assert cfg["dataset_key"]["key"] == "hopper-medium-replay-v0"
    assert _a2pr(cfg) == (2.5, 1.5, 0.5, 0.99)


# ---------------------------------------------------------------------- antmaze
@pytest.mark.parametrize(
    "form",
    [
        "d4rl:antmaze-umaze-diverse-v2.hdf5",
        "d4rl:/data/antmaze_large_play_v2.hdf5",
        "minari:D4RL/antmaze/umaze-diverse-v1",
        "minari:D4RL/antmaze/medium-play-v1",
    ],
)
def test_prdc_and_a2pr_antmaze(form):
    cfg = resolve_config("prdc", form, device="cpu")
    assert _prdc(cfg) == {"alpha": 7.5, "beta": 7.5, "reward_scale": 10000.0, "reward_shift": -1.0}
    assert cfg["dataset_key"]["env"] == "antmaze"
    assert [o["match"] for o in cfg["overrides"]] == ["antmaze*"]
    a2pr = resolve_config("a2pr", form, device="cpu")
    assert (a2pr["train"]["reward_scale"], a2pr["train"]["reward_shift"]) == (10000.0, -1.0)


# ---------------------------------------------------------------------- A2PR per dataset
@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("hopper-medium-replay-v0", (2.5, 1.5, 0.5, 0.99)),
        ("d4rl:/data/hopper-medium-replay-v2.hdf5", (2.5, 1.5, 0.5, 0.99)),
        ("d4rl:hopper_medium_replay_v2.hdf5", (2.5, 1.5, 0.5, 0.99)),
        ("minari:rlreg/hopper/medium-replay-v0", (2.5, 1.5, 0.5, 0.99)),
        ("minari:rlreg/hopper/medium-replay-size1000-seed2-v0", (2.5, 1.5, 0.5, 0.99)),
        ("halfcheetah-medium-expert-v0", (40.0, 1.0, 10.0, 0.99)),
        ("d4rl:/data/halfcheetah-medium-expert-v2.hdf5", (40.0, 1.0, 10.0, 0.99)),
        ("minari:mujoco/halfcheetah/medium-expert-v0", (40.0, 1.0, 10.0, 0.99)),
        ("minari:mujoco/halfcheetah/medium-replay-v0", (40.0, 1.5, 0.8, 0.995)),
        ("minari:mujoco/halfcheetah/medium-v0", (40.0, 1.0, 1.0, 0.99)),
        ("minari:mujoco/hopper/medium-v0", (2.5, 1.0, 0.4, 0.995)),
        ("minari:mujoco/hopper/expert-v0", (2.5, 1.0, 0.5, 0.99)),  # no published row: defaults
        ("minari:mujoco/walker2d/medium-replay-v0", (2.5, 1.5, 1.2, 0.995)),
        ("d4rl:walker2d-medium-expert-v2.hdf5", (2.5, 1.0, 0.8, 0.99)),
    ],
)
def test_a2pr_settings_per_dataset(form, expected):
    assert _a2pr(resolve_config("a2pr", form, device="cpu")) == expected


# ---------------------------------------------------------------------- made names, env ids, unknown
def test_made_names_keep_matching_their_own_name():
    """For every made dataset, the overrides applied are exactly those whose pattern matches the name."""
    for recipe in recipe_names():
        patterns = [ov["match"] for ov in load_recipe(recipe).get("overrides") or []]
        if not patterns:
            continue
        for name in DATASETS:
            cfg = resolve_config(recipe, name, device="cpu")
            assert cfg["dataset_key"]["key"] == name
            assert [o["match"] for o in cfg["overrides"]] == [p for p in patterns if fnmatch.fnmatch(name, p)]


def test_pendulum_short_budget_for_datasets_not_online():
    made = resolve_config("td3", "pendulum-medium-v0", device="cpu")
    assert made["train"]["steps"] == 10000
    online = resolve_config("td3", None, env="Pendulum-v1", device="cpu")
    assert online["train"]["steps"] == 1000000
    assert online["overrides"] == []
    assert online["dataset_key"]["env"] == "pendulum" and online["dataset_key"]["level"] is None


@pytest.mark.parametrize(
    "form",
    ["nosuch-dataset-v0", "d4rl:/nonexistent/data.hdf5", "minari:my-data-v0", "minari:foo/bar/baz-v0"],
)
def test_unknown_dataset_gets_no_overrides(form, minari_root):
    cfg = resolve_config("prdc", form, device="cpu")
    assert cfg["overrides"] == [] and cfg["applied"] == []
    assert cfg["dataset_key"]["key"] is None and cfg["dataset_key"]["env"] is None
    assert cfg["dataset_key"]["resolved_from"].endswith("no overrides")
    assert cfg["agent_config"]["alpha"] == 2.5


def test_no_dataset_no_env():
    cfg = resolve_config("prdc", None, device="cpu")
    assert cfg["overrides"] == [] and cfg["dataset_key"]["key"] is None


def test_resolution_loads_no_data(monkeypatch):
    import rlreg.envs.datasets

    import rlreg.data.d4rl
    import rlreg.data.minari_io

    def refuse(*args, **kwargs):
        raise AssertionError("resolve_config loaded or made a dataset")

    for mod, fn in (
        (rlreg.envs.datasets, "make_dataset"),
        (rlreg.envs.datasets, "load_dataset"),
        (rlreg.data.minari_io, "load_minari"),
        (rlreg.data.d4rl, "read_d4rl_hdf5"),
    ):
        monkeypatch.setattr(mod, fn, refuse)
    for form in ("walker2d-medium-v0", "d4rl:/data/hopper-medium-v2.hdf5", "minari:mujoco/hopper/medium-v0"):
        assert resolve_config("a2pr", form, device="cpu")["dataset_key"]["env"] is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HalfCheetah-v5", "halfcheetah"),
        ("Hopper-v5", "hopper"),
        ("Walker2d-v5", "walker2d"),
        ("Ant-v5", "ant"),
        ("Pendulum-v1", "pendulum"),
        ("InvertedPendulum-v5", "invertedpendulum"),
        ("AntMaze_UMaze-v4", "antmaze"),
        ("half_cheetah", "halfcheetah"),
        ("CartPole-v1", "cartpole"),
        ("Acrobot-v1", None),
        ("minatar:breakout", None),
        (None, None),
    ],
)
def test_env_name(raw, expected):
    assert env_name(raw) == expected


def test_dataset_key_forms():
    assert dataset_key(None, "HalfCheetah-v5").key == "halfcheetah"
    assert dataset_key("d4rl:antmaze-umaze-diverse-v2.hdf5").level == "umaze-diverse"
    k = dataset_key("minari:D4RL/antmaze/umaze-diverse-v1")
    assert (k.env, k.level, k.key) == ("antmaze", "umaze-diverse", "antmaze-umaze-diverse-v1")
    k = dataset_key("hopper-medium-replay-v0")
    assert (k.env, k.level) == ("hopper", "medium-replay")


def test_listing_and_reading_recipes_import_no_torch():
    code = (
        "import sys, rlreg.agents.recipes as r; r.recipe_names(); r.load_recipe('prdc'); "
        "r.dataset_key('minari:mujoco/halfcheetah/medium-v0'); r.dataset_key('hopper-medium-v0'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
