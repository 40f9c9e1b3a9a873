"""Agent recipes: hyper-parameters as data (``agents/recipes/*.yaml``) with per-dataset overrides
and the source of each value.

A recipe file has ``name``, ``agent`` (a registered agent kind,
:func:`rlreg.agents.base.agent_names`), ``summary``, ``paper``, ``code``, ``agent_config``,
``regularizers`` (name → settings, in order), ``train``, ``sources`` (``section.field`` → where
the value comes from) and ``overrides`` (a list of
``{match: <fnmatch pattern on the dataset key>, set: {section.field: value}, source: ...}``
applied in order; the key is described below).

A recipe may also declare ``switches``: named on/off options that stack regularizers, e.g. ::

    switches:
      dvw:
        default: false
        summary: "Deep Variance Weighting on the TD loss"
        regularizers: {dvw: {variance_lr: 2.5e-4}}
        sources: {dvw.variance_lr: "..."}

``--set dvw=true`` (a bare switch name) turns it on: its regularizers are added after the recipe's
own, with its settings and sources, before the other ``--set`` values apply (so ``--set
dvw.variance_lr=1e-4`` tunes it). The resolved config records ``switches: {name: bool}``.

Which overrides apply: every dataset form is first resolved (:func:`dataset_key`) to a canonical
``(env, level)`` pair and a D4RL-style key ``<env>-<level>-v<N>`` (or just ``<env>`` when the level
is unknown), and the ``match`` patterns are fnmatch patterns on that key::

    hopper-medium-replay-v0               → hopper-medium-replay-v0   (a made name: the name itself)
    d4rl:/data/halfcheetah_medium_v2.hdf5 → halfcheetah-medium-v2     (the file stem)
    d4rl:/tmp/data.hdf5                   → halfcheetah               (its rlreg_env_id attribute)
    minari:mujoco/halfcheetah/medium-v0   → halfcheetah-medium-v0     (<namespace>/<env>/<level>-vN)
    minari:my-data-v0                     → halfcheetah               (its metadata.json env_spec)
    --env HalfCheetah-v5                  → halfcheetah               (the environment id)

The resolved config records the resolution (``dataset_key``: env, level, key, resolved_from) and
each applied override (``overrides``: match, matched, resolved_from, set, source) next to the
``applied`` lines. A dataset that resolves to no known environment gets no overrides (recorded,
not an error). Resolution never loads data: at most an HDF5 file's root attributes or a Minari
``metadata.json`` are read.

Importing this module, :func:`recipe_names` and :func:`load_recipe` import no torch (``rlreg
--help`` stays fast): the agent registry and the regularizers are imported where a config is built.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rlreg.agents import AGENT_KINDS

from rlreg.errors import RlregError

# rlreg.agents.config (the agent registry: rlreg.agents.td3/dqn) and rlreg.regularizers import torch; they are
# imported inside the functions that build configs, so listing and reading recipes stays cheap.

__all__ = ["recipe_names", "load_recipe", "resolve_config", "DatasetKey", "dataset_key", "env_name"]


def _recipe_files() -> dict[str, Any]:
    folder = resources.files("rlreg.agents") / "recipes"
    return {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def recipe_names() -> list[str]:
    """Names accepted by ``rlreg train AGENT``."""
    return sorted(_recipe_files())


def load_recipe(name: str) -> dict[str, Any]:
    """The parsed recipe ``name`` (raises with the list of valid names when unknown)."""
    files = _recipe_files()
    if name not in files:
        bare = _bare_recipe(name)
        if bare is None:
            raise RlregError(f"unknown agent '{name}'", f"choose one of: {', '.join(recipe_names())}")
        return bare
    recipe = yaml.safe_load(files[name].read_text())
    if recipe.get("agent") not in AGENT_KINDS and _bare_recipe(recipe.get("agent")) is None:
        raise RlregError(
            f"recipe '{name}' names unknown agent kind {recipe.get('agent')!r}",
            f"use one of: {', '.join(AGENT_KINDS)}",
        )
    return recipe


def _bare_recipe(name: Any) -> dict[str, Any] | None:
    """A registered agent without a recipe file (e.g. one defined in the user's code) trains with its
    config's defaults and no regularizers: ``rlreg.train("my-agent", ...)``. None if not registered."""
    if not isinstance(name, str) or name in AGENT_KINDS:
        return None
    from rlreg.agents.base import AGENT_REGISTRY, builtin_agents

    builtin_agents()
    if name not in AGENT_REGISTRY:
        return None
    summary = f"the registered agent {name} with its config's defaults (no recipe file)"
    return {"name": name, "agent": name, "summary": summary, "agent_config": {}, "train": {}}


def resolve_config(
    recipe_name: str,
    dataset: str | None,
    env: str | None = None,
    seed: int = 0,
    device: str = "auto",
    sets: dict[str, Any] | None = None,
    add_regularizers: Sequence[str] = (),
) -> dict[str, Any]:
    """A complete, validated run config: recipe defaults → matching overrides → ``--set`` values.

    ``add_regularizers`` stacks more registered regularizers (with their config defaults) after the
    recipe's own, e.g. ``resolve_config("td3bc", ..., add_regularizers=["prdc"])``.

    Overrides are chosen by :func:`dataset_key` of ``dataset`` (or of ``env`` when the dataset
    says nothing about its environment); see the module docstring for what is recorded.
    """
    from rlreg.agents.base import agent_class
    from rlreg.agents.config import TrainConfig, apply_sets

    from rlreg.regularizers import REGISTRY

    recipe = load_recipe(recipe_name)
    kind = recipe["agent"]
    agent_cls = agent_class(kind).Config
    regs = dict(recipe.get("regularizers") or {})
    sets = dict(sets or {})
    given = [k for k in (recipe.get("switches") or {}) if k in sets]
    switches = _resolve_switches(recipe, sets)  # pops the switch keys from sets
    switch_sources = _add_switch_regularizers(recipe, recipe_name, switches, regs)
    _check_regularizers(recipe_name, regs)
    _stack_regularizers(recipe_name, regs, add_regularizers)
    cfg: dict[str, Any] = {
        "recipe": recipe_name,
        "agent": kind,
        "dataset": dataset,
        "env": env,
        "seed": int(seed),
        "device": device,
        "agent_config": dataclasses.asdict(agent_cls()),
        "regularizers": [{"name": n, "config": dataclasses.asdict(REGISTRY[n].Config())} for n in regs],
        "train": dataclasses.asdict(TrainConfig()),
        "sources": {**(recipe.get("sources") or {}), **switch_sources},
        "applied": [],
    }
    if switches:
        cfg["switches"] = switches
        cfg["applied"] += [f"{k}={'true' if switches[k] else 'false'}  # --set (switch)" for k in given]
    _apply_recipe_values(cfg, recipe, recipe_name, regs)
    _apply_overrides(cfg, recipe, recipe_name, dataset_key(dataset, env))
    if sets:
        cfg["applied"] += [f"{a}  # --set" for a in apply_sets(cfg, sets)]
    validate_config(cfg)
    return cfg


def _add_switch_regularizers(
    recipe: dict[str, Any], recipe_name: str, switches: dict[str, bool], regs: dict[str, Any]
) -> dict[str, Any]:
    """Add the regularizers of each switch that is on to ``regs`` (in place); returns their sources."""
    switch_sources: dict[str, Any] = {}
    for switch, on in switches.items():
        if not on:
            continue
        spec = recipe["switches"][switch]
        for reg_name, values in (spec.get("regularizers") or {}).items():
            if reg_name in regs:
                raise RlregError(
                    f"recipe '{recipe_name}' switch '{switch}' adds regularizer '{reg_name}', which the "
                    "recipe already has",
                    "fix the recipe: a switch must add regularizers the recipe does not list",
                )
            regs[reg_name] = values
        switch_sources.update(spec.get("sources") or {})
    return switch_sources


def _check_regularizers(recipe_name: str, regs: dict[str, Any]) -> None:
    """Raise if the recipe (or one of its switches) names a regularizer that is not registered."""
    from rlreg.regularizers import REGISTRY

    for reg_name in regs:
        if reg_name not in REGISTRY:
            raise RlregError(
                f"recipe '{recipe_name}' uses unknown regularizer '{reg_name}'",
                f"registered: {', '.join(sorted(REGISTRY))}",
            )


def _stack_regularizers(recipe_name: str, regs: dict[str, Any], add_regularizers: Sequence[str]) -> None:
    """Append the ``--add-reg`` regularizers (config defaults) to ``regs`` in place, after the recipe's."""
    from rlreg.regularizers import REGISTRY

    for reg_name in add_regularizers:
        if reg_name not in REGISTRY:
            raise RlregError(
                f"--add-reg {reg_name}: unknown regularizer", f"registered: {', '.join(sorted(REGISTRY))}"
            )
        if reg_name in regs:
            raise RlregError(
                f"--add-reg {reg_name}: recipe '{recipe_name}' already has it",
                f"tune it with --set {reg_name}.FIELD=VALUE instead",
            )
        regs[reg_name] = {}


def _apply_recipe_values(
    cfg: dict[str, Any], recipe: dict[str, Any], recipe_name: str, regs: dict[str, Any]
) -> None:
    """Apply the recipe's own agent, regularizer and train values to ``cfg`` (not recorded in applied)."""
    from rlreg.agents.config import apply_sets

    base: dict[str, Any] = {}
    base.update({f"agent.{k}": v for k, v in (recipe.get("agent_config") or {}).items()})
    for n, values in regs.items():
        base.update({f"{n}.{k}": v for k, v in (values or {}).items()})
    base.update({f"train.{k}": v for k, v in (recipe.get("train") or {}).items()})
    apply_sets(cfg, base, origin=f"recipe {recipe_name}")


def _apply_overrides(cfg: dict[str, Any], recipe: dict[str, Any], recipe_name: str, key: DatasetKey) -> None:
    """Apply the recipe overrides whose ``match`` pattern fits ``key``, recording each in ``cfg``."""
    from rlreg.agents.config import apply_sets

    cfg["dataset_key"] = key.as_dict()
    cfg["overrides"] = []
    for ov in recipe.get("overrides") or []:
        if key.key is not None and fnmatch.fnmatchcase(key.key, ov["match"]):
            applied = apply_sets(cfg, ov["set"], origin=f"recipe {recipe_name} override {ov['match']}")
            source = ov.get("source", ov["match"])
            cfg["applied"] += [f"{a}  # {source}" for a in applied]
            cfg["overrides"].append(
                {
                    "match": ov["match"],
                    "matched": key.key,
                    "resolved_from": key.resolved_from,
                    "set": applied,
                    "source": source,
                }
            )


def _resolve_switches(recipe: dict[str, Any], sets: dict[str, Any]) -> dict[str, bool]:
    """``{switch: on}`` for the recipe's switches (default, or a bare ``--set NAME=true|false``)."""
    from rlreg.agents.config import coerce

    declared = recipe.get("switches") or {}
    out: dict[str, bool] = {}
    for name, spec in declared.items():
        on = bool((spec or {}).get("default", False))
        if name in sets:
            on = coerce(sets.pop(name), bool, name)
        out[name] = on
    return out


def validate_config(cfg: dict[str, Any]) -> None:
    """Build every config dataclass once so bad values fail before anything runs."""
    from rlreg.agents.base import agent_class
    from rlreg.agents.config import TrainConfig, config_from_dict

    from rlreg.regularizers import REGISTRY

    config_from_dict(agent_class(cfg["agent"]).Config, cfg["agent_config"], "agent")
    config_from_dict(TrainConfig, cfg["train"], "train")
    for reg in cfg["regularizers"]:
        REGISTRY[reg["name"]](config_from_dict(REGISTRY[reg["name"]].Config, reg["config"], reg["name"]))


def copy_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a resolved config."""
    return copy.deepcopy(cfg)


# ---------------------------------------------------------------------- dataset resolution
_KNOWN_ENVS = frozenset(
    {
        "halfcheetah",
        "hopper",
        "walker2d",
        "ant",
        "antmaze",
        "humanoid",
        "humanoidstandup",
        "swimmer",
        "reacher",
        "pusher",
        "invertedpendulum",
        "inverteddoublependulum",
        "pendulum",
        "cartpole",
        "maze2d",
        "pointmaze",
        "kitchen",
        "pen",
        "door",
        "hammer",
        "relocate",
    }
)
"""Canonical environment names (D4RL's dataset prefixes, lower case, no separators)."""

_ENV_ALIASES = {
    "frankakitchen": "kitchen",
    "adroithandpen": "pen",
    "adroithanddoor": "door",
    "adroithandhammer": "hammer",
    "adroithandrelocate": "relocate",
}
"""Gymnasium(-Robotics) environment names whose D4RL name differs."""

_VERSION = re.compile(r"v(\d+)")
_SIZE_SEED = re.compile(r"(-size\d+)?(-seed\d+)?$")
"""The ``-size<N>-seed<S>`` part of a made dataset's Minari id at a non-default size or seed."""

_D4RL_ENV_ID_ATTR = "rlreg_env_id"
"""Root attribute of the environment id in files written by :func:`rlreg.data.d4rl.write_d4rl_hdf5`
(``rlreg.data.d4rl._ATTR_ENV_ID``; not imported here because ``rlreg.data`` imports torch)."""


@dataclass(frozen=True)
class DatasetKey:
    """What a dataset (or ``--env``) resolves to, for choosing a recipe's overrides."""

    env: str | None
    """Canonical environment name (``halfcheetah``, ``walker2d``, ``antmaze``, ...) or None."""
    level: str | None
    """Dataset level (``medium``, ``medium-replay``, ``umaze-diverse``, ...) or None when unknown."""
    key: str | None
    """The string override patterns match: ``<env>-<level>-v<N>``, ``<env>`` without a level, or
    None when nothing was recognised (no overrides apply)."""
    resolved_from: str
    """How the resolution was made, in words (recorded in ``config.json``)."""

    def as_dict(self) -> dict[str, str | None]:
        """The JSON-able record stored as ``cfg["dataset_key"]``."""
        return dataclasses.asdict(self)


def env_name(raw: str | None) -> str | None:
    """Canonical environment name of an environment id or a dataset's env component, or None.

    ``HalfCheetah-v5`` → ``halfcheetah``, ``Walker2d-v5`` → ``walker2d``, ``Pendulum-v1`` →
    ``pendulum``, ``AntMaze_UMaze-v4`` → ``antmaze``, ``half_cheetah`` → ``halfcheetah``;
    an unknown environment (``Acrobot-v1``, ``minatar:breakout``) gives None.
    """
    if not raw:
        return None
    name = raw.strip().lower().rsplit(":", 1)[-1]
    name = re.sub(r"-v\d+$", "", name)
    candidates = [name, re.split(r"[-_]", name)[0], re.sub(r"[-_]", "", name)]
    for c in candidates:
        c = _ENV_ALIASES.get(c, c)
        if c in _KNOWN_ENVS:
            return c
    return None


def _key(env: str, level: str | None, version: str | None) -> str:
    return f"{env}-{level}-v{version or 0}" if level else env


def _parse_d4rl_name(name: str) -> tuple[str, str | None, str | None] | None:
    """``(env, level, version)`` of a D4RL-style name (``halfcheetah_medium_replay-v2``,
    ``antmaze-umaze-diverse-v2``), or None when no part of it is a known environment."""
    tokens = [t for t in re.split(r"[-_]", name.strip().lower()) if t]
    for i, tok in enumerate(tokens):
        env = _ENV_ALIASES.get(tok, tok)
        if env not in _KNOWN_ENVS:
            continue
        level: list[str] = []
        version = None
        for t in tokens[i + 1 :]:
            m = _VERSION.fullmatch(t)
            if m:
                version = m.group(1)
                break
            level.append(t)
        return env, "-".join(level) or None, version
    return None


def _parse_minari_id(dataset_id: str) -> tuple[str, str | None, str | None] | None:
    """``(env, level, version)`` of a Minari id ``[namespace/]<env>/<level>-vN`` (the env is the
    second-to-last component), or None when that component is not a known environment."""
    parts = [p for p in dataset_id.strip().split("/") if p]
    if len(parts) < 2:
        return None
    env = env_name(parts[-2])
    if env is None:
        return None
    m = re.fullmatch(r"(.*?)(?:-v(\d+))?", parts[-1].lower())
    level = _SIZE_SEED.sub("", m.group(1)) if m else parts[-1].lower()
    return env, level or None, m.group(2) if m else None


def _minari_root() -> Path:
    """Minari's datasets root, the same rule as ``rlreg.data.minari_io.minari_root`` (not imported:
    ``rlreg.data`` imports torch)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root is not None else Path.home() / ".minari" / "datasets"


def _from_minari_metadata(dataset_id: str) -> tuple[DatasetKey | None, str]:
    """Resolution from a local Minari dataset's ``metadata.json`` (rlreg's ``algorithm_name
    rlreg:<made name>``, else the ``env_spec`` id), and a note on why there is none."""
    path = _minari_root() / dataset_id / "data" / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"there is no {path}"
    except (OSError, ValueError) as e:
        return None, f"{path} is unreadable ({e})"
    if not isinstance(meta, dict):
        return None, f"{path} is not a JSON object"
    algo = meta.get("algorithm_name")
    if isinstance(algo, str) and algo.startswith("rlreg:"):
        parsed = _parse_d4rl_name(algo[len("rlreg:") :])
        if parsed is not None:
            env, level, version = parsed
            return DatasetKey(
                env, level, _key(env, level, version), f"minari metadata {path}: algorithm_name {algo}"
            ), ""
    spec = meta.get("env_spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            spec = None
    spec_id = spec.get("id") if isinstance(spec, dict) else None
    env = env_name(spec_id) if isinstance(spec_id, str) else None
    if env is None:
        return None, f"{path} names no known environment (env_spec id {spec_id})"
    return DatasetKey(env, None, env, f"minari metadata {path}: env_spec id {spec_id} (level unknown)"), ""


def _from_d4rl_attrs(path: str) -> tuple[DatasetKey | None, str]:
    """Resolution from the ``rlreg_env_id`` root attribute of a D4RL file (no array is read), and
    a note on why there is none."""
    if not Path(path).is_file():
        return None, "the file does not exist"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(_D4RL_ENV_ID_ATTR)
    except OSError as e:
        return None, f"the file is unreadable ({e})"
    if raw is None:
        return None, f"the file has no {_D4RL_ENV_ID_ATTR} attribute"
    env_id = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    env = env_name(env_id)
    if env is None:
        return None, f"its {_D4RL_ENV_ID_ATTR} {env_id} is not a known environment"
    return DatasetKey(
        env, None, env, f"d4rl file {path}: attribute {_D4RL_ENV_ID_ATTR} {env_id} (level unknown)"
    ), ""


def _resolve_dataset(dataset: str) -> tuple[DatasetKey | None, str]:
    """Resolution of a dataset spec, or None with what was tried."""
    if dataset.startswith("d4rl:"):
        path = dataset[len("d4rl:") :]
        stem = Path(path).stem
        parsed = _parse_d4rl_name(stem)
        if parsed is not None:
            env, level, version = parsed
            return DatasetKey(env, level, _key(env, level, version), f"d4rl file name {stem}"), ""
        found, why = _from_d4rl_attrs(path)
        return found, f"d4rl file {path}: its name says nothing and {why}"
    if dataset.startswith("minari:"):
        dataset_id = dataset[len("minari:") :]
        parsed = _parse_minari_id(dataset_id)
        if parsed is not None:
            env, level, version = parsed
            return DatasetKey(env, level, _key(env, level, version), f"minari id {dataset_id}"), ""
        parsed = _parse_d4rl_name(dataset_id.split("/")[-1])
        if parsed is not None:
            env, level, version = parsed
            return DatasetKey(
                env, level, _key(env, level, version), f"minari id {dataset_id} (D4RL-style)"
            ), ""
        found, why = _from_minari_metadata(dataset_id)
        return found, f"minari id {dataset_id} says nothing and {why}"
    from rlreg.envs.datasets import DATASETS

    recipe = DATASETS.get(dataset)
    if recipe is not None:
        parsed = _parse_minari_id(recipe.minari_id)
        env, level = (parsed[0], parsed[1]) if parsed else (env_name(recipe.env_id), None)
        if env is not None:
            return DatasetKey(
                env, level, dataset, f"made dataset {dataset} (minari id {recipe.minari_id})"
            ), ""
    parsed = _parse_d4rl_name(dataset)
    if parsed is not None:
        env, level, version = parsed
        return DatasetKey(env, level, _key(env, level, version), f"dataset name {dataset} (D4RL-style)"), ""
    return None, f"dataset name {dataset!r} names no known environment"


def dataset_key(dataset: str | None, env: str | None = None) -> DatasetKey:
    """The canonical ``(env, level)`` and override key of a dataset spec (or of ``env`` alone).

    Forms (see the module docstring): a made name (``rlreg.envs.datasets.DATASETS``), ``d4rl:PATH``
    (the file stem as a D4RL name, else the file's ``rlreg_env_id`` attribute), ``minari:ID``
    (``.../<env>/<level>-vN``, else the local dataset's ``metadata.json``), a D4RL-style name, and
    an environment id (``Hopper-v5``: env only). When the dataset names no environment, ``env``
    (``--env``) gives it. Nothing unrecognised is an error: the key is then None. Never loads data.
    """
    notes: list[str] = []
    if dataset:
        found, why = _resolve_dataset(dataset)
        if found is not None:
            return found
        notes.append(why)
    if env:
        name = env_name(env)
        if name is not None:
            how = f"--env {env}" + (f" ({notes[0]})" if notes else "")
            return DatasetKey(name, None, name, how)
        notes.append(f"--env {env} is not an environment the overrides know")
    if not notes:
        return DatasetKey(None, None, None, "no dataset or env given: no overrides")
    return DatasetKey(None, None, None, "; ".join(notes) + ": no overrides")
