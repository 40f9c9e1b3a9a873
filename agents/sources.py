"""Data sources: where the training loop's batches come from.

The loop (:mod:`rlreg.agents.loop`) asks a source, every iteration, to ``collect`` (step
environments, or nothing offline) and then, for each ``"update"`` the agent's schedule names, for a
``sample()``. Every source has the same small interface (:class:`DataSource`):

``spec(...) -> SetupSource``  spaces and data for the agent's and the regularizers' ``setup``
``collect(agent, step) -> n``  advance by one iteration; ``n`` loop steps were taken
``sample() -> batch``          the next batch for an update
``pop_stats() -> dict``        episode statistics since the last call (one host read)
``state_dict()`` / ``load_state_dict()``  exact resume (generators, replay, environments)

Sources here:

* :class:`OfflineSampler`: uniform batches from a dataset store; one loop step is one update. With
  the **look-ahead** feature (asked for by any regularizer through ``SetupSource.lookahead``), each
  batch is drawn one update early and handed to the asking regularizers before the current update
  runs, so work on it can overlap a whole update (PRDC's neighbour search). The batches and their
  order are the same with or without it.
* :class:`ReplayCollector`: online off-policy collection into a growing replay: N environments
  stepped together (Gymnasium environments, or batched MinAtar in torch, behind one interface:
  :class:`GymEnvs`, :class:`MinAtarEnvs`), transitions stored with terminations and truncations
  apart (a time-limited step still bootstraps from its true final observation), episode returns
  summed on the device. Optional concurrent greedy environments (DVW's protocol). Any Gymnasium
  vector env with SAME_STEP autoreset plugs in through :class:`VectorEnvs`.
* :class:`RolloutCollector` and :class:`WindowSource` (:mod:`rlreg.agents.sources_seq`): on-policy
  rollouts and trajectory windows for sequence models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlreg.data.transitions import TensorBatch, TransitionStore
from rlreg.errors import RlregError, check
from rlreg.regularizers.base import SetupSource

__all__ = [
    "DataSource",
    "OfflineSampler",
    "ReplayCollector",
    "GymEnvs",
    "MinAtarEnvs",
    "VectorEnvs",
    "GREEDY_SEED_OFFSET",
    "SAMPLE_SEED_OFFSET",
]

SAMPLE_SEED_OFFSET = 2
"""Batches are drawn from a generator seeded ``seed + 2``."""
ENV_SEED_OFFSET = 3
"""Gymnasium environments are seeded from a NumPy generator seeded ``seed + 3``."""
GREEDY_SEED_OFFSET = 10_000
"""The concurrent greedy environments use seed ``seed + GREEDY_SEED_OFFSET`` (their own streams)."""
SMOOTHING_EPISODES = 50
"""``greedy/return_last50``: mean over this many last greedy episodes (DVW's smoothing)."""


class DataSource:
    """Base of the data sources (see the module docstring). ``counts`` names what a loop step is."""

    counts = "updates"

    def __init__(self, batch_size: int, device: torch.device, seed: int) -> None:
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed + SAMPLE_SEED_OFFSET)

    def collect(self, agent: Any, step: int) -> int:
        return 1

    def sample(self) -> Any:
        raise NotImplementedError

    def pop_stats(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"].cpu())

    def close(self) -> None:
        """Release environments (nothing by default)."""

    def captured_update(self, agent: Any) -> Callable[[], dict[str, torch.Tensor]]:
        """``update() -> metrics``: a batch and the agent's update, replayed from CUDA graphs."""
        raise RlregError(
            f"train.cuda_graph is not supported with {type(self).__name__} data",
            "set train.cuda_graph=false",
        )


class OfflineSampler(DataSource):
    """Uniform batches (with replacement) from a dataset store, optionally drawn one update ahead."""

    def __init__(self, store: TransitionStore, batch_size: int, device: torch.device, seed: int) -> None:
        super().__init__(batch_size, device, seed)
        self.store = store
        self._consumers: list[Callable[[TensorBatch], None]] = []
        self._ahead: TensorBatch | None = None
        self._gen_before_ahead: torch.Tensor | None = None

    def lookahead(self, fn: Callable[[TensorBatch], None]) -> None:
        """Call ``fn(next_batch)`` after each batch is handed out, before its update runs."""
        self._consumers.append(fn)

    def sample(self) -> TensorBatch:
        if not self._consumers:
            return self.store.sample(self.batch_size, self.gen)
        batch = self._ahead if self._ahead is not None else self.store.sample(self.batch_size, self.gen)
        self._gen_before_ahead = self.gen.get_state()
        self._ahead = self.store.sample(self.batch_size, self.gen)
        for fn in self._consumers:
            fn(self._ahead)
        return batch

    def captured_update(self, agent: Any) -> Callable[[], dict[str, torch.Tensor]]:
        """Sampling and the update captured together (the agent's ``captured_steps``)."""
        check(not self._consumers, "train.cuda_graph cannot draw batches ahead", "set train.cuda_graph=false")
        return agent.captured_steps(self.store, self.batch_size, self.gen)

    def state_dict(self) -> dict[str, Any]:
        # with a batch drawn ahead, the state before it, so a resumed run draws it again
        ahead = self._ahead is not None
        return {"gen": self._gen_before_ahead if ahead else self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._ahead = self._gen_before_ahead = None


# ---------------------------------------------------------------------- environments
class GymEnvs:
    """N Gymnasium environments stepped in turn, as tensors, with same-step autoreset.

    ``step(actions)`` returns ``(obs, reward, terminated, truncated, final_obs)``: where an episode
    ended, ``final_obs`` is its true last observation and ``obs`` the first of the next episode.
    Environment ``i`` is reset first with seed ``s + i`` (``s`` drawn from the source's generator),
    then without a seed (its own stream continues). Simulator state is not checkpointed: a resumed
    run starts new episodes.
    """

    checkpointed = False

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict, device: torch.device) -> None:
        from rlreg.envs.registry import make_env

        self.envs = [make_env(env_id, **env_kwargs) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.device = device
        self.obs_shape = tuple(self.envs[0].observation_space.shape)

    def start(self, rng: np.random.Generator) -> torch.Tensor:
        seed = int(rng.integers(2**31))
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]
        self.action_space = self.envs[0].action_space
        self.action_space.seed(int(rng.integers(2**31)))
        return self._tensor(obs)

    def _tensor(self, rows: list) -> torch.Tensor:
        return torch.as_tensor(np.stack([np.asarray(r, np.float32) for r in rows]), device=self.device)

    def random_actions(self) -> torch.Tensor:
        """Uniform actions of the action space (float32 boxes, int64 discrete)."""
        rows = np.stack([self.action_space.sample() for _ in self.envs])
        return torch.as_tensor(
            rows.astype(np.float32) if rows.dtype.kind == "f" else rows, device=self.device
        )

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        acts = actions.cpu().numpy()
        nxt, final, rew, term, trunc = [], [], [], [], []
        for env, a in zip(self.envs, acts):
            o, r, te, tr, _ = env.step(a)
            final.append(o)
            if te or tr:
                o, _ = env.reset()
            nxt.append(o)
            rew.append(r)
            term.append(te)
            trunc.append(tr)
        flags = (torch.as_tensor(np.asarray(x, bool), device=self.device) for x in (term, trunc))
        reward = torch.as_tensor(np.asarray(rew, np.float64), device=self.device)
        return (self._tensor(nxt), reward, *flags, self._tensor(final))

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        for env in self.envs:
            env.close()


class MinAtarEnvs:
    """N batched MinAtar games (:class:`rlreg.envs.minatar.MinAtarBatch`, the core that
    ``MinAtarVectorEnv`` also wraps) with uint8 observations; checkpointed exactly."""

    checkpointed = True

    def __init__(
        self,
        game: str,
        num_envs: int,
        device: torch.device,
        seed: int,
        sticky_action_prob: float,
        max_episode_steps: int | None,
    ) -> None:
        from rlreg.envs.minatar import MinAtarBatch

        self.env = MinAtarBatch(
            game,
            num_envs,
            device,
            seed=seed,
            sticky_action_prob=sticky_action_prob,
            max_episode_steps=max_episode_steps,
            obs_dtype=torch.uint8,
        )
        self.num_envs = num_envs
        self.obs_shape = self.env.obs_shape
        self.num_actions = self.env.num_actions

    def start(self, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.env.observation()

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.env.step(actions)

    def state_dict(self) -> dict[str, Any]:
        return self.env.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)

    def close(self) -> None:
        pass


class VectorEnvs:
    """Any Gymnasium ``VectorEnv`` with ``SAME_STEP`` autoreset (``gym.make_vec(...,
    vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})``, or ``MinAtarVectorEnv``) as the
    collectors' tensor interface: ``info["final_obs"]`` gives the true last observation of the
    environments whose episode ended. NumPy or torch outputs. Not checkpointed (a resumed run
    restarts its episodes)."""

    checkpointed = False

    def __init__(self, env: Any, device: torch.device) -> None:
        from gymnasium.vector import AutoresetMode

        mode = getattr(env, "autoreset_mode", None) or env.metadata.get("autoreset_mode")
        check(
            mode == AutoresetMode.SAME_STEP,
            f"the vector env autoresets in mode {mode}; the collectors need SAME_STEP (final_obs)",
            'make it with vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP}',
        )
        self.env, self.device, self.num_envs = env, torch.device(device), env.num_envs
        self.obs_shape = tuple(env.single_observation_space.shape)

    def _tensor(self, x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(
            np.asarray(x) if not isinstance(x, torch.Tensor) else x, device=self.device, dtype=dtype
        )

    def start(self, rng: np.random.Generator) -> torch.Tensor:
        obs, _ = self.env.reset(seed=int(rng.integers(2**31)))
        self.env.action_space.seed(int(rng.integers(2**31)))
        return self._tensor(obs, torch.float32)

    def random_actions(self) -> torch.Tensor:
        return self._tensor(self.env.action_space.sample())

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        act = actions if getattr(self.env, "numpy", True) is False else actions.cpu().numpy()
        obs, reward, term, trunc, info = self.env.step(act)
        obs = self._tensor(obs, torch.float32)
        ended = self._tensor(info.get("_final_obs", np.zeros(self.num_envs, bool)), torch.bool)
        final = obs.clone()
        for i in torch.nonzero(ended).flatten().tolist():
            final[i] = self._tensor(info["final_obs"][i], torch.float32)
        flags = (self._tensor(x, torch.bool) for x in (term, trunc))
        return (obs, self._tensor(reward, torch.float64), *flags, final)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self.env.close()


# ---------------------------------------------------------------------- replay collection
class _EpisodeStats:
    """Returns and lengths of finished episodes, summed on the device (read when logging)."""

    def __init__(self, num_envs: int, device: torch.device) -> None:
        self.ret = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # episodes, Σ return, Σ length

    def add(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        self.ret += reward.double()
        self.length += 1
        d = done.double()
        self.sums += torch.stack([d.sum(), (self.ret * d).sum(), (self.length * d).sum()])
        self.ret.masked_fill_(done, 0.0)
        self.length.masked_fill_(done, 0)

    def pop(self) -> dict[str, float]:
        n, ret, length = self.sums.cpu().tolist()
        self.sums.zero_()
        if not n:
            return {}
        return {
            "rollout/episode_return": ret / n,
            "rollout/episode_length": length / n,
            "rollout/episodes": n,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"ep_return": self.ret.cpu(), "ep_length": self.length.cpu(), "stats": self.sums.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ret.copy_(state["ep_return"])
        self.length.copy_(state["ep_length"])
        self.sums.copy_(state["stats"])


class _GreedyEnvs:
    """Environments stepped beside training with the agent's greedy action (DVW's concurrent greedy
    environment): no replay, their own random streams; finished returns go to a ring on the device."""

    def __init__(self, envs: Any) -> None:
        self.envs = envs
        n = envs.num_envs
        device = envs.env.device if hasattr(envs, "env") else torch.device("cpu")
        self.obs = envs.start()
        self.ret = torch.zeros(n, dtype=torch.float64, device=device)
        # returns of finished episodes, the k-th ever at k mod capacity (one step ends at most n
        # episodes, so they never collide), plus a scratch slot for the others
        self.ring_size = SMOOTHING_EPISODES + n
        self.ring = torch.zeros(self.ring_size + 1, dtype=torch.float64, device=device)
        self.stats = torch.zeros(3, dtype=torch.float64, device=device)  # since log: n, Σ return; ever

    def step(self, agent: Any) -> None:
        obs, reward, terminated, truncated, _ = self.envs.step(agent.act(self.obs.float(), "greedy"))
        self.obs = obs
        ret = self.ret.add_(reward.double())
        done = terminated | truncated
        d = done.double()
        at = (self.stats[2] + d.cumsum(0) - 1).remainder(self.ring_size).long()
        self.ring[torch.where(done, at, self.ring_size)] = ret
        self.stats += torch.stack([d.sum(), (ret * d).sum(), d.sum()])
        ret.masked_fill_(done, 0.0)

    def pop(self) -> dict[str, float]:
        n, ret, ever = self.stats.cpu().tolist()
        self.stats[:2].zero_()
        if not n:
            return {}
        k = int(ever)
        newest = [(k - 1 - j) % self.ring_size for j in range(min(k, SMOOTHING_EPISODES))]
        recent = self.ring.cpu()[newest]
        return {
            "greedy/episode_return": ret / n,
            "greedy/episodes": int(n),
            "greedy/return_last50": float(recent.mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "greedy_env": self.envs.state_dict(),
            "greedy_obs": self.obs.cpu(),
            "greedy_return": self.ret.cpu(),
            "greedy_ring": self.ring.cpu(),
            "greedy_stats": self.stats.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.envs.load_state_dict(state["greedy_env"])
        self.obs = state["greedy_obs"].to(self.ret.device)
        self.ret.copy_(state["greedy_return"])
        self.ring.copy_(state["greedy_ring"])
        self.stats.copy_(state["greedy_stats"])


class ReplayCollector(DataSource):
    """Online off-policy data: step N environments with the agent's exploring actions, store the
    transitions in a replay on the device, sample uniform batches from it.

    One :meth:`collect` is one step of every environment (``num_envs`` loop steps). Before
    ``learning_starts`` an agent with ``random_warmup`` acts uniformly at random. The replay gets
    ``(obs, action, reward, final_obs, terminated)`` (truncation kept apart, so a time-limited step
    still bootstraps).
    """

    counts = "env_steps"

    def __init__(
        self,
        envs: GymEnvs | MinAtarEnvs,
        store: Any,
        batch_size: int,
        device: torch.device,
        seed: int,
        learning_starts: int = 0,
        greedy_envs: MinAtarEnvs | None = None,
    ) -> None:
        super().__init__(batch_size, device, seed)
        self.envs, self.store = envs, store
        self.num_envs = envs.num_envs
        self.learning_starts = int(learning_starts)
        self.env_rng = np.random.default_rng(seed + ENV_SEED_OFFSET)
        self.obs: torch.Tensor | None = None
        self.episodes = _EpisodeStats(self.num_envs, self.device)
        self.greedy = _GreedyEnvs(greedy_envs) if greedy_envs is not None else None

    def collect(self, agent: Any, step: int) -> int:
        if self.obs is None:  # started lazily: after a resume, from the restored generator
            self.obs = self.envs.start(self.env_rng)
        if agent.random_warmup and step < self.learning_starts:
            actions = self.envs.random_actions()
        else:
            actions = agent.act(self.obs.float(), "explore", step=step)
        next_obs, reward, terminated, truncated, final_obs = self.envs.step(actions)
        self.store.add(self.obs, actions, reward, final_obs, terminated, timeouts=truncated)
        self.obs = next_obs
        self.episodes.add(reward, terminated | truncated)
        if self.greedy is not None:
            self.greedy.step(agent)
        return self.num_envs

    def sample(self) -> TensorBatch:
        check(len(self.store) > 0, "sampling from an empty replay buffer", "add transitions before sampling")
        return self.store.sample(self.batch_size, self.gen)

    def captured_update(self, agent: Any) -> Callable[[], dict[str, torch.Tensor]]:
        """The update replayed from CUDA graphs, the batch drawn eagerly over the replay's current
        size; captured at the first update (once the replay has data)."""
        captured: list[Callable[[], dict[str, torch.Tensor]]] = []

        def update() -> dict[str, torch.Tensor]:
            if not captured:
                captured.append(
                    agent.captured_steps(self.store, self.batch_size, self.gen, sample_in_graph=False)
                )
            return captured[0]()

        return update

    def pop_stats(self) -> dict[str, float]:
        out = self.episodes.pop()
        if self.greedy is not None:
            out.update(self.greedy.pop())
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "gen": self.gen.get_state(),
            "replay": self.store.state_dict(),
            "env_rng": self.env_rng.bit_generator.state,
            **self.episodes.state_dict(),
        }
        if self.envs.checkpointed and self.obs is not None:
            state.update(env=self.envs.state_dict(), obs=self.obs.cpu())
        if self.greedy is not None:
            state.update(self.greedy.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.store.load_state_dict(state["replay"])
        self.env_rng.bit_generator.state = state["env_rng"]
        self.episodes.load_state_dict(state)
        if "env" in state:
            self.envs.load_state_dict(state["env"])
            self.obs = state["obs"].to(self.device)
        check(
            ("greedy_env" in state) == (self.greedy is not None),
            "the checkpoint and this run disagree on train.greedy_envs (concurrent greedy environments)",
            "resume with the train.greedy_envs the run was started with",
        )
        if self.greedy is not None:
            self.greedy.load_state_dict(state)

    def close(self) -> None:
        self.envs.close()


def setup_source(source: DataSource, **fields: Any) -> SetupSource:
    """A :class:`SetupSource` for ``source`` (its look-ahead hook where it has one)."""
    return SetupSource(lookahead=getattr(source, "lookahead", None), **fields)


# ---------------------------------------------------------------------- on-policy rollouts
class Rollout(dict):
    """One rollout of ``T`` steps × ``N`` environments: tensors shaped ``(T, N, ...)``.

    ``observations``, ``actions``, ``rewards``, ``terminated``, ``truncated`` and the agent's
    per-step outputs (``values``, ``log_probs``, ...: whatever ``act_info`` returned), plus
    ``next_values``: the value of the true next state of every step, for bootstrapping: the next
    step's value inside an episode, ``V(final_obs)`` where the episode was truncated (a time limit
    still bootstraps), 0 where it terminated, and ``V(obs_T)`` after the last step.
    """


def compute_gae(rollout: Rollout, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Generalised advantage estimates and returns (Schulman et al. 2016, arXiv:1506.02438):

    .. math:: \delta_t = r_t + \gamma (1 - \mathrm{term}_t) V_{next,t} - V_t,\qquad
              A_t = \delta_t + \gamma\lambda (1 - \mathrm{done}_t) A_{t+1}

    with ``done = terminated | truncated`` (an episode boundary stops the sum) and ``returns = A +
    V``. All ``(T, N)``.
    """
    term = rollout["terminated"].float()
    done = (rollout["terminated"] | rollout["truncated"]).float()
    values = rollout["values"]
    delta = rollout["rewards"] + gamma * (1.0 - term) * rollout["next_values"] - values
    adv = torch.zeros_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * (1.0 - done[t]) * running
        adv[t] = running
    return adv, adv + values


class RolloutCollector(DataSource):
    """On-policy data: ``T`` steps of ``N`` environments with the current policy, then epochs of
    minibatches over the ``T·N`` samples, then the rollout is discarded.

    The agent provides ``act_info(obs, step) -> (actions, {"values": (N,), "log_probs": (N,), ...})``
    (an ``env_actions`` entry, when given, is what the environments get instead of ``actions``, and
    is not stored) and ``values(obs) -> (N,)`` (bootstrap values, asked once per rollout for all the
    truncated steps together); after each rollout ``finish_rollout(rollout)``
    may return more per-step fields (PPO: advantages and returns from :func:`compute_gae`). Its
    schedule asks for ``epochs × T·N / batch_size`` updates when a rollout completes (``collect``
    returns ``T·N`` steps). Each minibatch is a dict of ``(batch_size, ...)`` tensors, from a fresh
    permutation per epoch (the source's generator).
    """

    counts = "env_steps"

    def __init__(
        self,
        envs: GymEnvs | MinAtarEnvs,
        n_steps: int,
        batch_size: int,
        device: torch.device,
        seed: int,
    ) -> None:
        n = n_steps * envs.num_envs
        check(
            batch_size >= 1 and n % batch_size == 0,
            f"a rollout of {n_steps} steps x {envs.num_envs} envs = {n} samples does not split into "
            f"minibatches of {batch_size}",
            "choose n_steps x num_envs divisible by the minibatch size (static shapes)",
        )
        super().__init__(batch_size, device, seed)
        self.envs, self.n_steps = envs, n_steps
        self.env_rng = np.random.default_rng(seed + ENV_SEED_OFFSET)
        self.obs: torch.Tensor | None = None
        self.episodes = _EpisodeStats(envs.num_envs, self.device)
        self.rollout: Rollout | None = None
        self._queue: list[dict[str, torch.Tensor]] = []

    def collect(self, agent: Any, step: int) -> int:
        if self.obs is None:
            self.obs = self.envs.start(self.env_rng)
        steps: list[dict[str, torch.Tensor]] = []
        for t in range(self.n_steps):
            obs = self.obs.float()
            actions, info = agent.act_info(obs, step + t * self.envs.num_envs)
            env_actions = info.pop("env_actions", actions)  # e.g. a Gaussian draw clipped to the box
            next_obs, reward, terminated, truncated, final_obs = self.envs.step(env_actions)
            row = {"observations": obs, "actions": actions, "rewards": reward.float()}
            row.update(terminated=terminated, truncated=truncated, final_obs=final_obs, **info)
            steps.append(row)
            self.episodes.add(reward, terminated | truncated)
            self.obs = next_obs
        rollout = Rollout({k: torch.stack([s[k] for s in steps]) for k in steps[0]})
        # bootstrap values of truncated steps: one batched pass (one host read) per rollout
        finals = rollout.pop("final_obs")
        cut = rollout["truncated"] & ~rollout["terminated"]
        boot = torch.zeros(cut.shape, dtype=torch.float32, device=self.device)
        where = cut.nonzero(as_tuple=True)
        if where[0].numel():
            boot[where] = agent.values(finals[where].float()).float()
        nxt = torch.cat([rollout["values"][1:], agent.values(self.obs.float())[None]])
        ended = rollout["terminated"] | rollout["truncated"]
        rollout["next_values"] = torch.where(ended, boot, nxt)
        rollout.update(getattr(agent, "finish_rollout", lambda r: {})(rollout))
        self.rollout, self._queue = rollout, []
        return self.n_steps * self.envs.num_envs

    def sample(self) -> dict[str, torch.Tensor]:
        """The next minibatch (a new epoch's permutation when the last one is used up)."""
        check(self.rollout is not None, "no rollout collected yet", "call collect before sample")
        if not self._queue:
            flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in self.rollout.items()}
            n = next(iter(flat.values())).shape[0]
            perm = torch.randperm(n, generator=self.gen, device=self.device)
            self._queue = [{k: v[idx] for k, v in flat.items()} for idx in perm.split(self.batch_size)]
        return self._queue.pop(0)

    def pop_stats(self) -> dict[str, float]:
        return self.episodes.pop()

    def state_dict(self) -> dict[str, Any]:
        # checkpoints fall between iterations: a rollout is collected and used up within one
        state = {"gen": self.gen.get_state(), "env_rng": self.env_rng.bit_generator.state}
        state.update(self.episodes.state_dict())
        if self.envs.checkpointed and self.obs is not None:
            state.update(env=self.envs.state_dict(), obs=self.obs.cpu())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.env_rng.bit_generator.state = state["env_rng"]
        self.episodes.load_state_dict(state)
        if "env" in state:
            self.envs.load_state_dict(state["env"])
            self.obs = state["obs"].to(self.device)

    def close(self) -> None:
        self.envs.close()


class WindowSource(DataSource):
    """Trajectory windows of a dataset for sequence models (Decision Transformer style): each
    ``sample()`` is a :class:`rlreg.data.windows.WindowBatch` of ``K``-step windows with
    returns-to-go, timesteps, attention masks and left padding; one loop step is one update."""

    def __init__(
        self,
        store: TransitionStore,
        context: int,
        batch_size: int,
        device: torch.device,
        seed: int,
        gamma: float,
    ) -> None:
        from rlreg.data.windows import WindowSampler

        super().__init__(batch_size, device, seed)
        self.store = store
        self.sampler = WindowSampler(store, context, batch_size, self.gen, gamma=gamma)

    def sample(self) -> Any:
        return self.sampler.sample()
