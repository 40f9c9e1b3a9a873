"""Offline training for SB3's off-policy algorithms: ``model.learn_offline(dataset, gradient_steps)``.

The dataset (any rlreg dataset form: a made name, ``d4rl:PATH``, ``minari:ID``, or a
:class:`~rlreg.data.transitions.Transitions`) fills the model's replay buffer, with states
z-normalised by the dataset's statistics (TD3+BC's ``(s − μ) / (σ + 1e-3)``) and actions scaled to
SB3's ``[-1, 1]``; ``predict`` applies the same normalisation, so SB3's ``evaluate_policy`` and
``predict`` see what training saw. Regularizers are set up on the same data (PRDC's index holds the
scaled actions the actor outputs). Bootstrapping is masked by the dataset's terminals only
(timeouts never end a bootstrap, as D4RL's ``qlearning_dataset``).

**Offline-to-online**: ``learn()`` after ``learn_offline`` keeps the dataset in the buffer and
stores the transitions it collects normalised the same way (``_store_transition``); acting
normalises too (``predict``); ``regularizer_scale`` anneals the regularizers' terms online
(:mod:`rlreg.agents.sb3.common`). The normalisation lives in the model (``obs_normalizer``, saved
with it), so any env, vectorised or not, is evaluated raw: this is the equivalent of a
``VecNormalize`` frozen at the dataset's statistics. A model built on a ``VecNormalize`` env is
refused with ``normalize_obs=True`` (it would normalise twice).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlreg.data.transitions import DatasetInfo, ObsNormalizer, Transitions, TransitionStore
from rlreg.errors import check

__all__ = ["OfflineMixin", "sample_with_rows"]


def sample_with_rows(model: Any, batch_size: int) -> tuple[Any, torch.Tensor | None]:
    """SB3's replay sample, drawn the way ``ReplayBuffer.sample`` draws it (same generator calls),
    with the sampled rows: where every row is a row of the dataset ``learn_offline`` wrote (the
    buffer's first ``n`` rows), they are the batch's ``indices``, which dataset-aware regularizers
    use (PRDC's certified search, its overlap recognising the batch)."""
    from stable_baselines3.common.buffers import ReplayBuffer

    buf, env = model.replay_buffer, model._vec_normalize_env
    if type(buf) is not ReplayBuffer or buf.optimize_memory_usage or not model._dataset_rows:
        return buf.sample(batch_size, env=env), None
    upper = buf.buffer_size if buf.full else buf.pos
    inds = np.random.randint(0, upper, size=batch_size)
    data = buf._get_samples(inds, env=env)
    rows = torch.as_tensor(inds, device=model.device) if int(inds.max()) < model._dataset_rows else None
    return data, rows


class OfflineMixin:
    """``learn_offline`` and a normalising ``predict`` for an SB3 off-policy algorithm subclass."""

    obs_normalizer: ObsNormalizer | None = None
    offline_dataset: str | None = None
    _dataset_rows: int = 0

    def predict(self, observation: Any, *args: Any, **kwargs: Any) -> Any:
        if self.obs_normalizer is not None and isinstance(observation, np.ndarray):
            observation = self._normalize(observation)
        return super().predict(observation, *args, **kwargs)  # type: ignore[misc]

    def learn(self, *args: Any, keep_offline_data: bool = True, **kwargs: Any) -> Any:
        """SB3's ``learn``; after ``learn_offline``, ``keep_offline_data=False`` empties the replay
        buffer first, so online training sees only what it collects (the regularizers keep what
        ``setup`` built from the data, e.g. PRDC's index)."""
        if not keep_offline_data and self._dataset_rows:
            self.replay_buffer.reset()
            self._dataset_rows = 0
        return super().learn(*args, **kwargs)  # type: ignore[misc]

    def _store_transition(self, replay_buffer: Any, *args: Any, **kwargs: Any) -> None:
        """Offline-to-online: after ``learn_offline`` the transitions ``learn()`` collects enter the
        buffer normalised like the dataset (the offline data stays in the buffer)."""
        if self.obs_normalizer is None:
            super()._store_transition(replay_buffer, *args, **kwargs)  # type: ignore[misc]
            self._forget_dataset_rows(replay_buffer)
            return
        add = replay_buffer.add

        def normalized_add(obs: np.ndarray, next_obs: np.ndarray, *rest: Any, **kw: Any) -> None:
            add(self._normalize(obs), self._normalize(next_obs), *rest, **kw)

        replay_buffer.add = normalized_add
        try:
            super()._store_transition(replay_buffer, *args, **kwargs)  # type: ignore[misc]
        finally:
            del replay_buffer.add  # the class's method again (the buffer stays picklable)
        self._forget_dataset_rows(replay_buffer)

    def _forget_dataset_rows(self, replay_buffer: Any) -> None:
        """Once collected data overwrites a row of the dataset, buffer rows are no longer dataset
        rows: batches stop carrying them as ``indices`` (PRDC then searches without them)."""
        last = (replay_buffer.pos - 1) % replay_buffer.buffer_size
        if last < getattr(self, "_dataset_rows", 0):
            self._dataset_rows = 0

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        norm = self.obs_normalizer
        return norm(np.asarray(obs).reshape(-1, norm.mean.shape[0])).reshape(np.shape(obs))

    def learn_offline(
        self,
        dataset: str | Transitions,
        gradient_steps: int,
        eval_env: Any = None,
        eval_freq: int = 0,
        n_eval_episodes: int = 10,
        normalize_obs: bool | None = None,
    ) -> dict[str, Any]:
        """Train ``gradient_steps`` updates on ``dataset``; evaluate every ``eval_freq`` updates (and at
        the end) when ``eval_env`` is given. Returns the evaluations (step, return mean/std, normalized
        score where the dataset has reference scores).

        ``normalize_obs``: z-normalise observations by the dataset's statistics; None (default) does
        it for float observations and leaves integer ones (images, MinAtar maps) as they are."""
        if normalize_obs is None:
            normalize_obs = bool(np.issubdtype(self.observation_space.dtype, np.floating))
        check(
            not normalize_obs or np.issubdtype(self.observation_space.dtype, np.floating),
            f"normalize_obs=True, but the observations are {self.observation_space.dtype}: normalised "
            "values cannot be stored in the replay buffer",
            "leave normalize_obs unset (or False) for integer observations",
        )
        check(
            isinstance(gradient_steps, int) and gradient_steps > 0,
            f"gradient_steps must be a positive integer, got {gradient_steps!r}",
            "pass e.g. gradient_steps=10000",
        )
        check(
            not (normalize_obs and self._vec_normalize_env is not None),
            "the model's env is a VecNormalize, which normalises observations itself; learn_offline "
            "would normalise them twice",
            "build the model on the raw env, or pass normalize_obs=False",
        )
        data = self._load_offline(dataset)
        prepared = self._fill_buffer(data, normalize_obs)
        self.offline_dataset = dataset if isinstance(dataset, str) else None
        self._setup_on(prepared)
        if getattr(self, "_logger", None) is None:  # learn() sets it; offline training may come first
            from stable_baselines3.common.utils import configure_logger

            self.set_logger(configure_logger(self.verbose, self.tensorboard_log, "offline"))
        evals: list[dict[str, float]] = []
        chunk = eval_freq if eval_freq and eval_env is not None else gradient_steps
        done = 0
        while done < gradient_steps:
            n = min(chunk, gradient_steps - done)
            self._offline_updates(n)
            done += n
            if eval_env is not None:
                evals.append(self._evaluate(eval_env, n_eval_episodes, done, data.info))
        return {"dataset": data.info.name, "gradient_steps": done, "evals": evals}

    def _offline_updates(self, n: int) -> None:
        """``n`` gradient steps on the buffer (DQN overrides it to update its target network, which
        SB3 does per environment step)."""
        self.train(n, self.batch_size)

    def _offline_actions(self, data: Transitions) -> np.ndarray:
        """The dataset's actions as SB3 stores them: scaled to ``[-1, 1]`` (Box), indices (Discrete)."""
        if data.discrete:
            return data.actions
        return self.policy.scale_action(data.actions).astype(np.float32)

    def _setup_on(self, prepared: Transitions) -> None:
        store = TransitionStore.from_transitions(prepared, self.device)
        self.setup_regularizers(store=store, transitions=prepared, obs_normalizer=self.obs_normalizer)

    def _restore_offline(self) -> None:
        """On ``load()``: regularizers that index the dataset (PRDC's kNN) get it again, rebuilt
        from the dataset name ``learn_offline`` was given, normalised with the saved statistics (the
        replay buffer is SB3's to save: ``save_replay_buffer``). A dataset given as an object is not
        saved: ``learn_offline`` sets them up again."""
        name = getattr(self, "offline_dataset", None)
        if not getattr(self, "_offline_only", []) or not isinstance(name, str):
            return
        data = self._load_offline(name)
        norm = self.obs_normalizer or ObsNormalizer.identity(data.obs_dim)
        n = len(data)
        self._setup_on(
            dataclasses.replace(
                data,
                observations=norm(data.observations.reshape(n, -1)),
                next_observations=norm(data.next_observations.reshape(n, -1)),
                actions=self._offline_actions(data),
            )
        )

    def _load_offline(self, dataset: str | Transitions) -> Transitions:
        if isinstance(dataset, Transitions):
            data = dataset
        else:
            from rlreg.envs.datasets import load_dataset

            data = load_dataset(dataset)
        data = data.validate(where=f"dataset {data.info.name}")
        space, where = self.action_space, f"dataset {data.info.name}"
        shape = self.observation_space.shape
        check(
            data.obs_dim == int(np.prod(shape)),
            f"{where} has observations of {data.obs_dim} values; the model's are {shape} "
            f"({int(np.prod(shape))} values)",
            "build the model on the environment the data was collected in",
        )
        if isinstance(space, gym.spaces.Discrete):
            data.check_action_count(int(space.n), where=where)
        else:
            check(
                not data.discrete and data.act_dim == space.shape[0],
                f"{where} has {'discrete actions' if data.discrete else f'action dim {data.act_dim}'}; "
                f"the model's action space is {space}",
                "build the model on the environment the data was collected in",
            )
            data.check_action_bounds(space.low, space.high, where=where)
        return data

    def _fill_buffer(self, data: Transitions, normalize_obs: bool) -> Transitions:
        """Write the (normalised, scaled) dataset into the replay buffer; returns it as rlreg data."""
        n, buf = len(data), self.replay_buffer
        check(
            n <= buf.buffer_size and buf.n_envs == 1,
            f"dataset {data.info.name} has {n} transitions; the replay buffer holds {buf.buffer_size} "
            f"(n_envs={buf.n_envs})",
            f"build the model with buffer_size >= {n} and one environment",
        )
        self.obs_normalizer = ObsNormalizer.from_observations(data.observations) if normalize_obs else None
        norm = self.obs_normalizer or ObsNormalizer.identity(data.obs_dim)
        obs = norm(data.observations.reshape(n, -1))
        next_obs = norm(data.next_observations.reshape(n, -1))
        actions = self._offline_actions(data)
        shape = (n, 1, *self.observation_space.shape)
        buf.observations[:n] = obs.reshape(shape)
        buf.next_observations[:n] = next_obs.reshape(shape)
        buf.actions[:n] = actions.reshape(n, 1, -1)
        buf.rewards[:n, 0] = data.rewards
        buf.dones[:n, 0] = data.terminals
        buf.timeouts[:n, 0] = 0.0  # bootstrapping masked by terminals only
        buf.full = n == buf.buffer_size
        buf.pos = 0 if buf.full else n
        self._dataset_rows = n
        return dataclasses.replace(data, observations=obs, next_observations=next_obs, actions=actions)

    def _evaluate(self, env: Any, episodes: int, step: int, info: DatasetInfo) -> dict[str, float]:
        from stable_baselines3.common.evaluation import evaluate_policy

        mean, std = evaluate_policy(self, env, n_eval_episodes=episodes, deterministic=True)
        score = info.normalized_score(float(mean))
        row = {"step": step, "return_mean": float(mean), "return_std": float(std)}
        row["score"] = float("nan") if score is None else score
        self.logger.record("eval/return_mean", row["return_mean"])
        if score is not None:
            self.logger.record("eval/normalized_score", score)
        self.logger.dump(step)
        return row
