"""The datasets rlreg makes itself, and resolution of every dataset SPEC the CLI accepts.

SPEC forms:

* ``d4rl:PATH.hdf5``: a D4RL-schema HDF5 file (read with h5py, ``qlearning_dataset`` semantics);
* ``minari:ID``: a Minari dataset already in the local Minari root (never downloaded);
* a registered name such as ``pendulum-medium-v0``: made here on first use (deterministically
  from a seed), stored as a Minari dataset ``rlreg/<env>/<level>-v0`` under ``$RLREG_HOME/minari``
  and reused afterwards.

A made dataset is written into a temporary folder and moved into place only when complete, with a
``rlreg.json`` record (digest, size, seed); a folder without it is incomplete and is remade.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.datasets import pendulum
from envs.datasets.rollout import Episode, collect_episodes
from envs.registry import env_id_for_dataset
from rlreg.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from rlreg.data.minari_io import load_minari, write_minari
from rlreg.data.transitions import DatasetInfo, Transitions
from rlreg.errors import RlregError, check
from rlreg.paths import made_datasets_root, rlreg_home

__all__ = [
    "DatasetRecipe",
    "DATASETS",
    "register_dataset",
    "dataset_names",
    "make_dataset",
    "load_dataset",
    "dataset_status",
    "export_d4rl",
]

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class DatasetRecipe:
    """How to make one registered dataset."""

    name: str
    """Registered name, D4RL style: ``<env>-<level>-v<N>``."""
    env_id: str
    """Gymnasium env the data is collected in (and evaluated in)."""
    minari_id: str
    """Minari id of the default-size, seed-0 dataset, e.g. ``rlreg/pendulum/medium-v0``."""
    behaviour: Callable[[], Policy] | None
    """Returns the behaviour policy ``policy(obs_batch, rng) -> actions`` (or None with ``episodes``)."""
    reference: Callable[[], tuple[float, float]]
    """Returns (ref_min_score, ref_max_score): mean returns of the random and expert policies."""
    default_size: int
    description: str
    num_envs: int = 16
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: Callable[[int, int, Callable[[int], None] | None], list[Episode]] | None = None
    """Optional custom maker ``episodes(size, seed, progress)`` (mixtures of policies)."""
    size_fn: Callable[[], int] | None = None
    """Optional: the default size, computed when needed (e.g. from shipped snapshots)."""
    requires: tuple[str, ...] = ()
    """Shipped behaviour policies (``envs/policies/<name>.pt``) the dataset needs."""

    def collect(self, size: int, seed: int, progress: Callable[[int], None] | None = None) -> list[Episode]:
        """The dataset's episodes for ``size`` transitions and ``seed``."""
        if self.episodes is not None:
            return self.episodes(size, seed, progress)
        return collect_episodes(
            self.env_id, self.behaviour(), size, seed, self.num_envs, self.env_kwargs, progress=progress
        )


DATASETS: dict[str, DatasetRecipe] = {}


def register_dataset(recipe: DatasetRecipe) -> None:
    """Add a dataset recipe to the registry (names must be unique)."""
    if recipe.name in DATASETS:
        raise RuntimeError(f"dataset '{recipe.name}' registered twice")
    DATASETS[recipe.name] = recipe


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def _unknown_name(name: str) -> RlregError:
    return RlregError(
        f"unknown dataset '{name}'",
        "use one of the registered names: "
        + ", ".join(dataset_names())
        + "; or d4rl:PATH.hdf5 for a D4RL file, or minari:ID for a local Minari dataset",
    )


# ---------------------------------------------------------------------- reference scores
_REF_CACHE: dict[tuple[str, str, str], float] = {}


def mean_return(env_id: str, policy: Policy, episodes: int = 100, seed: int = 123) -> float:
    """Mean undiscounted return of ``policy`` over ``episodes`` episodes run in parallel."""
    from envs.evaluation import Evaluator

    ev = Evaluator(env_id, episodes, seed)
    rng = np.random.default_rng(seed)
    try:
        return ev.run(lambda obs: policy(obs, rng)).mean_return
    finally:
        ev.close()


def _cached_ref(env_id: str, key: str, policy: Policy, identity: str) -> float:
    """:func:`mean_return` of a reference policy, cached in memory and in
    ``$RLREG_HOME/cache/refs.json`` under ``env_id|key|identity`` (``identity`` names the exact
    policy, e.g. the digest of its weights file, so a changed policy is never served a stale value).
    """
    k = (env_id, key, identity)
    if k in _REF_CACHE:
        return _REF_CACHE[k]
    path = rlreg_home() / "cache" / "refs.json"
    disk_key = "|".join(k)
    try:
        stored = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        stored = {}  # an unreadable cache is rebuilt
    if disk_key not in stored:
        stored[disk_key] = mean_return(env_id, policy)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
        os.replace(tmp, path)
    _REF_CACHE[k] = float(stored[disk_key])
    return _REF_CACHE[k]


def _pendulum_refs() -> tuple[float, float]:
    return (
        _cached_ref("Pendulum-v1", "random", pendulum.uniform, "uniform-v0"),
        _cached_ref("Pendulum-v1", "expert", pendulum.noisy(0.0), "swing-up-controller-v0"),
    )


for _level, _make in (
    ("random", lambda: pendulum.uniform),
    ("medium", lambda: pendulum.noisy(pendulum.LEVEL_NOISE["medium"])),
    ("expert", lambda: pendulum.noisy(pendulum.LEVEL_NOISE["expert"])),
):
    register_dataset(
        DatasetRecipe(
            name=f"pendulum-{_level}-v0",
            env_id="Pendulum-v1",
            minari_id=f"rlreg/pendulum/{_level}-v0",
            behaviour=_make,
            reference=_pendulum_refs,
            default_size=100_000,
            description=f"Pendulum-v1, swing-up controller ({_level}); see envs/datasets/pendulum.py",
            num_envs=50,
        )
    )


# ---------------------------------------------------------------------- making
def _minari_id(recipe: DatasetRecipe, size: int, seed: int, default_size: int) -> str:
    if size == default_size and seed == 0:
        return recipe.minari_id
    stem, version = recipe.minari_id.rsplit("-v", 1)
    return f"{stem}-size{size}-seed{seed}-v{version}"


def _record_path(root: Path, dataset_id: str) -> Path:
    return root / dataset_id / "rlreg.json"


def _is_complete(root: Path, dataset_id: str) -> bool:
    rec = _record_path(root, dataset_id)
    if not rec.is_file():
        return False
    try:
        json.loads(rec.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (root / dataset_id / "data" / "metadata.json").is_file()


def make_dataset(
    name: str,
    size: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    progress: bool = False,
    force: bool = False,
) -> str:
    """Make registered dataset ``name`` (if not already complete) and return its Minari id.

    Same name, size and seed → byte-identical arrays (see ``rlreg.json``'s ``digest``).
    """
    if name not in DATASETS:
        raise _unknown_name(name)
    recipe = DATASETS[name]
    default = recipe.size_fn() if recipe.size_fn is not None else recipe.default_size
    size = default if size is None else size
    check(
        isinstance(size, int) and size > 0,
        f"--size must be a positive integer, got {size!r}",
        "pass --size N with N >= 1",
    )
    check(
        isinstance(seed, int) and seed >= 0,
        f"--seed must be a non-negative integer, got {seed!r}",
        "pass --seed S with S >= 0",
    )
    root = Path(root) if root is not None else made_datasets_root()
    dataset_id = _minari_id(recipe, size, seed, default)
    target = root / dataset_id
    if _is_complete(root, dataset_id) and not force:
        return dataset_id
    if target.exists():
        # incomplete (or forced): never used as is
        print(f"rlreg: dataset folder {target} is incomplete; remaking it")
        shutil.rmtree(target)

    ref_min, ref_max = recipe.reference()  # first: a missing policy fails before any work
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=size, desc=f"making {name}", unit="tr", dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        episodes = recipe.collect(size, seed, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    env = gym.make(recipe.env_id, **recipe.env_kwargs)
    info = DatasetInfo(
        name=name,
        env_id=recipe.env_id,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        normalizer="rlreg",
        source=dataset_id,
    )
    digest = Transitions.from_episodes(episodes, info).digest()

    root.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".making-", dir=root))
    try:
        write_minari(
            dataset_id,
            episodes,
            root=tmp_root,
            env_id=recipe.env_id,
            observation_space=env.observation_space,
            action_space=env.action_space,
            ref_min_score=ref_min,
            ref_max_score=ref_max,
            algorithm_name=f"rlreg:{name}",
            description=recipe.description,
        )
        record = {
            "name": name,
            "size": size,
            "seed": seed,
            "digest": digest,
            "env_id": recipe.env_id,
            "episodes": len(episodes),
            "ref_min_score": ref_min,
            "ref_max_score": ref_max,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        _record_path(tmp_root, dataset_id).write_text(json.dumps(record, indent=2))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp_root / dataset_id, target)
        except OSError:
            # another process finished the same dataset first: same name, size and seed give the
            # same bytes, so keep theirs if it is complete
            if not _is_complete(root, dataset_id):
                raise
    finally:
        env.close()
        shutil.rmtree(tmp_root, ignore_errors=True)
    return dataset_id


def load_dataset(spec: str, progress: bool = False) -> Transitions:
    """Resolve a dataset SPEC (see module docstring) to :class:`Transitions` with its info."""
    check(
        isinstance(spec, str) and spec.strip() != "",
        "empty dataset spec",
        "pass --dataset NAME, d4rl:PATH.hdf5 or minari:ID",
    )
    if spec.startswith("d4rl:"):
        path = spec[len("d4rl:") :]
        t = read_d4rl_hdf5(path)
        if t.info.env_id is None:
            env_id = env_id_for_dataset(Path(path).stem)
            if env_id is not None:
                t.info = replace(t.info, env_id=env_id)
        return t
    if spec.startswith("minari:"):
        return load_minari(spec[len("minari:") :])
    if spec not in DATASETS:
        raise _unknown_name(spec)
    dataset_id = make_dataset(spec, progress=progress)
    t = load_minari(dataset_id, root=made_datasets_root())
    t.info = replace(t.info, name=spec, normalizer="rlreg")
    return t


def dataset_status(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per registered dataset: name, env, made or not, size, where."""
    root = Path(root) if root is not None else made_datasets_root()
    rows = []
    for name in dataset_names():
        r = DATASETS[name]
        done = _is_complete(root, r.minari_id)
        rec = json.loads(_record_path(root, r.minari_id).read_text()) if done else {}
        from envs.policies import POLICY_DIR

        missing = ", ".join(n for n in r.requires if not (POLICY_DIR / f"{n}.pt").is_file())
        size: int | None = r.default_size if r.size_fn is None else None  # None: set by what is shipped
        if r.size_fn is not None and not missing:
            try:
                size = r.size_fn()
            except RlregError as e:
                missing = e.problem
        rows.append(
            {
                "name": name,
                "env_id": r.env_id,
                "made": done,
                "missing": missing,
                "size": rec.get("size", size),
                "minari_id": r.minari_id,
                "path": str(root / r.minari_id) if done else "",
            }
        )
    return rows


def export_d4rl(name: str, path: str | os.PathLike, size: int | None = None, seed: int = 0) -> Path:
    """Write registered dataset ``name`` as a D4RL-schema HDF5 file (made first if needed)."""
    dataset_id = make_dataset(name, size=size, seed=seed)
    t = load_minari(dataset_id, root=made_datasets_root())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_d4rl_hdf5(
        path,
        observations=t.observations,
        actions=t.actions,
        rewards=t.rewards,
        terminals=t.terminals,
        timeouts=t.timeouts,
        next_observations=t.next_observations,
        env_id=t.info.env_id,
        ref_min_score=t.info.ref_min_score,
        ref_max_score=t.info.ref_max_score,
        normalizer="rlreg",
    )
    return path


def default_export_path(name: str) -> Path:
    return rlreg_home() / "d4rl" / f"{name}.hdf5"


from envs.datasets import mujoco as _mujoco  # noqa: E402  (registers the MuJoCo suite)

_mujoco.register_all()
