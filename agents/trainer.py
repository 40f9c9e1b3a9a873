"""The one training loop for every agent: offline (dataset) and online (environment) runs.

A run folder holds::

    config.json     the resolved config (recipe + overrides + --set), written first
    metrics.csv     step, time, updates_per_s and the mean of every logged term per log_every steps
    eval.csv        step, return_mean, return_std, length_mean, score (normalized) per evaluation
    checkpoint.pt   everything needed to resume exactly (written atomically)
    summary.json    written last: final and best normalized scores, normalizer, speed
    tb/             TensorBoard scalars (optional)

Exact resume: a checkpoint holds the networks, optimizers, regularizer state, the update counter,
the sampling and noise generators and the global RNG states. Resuming from step k truncates the
CSVs to step k and continues; on CPU the numbers are those of an uninterrupted run. (Online Gymnasium
runs restart the episode that was in progress, since simulator state is not checkpointed.)

Online MinAtar runs (``--env minatar:<game>``, discrete-action agents such as ``dqn``) step
``train.num_envs`` batched environments per iteration (:class:`rlreg.agents.collect.MinAtarCollector`);
steps count environment steps summed over them, the agent's :meth:`schedule` says which gradient
updates and target copies are due, evaluation runs the greedy policy in separate environments
(:class:`rlreg.envs.evaluation.MinAtarEvaluator`) and reports raw returns (MinAtar has no reference
scores: the ``score`` column stays empty). Their checkpoints also hold the environments' state, the
replay and the running episodes, so resuming is exact there too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rlreg.agents.collect import MinAtarCollector
from rlreg.agents.config import AGENTS, TrainConfig, config_from_dict
from rlreg.agents.recipes import validate_config
from rlreg.envs.evaluation import Evaluator, MinAtarEvaluator
from rlreg.envs.registry import make_env, minatar_game

import rlreg
from rlreg.checkpoint import load_checkpoint, rng_state, save_atomic, seed_everything, set_rng_state
from rlreg.data.transitions import (
    DatasetInfo,
    ObsNormalizer,
    RewardTransform,
    Transitions,
    TransitionStore,
)
from rlreg.errors import RlregError, check
from rlreg.locking import FolderLock
from rlreg.logging import CSVLogger, MetricAccumulator, TensorBoardLogger, truncate_csv
from rlreg.regularizers import REGISTRY, SetupSource
from rlreg.threads import ThreadGovernor, default_threads

__all__ = ["Run", "train", "resume", "evaluate_run", "resolve_device", "build_run", "new_run_dir"]

CHECKPOINT = "checkpoint.pt"
BAR_SECONDS = 1.0
"""The progress bar moves at most this often (and at the last step), whatever ``log_every`` is."""


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
class Run:
    """Everything a training or evaluation session needs, built from a resolved config."""

    cfg: dict[str, Any]
    train_cfg: TrainConfig
    device: torch.device
    agent: Any
    info: DatasetInfo
    normalizer: ObsNormalizer
    store: TransitionStore | None
    transitions: Transitions | None
    env_id: str | None
    evaluator: Evaluator | MinAtarEvaluator | None
    collector: MinAtarCollector | None = None
    """Online MinAtar runs: the training environments and replay (None otherwise)."""

    @property
    def online(self) -> bool:
        return self.cfg.get("dataset") is None

    def policy_fn(self) -> Callable[[Any], Any]:
        if self.collector is not None:
            return self.agent.greedy
        norm, agent = self.normalizer, self.agent
        return lambda obs: agent.act(norm(np.asarray(obs, np.float32).reshape(len(obs), -1)))

    def make_evaluator(self, episodes: int, seed: int | None = None) -> Evaluator | MinAtarEvaluator:
        """Evaluation episodes seeded ``seed + i`` (default: the run's ``seed + eval_seed_offset``)."""
        if seed is None:
            seed = self.cfg["seed"] + self.train_cfg.eval_seed_offset
        if self.collector is not None:
            tc = self.train_cfg
            return MinAtarEvaluator(
                minatar_game(self.env_id),
                episodes,
                seed,
                self.device,
                sticky_action_prob=tc.sticky_action_prob,
                max_episode_steps=tc.max_episode_steps or 10_000,
            )
        return Evaluator(self.env_id, episodes, seed, self.info.env_kwargs)

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
        res = ev.run(self.policy_fn())
        score = self.info.normalized_score(res.mean_return)
        return {
            "return_mean": res.mean_return,
            "return_std": res.std_return,
            "length_mean": float(res.lengths.mean()),
            "score": float("nan") if score is None else score,
        }


def _load_data(cfg: dict[str, Any], progress: bool) -> Transitions:
    from rlreg.envs.datasets import load_dataset

    return load_dataset(cfg["dataset"], progress=progress).validate(where=f"dataset {cfg['dataset']}")


def build_run(cfg: dict[str, Any], progress: bool = False) -> Run:
    """Data, normalizer, agent (with regularizers set up) and evaluator for ``cfg``."""
    validate_config(cfg)
    tc: TrainConfig = config_from_dict(TrainConfig, cfg["train"], "train")
    device = resolve_device(cfg["device"])
    seed_everything(cfg["seed"])

    game = minatar_game(cfg.get("env"))
    agent_family = AGENTS[cfg["agent"]][1].family
    if game is not None or agent_family == "q_learning":
        return _build_minatar_run(cfg, tc, device, game)
    check(
        tc.num_envs == 1,
        f"train.num_envs={tc.num_envs}: parallel training environments are for MinAtar runs",
        "leave train.num_envs at 1 for Gymnasium environments and datasets",
    )
    check(
        tc.greedy_envs == 0,
        f"train.greedy_envs={tc.greedy_envs}: concurrent greedy environments are for online MinAtar runs",
        "leave train.greedy_envs at 0 for Gymnasium environments and datasets",
    )

    transitions = store = None
    if cfg.get("dataset") is not None:
        transitions = _load_data(cfg, progress)
        info = transitions.info
        env_id = cfg.get("env") or info.env_id
    else:
        check(
            cfg.get("env") is not None,
            "neither --dataset nor --env given",
            "pass --dataset SPEC for offline training or --env ENV_ID for online training",
        )
        env_id = cfg["env"]
        info = DatasetInfo(name=env_id, env_id=env_id)

    evaluator = None
    if env_id is None:
        check(
            tc.eval_episodes == 0,
            f"dataset {cfg['dataset']} does not say which environment it comes from, so it cannot be "
            "evaluated",
            "pass --env ENV_ID (e.g. Hopper-v5), or --eval-episodes 0 to train without evaluation",
        )
        if transitions is not None:
            obs_dim, act_dim = transitions.obs_dim, transitions.act_dim
            low = transitions.actions.min(0)
            high = transitions.actions.max(0)
    else:
        env = make_env(env_id, **info.env_kwargs)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
        check(
            hasattr(act_space, "low") and len(act_space.shape) == 1,
            f"environment {env_id} has a {type(act_space).__name__} action space; the {cfg['agent']} agent "
            "needs a 1-D Box",
            "use an environment with continuous actions",
        )
        obs_dim, act_dim = int(np.prod(obs_space.shape)), int(act_space.shape[0])
        low, high = act_space.low, act_space.high
        if transitions is not None:
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

    if transitions is not None:
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
        transitions = prepared
    else:
        normalizer = ObsNormalizer.identity(obs_dim)
        store = TransitionStore(min(tc.replay_size, tc.steps), obs_dim, act_dim, device)

    agent_cfg_cls, agent_cls = AGENTS[cfg["agent"]]
    agent_cfg = config_from_dict(agent_cfg_cls, cfg["agent_config"], "agent")
    regs = [
        REGISTRY[r["name"]](config_from_dict(REGISTRY[r["name"]].Config, r["config"], r["name"]))
        for r in cfg["regularizers"]
    ]
    _set_threads(tc, device)
    agent = agent_cls(agent_cfg, obs_dim, act_dim, low, high, regs, device=device, seed=cfg["seed"])
    if tc.cuda_graph:
        check(
            device.type == "cuda",
            "train.cuda_graph needs a CUDA device",
            "train with --device cuda, or drop train.cuda_graph",
        )
        bad = [r.name for r in regs if not r.capturable]
        check(
            not bad, f"regularizer(s) {bad} cannot be captured in a CUDA graph", "set train.cuda_graph=false"
        )
    agent.setup(
        SetupSource(
            obs_dim=obs_dim,
            act_dim=act_dim,
            action_low=agent.action_low,
            action_high=agent.action_high,
            store=store if transitions is not None else None,
            transitions=transitions,
            obs_normalizer=normalizer,
            dataset_name=cfg.get("dataset"),
        )
    )
    return Run(cfg, tc, device, agent, info, normalizer, store, transitions, env_id, evaluator)


def _set_threads(tc: TrainConfig, device: torch.device) -> None:
    """Torch intra-op threads on CPU: ``train.threads``, or rlreg's default when it is 0."""
    if device.type == "cpu":
        torch.set_num_threads(tc.threads or default_threads())


def _build_minatar_run(cfg: dict[str, Any], tc: TrainConfig, device: torch.device, game: str | None) -> Run:
    """Online discrete-action run on batched MinAtar: environments, replay, agent, evaluator."""
    kind = cfg["agent"]
    check(
        AGENTS[kind][1].family == "q_learning",
        f"the {kind} agent needs continuous actions; MinAtar's are discrete",
        "train a discrete-action recipe on MinAtar (rlreg train dqn|mdqn|dqn-minatar --env minatar:GAME)",
    )
    check(
        cfg.get("dataset") is None and game is not None,
        f"the {kind} agent trains online on batched MinAtar only"
        + (
            " (offline datasets are not supported)"
            if cfg.get("dataset")
            else f", not on --env {cfg.get('env')}"
        ),
        "pass --env minatar:<game> (asterix, breakout, freeway, seaquest, space_invaders) and no --dataset",
    )
    check(
        tc.steps % tc.num_envs == 0,
        f"train.steps ({tc.steps}) is not a multiple of train.num_envs ({tc.num_envs}); every iteration "
        "steps all environments",
        f"use e.g. --steps {(tc.steps // tc.num_envs + 1) * tc.num_envs}",
    )
    check(
        not tc.cuda_graph, "train.cuda_graph is not supported by the dqn agent", "set train.cuda_graph=false"
    )
    check(
        tc.snapshot_every == 0,
        "train.snapshot_every saves TD3 policy files; the dqn agent has none",
        "set train.snapshot_every=0",
    )
    env_id = cfg["env"]
    info = DatasetInfo(
        name=env_id, env_id=env_id, normalizer="none", source="MinAtar (batched torch): raw returns"
    )
    collector = MinAtarCollector(
        game,
        tc.num_envs,
        device,
        seed=cfg["seed"],
        replay_size=tc.replay_size,
        sticky_action_prob=tc.sticky_action_prob,
        max_episode_steps=tc.max_episode_steps or None,
        greedy_envs=tc.greedy_envs,
    )
    agent_cfg_cls, agent_cls = AGENTS[kind]
    agent_cfg = config_from_dict(agent_cfg_cls, cfg["agent_config"], "agent")
    regs = [
        REGISTRY[r["name"]](config_from_dict(REGISTRY[r["name"]].Config, r["config"], r["name"]))
        for r in cfg["regularizers"]
    ]
    _set_threads(tc, device)
    agent = agent_cls(
        agent_cfg, collector.obs_shape, collector.num_actions, regs, device=device, seed=cfg["seed"]
    )
    obs_dim = int(np.prod(collector.obs_shape))
    agent.setup(
        SetupSource(
            obs_dim=obs_dim,
            act_dim=1,
            action_low=torch.zeros(1, device=device),
            action_high=torch.full((1,), float(collector.num_actions - 1), device=device),
        )
    )
    run = Run(
        cfg, tc, device, agent, info, ObsNormalizer.identity(obs_dim), None, None, env_id, None, collector
    )
    if tc.eval_episodes > 0:
        run.evaluator = run.make_evaluator(tc.eval_episodes)
    return run


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
        return _loop(run, out, start=0, state=None, progress=progress, callback=callback)
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
    if cfg["agent"] not in AGENTS:
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
        return _loop(run, out, start=int(state["step"]), state=state, progress=progress, callback=callback)
    finally:
        lock.release()


def _loop(
    run: Run,
    out: Path,
    start: int,
    state: dict[str, Any] | None,
    progress: bool,
    callback: Callable[[int, Run], None] | None,
) -> dict[str, Any]:
    tc, agent, cfg = run.train_cfg, run.agent, run.cfg
    sample_gen = torch.Generator(device=run.device)
    sample_gen.manual_seed(cfg["seed"] + 2)
    evals: list[dict[str, float]] = []
    env_rng = np.random.default_rng(cfg["seed"] + 3)
    wall = 0.0
    window = None
    if state is not None:
        agent.load_state_dict(state["agent"])
        sample_gen.set_state(state["sample_gen"])
        set_rng_state(state["rng"])
        evals = list(state["evals"])
        wall = float(state.get("wall_time", 0.0))
        window = state.get("log_window")  # the logging window the checkpoint fell inside
        if run.collector is not None:
            run.collector.load_state_dict(state["collector"])
        elif run.online:
            run.store.load_state_dict(state["replay"])
            env_rng.bit_generator.state = state["env_rng"]
        for name in ("metrics.csv", "eval.csv"):
            truncate_csv(out / name, start)
        (out / "summary.json").unlink(missing_ok=True)

    metrics_log = CSVLogger(out / "metrics.csv")
    eval_log = CSVLogger(out / "eval.csv")
    tb = TensorBoardLogger(out / "tb") if tc.tensorboard else None
    acc = MetricAccumulator()
    counts: dict[str, Any] = {"updates": 0, "epsilon": float("nan")}
    ep_returns: list[float] = []
    steps_since_log = 0
    if window is not None:  # rows of a resumed run average the same steps as an uninterrupted run's
        acc.load_state_dict(window["metrics"], run.device)
        counts.update(window["counts"])
        ep_returns = list(window["ep_returns"])
        steps_since_log = int(window["steps"])

    collector = run.collector
    online = run.online and collector is None  # online Gymnasium env (TD3)
    env = obs = None
    if online:
        env = make_env(run.env_id, **run.info.env_kwargs)
        obs, _ = env.reset(seed=int(env_rng.integers(2**31)))
        env.action_space.seed(int(env_rng.integers(2**31)))
        ep_return = 0.0

    bar = None
    if progress:
        from tqdm import tqdm

        print(f"rlreg: {_intervals(tc, start, run.evaluator is not None)}", flush=True)

        bar = tqdm(
            total=tc.steps,
            initial=start,
            desc=f"{cfg['recipe']} {cfg.get('dataset') or cfg.get('env')}",
            unit="step",
            dynamic_ncols=True,
            mininterval=BAR_SECONDS,
            miniters=1,
        )

    def checkpoint(step: int) -> None:
        ckpt = {
            "format": "rlreg-checkpoint",
            "version": 1,
            "step": step,
            "agent": agent.state_dict(),
            # with a batch drawn ahead, the state before it, so a resumed run draws it again
            "sample_gen": ahead["gen_state"] if ahead["batch"] is not None else sample_gen.get_state(),
            "rng": rng_state(),
            "evals": evals,
            "wall_time": wall + (time.perf_counter() - t_start),
            "log_window": {
                "metrics": acc.state_dict(),
                "counts": dict(counts),
                "ep_returns": list(ep_returns),
                "steps": steps_since_log,
            },
        }
        if collector is not None:
            ckpt["collector"] = collector.state_dict()
        elif online:
            ckpt["replay"] = run.store.state_dict()
            ckpt["env_rng"] = env_rng.bit_generator.state
        save_atomic(ckpt, out / CHECKPOINT)

    def snapshot(step: int) -> None:
        from rlreg.envs.policies import save_policy

        last = evals[-1] if evals and evals[-1]["step"] == step else None
        record = {
            "run": str(out),
            "step": step,
            "seed": cfg["seed"],
            "recipe": cfg["recipe"],
            "eval_return_mean": last["return_mean"] if last else None,
        }
        save_policy(
            out / "snapshots" / f"step_{step:08d}.pt",
            env_id=run.env_id,
            actor=agent.actor,
            normalizer=run.normalizer,
            record=record,
        )

    def flush(step: int, n_steps: int, dt: float) -> None:
        row = {
            "step": step,
            "time": round(wall + time.perf_counter() - t_start, 3),
            "updates_per_s": round((n_steps if collector is None else counts["updates"]) / dt, 2)
            if dt > 0
            else float("nan"),
        }
        if collector is not None:
            row["env_steps_per_s"] = round(n_steps / dt, 2) if dt > 0 else float("nan")
            row["train/epsilon"] = counts["epsilon"]
            counts["updates"] = 0
        row.update(acc.flush())
        if collector is not None:
            row.update(collector.pop_episode_stats())
        if online and ep_returns:
            row["rollout/episode_return"] = float(np.mean(ep_returns))
            ep_returns.clear()
        metrics_log.write(row)
        if tb:
            tb.write(row, step)

    offline_step = online_step = None
    ahead: dict[str, Any] = {"batch": None, "gen_state": None}
    if not online:
        if tc.cuda_graph:
            offline_step = agent.captured_steps(run.store, agent.config.batch_size, sample_gen)
        elif getattr(agent, "uses_next_batch", False):
            # the agent starts work on the next batch during this update (e.g. PRDC's neighbour
            # search): draw it one update ahead; the batches and their order are unchanged

            def offline_step() -> dict[str, torch.Tensor]:
                batch = ahead["batch"]
                if batch is None:
                    batch = run.store.sample(agent.config.batch_size, sample_gen)
                ahead["gen_state"] = sample_gen.get_state()
                ahead["batch"] = run.store.sample(agent.config.batch_size, sample_gen)
                return agent.update(batch, next_batch=ahead["batch"])

        else:

            def offline_step() -> dict[str, torch.Tensor]:
                return agent.update(run.store.sample(agent.config.batch_size, sample_gen))

    def minatar_iteration(step: int) -> int:
        """Step every training environment once, then the updates and target copies that fell due."""
        eps = agent.config.epsilon(step, tc.steps, tc.learning_starts)
        counts["epsilon"] = eps
        collector.step(agent, eps)
        new_step = step + collector.num_envs
        for event in agent.schedule(step, new_step, tc.learning_starts):
            if event == "update":
                acc.add(agent.update(collector.replay.sample(agent.config.batch_size, sample_gen)))
                counts["updates"] += 1
            else:
                agent.update_target()
        return new_step - step

    def due(every: int, prev: int, now: int) -> bool:
        """A multiple of ``every`` lies in (prev, now] (``now % every == 0`` for steps of 1)."""
        return bool(every) and now // every > prev // every

    # CPU threads follow the rlreg jobs running on this machine (rlreg/threads.py)
    governor = ThreadGovernor(tc.threads) if run.device.type == "cpu" else None
    t_start = time.perf_counter()
    t_log = t_bar = t_ckpt = time.perf_counter()
    ckpt_seconds = 60.0 * tc.checkpoint_minutes
    step = start
    try:
        while step < tc.steps:
            prev = step
            if collector is not None:
                step += minatar_iteration(step)  # num_envs environment steps
            elif online:
                if step < tc.learning_starts:
                    action = env.action_space.sample()
                else:
                    action = agent.act(obs[None], explore=True)[0]
                next_obs, rew, term, trunc, _ = env.step(action)
                run.store.add(obs[None], action[None], np.array([rew]), next_obs[None], np.array([term]))
                ep_return += float(rew)
                if term or trunc:
                    ep_returns.append(ep_return)
                    ep_return = 0.0
                    next_obs, _ = env.reset()
                obs = next_obs
                if step >= tc.learning_starts:
                    if tc.cuda_graph and online_step is None:  # capture once the buffer has data
                        online_step = agent.captured_steps(
                            run.store, agent.config.batch_size, sample_gen, sample_in_graph=False
                        )
                    if online_step is not None:
                        acc.add(online_step())
                    else:
                        acc.add(agent.update(run.store.sample(agent.config.batch_size, sample_gen)))
                step += 1
            else:
                acc.add(offline_step())
                step += 1
            steps_since_log += step - prev
            is_last = step == tc.steps
            if due(tc.log_every, prev, step) or is_last:
                now = time.perf_counter()
                flush(step, steps_since_log, now - t_log)
                t_log, steps_since_log = now, 0
            if run.evaluator is not None and (due(tc.eval_every, prev, step) or is_last):
                row = {"step": step, **run.evaluate()}
                evals.append(row)
                eval_log.write(row)
                if tb:
                    tb.write({f"eval/{k}": v for k, v in row.items() if k != "step"}, step)
                if bar is not None:
                    shown = {"ret": f"{row['return_mean']:.1f}"}
                    if row["score"] == row["score"]:  # MinAtar and unnormalized runs: return only
                        shown = {"score": f"{row['score']:.1f}", **shown}
                    bar.set_postfix(**shown, refresh=False)
            if due(tc.snapshot_every, prev, step):
                snapshot(step)
            now = time.perf_counter()
            if governor is not None:
                governor.poll(now)
            if bar is not None and (now - t_bar >= BAR_SECONDS or is_last):  # by time, not by logging
                bar.update(step - bar.n)
                t_bar = now
            if (
                due(tc.checkpoint_every, prev, step)
                or is_last
                or (ckpt_seconds and now - t_ckpt >= ckpt_seconds)
            ):
                checkpoint(step)
                t_ckpt = time.perf_counter()
            if callback is not None:
                callback(step, run)
    finally:
        if governor is not None:
            governor.close()
        if bar is not None:
            bar.close()
        if tb:
            tb.close()
        if env is not None:
            env.close()

    wall += time.perf_counter() - t_start
    summary = _summary(run, evals, step, wall, start)
    if governor is not None:
        summary["threads"] = governor.threads
        summary["threads_policy"] = (
            "fixed" if governor.fixed else ("adaptive" if governor.adaptive else "start")
        )
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out / "summary.json")
    return summary


def _intervals(tc: TrainConfig, start: int, evaluates: bool) -> str:
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


def _summary(run: Run, evals: list[dict[str, float]], step: int, wall: float, start: int) -> dict[str, Any]:
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
