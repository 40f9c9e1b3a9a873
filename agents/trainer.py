"""Runs: building one from a resolved config, the run folder, training, resuming, evaluating.

:func:`build_run` turns a config into a :class:`Run`: the problem (a dataset, a Gymnasium
environment or a MinAtar game: spaces, normalizer, evaluator), the agent (looked up in the agent
registry, built by ``Agent.from_spec``), its regularizers, and the data source the agent's ``data``
declaration asks for (:mod:`rlreg.agents.sources`); the loop itself is
:class:`rlreg.agents.loop.TrainingLoop`. A run folder holds::

    config.json     the resolved config (recipe + overrides + --set), written first
    metrics.csv     step, time, updates_per_s and the mean of every logged term per log_every steps
    eval.csv        step, return_mean, return_std, length_mean, score (normalized) per evaluation
    checkpoint.pt   everything needed to resume exactly (written atomically)
    summary.json    written last: final and best normalized scores, normalizer, speed
    tb/             TensorBoard scalars (optional)

Exact resume: a checkpoint holds the networks, optimizers, regularizer state, the update counter,
the data source's state (sampling generator, replay, environments, running episodes) and the
global RNG states. Resuming from step k truncates the CSVs to step k and continues; on CPU the
numbers are those of an uninterrupted run. (Online Gymnasium runs restart the episode that was in
progress, since simulator state is not checkpointed; MinAtar's is, so resuming is exact there too.)
Online MinAtar runs report raw returns (no reference scores: the ``score`` column stays empty).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rlreg.agents.base import agent_class, agent_names
from rlreg.agents.config import TrainConfig, config_from_dict
from rlreg.agents.loop import CHECKPOINT, TrainingLoop
from rlreg.agents.recipes import validate_config
from rlreg.agents.sources import (
    GREEDY_SEED_OFFSET,
    DataSource,
    GymEnvs,
    MinAtarEnvs,
    OfflineSampler,
    ReplayCollector,
    RolloutCollector,
    WindowSource,
)
from rlreg.envs.evaluation import Evaluator, MinAtarEvaluator
from rlreg.envs.registry import make_env, minatar_game

import rlreg
from rlreg.checkpoint import load_checkpoint, seed_everything
from rlreg.data.transitions import (
    DatasetInfo,
    ObsNormalizer,
    RewardTransform,
    Transitions,
    TransitionStore,
)
from rlreg.errors import RlregError, check
from rlreg.locking import FolderLock
from rlreg.logging import TensorBoardLogger
from rlreg.regularizers import REGISTRY, SetupSource
from rlreg.threads import default_threads

__all__ = ["Run", "train", "resume", "evaluate_run", "resolve_device", "build_run", "new_run_dir"]


def resolve_device(device: str) -> torch.device:
    """``auto`` → cuda when available else cpu; errors clearly for an unavailable device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check(
        device in ("cpu", "cuda") or device.startswith("cuda:"),
        f"unknown device '{device}'",
        "use --device cpu, cuda or auto",
    )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RlregError(
            f"device '{device}' requested but CUDA is not available",
            "use --device cpu (or auto), or install a CUDA build of torch on a GPU machine",
        )
    return torch.device(device)


def new_run_dir(cfg: dict[str, Any], root: str | os.PathLike = "runs") -> Path:
    """``runs/<recipe>-<dataset|env>-s<seed>-<UTC time>`` (a suffix keeps it unique)."""
    src = (cfg.get("dataset") or cfg.get("env") or "run").split(":")[-1]
    src = Path(src).stem.replace("/", "_")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{cfg['recipe']}-{src}-s{cfg['seed']}-{stamp}"
    out, i = base, 1
    while out.exists():
        out, i = Path(f"{base}-{i}"), i + 1
    return out


@dataclasses.dataclass
class Problem:
    """What a run trains on: spaces, data or environments, evaluation (before the agent exists)."""

    spec: SetupSource
    info: DatasetInfo
    normalizer: ObsNormalizer
    env_id: str | None
    make_source: Callable[[type, Any], DataSource]
    """``make_source(agent_class, agent_config)``: the data source the agent's ``data`` declaration
    asks for, once its batch size is known."""
    evaluator: Evaluator | MinAtarEvaluator | None = None
    transitions: Transitions | None = None
    minatar: bool = False


@dataclasses.dataclass
class Run:
    """Everything a training or evaluation session needs, built from a resolved config."""

    cfg: dict[str, Any]
    train_cfg: TrainConfig
    device: torch.device
    agent: Any
    info: DatasetInfo
    normalizer: ObsNormalizer
    source: DataSource
    transitions: Transitions | None
    env_id: str | None
    evaluator: Evaluator | MinAtarEvaluator | None
    minatar: bool = False

    @property
    def online(self) -> bool:
        return self.cfg.get("dataset") is None

    @property
    def store(self) -> TransitionStore | None:
        """The dataset or replay store of the run's source (None where it has none)."""
        return getattr(self.source, "store", None)

    def policy_fn(self) -> Callable[[Any], Any]:
        """The evaluation policy: greedy actions, observations normalized as in training."""
        agent, device = self.agent, self.device
        if self.minatar:
            return lambda obs: agent.act(obs.float(), "greedy")
        norm = self.normalizer

        def policy(obs: Any) -> np.ndarray:
            x = torch.as_tensor(norm(np.asarray(obs, np.float32).reshape(len(obs), -1)), device=device)
            return agent.act(x, "greedy").cpu().numpy()

        return policy

    def make_evaluator(self, episodes: int, seed: int | None = None) -> Evaluator | MinAtarEvaluator:
        """Evaluation episodes seeded ``seed + i`` (default: the run's ``seed + eval_seed_offset``)."""
        if seed is None:
            seed = self.cfg["seed"] + self.train_cfg.eval_seed_offset
        return _evaluator(self.env_id, self.minatar, episodes, seed, self.train_cfg, self.device, self.info)

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> dict[str, float]:
        """Run the evaluation episodes; returns return_mean/std, length_mean and score.

        By default the run's own evaluator (the training evaluations' episodes); ``episodes`` or
        ``seed`` ask for other ones.
        """
        ev = self.evaluator
        if seed is not None or (episodes is not None and (ev is None or episodes != ev.episodes)):
            ev = self.make_evaluator(episodes or (ev.episodes if ev is not None else 10), seed)
        if ev is None:
            raise RlregError(
                "evaluation is disabled for this run (eval_episodes=0 or no environment)",
                "pass --episodes N or set train.eval_episodes",
            )
        record = self.agent.has_evaluation_stats() and isinstance(ev, Evaluator)
        res = ev.run(self.policy_fn(), record=True) if record else ev.run(self.policy_fn())
        score = self.info.normalized_score(res.mean_return)
        row = {
            "return_mean": res.mean_return,
            "return_std": res.std_return,
            "length_mean": float(res.lengths.mean()),
            "score": float("nan") if score is None else score,
        }
        if record:
            norm = self.normalizer
            episodes = [
                dataclasses.replace(e, observations=norm(e.observations.reshape(len(e.rewards), -1)))
                for e in res.episodes
            ]
            row.update(self.agent.evaluation_stats(episodes))
        return row


def _evaluator(
    env_id: str | None,
    minatar: bool,
    episodes: int,
    seed: int,
    tc: TrainConfig,
    device: torch.device,
    info: DatasetInfo,
) -> Evaluator | MinAtarEvaluator:
    if minatar:
        return MinAtarEvaluator(
            minatar_game(env_id),
            episodes,
            seed,
            device,
            sticky_action_prob=tc.sticky_action_prob,
            max_episode_steps=tc.max_episode_steps or 10_000,
        )
    return Evaluator(env_id, episodes, seed, info.env_kwargs)


def _load_data(cfg: dict[str, Any], progress: bool) -> Transitions:
    from rlreg.envs.datasets import load_dataset

    data = load_dataset(cfg["dataset"], progress=progress).validate(where=f"dataset {cfg['dataset']}")
    check(
        not data.discrete,
        f"dataset {cfg['dataset']} has discrete actions; rlreg's own offline agents need continuous "
        "ones (its DQN agents train online, on MinAtar)",
        "train it offline with SB3's DQN: rlreg.agents.sb3.DQN('MlpPolicy', env, "
        f"...).learn_offline('{cfg['dataset']}', gradient_steps=...)",
    )
    return data


def build_run(cfg: dict[str, Any], progress: bool = False) -> Run:
    """Data source, normalizer, agent (with regularizers set up) and evaluator for ``cfg``."""
    validate_config(cfg)
    tc: TrainConfig = config_from_dict(TrainConfig, cfg["train"], "train")
    device = resolve_device(cfg["device"])
    seed_everything(cfg["seed"])
    agent_cls = agent_class(cfg["agent"])
    problem = _problem(cfg, tc, device, agent_cls, progress)
    agent_cfg = config_from_dict(agent_cls.Config, cfg["agent_config"], "agent")
    regs = [
        REGISTRY[r["name"]](config_from_dict(REGISTRY[r["name"]].Config, r["config"], r["name"]))
        for r in cfg["regularizers"]
    ]
    _set_threads(tc, device)
    agent = agent_cls.from_spec(agent_cfg, problem.spec, regs, device, cfg["seed"])
    _check_run_features(cfg, tc, device, agent)
    source = problem.make_source(agent_cls, agent_cfg)
    spec = dataclasses.replace(problem.spec, lookahead=getattr(source, "lookahead", None))
    agent.setup(spec)
    return Run(
        cfg,
        tc,
        device,
        agent,
        problem.info,
        problem.normalizer,
        source,
        problem.transitions,
        problem.env_id,
        problem.evaluator,
        problem.minatar,
    )


def _check_run_features(cfg: dict[str, Any], tc: TrainConfig, device: torch.device, agent: Any) -> None:
    """Settings that need something of the agent or the device (checked before anything runs)."""
    if tc.cuda_graph:
        check(
            device.type == "cuda",
            "train.cuda_graph needs a CUDA device",
            "train with --device cuda, or drop train.cuda_graph",
        )
        bad = [r.name for r in agent.regularizers if not r.capturable]
        check(
            not bad, f"regularizer(s) {bad} cannot be captured in a CUDA graph", "set train.cuda_graph=false"
        )
    check(
        tc.snapshot_every == 0 or agent.policy_network() is not None,
        f"train.snapshot_every saves TD3 policy files; the {cfg['agent']} agent has none",
        "set train.snapshot_every=0",
    )


def _set_threads(tc: TrainConfig, device: torch.device) -> None:
    """Torch intra-op threads on CPU: ``train.threads``, or rlreg's default when it is 0."""
    if device.type == "cpu":
        torch.set_num_threads(tc.threads or default_threads())


def _problem(
    cfg: dict[str, Any], tc: TrainConfig, device: torch.device, agent_cls: type, progress: bool
) -> Problem:
    """The run's problem by its data: a dataset, a MinAtar game or a Gymnasium environment."""
    game = minatar_game(cfg.get("env"))
    if game is not None:
        return _minatar_problem(cfg, tc, device, game)
    check(
        tc.greedy_envs == 0,
        f"train.greedy_envs={tc.greedy_envs}: concurrent greedy environments are for online MinAtar runs",
        "leave train.greedy_envs at 0 for Gymnasium environments and datasets",
    )
    if cfg.get("dataset") is not None:
        check(
            agent_cls.action_space != "discrete",
            f"the {cfg['agent']} agent trains online only (rlreg's own agents do not train offline on "
            "discrete actions yet)",
            "pass --env minatar:<game> (asterix, breakout, freeway, seaquest, space_invaders), no "
            "--dataset; or train a discrete dataset offline with SB3's DQN: "
            "rlreg.agents.sb3.DQN(...).learn_offline(DATASET, gradient_steps=...)",
        )
        if agent_cls.data == "rollout":  # before the data is loaded (or made)
            _check_data(agent_cls, "transitions", "a dataset")
        check(
            tc.num_envs == 1,
            f"train.num_envs={tc.num_envs}: parallel training environments are for online runs",
            "leave train.num_envs at 1 for datasets",
        )
        return _dataset_problem(cfg, tc, device, progress)
    check(
        cfg.get("env") is not None,
        "neither --dataset nor --env given",
        "pass --dataset SPEC for offline training or --env ENV_ID for online training",
    )
    return _gym_problem(cfg, tc, device, agent_cls)


def _env_spaces(env_id: str, info: DatasetInfo, device: torch.device) -> dict[str, Any]:
    """The :class:`SetupSource` fields of a Gymnasium environment's spaces (1-D Box or Discrete)."""
    import gymnasium as gym

    env = make_env(env_id, **info.env_kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    fields: dict[str, Any] = {
        "obs_dim": int(np.prod(obs_space.shape)),
        "obs_shape": tuple(int(x) for x in obs_space.shape),
    }
    if isinstance(act_space, gym.spaces.Discrete):
        return dict(fields, num_actions=int(act_space.n))
    check(
        hasattr(act_space, "low") and len(act_space.shape) == 1,
        f"environment {env_id} has a {type(act_space).__name__} action space; rlreg's agents need a "
        "1-D Box or Discrete",
        "use an environment with a Box or Discrete action space",
    )
    low, high = (
        torch.as_tensor(np.asarray(x, np.float32), device=device) for x in (act_space.low, act_space.high)
    )
    return dict(fields, act_dim=int(act_space.shape[0]), action_low=low, action_high=high)


def _box_spaces(env_id: str, info: DatasetInfo, agent: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """obs dim, action dim and bounds of a Gymnasium environment with a 1-D Box action space."""
    env = make_env(env_id, **info.env_kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    check(
        hasattr(act_space, "low") and len(act_space.shape) == 1,
        f"environment {env_id} has a {type(act_space).__name__} action space; the {agent} agent "
        "needs a 1-D Box",
        "use an environment with continuous actions",
    )
    return int(np.prod(obs_space.shape)), int(act_space.shape[0]), act_space.low, act_space.high


def _dataset_problem(cfg: dict[str, Any], tc: TrainConfig, device: torch.device, progress: bool) -> Problem:
    """Offline: the dataset (normalized, on the device), sampled uniformly."""
    transitions = _load_data(cfg, progress)
    info = transitions.info
    env_id = cfg.get("env") or info.env_id
    evaluator = None
    if env_id is None:
        check(
            tc.eval_episodes == 0,
            f"dataset {cfg['dataset']} does not say which environment it comes from, so it cannot be "
            "evaluated",
            "pass --env ENV_ID (e.g. Hopper-v5), or --eval-episodes 0 to train without evaluation",
        )
        obs_dim, act_dim = transitions.obs_dim, transitions.act_dim
        low, high = transitions.actions.min(0), transitions.actions.max(0)
    else:
        obs_dim, act_dim, low, high = _box_spaces(env_id, info, cfg["agent"])
        check(
            transitions.obs_dim == obs_dim and transitions.act_dim == act_dim,
            f"dataset has obs dim {transitions.obs_dim} / action dim {transitions.act_dim} but "
            f"environment {env_id} has {obs_dim} / {act_dim}",
            "pass the --env the data was collected in",
        )
        transitions.check_action_bounds(low, high, where=f"dataset {cfg['dataset']}")
        if tc.eval_episodes > 0:
            evaluator = Evaluator(
                env_id, tc.eval_episodes, cfg["seed"] + tc.eval_seed_offset, info.env_kwargs
            )
    normalizer = (
        ObsNormalizer.from_observations(transitions.observations, tc.obs_norm_eps)
        if tc.normalize_obs
        else ObsNormalizer.identity(transitions.obs_dim)
    )
    reward_fn = RewardTransform(tc.reward_scale, tc.reward_shift)
    prepared = dataclasses.replace(
        transitions,
        observations=normalizer(transitions.observations.reshape(len(transitions), -1)),
        next_observations=normalizer(transitions.next_observations.reshape(len(transitions), -1)),
        rewards=reward_fn(transitions.rewards),
    )
    store = TransitionStore.from_transitions(prepared, device)
    spec = SetupSource(
        obs_dim=obs_dim,
        act_dim=act_dim,
        action_low=torch.as_tensor(np.asarray(low, np.float32), device=device),
        action_high=torch.as_tensor(np.asarray(high, np.float32), device=device),
        store=store,
        transitions=prepared,
        obs_normalizer=normalizer,
        dataset_name=cfg.get("dataset"),
        total_steps=tc.steps,
    )

    def make_source(agent_cls: type, ac: Any) -> DataSource:
        if agent_cls.data == "windows":
            return WindowSource(store, ac.context, ac.batch_size, device, cfg["seed"], ac.gamma)
        _check_data(agent_cls, "transitions", "a dataset")
        return OfflineSampler(store, ac.batch_size, device, cfg["seed"])

    return Problem(spec, info, normalizer, env_id, make_source, evaluator, prepared)


def _gym_problem(cfg: dict[str, Any], tc: TrainConfig, device: torch.device, agent_cls: type) -> Problem:
    """Online in Gymnasium environments: a replay or rollout collector over ``train.num_envs`` of them."""
    env_id = cfg["env"]
    info = DatasetInfo(name=env_id, env_id=env_id)
    spec = SetupSource(
        **_env_spaces(env_id, info, device), learning_starts=tc.learning_starts, total_steps=tc.steps
    )
    wanted = agent_cls.action_space
    check(
        wanted == "any" or (wanted == "discrete") == spec.discrete,
        f"the {cfg['agent']} agent needs {wanted} actions, and {env_id}'s are "
        f"{'discrete' if spec.discrete else 'continuous'}",
        f"train a recipe for {'discrete' if spec.discrete else 'continuous'} actions on {env_id} "
        "(`rlreg agents` lists them), or pick an environment with " + wanted + " actions",
    )
    evaluator = None
    if tc.eval_episodes > 0:
        evaluator = Evaluator(env_id, tc.eval_episodes, cfg["seed"] + tc.eval_seed_offset, info.env_kwargs)

    def make_source(agent_cls: type, ac: Any) -> DataSource:
        envs = GymEnvs(env_id, tc.num_envs, info.env_kwargs, device)
        return _online_source(agent_cls, ac, envs, spec, tc, cfg["seed"], device)

    return Problem(spec, info, ObsNormalizer.identity(spec.obs_dim), env_id, make_source, evaluator)


def _online_source(
    agent_cls: type,
    ac: Any,
    envs: GymEnvs | MinAtarEnvs,
    spec: SetupSource,
    tc: TrainConfig,
    seed: int,
    device: torch.device,
    greedy: MinAtarEnvs | None = None,
) -> DataSource:
    """The collector the agent's ``data`` asks for: on-policy rollouts or a replay of transitions."""
    if agent_cls.data == "rollout":
        return RolloutCollector(envs, ac.n_steps, ac.batch_size, device, seed)
    _check_data(agent_cls, "transitions", "an environment")
    # the replay's capacity is train.replay_size (not capped by train.steps, so a run resumed with
    # more steps keeps its replay); MinAtar frames are stored as uint8
    shape, n = tuple(envs.obs_shape), tc.num_envs
    if spec.discrete:
        obs_dtype = torch.uint8 if isinstance(envs, MinAtarEnvs) else torch.float32
        kwargs = {"obs_shape": shape, "num_actions": spec.num_actions, "obs_dtype": obs_dtype}
        replay = TransitionStore(tc.replay_size, device=device, num_envs=n, **kwargs)
    else:
        replay = TransitionStore(tc.replay_size, spec.obs_dim, spec.act_dim, device, num_envs=n)
    return ReplayCollector(envs, replay, ac.batch_size, device, seed, tc.learning_starts, greedy)


def _check_data(agent_cls: type, kind: str, given: str) -> None:
    check(
        agent_cls.data == kind,
        f"the {agent_cls.name} agent trains from {agent_cls.data}, which {given} does not give here",
        "train it where its data source is available (rollouts and replay: --env; transitions and "
        "windows: --dataset)",
    )


def _minatar_problem(cfg: dict[str, Any], tc: TrainConfig, device: torch.device, game: str) -> Problem:
    """Online on batched MinAtar: environments, replay, greedy evaluator."""
    kind = cfg["agent"]
    check(
        agent_class(kind).action_space != "continuous",
        f"the {kind} agent needs continuous actions; MinAtar's are discrete",
        "train a discrete-action recipe on MinAtar (rlreg train dqn|mdqn|dqn-minatar|ppo-minatar --env "
        "minatar:GAME)",
    )
    check(
        cfg.get("dataset") is None,
        f"the {kind} agent trains online on batched MinAtar only (offline datasets are not supported)",
        "pass --env minatar:<game> (asterix, breakout, freeway, seaquest, space_invaders) and no --dataset",
    )
    check(
        tc.steps % tc.num_envs == 0,
        f"train.steps ({tc.steps}) is not a multiple of train.num_envs ({tc.num_envs}); every iteration "
        "steps all environments",
        f"use e.g. --steps {(tc.steps // tc.num_envs + 1) * tc.num_envs}",
    )
    check(
        not tc.cuda_graph,
        f"train.cuda_graph is not supported by the {kind} agent",
        "set train.cuda_graph=false",
    )
    env_id = cfg["env"]
    info = DatasetInfo(
        name=env_id, env_id=env_id, normalizer="none", source="MinAtar (batched torch): raw returns"
    )

    def envs(n: int, seed: int) -> MinAtarEnvs:
        steps = tc.max_episode_steps or None
        return MinAtarEnvs(game, n, device, seed, tc.sticky_action_prob, steps)

    train_envs = envs(tc.num_envs, cfg["seed"])
    spec = SetupSource(
        obs_dim=int(np.prod(train_envs.obs_shape)),
        obs_shape=tuple(train_envs.obs_shape),
        num_actions=train_envs.num_actions,
        learning_starts=tc.learning_starts,
        total_steps=tc.steps,
    )

    def make_source(agent_cls: type, ac: Any) -> DataSource:
        greedy = envs(tc.greedy_envs, cfg["seed"] + GREEDY_SEED_OFFSET) if tc.greedy_envs else None
        return _online_source(agent_cls, ac, train_envs, spec, tc, cfg["seed"], device, greedy)

    evaluator = None
    if tc.eval_episodes > 0:
        evaluator = _evaluator(
            env_id, True, tc.eval_episodes, cfg["seed"] + tc.eval_seed_offset, tc, device, info
        )
    return Problem(
        spec, info, ObsNormalizer.identity(spec.obs_dim), env_id, make_source, evaluator, minatar=True
    )


# ---------------------------------------------------------------------- training
def _claim_run_folder(out: Path) -> tuple[FolderLock, list[Path]]:
    """Check that ``out`` can hold a new run, create it and lock it: before anything is loaded.

    Returns the held lock and the folders created here, deepest first (so a run that fails while
    being built can remove them again). A second writer stops here, naming the holder's PID.
    """
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is an existing file" if parent == out else f"lies under {parent}, which is a file"
            raise RlregError(f"--out {out} {where}", "choose --out DIR, a folder that does not exist yet")
    created = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(
            out,
            "run folder",
            f"wait for it to finish or stop it; resume later with `rlreg train --resume {out}`",
        ).acquire()
    except OSError as e:
        raise RlregError(
            f"cannot write the run folder {out} ({e.strerror or e})",
            "choose --out DIR on a writable disk, or fix the folder's permissions",
        ) from e
    if (out / "config.json").exists():
        lock.release()
        raise RlregError(
            f"{out} already holds a run",
            f"resume it with `rlreg train --resume {out}`, or choose another --out",
        )
    return lock, created


def _release_new_folder(out: Path, lock: FolderLock, created: list[Path]) -> None:
    """Undo :func:`_claim_run_folder` after a failure: no empty run folder is left behind."""
    lock.release()
    if created and not (out / "config.json").exists():
        lock.path.unlink(missing_ok=True)
        for folder in created:  # deepest first; rmdir removes only empty folders
            with contextlib.suppress(OSError):
                folder.rmdir()


def train(
    cfg: dict[str, Any],
    out_dir: str | os.PathLike,
    progress: bool = True,
    callback: Callable[[int, Run], None] | None = None,
    announce: bool = False,
) -> dict[str, Any]:
    """Start a new run in ``out_dir`` (must not hold a run) and train it to the end.

    The folder is checked, created and locked (one writer per run folder) before the data is
    loaded; ``announce`` prints ``rlreg: run folder DIR`` once its ``config.json`` is written.
    """
    out = Path(out_dir)
    if cfg["train"].get("tensorboard"):
        TensorBoardLogger.check_available()  # fail before anything is written
    lock, created = _claim_run_folder(out)
    try:
        run = build_run(cfg, progress=progress)  # every check runs before config.json is written
        cfg = dict(
            cfg,
            rlreg_version=rlreg.__version__,
            dataset_info=dataclasses.asdict(run.info),
            obs_normalizer=run.normalizer.state_dict(),
        )
        if run.transitions is not None:
            cfg["dataset_digest"] = run.transitions.digest()
        _write_json(out / "config.json", cfg)
    except BaseException:
        _release_new_folder(out, lock, created)
        raise
    if announce:
        print(f"rlreg: run folder {out}", flush=True)
    try:
        return TrainingLoop(run, out, progress, callback).train(0)
    finally:
        lock.release()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


_RUN_KEYS = ("recipe", "agent", "seed", "device", "agent_config", "regularizers", "train")


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a run folder, checked to be a run config (one clear error if not)."""
    out = Path(run_dir)
    cfg_path = out / "config.json"
    if not out.is_dir() or not cfg_path.is_file():
        raise RlregError(
            f"{out} is not an rlreg run folder (no config.json)",
            "pass the folder `rlreg train` created (it holds config.json and checkpoint.pt)",
        )
    fix = f"restore {cfg_path} from a copy, or start a new run"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RlregError(f"{cfg_path} is not valid JSON ({e})", fix) from e
    if not isinstance(cfg, dict):
        raise RlregError(f"{cfg_path} holds a JSON {type(cfg).__name__}, not a run config", fix)
    missing = [k for k in _RUN_KEYS if k not in cfg]
    if missing:
        raise RlregError(f"{cfg_path} is not a run config: it lacks {', '.join(map(repr, missing))}", fix)
    if cfg["agent"] not in agent_names():
        raise RlregError(f"{cfg_path} names unknown agent kind {cfg['agent']!r}", fix)
    try:
        validate_config(cfg)
    except (KeyError, TypeError, AttributeError) as e:
        raise RlregError(f"{cfg_path} is not a valid run config ({type(e).__name__}: {e})", fix) from e
    return cfg


def resume(
    run_dir: str | os.PathLike,
    steps: int | None = None,
    progress: bool = True,
    callback: Callable[[int, Run], None] | None = None,
) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its checkpoint (optionally to a new total of ``steps``)."""
    out = Path(run_dir)
    cfg = read_run_config(out)
    try:
        lock = FolderLock(out, "run folder", "wait for it to finish, or stop it before resuming").acquire()
    except OSError as e:
        raise RlregError(f"cannot lock the run folder {out} ({e.strerror or e})", "make it writable") from e
    try:
        # a checkpoint being written when the run was killed: never used, never kept
        (out / (CHECKPOINT + ".tmp")).unlink(missing_ok=True)
        state = load_checkpoint(out / CHECKPOINT)
        if steps is not None:
            check(
                steps >= state["step"],
                f"--steps {steps} is below the checkpoint's step {state['step']}",
                f"pass --steps >= {state['step']}",
            )
            cfg["train"]["steps"] = steps
        run = build_run(cfg, progress=progress)
        if run.transitions is not None and cfg.get("dataset_digest") not in (None, run.transitions.digest()):
            raise RlregError(
                f"dataset {cfg['dataset']} has changed since the run started (digest differs)",
                "resume with the original data, or start a new run",
            )
        if steps is not None:
            _write_json(out / "config.json", cfg)
        loop = TrainingLoop(run, out, progress, callback)
        loop.restore(state, int(state["step"]))
        return loop.train(int(state["step"]))
    finally:
        lock.release()


def intervals(tc: TrainConfig, start: int, evaluates: bool) -> str:
    """What the loop will do when, in one line (printed at the start of a run)."""

    def every(n: int, what: str) -> str:
        if not n or n >= tc.steps:
            return f"{what} at the end"
        return f"{what} every {n} steps"

    parts = [
        f"steps {start} -> {tc.steps}",
        every(tc.log_every, "metrics"),
        every(tc.eval_every, f"evaluation ({tc.eval_episodes} episodes)") if evaluates else "no evaluation",
        every(tc.checkpoint_every, "checkpoint")
        + (f" and every {tc.checkpoint_minutes:g} min" if tc.checkpoint_minutes else ""),
    ]
    return "; ".join(parts)


def summarize(run: Run, evals: list[dict[str, float]], step: int, wall: float) -> dict[str, Any]:
    """The run's summary.json: final and best scores, normalizer, speed."""
    info = run.info
    final = evals[-1] if evals else None
    scored = [e for e in evals if e["score"] == e["score"]]
    best = max(scored, key=lambda e: e["score"]) if scored else None
    best_ret = max(evals, key=lambda e: e["return_mean"]) if evals else None
    return {
        "recipe": run.cfg["recipe"],
        "agent": run.cfg["agent"],
        "regularizers": [r["name"] for r in run.cfg["regularizers"]],
        "dataset": run.cfg.get("dataset"),
        "env_id": run.env_id,
        "seed": run.cfg["seed"],
        "steps": step,
        "normalizer": info.normalizer,
        "ref_min_score": info.ref_min_score,
        "ref_max_score": info.ref_max_score,
        "final_return": final["return_mean"] if final else None,
        "final_score": final["score"] if final and final["score"] == final["score"] else None,
        "best_score": best["score"] if best else None,
        "best_step": best["step"] if best else None,
        "best_return": best_ret["return_mean"] if best_ret else None,
        "best_return_step": best_ret["step"] if best_ret else None,
        "eval_episodes": run.train_cfg.eval_episodes,
        "wall_time_s": round(wall, 2),
        "device": str(run.device),
        "finished": True,
        "rlreg_version": rlreg.__version__,
    }


def evaluate_run(
    run_dir: str | os.PathLike, episodes: int | None = None, seed: int | None = None
) -> dict[str, float]:
    """Evaluate the latest checkpoint of a run on a fresh set of episodes.

    ``seed`` seeds episode ``i`` with ``seed + i``; by default a fresh random seed is drawn (and
    returned as ``seed``), so the episodes differ from the training evaluations' (those use
    ``run seed + train.eval_seed_offset``: pass that seed to repeat them).
    """
    out = Path(run_dir)
    cfg = read_run_config(out)
    if episodes is not None:
        check(episodes > 0, f"--episodes must be >= 1, got {episodes}", "pass --episodes N with N >= 1")
    if seed is None:
        seed = secrets.randbelow(2**31 - 2**20)
    check(
        0 <= seed < 2**31 - 2**20, f"--seed must be in [0, 2**31 - 2**20), got {seed}", "pass e.g. --seed 0"
    )
    state = load_checkpoint(out / CHECKPOINT)
    run = build_run(cfg)
    run.agent.load_state_dict(state["agent"])
    result = run.evaluate(episodes or run.train_cfg.eval_episodes or 10, seed=seed)
    return {"step": int(state["step"]), **result, "normalizer": run.info.normalizer, "seed": seed}
