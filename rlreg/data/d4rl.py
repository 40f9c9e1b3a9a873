"""Read and write D4RL-schema HDF5 files with h5py (the ``d4rl`` package is never imported).

A D4RL file holds per-step arrays ``observations``, ``actions``, ``rewards``, ``terminals`` and
``timeouts`` (and in the MuJoCo v2 files ``next_observations``), one row per environment step.
:func:`read_d4rl_hdf5` turns them into transitions exactly as ``d4rl.qlearning_dataset`` does
(``terminate_on_end=False``, files with a ``timeouts`` key)::

    for i in range(N - 1):
        if timeouts[i]:                 # final step of an episode cut by the time limit: dropped
            continue
        obs, next_obs = observations[i], observations[i + 1]
        done = terminals[i]

so the last row of the file is never a transition, and ``timeouts`` is all False afterwards.
With ``keep_timeouts=True`` (files with ``next_observations`` only) every row is a transition,
timeouts included, as Minari and Gymnasium keep them: the true next observation of a truncated
step is known, so it can be bootstrapped. A file written from a Minari dataset then reads back
with exactly the Minari dataset's contents.
One documented difference: when the file has ``next_observations`` they are used as the next
observations (``qlearning_dataset`` always uses ``observations[i + 1]``; the two agree on every
kept transition of well-formed files, since rows after a timeout are dropped and rows after a
terminal never bootstrap).

:func:`write_d4rl_hdf5` writes the same schema (float32 arrays, bool flags, as D4RL's files) plus
``rlreg_*`` root attributes (environment id, reference scores, normalizer) that the reader prefers
over its name-based lookup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from rlreg.data.scores import d4rl_ref_scores
from rlreg.data.transitions import DatasetInfo, Transitions, action_array
from rlreg.errors import RlregError, check

__all__ = ["read_d4rl_hdf5", "write_d4rl_hdf5"]

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
_FLAT_KEYS = ("rewards", "terminals", "timeouts")
_ATTR_ENV_ID = "rlreg_env_id"
_ATTR_ENV_KWARGS = "rlreg_env_kwargs"
_ATTR_REF_MIN = "rlreg_ref_min_score"
_ATTR_REF_MAX = "rlreg_ref_max_score"
_ATTR_NORMALIZER = "rlreg_normalizer"


def _attr_str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _attr_str(value.item())
    return str(value)


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """All needed datasets and the root attributes of a D4RL file, with clear errors."""
    try:
        with h5py.File(path, "r") as f:
            present = sorted(f.keys())
            for key in REQUIRED_KEYS:
                if key not in f or not isinstance(f[key], h5py.Dataset):
                    raise RlregError(
                        f"D4RL file {path} has no '{key}' dataset "
                        f"(it has: {', '.join(present) or 'nothing'})",
                        f"a D4RL-schema file needs the keys {', '.join(REQUIRED_KEYS)} "
                        "(next_observations optional); re-download or regenerate the file",
                    )
            keys = list(REQUIRED_KEYS)
            if "next_observations" in f and isinstance(f["next_observations"], h5py.Dataset):
                keys.append("next_observations")
            n = f["observations"].shape[0] if f["observations"].ndim > 0 else 0
            for key in keys:
                shape = f[key].shape
                rows = shape[0] if len(shape) > 0 else 0
                check(
                    rows == n,
                    f"D4RL file {path}: '{key}' has {rows} rows but 'observations' has {n}",
                    "every key must have one row per step; the file is inconsistent or was cut short, "
                    "re-download or regenerate it",
                )
            arrays = {key: f[key][()] for key in keys}
            attrs = {key: f.attrs[key] for key in f.attrs}
    except OSError as e:
        raise RlregError(
            f"cannot read HDF5 file {path}: it is truncated or corrupt ({e})",
            "re-download or regenerate the file (an interrupted download or write leaves a partial file)",
        ) from e
    return arrays, attrs


def _flat(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    arr = arrays[key]
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    check(
        arr.ndim == 1,
        f"D4RL file {path}: '{key}' has shape {arr.shape}, expected (N,)",
        "store rewards, terminals and timeouts as one value per step",
    )
    return arr


def read_d4rl_hdf5(
    path: str | os.PathLike, *, name: str | None = None, keep_timeouts: bool = False
) -> Transitions:
    """Read a D4RL-schema HDF5 file into transitions with ``d4rl.qlearning_dataset`` semantics.

    Transition ``i`` (``0 <= i < N - 1``) is kept unless ``timeouts[i]``; its next observation is
    ``observations[i + 1]`` (or ``next_observations[i]`` when the file has that key) and its done
    flag is ``terminals[i]``. The file's last row is dropped. The result has float32 arrays,
    all-False ``timeouts``, and ``episode_starts`` True at index 0 and after every terminal or
    dropped timeout.

    Args:
        path: the ``.hdf5`` file.
        name: dataset name for :class:`DatasetInfo` and the reference-score lookup; defaults to the
            file stem (e.g. ``hopper_medium_replay-v2``).
        keep_timeouts: keep every row as a transition (timeouts too, with their ``timeouts`` flag,
            and the last row) using the file's ``next_observations``; off by default to match
            ``qlearning_dataset``.

    Returns:
        Validated :class:`Transitions`. ``info`` carries D4RL v2 reference scores when the name is
        a D4RL dataset name, or the file's ``rlreg_*`` attributes when it has them.

    Raises:
        RlregError: missing file, not HDF5, truncated/corrupt file, a missing key, keys of different
            lengths, no transitions, NaN/inf values, or ``keep_timeouts`` on a file without
            ``next_observations``.
    """
    path = Path(path)
    _check_hdf5_path(path)
    arrays, attrs = _read_arrays(path)

    observations = arrays["observations"]
    rewards = _flat(arrays, "rewards", path)
    terminals = _flat(arrays, "terminals", path).astype(bool)
    timeouts = _flat(arrays, "timeouts", path).astype(bool)
    rows, keep, next_obs, out_timeouts = _select_rows(arrays, timeouts, path, keep_timeouts)
    starts = _episode_starts(terminals, timeouts, rows, keep)
    info = _dataset_info(attrs, name if name is not None else path.stem, path)
    t = Transitions(
        observations=np.asarray(observations[:rows][keep], np.float32),
        actions=action_array(arrays["actions"][:rows][keep]),
        rewards=np.asarray(rewards[:rows][keep], np.float32),
        next_observations=np.asarray(next_obs[keep], np.float32),
        terminals=terminals[:rows][keep],
        timeouts=out_timeouts[keep],
        episode_starts=starts,
        info=info,
    )
    return t.validate(where=f"D4RL file {path}")


def _check_hdf5_path(path: Path) -> None:
    """Raise unless ``path`` is an existing HDF5 file."""
    check(path.exists(), f"D4RL file {path} does not exist", "check the path, or download/generate the file")
    check(path.is_file(), f"D4RL path {path} is not a file", "pass the path of the .hdf5 file itself")
    check(
        h5py.is_hdf5(path),
        f"{path} is not an HDF5 file",
        "pass a D4RL-schema .hdf5 file (keys observations, actions, rewards, terminals, timeouts)",
    )


def _select_rows(
    arrays: dict[str, np.ndarray], timeouts: np.ndarray, path: Path, keep_timeouts: bool
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, keep, next_obs, out_timeouts)``: the candidate rows, which of them are kept as
    transitions, their next observations and timeout flags (``qlearning_dataset`` semantics unless
    ``keep_timeouts``)."""
    observations = arrays["observations"]
    n = observations.shape[0] if observations.ndim > 0 else 0
    has_next = "next_observations" in arrays
    if keep_timeouts:
        check(
            has_next,
            f"D4RL file {path} has no 'next_observations' so keep_timeouts cannot recover the next "
            "observation of a timeout step",
            "read it with keep_timeouts=False (qlearning_dataset semantics)",
        )
        check(n >= 1, f"D4RL file {path} has no steps", "use a file with at least one step")
        rows, keep = n, np.ones(n, dtype=bool)
        next_obs = arrays["next_observations"]
        out_timeouts = timeouts
    else:
        check(
            n >= 2,
            f"D4RL file {path} has {n} step(s): no transitions (qlearning_dataset drops the last step)",
            "use a file with at least two steps",
        )
        rows, keep = n - 1, ~timeouts[: n - 1]
        check(
            bool(keep.any()),
            f"D4RL file {path}: every step is a timeout, so no transition is left",
            "check the file's 'timeouts' key; only the final step of a time-limited episode is a timeout",
        )
        next_obs = arrays["next_observations"][: n - 1] if has_next else observations[1:n]
        out_timeouts = np.zeros(n - 1, dtype=bool)
    return rows, keep, next_obs, out_timeouts


def _episode_starts(terminals: np.ndarray, timeouts: np.ndarray, rows: int, keep: np.ndarray) -> np.ndarray:
    """Episode-start flags of the kept rows (the first kept row always starts one)."""
    # raw row i starts an episode if it is the first row or follows a terminal or a timeout
    starts = np.empty(rows, dtype=bool)
    starts[0] = True
    starts[1:] = terminals[: rows - 1] | timeouts[: rows - 1]
    starts = starts[keep]
    starts[0] = True
    return starts


def _dataset_info(attrs: dict[str, object], ds_name: str, path: Path) -> DatasetInfo:
    """The file's :class:`DatasetInfo`: its ``rlreg_*`` attributes, else D4RL scores by name."""
    env_id = _attr_str(attrs[_ATTR_ENV_ID]) if _ATTR_ENV_ID in attrs else None
    env_kwargs = json.loads(_attr_str(attrs[_ATTR_ENV_KWARGS])) if _ATTR_ENV_KWARGS in attrs else {}
    if _ATTR_REF_MIN in attrs and _ATTR_REF_MAX in attrs:
        ref: tuple[float, float] | None = (float(attrs[_ATTR_REF_MIN]), float(attrs[_ATTR_REF_MAX]))
        normalizer = _attr_str(attrs[_ATTR_NORMALIZER]) if _ATTR_NORMALIZER in attrs else "rlreg"
    else:
        ref = d4rl_ref_scores(ds_name)
        normalizer = "d4rl-v2" if ref is not None else "none"
    return DatasetInfo(
        name=ds_name,
        env_id=env_id,
        ref_min_score=None if ref is None else ref[0],
        ref_max_score=None if ref is None else ref[1],
        normalizer=normalizer,
        source=str(path),
        env_kwargs=env_kwargs,
    )


def write_d4rl_hdf5(
    path: str | os.PathLike,
    *,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    next_observations: np.ndarray | None = None,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    normalizer: str | None = None,
) -> Path:
    """Write raw per-step arrays as a D4RL-schema HDF5 file, atomically.

    Arrays are stored as D4RL stores them: float32 observations/actions/rewards (and
    next_observations), bool terminals/timeouts. The metadata goes into root attributes
    ``rlreg_env_id``, ``rlreg_env_kwargs`` (JSON), ``rlreg_ref_min_score``, ``rlreg_ref_max_score``
    and ``rlreg_normalizer`` (``"rlreg"`` when reference scores are given without a normalizer).
    The file is written to ``path + ".tmp"`` and renamed over ``path``, so a reader never sees a
    partial file.

    Args:
        path: destination ``.hdf5`` file (parent directories are created).
        observations: ``(N, *obs_shape)`` observation at each step.
        actions: ``(N, A)`` action taken at each step, or ``(N,)`` integer indices (discrete
            actions, stored as int64: an rlreg extension; D4RL itself has continuous actions only).
        rewards: ``(N,)`` reward of each step.
        terminals: ``(N,)`` true termination after each step.
        timeouts: ``(N,)`` truncation (time limit) after each step.
        next_observations: optional ``(N, *obs_shape)`` observation after each step.
        env_id: Gymnasium id of the environment the data comes from.
        env_kwargs: keyword arguments of that environment (JSON-serialisable).
        ref_min_score: reference return mapped to 0 (give both or neither).
        ref_max_score: reference return mapped to 100.
        normalizer: name of the reference-score convention (see :class:`DatasetInfo`).

    Returns:
        The written path.

    Raises:
        RlregError: empty or inconsistent arrays, NaN/inf values, or only one reference score.
    """
    path = Path(path)
    obs = np.asarray(observations, np.float32)
    data: dict[str, np.ndarray] = {
        "observations": obs,
        "actions": action_array(actions),
        "rewards": np.asarray(rewards, np.float32),
        "terminals": np.asarray(terminals, bool),
        "timeouts": np.asarray(timeouts, bool),
    }
    if next_observations is not None:
        data["next_observations"] = np.asarray(next_observations, np.float32)
    _check_write_arrays(data)
    attrs = _root_attrs(env_id, env_kwargs, ref_min_score, ref_max_score, normalizer)
    _write_atomically(path, data, attrs)
    return path


def _check_write_arrays(data: dict[str, np.ndarray]) -> None:
    """Raise unless the arrays to write are non-empty, one row per step, flat flags, finite floats."""
    obs = data["observations"]
    n = obs.shape[0] if obs.ndim > 0 else 0
    check(n > 0, "write_d4rl_hdf5: no steps to write (observations is empty)", "pass at least one step")
    check(obs.ndim >= 2, f"observations have shape {obs.shape}, expected (N, *obs_shape)", "add a step axis")
    acts = data["actions"]
    check(
        acts.ndim == 2 or (acts.ndim == 1 and acts.dtype == np.int64),
        f"actions have shape {acts.shape}, expected (N, action_dim) (or (N,) integer indices)",
        "store continuous actions as a 2-D float array, discrete ones as a 1-D integer array",
    )
    for key, arr in data.items():
        check(
            arr.ndim > 0 and arr.shape[0] == n,
            f"write_d4rl_hdf5: '{key}' has shape {arr.shape} but observations have {n} rows",
            "pass one row per step in every array",
        )
        if key in _FLAT_KEYS:
            check(arr.ndim == 1, f"'{key}' has shape {arr.shape}, expected ({n},)", "flatten it")
        if arr.dtype == np.float32 and not np.all(np.isfinite(arr)):
            raise RlregError(
                f"write_d4rl_hdf5: '{key}' contains NaN or inf", "clean the data before writing it"
            )
    if "next_observations" in data:
        check(
            data["next_observations"].shape == obs.shape,
            f"next_observations shape {data['next_observations'].shape} != observations shape {obs.shape}",
            "next_observations must match observations",
        )


def _root_attrs(
    env_id: str | None,
    env_kwargs: dict | None,
    ref_min_score: float | None,
    ref_max_score: float | None,
    normalizer: str | None,
) -> dict[str, object]:
    """The ``rlreg_*`` root attributes for the given metadata (raises on only one reference score)."""
    check(
        (ref_min_score is None) == (ref_max_score is None),
        "write_d4rl_hdf5: only one of ref_min_score / ref_max_score was given",
        "give both reference scores or neither",
    )
    attrs: dict[str, object] = {}
    if env_id is not None:
        attrs[_ATTR_ENV_ID] = str(env_id)
    if env_kwargs:
        try:
            attrs[_ATTR_ENV_KWARGS] = json.dumps(env_kwargs, sort_keys=True)
        except TypeError as e:
            raise RlregError(
                f"write_d4rl_hdf5: env_kwargs are not JSON-serialisable ({e})",
                "pass plain numbers, strings, lists and dicts as environment kwargs",
            ) from e
    if ref_min_score is not None and ref_max_score is not None:
        attrs[_ATTR_REF_MIN] = float(ref_min_score)
        attrs[_ATTR_REF_MAX] = float(ref_max_score)
        attrs[_ATTR_NORMALIZER] = normalizer if normalizer is not None else "rlreg"
    elif normalizer is not None:
        attrs[_ATTR_NORMALIZER] = normalizer
    return attrs


def _write_atomically(path: Path, data: dict[str, np.ndarray], attrs: dict[str, object]) -> None:
    """Write ``data`` and ``attrs`` to ``path + ".tmp"`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for key, arr in data.items():
                f.create_dataset(key, data=arr)
            f.attrs.update(attrs)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
