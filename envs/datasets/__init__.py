"""The datasets rlreg makes itself, and resolution of every dataset SPEC the CLI accepts.

SPEC forms:

* ``d4rl:PATH.hdf5``: a D4RL-schema HDF5 file (read with h5py, ``qlearning_dataset`` semantics);
* ``minari:ID``: a Minari dataset already in the local Minari root (never downloaded);
* a registered name such as ``pendulum-medium-v0``: made here on first use (deterministically
  from a seed), stored as a Minari dataset ``rlreg/<env>/<level>-v0`` under ``$RLREG_HOME/minari``
  and reused afterwards.

A made dataset is written into a temporary folder and moved into place only when complete, with a
``rlreg.json`` record (digest of the arrays, size, seed, and ``files``: the byte size and SHA-256
of every file of the dataset); a folder without a readable record is incomplete and is remade.

Verification of a made dataset (its files against ``files``):

* when it is made or loaded (:func:`make_dataset`, :func:`load_dataset`): every recorded file must
  exist with its recorded size and SHA-256. Hashing costs about 30 ms per 45 MB (a 220k-transition
  Hopper dataset) against about 0.75 s to load it, so it is done on every load;
* when listed (:func:`dataset_status`, ``rlreg datasets``): sizes always, the SHA-256 only of a
  file whose modification time differs from the one recorded when it was written (an edit in
  place changes it; hashing a whole made suite, a few GB, on every listing would not be cheap).

A damaged dataset (a file missing, shorter than recorded: truncated, or of other size or bytes:
changed) is remade when loaded or made, with a one-line notice, and listed as damaged with the
fix ``rlreg datasets make NAME --force``. Datasets made before files were recorded (no ``files``
in ``rlreg.json``) are checked as far as possible without a record: the HDF5 data file must exist
and open (which catches a truncated file); otherwise they are used as they are.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rlreg.envs.datasets import cartpole, pendulum
from rlreg.envs.datasets.rollout import Episode, collect_episodes

from rlreg.errors import RlregError, check
from rlreg.paths import made_datasets_root, rlreg_home

if TYPE_CHECKING:
    from rlreg.data.transitions import Transitions

# Importing this module (to list datasets) must stay cheap: gymnasium, minari, torch and the
# rlreg.data readers (rlreg.data imports torch) are imported inside the functions that use them.

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
    """The registered dataset names, sorted."""
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


_REF_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("rlreg_ref_progress", default=True)
"""Whether :func:`_cached_ref` shows a progress bar while computing (off with ``progress=False``)."""


def mean_return(
    env_id: str,
    policy: Policy,
    episodes: int = 100,
    seed: int = 123,
    label: str | None = None,
    progress: bool = False,
) -> float:
    """Mean undiscounted return of ``policy`` over ``episodes`` episodes run in parallel.

    With ``progress``, a bar on stderr shows ``label`` (default ``mean return on ENV``), the
    episode count, the vector steps taken (of the env's step limit, so the ETA is an upper bound)
    and the episodes finished.
    """
    import gymnasium as gym
    from rlreg.envs.evaluation import Evaluator

    ev = Evaluator(env_id, episodes, seed)
    rng = np.random.default_rng(seed)
    bar = None
    tick = None
    if progress:
        from tqdm import tqdm

        try:
            limit = gym.spec(env_id).max_episode_steps
        except gym.error.Error:
            limit = None
        bar = tqdm(
            total=limit,
            desc=f"{label or f'mean return on {env_id}'}, {episodes} episodes",
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )

        def tick(steps: int, finished: int) -> None:
            bar.update(steps - bar.n)
            bar.set_postfix_str(f"{finished}/{episodes} episodes done", refresh=False)

    try:
        result = ev.run(lambda obs: policy(obs, rng), progress=tick)
    finally:
        ev.close()
        if bar is not None:
            bar.total = bar.n  # episodes may all end before the step limit
            bar.close()
    return result.mean_return


def _cached_ref(env_id: str, key: str, policy: Policy, identity: str) -> float:
    """:func:`mean_return` of a reference policy, cached in memory and in
    ``$RLREG_HOME/cache/refs.json`` under ``env_id|key|identity`` (``identity`` names the exact
    policy, e.g. the digest of its weights file, so a changed policy is never served a stale value).
    Computing it shows a progress bar on stderr unless :data:`_REF_PROGRESS` is off.
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
        stored[disk_key] = mean_return(
            env_id, policy, label=f"reference return of {env_id} {key} policy", progress=_REF_PROGRESS.get()
        )
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


def _register_controller_suite(
    env: str, env_id: str, levels: dict[str, Callable[[], Policy]], reference: Callable, what: str
) -> None:
    """``<env>-<level>-v0`` for each level of a hand-written controller suite (100k transitions,
    50 environments, references ``reference()``)."""
    for level, make in levels.items():
        register_dataset(
            DatasetRecipe(
                name=f"{env}-{level}-v0",
                env_id=env_id,
                minari_id=f"rlreg/{env}/{level}-v0",
                behaviour=make,
                reference=reference,
                default_size=100_000,
                description=f"{env_id}, {what} ({level}); see envs/datasets/{env}.py",
                num_envs=50,
            )
        )


def _cartpole_refs() -> tuple[float, float]:
    return (
        _cached_ref("CartPole-v1", "random", cartpole.uniform, "uniform-v0"),
        _cached_ref("CartPole-v1", "expert", cartpole.epsilon_greedy(0.0), "linear-controller-v0"),
    )


_register_controller_suite(
    "pendulum",
    "Pendulum-v1",
    {
        "random": lambda: pendulum.uniform,
        "medium": lambda: pendulum.noisy(pendulum.LEVEL_NOISE["medium"]),
        "expert": lambda: pendulum.noisy(pendulum.LEVEL_NOISE["expert"]),
    },
    _pendulum_refs,
    "swing-up controller",
)
_register_controller_suite(
    "cartpole",
    "CartPole-v1",
    {
        "random": lambda: cartpole.uniform,
        "medium": lambda: cartpole.epsilon_greedy(cartpole.LEVEL_EPS["medium"]),
        "expert": lambda: cartpole.epsilon_greedy(cartpole.LEVEL_EPS["expert"]),
    },
    _cartpole_refs,
    "linear controller, discrete actions",
)


# ---------------------------------------------------------------------- making
def _minari_id(recipe: DatasetRecipe, size: int, seed: int, default_size: int) -> str:
    if size == default_size and seed == 0:
        return recipe.minari_id
    stem, version = recipe.minari_id.rsplit("-v", 1)
    return f"{stem}-size{size}-seed{seed}-v{version}"


def _record_path(root: Path, dataset_id: str) -> Path:
    return root / dataset_id / "rlreg.json"


_DATA_FILE = "data/main_data.hdf5"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {bytes, sha256, mtime_ns}}`` for every file in ``folder`` but ``rlreg.json``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() != "rlreg.json":
            st = p.stat()
            out[p.relative_to(folder).as_posix()] = {
                "bytes": st.st_size,
                "sha256": _sha256(p),
                "mtime_ns": st.st_mtime_ns,
            }
    return out


@dataclass(frozen=True)
class _State:
    """What is in a made dataset's folder."""

    kind: str
    """``absent`` (no folder), ``incomplete`` (no readable record), ``damaged`` or ``ok``."""
    detail: str = ""
    """For ``damaged``: which file and how, e.g. ``data/main_data.hdf5 truncated``."""
    record: dict[str, Any] = field(default_factory=dict)


def _inspect(root: Path, dataset_id: str, hash_all: bool = True) -> _State:
    """The state of made dataset ``dataset_id`` under ``root`` (see the module docstring).

    ``hash_all``: hash every recorded file; otherwise only those whose modification time differs
    from the recorded one (sizes are always checked).
    """
    folder = root / dataset_id
    if not folder.exists():
        return _State("absent")
    try:
        rec = json.loads(_record_path(root, dataset_id).read_text())
    except (OSError, ValueError):
        return _State("incomplete")
    if not isinstance(rec, dict):
        return _State("incomplete")
    files = rec.get("files")
    if isinstance(files, dict) and files:
        for rel, want in files.items():
            if not (isinstance(want, dict) and isinstance(want.get("bytes"), int)):
                return _State("incomplete")  # a record rlreg did not write: remade
            try:
                st = (folder / rel).stat()
            except OSError:
                return _State("damaged", f"{rel} missing", rec)
            if st.st_size != want.get("bytes"):
                how = "truncated" if st.st_size < want["bytes"] else "changed"
                return _State("damaged", f"{rel} {how}", rec)
            if (hash_all or st.st_mtime_ns != want.get("mtime_ns")) and _sha256(folder / rel) != want.get(
                "sha256"
            ):
                return _State("damaged", f"{rel} changed", rec)
        return _State("ok", "", rec)
    # made before files were recorded: check what can be checked without a record
    if not (folder / "data" / "metadata.json").is_file():
        return _State("incomplete")
    problem = _hdf5_problem(folder / _DATA_FILE)
    if problem is not None:
        return _State("damaged", f"{_DATA_FILE} {problem}", rec)
    return _State("ok", "", rec)


def _hdf5_problem(path: Path) -> str | None:
    """``missing``, ``truncated`` or ``unreadable`` when HDF5 file ``path`` does not open, else None.

    Opening reads the superblock only (a truncated file fails: HDF5 records its end-of-file address).
    Not shared with ``rlreg.data.minari_io``: importing anything from ``rlreg.data`` imports torch,
    and listing datasets must not.
    """
    import h5py

    if not path.is_file():
        return "missing"
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as e:
        return "truncated" if "truncated" in str(e) else "unreadable"
    return None


def _is_complete(root: Path, dataset_id: str) -> bool:
    return _inspect(root, dataset_id).kind == "ok"


def _discard(root: Path, target: Path) -> None:
    """Remove dataset folder ``target``: first moved aside in one step, so that no other process
    ever sees it half deleted."""
    trash = Path(tempfile.mkdtemp(prefix=".discard-", dir=root))
    try:
        os.replace(target, trash / "dataset")
    except FileNotFoundError:
        pass  # another process removed it first
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _make_command(name: str, size: int, seed: int, default_size: int) -> str:
    extra = (f" --size {size}" if size != default_size else "") + (f" --seed {seed}" if seed != 0 else "")
    return f"rlreg datasets make {name}{extra} --force"


def make_dataset(
    name: str,
    size: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> str:
    """Make registered dataset ``name`` (if not already made and intact) and return its Minari id.

    Same name, size and seed → byte-identical files (``rlreg.json`` records their SHA-256 and the
    arrays' ``digest``). A damaged dataset (see the module docstring) is remade, with a notice on
    stderr; when it cannot be remade (e.g. a behaviour policy is missing) an :class:`RlregError`
    says it is damaged and how to fix it.

    ``progress``: show progress bars on stderr while making (reference returns, then collection);
    None (default) and True show them, False keeps quiet. Nothing is shown for a dataset already made.
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
    show = progress is None or bool(progress)
    root = Path(root) if root is not None else made_datasets_root()
    dataset_id = _minari_id(recipe, size, seed, default)
    target = root / dataset_id
    label = name if (size == default and seed == 0) else f"{name} (size {size}, seed {seed})"
    state = _inspect(root, dataset_id)
    if state.kind == "ok" and not force:
        return dataset_id

    token = _REF_PROGRESS.set(show)
    try:
        ref_min, ref_max = recipe.reference()  # first: a missing policy fails before any work
    except RlregError as e:
        if state.kind != "damaged":
            raise
        raise RlregError(
            f"dataset {label} is damaged ({state.detail}) and cannot be remade: {e.problem}",
            (f"{e.fix}; then " if e.fix else "") + f"run `{_make_command(name, size, seed, default)}`",
        ) from e
    finally:
        _REF_PROGRESS.reset(token)
    if state.kind == "damaged":
        print(f"rlreg: dataset {label} is damaged ({state.detail}); remaking it", file=sys.stderr)
    elif state.kind == "incomplete":
        print(f"rlreg: dataset folder {target} is incomplete; remaking it", file=sys.stderr)
    elif state.kind == "ok":
        print(f"rlreg: remaking dataset {label} (--force)", file=sys.stderr)

    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=size, desc=f"making {name}", unit="tr", dynamic_ncols=True, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        episodes = recipe.collect(size, seed, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if show:
        print(f"rlreg: writing {size} transitions of {name} as Minari dataset {dataset_id}", file=sys.stderr)
    return _write(recipe, name, size, seed, root, dataset_id, episodes, ref_min, ref_max, t0, force)


def _write(
    recipe: DatasetRecipe,
    name: str,
    size: int,
    seed: int,
    root: Path,
    dataset_id: str,
    episodes: list[Episode],
    ref_min: float,
    ref_max: float,
    t0: float,
    force: bool,
) -> str:
    """Write ``episodes`` into a temporary folder, record them, and move the dataset into place
    (over what is there only when that is not complete, or with ``force``)."""
    import gymnasium as gym

    from rlreg.data.minari_io import write_minari
    from rlreg.data.transitions import DatasetInfo, Transitions

    target = root / dataset_id
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
            "files": _file_records(tmp_root / dataset_id),
        }
        _record_path(tmp_root, dataset_id).write_text(json.dumps(record, indent=2))
        if target.exists() and (force or not _is_complete(root, dataset_id)):
            _discard(root, target)  # damaged, incomplete or forced: never used as is
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


def load_dataset(spec: str, progress: bool | None = None) -> Transitions:
    """Resolve a dataset SPEC (see module docstring) to :class:`Transitions` with its info.

    A registered name is made first when needed (see :func:`make_dataset`; ``progress``: None or
    True show progress on stderr while making, False keeps quiet) and verified before it is read.
    """
    from rlreg.data.minari_io import load_minari

    check(
        isinstance(spec, str) and spec.strip() != "",
        "empty dataset spec",
        "pass --dataset NAME, d4rl:PATH.hdf5 or minari:ID",
    )
    if spec.startswith("d4rl:"):
        from rlreg.envs.registry import env_id_for_dataset

        from rlreg.data.d4rl import read_d4rl_hdf5

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
    try:
        t = load_minari(dataset_id, root=made_datasets_root())
    except RlregError as e:
        raise RlregError(
            f"dataset {spec}: {e.problem}", f"remake it with `rlreg datasets make {spec} --force`"
        ) from e
    t.info = replace(t.info, name=spec, normalizer="rlreg")
    return t


def _policy_dir() -> Path:
    """``rlreg.envs.policies.POLICY_DIR``, without importing that module (and torch) when not loaded."""
    policies = sys.modules.get("rlreg.envs.policies")
    if policies is not None:
        return policies.POLICY_DIR
    return Path(__file__).resolve().parent.parent / "policies"


def dataset_status(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per registered dataset (its default size and seed), cheap enough to list often.

    Keys: ``name``, ``env_id``, ``status`` (``made``, ``damaged``, ``incomplete`` or ``not made``),
    ``made`` (made and intact), ``problem`` and ``fix`` (for a damaged dataset: which file and how,
    and the command that remakes it), ``missing`` (shipped policies it needs that are absent),
    ``size``, ``minari_id``, ``path`` (where it is, when made). Files are checked as the module
    docstring says (sizes always; SHA-256 of files modified since they were written).
    """
    root = Path(root) if root is not None else made_datasets_root()
    policy_dir = _policy_dir()
    rows = []
    for name in dataset_names():
        r = DATASETS[name]
        state = _inspect(root, r.minari_id, hash_all=False)
        done = state.kind == "ok"
        rec = state.record if done else {}
        missing = ", ".join(n for n in r.requires if not (policy_dir / f"{n}.pt").is_file())
        size: int | None = r.default_size if r.size_fn is None else None  # None: set by what is shipped
        if r.size_fn is not None and not missing:
            try:
                size = r.size_fn()
            except RlregError as e:
                missing = e.problem
        damaged = state.kind == "damaged"
        rows.append(
            {
                "name": name,
                "env_id": r.env_id,
                "status": {"ok": "made", "absent": "not made"}.get(state.kind, state.kind),
                "made": done,
                "problem": state.detail if damaged else "",
                "fix": f"rlreg datasets make {name} --force" if damaged else "",
                "missing": missing,
                "size": rec.get("size", size),
                "minari_id": r.minari_id,
                "path": str(root / r.minari_id) if done else "",
            }
        )
    return rows


def export_d4rl(name: str, path: str | os.PathLike, size: int | None = None, seed: int = 0) -> Path:
    """Write registered dataset ``name`` as a D4RL-schema HDF5 file (made first if needed)."""
    from rlreg.data.d4rl import write_d4rl_hdf5
    from rlreg.data.minari_io import load_minari

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
    """Where ``rlreg datasets make NAME --format d4rl`` writes without ``--out``."""
    return rlreg_home() / "d4rl" / f"{name}.hdf5"


from rlreg.envs.datasets import mujoco as _mujoco  # noqa: E402  (registers the MuJoCo suite)

_mujoco.register_all()
