"""Load and write local Minari datasets (never downloads).

Minari stores whole episodes: ``observations`` has ``T + 1`` rows (the initial observation and the
observation after each step), ``actions``, ``rewards``, ``terminations`` and ``truncations`` have
``T``. :func:`load_minari` flattens them to transitions with ``next_obs[i] = obs[i + 1]``. Unlike a
D4RL file, a Minari episode has the true observation after its last step, so the final transition
of a truncated episode is kept (``timeouts`` True, never used as done).

:func:`write_minari` writes with Minari's own API (:class:`minari.data_collector.EpisodeBuffer` and
:func:`minari.create_dataset_from_buffers`), without ``DataCollector`` (which needs jax), so the
files are exactly what the installed Minari reads. Two things of Minari 0.5.4 it works around:

* ``create_dataset_from_buffers`` stores ``ref_min_score``/``ref_max_score`` only when an
  environment is given, and with ``ref_max_score`` but no ``ref_min_score`` it rolls out a random
  policy for 100 episodes to estimate the minimum. rlreg requires both scores and writes them into
  the dataset's metadata itself (``storage.update_metadata``), with or without an environment, so
  nothing is ever rolled out.
* Image-shaped ``Box(uint8)`` spaces are JPEG-encoded (lossy) by default; rlreg writes raw arrays
  (``jpeg_encoding=False``) so data round-trips exactly.

Minari's datasets root is the ``MINARI_DATASETS_PATH`` environment variable (default
``~/.minari/datasets``); the ``root`` arguments set it for the duration of a call only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlreg.data.transitions import DatasetInfo, Transitions
from rlreg.errors import RlregError, check

if TYPE_CHECKING:
    import gymnasium as gym

__all__ = ["load_minari", "write_minari", "minari_root"]

_ENV_VAR = "MINARI_DATASETS_PATH"
_EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")
_HDF5_DATA_FILE = "main_data.hdf5"
"""The file in ``<dataset>/data/`` that holds an HDF5-format Minari dataset's episodes."""


def minari_root(root: str | os.PathLike | None = None) -> Path:
    """The Minari datasets root that a call with ``root`` uses.

    Args:
        root: explicit root, or None for ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).

    Returns:
        The root directory (not created).
    """
    if root is not None:
        return Path(root)
    env = os.environ.get(_ENV_VAR)
    return Path(env) if env is not None else Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def _datasets_root(root: str | os.PathLike | None) -> Iterator[Path]:
    """Set ``MINARI_DATASETS_PATH`` to ``root`` inside the block and restore the previous value."""
    if root is None:
        yield minari_root(None)
        return
    previous = os.environ.get(_ENV_VAR)
    os.environ[_ENV_VAR] = str(Path(root))
    try:
        yield Path(root)
    finally:
        if previous is None:
            os.environ.pop(_ENV_VAR, None)
        else:
            os.environ[_ENV_VAR] = previous


def _check_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as e:
        raise RlregError(
            f"malformed Minari dataset id {dataset_id!r}",
            "use the form (namespace/)name-vN, e.g. 'rlreg/pendulum/random-v0'",
        ) from e


def _json_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The entries of ``kwargs`` that are plain JSON values."""
    out: dict[str, Any] = {}
    for key, value in (kwargs or {}).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


def _check_box(space: Any, what: str, dataset_id: str) -> None:
    import gymnasium as gym

    check(
        isinstance(space, gym.spaces.Box),
        f"Minari dataset {dataset_id!r}: {what} space is {type(space).__name__}, only Box is supported",
        f"use a dataset with Box (continuous array) {what}s, or flatten the space when making the dataset",
    )


def _check_action_space(space: Any, dataset_id: str) -> None:
    import gymnasium as gym

    check(
        isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)),
        f"Minari dataset {dataset_id!r}: action space is {type(space).__name__}, only Box and Discrete "
        "are supported",
        "use a dataset with Box (continuous array) or Discrete actions, or flatten the space when "
        "making the dataset",
    )


def _hdf5_check(path: Path) -> tuple[str, str] | None:
    """``(problem, detail)`` when HDF5 file ``path`` does not open (problem: ``missing``, ``truncated``
    or ``unreadable``), or None.

    Opening reads the superblock only: it catches a missing file, one cut short (HDF5 records its
    end-of-file address) and one that is not HDF5; damage inside the data shows only when read.
    """
    import h5py

    if not path.is_file():
        return "missing", ""
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as e:
        m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(e))
        if m:
            return "truncated", f"{m.group(1)} of {m.group(2)} bytes"
        return ("truncated", "") if "truncated" in str(e) else ("unreadable", str(e))
    return None


def _damaged(dataset_id: str, path: Path, what: str, detail: str = "") -> RlregError:
    return RlregError(
        f"Minari dataset {dataset_id!r}: its data file {path} is {what}" + (f" ({detail})" if detail else ""),
        "restore the file (or the whole dataset folder) from a copy, re-download it "
        f"(`minari download {dataset_id}`, for a dataset from a Minari server), or remake it "
        "(a dataset rlreg made: `rlreg datasets make NAME --force`)",
    )


def _check_data_files(dataset_id: str, data_dir: Path) -> None:
    """Clear errors for a missing/unreadable ``metadata.json`` or a missing/truncated HDF5 file."""
    meta_path = data_dir / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise _damaged(dataset_id, meta_path, "missing") from None
    except (OSError, ValueError) as e:
        raise _damaged(dataset_id, meta_path, "unreadable", str(e)) from e
    if not isinstance(meta, dict) or meta.get("data_format", "hdf5") != "hdf5":
        return  # another storage format (arrow): Minari checks its own files
    data_path = data_dir / _HDF5_DATA_FILE
    found = _hdf5_check(data_path)
    if found is not None:
        raise _damaged(dataset_id, data_path, *found)


def load_minari(dataset_id: str, *, root: str | os.PathLike | None = None) -> Transitions:
    """Load a local Minari dataset as transitions, without any network access.

    Transition ``i`` of an episode is ``(obs[i], actions[i], rewards[i], obs[i + 1])`` with
    ``terminals = terminations[i]`` and ``timeouts = truncations[i]``; every step is kept.
    ``episode_starts`` is True at each episode's first transition. Arrays are float32, except the
    actions of a Discrete action space: ``(N,)`` int64 indices.

    Args:
        dataset_id: Minari id, e.g. ``"mujoco/hopper/medium-v0"``.
        root: datasets root; default ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``.

    Returns:
        Validated :class:`Transitions`; ``info`` has the env id and kwargs of the dataset's env spec
        and the dataset's reference scores (``normalizer="minari"``) when it has both.

    Raises:
        RlregError: the dataset is not in the local root, its ``metadata.json`` or HDF5 data file
            is missing, truncated or damaged (the message names the file and how to restore it),
            it cannot be read, has a non-Box observation space or an action space neither Box nor
            Discrete, inconsistent episodes, no steps, or NaN/inf values.
    """
    import minari

    base = minari_root(root)
    data_dir = base / dataset_id / "data"
    if not data_dir.is_dir():
        raise RlregError(
            f"Minari dataset {dataset_id!r} is not in the local Minari root {base} "
            f"(no directory {data_dir}); rlreg never downloads datasets",
            f"make it (e.g. with rlreg's dataset scripts or write_minari), copy it into {base}, "
            f"download it yourself with `minari download {dataset_id}`, or point {_ENV_VAR} "
            "(or the root argument) at the directory that holds it",
        )
    _check_data_files(dataset_id, data_dir)
    with _datasets_root(root):
        try:
            dataset = minari.load_dataset(dataset_id, download=False)
        except FileNotFoundError as e:  # pragma: no cover - checked above
            raise RlregError(f"Minari dataset {dataset_id!r} not found: {e}", "check the id and root") from e
        except (ValueError, OSError, KeyError, AssertionError) as e:
            raise RlregError(
                f"cannot read Minari dataset {dataset_id!r} at {data_dir}: {e}",
                "regenerate or re-download the dataset with the Minari version rlreg installs (0.5.x)",
            ) from e
        _check_box(dataset.observation_space, "observation", dataset_id)
        _check_action_space(dataset.action_space, dataset_id)
        episodes = []
        try:
            for ep in dataset.iterate_episodes():
                t = len(ep.rewards)
                check(
                    t == 0 or len(ep.observations) == t + 1,
                    f"Minari dataset {dataset_id!r}: episode {ep.id} has {len(ep.observations)} observations "
                    f"for {t} steps (expected {t + 1})",
                    "regenerate the dataset; Minari episodes store T + 1 observations",
                )
                episodes.append({k: getattr(ep, k) for k in _EPISODE_KEYS})
        except RlregError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as e:  # damage inside the HDF5 file
            raise _damaged(dataset_id, data_dir / _HDF5_DATA_FILE, "damaged", f"reading failed: {e}") from e
        metadata = dataset.storage.metadata
        data_path = Path(dataset.storage.data_path)
        env_spec = dataset.env_spec

    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    has_ref = ref_min is not None and ref_max is not None
    info = DatasetInfo(
        name=dataset_id,
        env_id=env_spec.id if env_spec is not None else None,
        ref_min_score=float(ref_min) if has_ref else None,
        ref_max_score=float(ref_max) if has_ref else None,
        normalizer="minari" if has_ref else "none",
        source=str(data_path.parent),
        env_kwargs=_json_kwargs(env_spec.kwargs if env_spec is not None else None),
    )
    t = Transitions.from_episodes(episodes, info)
    return t.validate(where=f"Minari dataset {dataset_id!r}")


def _episode_buffers(
    episodes: Sequence[dict[str, np.ndarray]],
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Space,
) -> list:
    """Check whole-episode arrays and wrap them in Minari ``EpisodeBuffer`` objects."""
    from minari.data_collector import EpisodeBuffer

    check(len(episodes) > 0, "write_minari: no episodes to write", "pass at least one episode")
    buffers = []
    for k, ep in enumerate(episodes):
        missing = [key for key in _EPISODE_KEYS if key not in ep]
        check(
            not missing,
            f"write_minari: episode {k} lacks {', '.join(missing)} (it has: {', '.join(sorted(ep))})",
            f"give every episode the keys {', '.join(_EPISODE_KEYS)}",
        )
        obs = np.asarray(ep["observations"], observation_space.dtype)
        actions = np.asarray(ep["actions"], action_space.dtype)
        rewards = np.asarray(ep["rewards"], np.float64)
        terms = np.asarray(ep["terminations"], bool)
        truncs = np.asarray(ep["truncations"], bool)
        t = rewards.shape[0] if rewards.ndim == 1 else -1
        check(
            t >= 1, f"write_minari: episode {k} rewards have shape {rewards.shape}", "pass (T,) with T >= 1"
        )
        check(
            obs.shape == (t + 1, *observation_space.shape),
            f"write_minari: episode {k} observations have shape {obs.shape}, expected "
            f"{(t + 1, *observation_space.shape)} (T + 1 rows: the initial observation and one per step)",
            "include the observation after the last step and match the observation space",
        )
        check(
            actions.shape == (t, *action_space.shape),
            f"write_minari: episode {k} actions have shape {actions.shape}, "
            f"expected {(t, *action_space.shape)}",
            "pass one action per step matching the action space",
        )
        for key, arr in (("terminations", terms), ("truncations", truncs)):
            check(
                arr.shape == (t,),
                f"write_minari: episode {k} {key} have shape {arr.shape}, expected ({t},)",
                "pass one flag per step",
            )
        for key, arr in (("observations", obs), ("actions", actions), ("rewards", rewards)):
            if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
                raise RlregError(
                    f"write_minari: episode {k} {key} contain NaN or inf", "clean the data first"
                )
        buffers.append(
            EpisodeBuffer(
                id=k,
                observations=obs,
                actions=actions,
                rewards=rewards,
                terminations=terms,
                truncations=truncs,
            )
        )
    return buffers


def write_minari(
    dataset_id: str,
    episodes: Sequence[dict[str, np.ndarray]],
    *,
    root: str | os.PathLike | None = None,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    observation_space: gym.spaces.Box | None = None,
    action_space: gym.spaces.Box | gym.spaces.Discrete | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str = "",
    author: str = "rlreg",
    description: str = "",
    code_permalink: str | None = None,
    requirements: list[str] | None = None,
) -> Path:
    """Write whole episodes as a local Minari dataset (HDF5 format) with Minari's own API.

    Args:
        dataset_id: Minari id ``(namespace/)name-vN``; its directory must not exist yet.
        episodes: one dict per episode with ``observations`` ``(T + 1, *obs_shape)``, ``actions``
            ``(T, *act_shape)``, ``rewards``, ``terminations`` and ``truncations`` ``(T,)``.
        root: datasets root; default ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``.
        env_id: registered Gymnasium id of the environment; recorded as the dataset's env spec
            (Minari instantiates it once, locally, to read its spaces).
        env_kwargs: keyword arguments of that environment, recorded in the env spec.
        observation_space: Box observation space; defaults to the environment's.
        action_space: Box or Discrete action space; defaults to the environment's.
        ref_min_score: reference return mapped to 0 by ``minari.get_normalized_score`` (give both
            reference scores or neither).
        ref_max_score: reference return mapped to 1.
        algorithm_name: how the data was collected.
        author: dataset author.
        description: free text.
        code_permalink: link to the code that made the dataset.
        requirements: pip-style requirements to recreate the environment.

    Returns:
        The dataset directory ``<root>/<dataset_id>``.

    Raises:
        RlregError: malformed id, existing dataset directory, unknown env id, missing or non-Box
            spaces, inconsistent episodes, NaN/inf values, or only one reference score.
    """
    _check_id(dataset_id)
    base = minari_root(root)
    target = base / dataset_id
    check(
        not target.exists(),
        f"Minari dataset directory {target} already exists",
        "delete it (or choose another id/version) before writing; rlreg never overwrites a dataset",
    )
    _check_ref_scores(ref_min_score, ref_max_score)
    env_spec, observation_space, action_space = _env_spec_and_spaces(
        env_id, env_kwargs, observation_space, action_space
    )
    _check_box(observation_space, "observation", dataset_id)
    _check_action_space(action_space, dataset_id)
    buffers = _episode_buffers(episodes, observation_space, action_space)
    _create_dataset(
        dataset_id,
        target,
        root,
        buffers,
        ref_min_score,
        ref_max_score,
        env=env_spec,
        observation_space=observation_space,
        action_space=action_space,
        algorithm_name=algorithm_name,
        author=author,
        code_permalink=code_permalink,
        description=description,
        requirements=requirements,
    )
    return target


def _check_ref_scores(ref_min_score: float | None, ref_max_score: float | None) -> None:
    """Raise unless both reference scores are given (and distinct) or neither is."""
    check(
        (ref_min_score is None) == (ref_max_score is None),
        "write_minari: only one of ref_min_score / ref_max_score was given (Minari would estimate the "
        "other by rolling out a policy)",
        "give both reference scores or neither",
    )
    if ref_min_score is not None:
        check(
            float(ref_min_score) != float(ref_max_score),
            f"write_minari: ref_min_score == ref_max_score == {ref_min_score}",
            "give distinct reference scores",
        )


def _env_spec_and_spaces(
    env_id: str | None,
    env_kwargs: dict[str, Any] | None,
    observation_space: gym.spaces.Box | None,
    action_space: gym.spaces.Space | None,
) -> tuple[Any, Any, Any]:
    """``(env_spec, observation_space, action_space)``: the Gymnasium spec of ``env_id`` (with
    ``env_kwargs``; None without an id) and the spaces, taken from the environment where not given."""
    import gymnasium as gym

    env_spec = None
    if env_id is not None:
        try:
            env_spec = gym.spec(env_id)
        except gym.error.Error as e:
            raise RlregError(
                f"write_minari: environment id {env_id!r} is not registered with Gymnasium ({e})",
                "import the package that registers it first, or pass env_id=None with explicit spaces",
            ) from e
        if env_kwargs:
            try:
                json.dumps(env_kwargs)
            except (TypeError, ValueError) as e:
                raise RlregError(
                    f"write_minari: env_kwargs are not JSON-serialisable ({e})",
                    "pass plain numbers, strings, lists and dicts as environment kwargs",
                ) from e
            env_spec = dataclasses.replace(env_spec, kwargs={**env_spec.kwargs, **env_kwargs})
        if observation_space is None or action_space is None:
            env = gym.make(env_spec)
            observation_space = observation_space or env.observation_space
            action_space = action_space or env.action_space
            env.close()
    check(
        observation_space is not None and action_space is not None,
        "write_minari: observation_space and action_space are required when env_id is None",
        "pass both spaces, or an env_id to take them from",
    )
    return env_spec, observation_space, action_space


def _create_dataset(
    dataset_id: str,
    target: Path,
    root: str | os.PathLike | None,
    buffers: list,
    ref_min_score: float | None,
    ref_max_score: float | None,
    **create_kwargs: Any,
) -> None:
    """Write ``buffers`` with ``minari.create_dataset_from_buffers`` (raw arrays, HDF5) and the
    reference scores into its metadata; removes ``target`` if anything fails."""
    import minari

    with _datasets_root(root), warnings.catch_warnings():
        # Minari warns about every unset optional metadata field (author_email, eval_env, ...)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"minari(\.|$)")
        try:
            dataset = minari.create_dataset_from_buffers(
                dataset_id, buffers, data_format="hdf5", jpeg_encoding=False, **create_kwargs
            )
            if ref_min_score is not None and ref_max_score is not None:
                dataset.storage.update_metadata(
                    {"ref_min_score": float(ref_min_score), "ref_max_score": float(ref_max_score)}
                )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
