"""Agent recipes: hyper-parameters as data (``agents/recipes/*.yaml``) with per-dataset overrides
and the source of each value.

A recipe file has ``name``, ``agent`` (a kind in :data:`agents.config.AGENTS`), ``summary``,
``paper``, ``code``, ``agent_config``, ``regularizers`` (name → settings, in order), ``train``,
``sources`` (``section.field`` → where the value comes from) and ``overrides`` (a list of
``{match: <fnmatch pattern on the dataset name>, set: {section.field: value}, source: ...}``
applied in order).
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml

from agents.config import AGENTS, TrainConfig, apply_sets, config_from_dict
from rlreg.errors import RlregError
from rlreg.regularizers import REGISTRY

__all__ = ["recipe_names", "load_recipe", "resolve_config"]


def _recipe_files() -> dict[str, Any]:
    folder = resources.files("agents") / "recipes"
    return {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def recipe_names() -> list[str]:
    """Names accepted by ``rlreg train AGENT``."""
    return sorted(_recipe_files())


def load_recipe(name: str) -> dict[str, Any]:
    """The parsed recipe ``name`` (raises with the list of valid names when unknown)."""
    files = _recipe_files()
    if name not in files:
        raise RlregError(f"unknown agent '{name}'", f"choose one of: {', '.join(recipe_names())}")
    recipe = yaml.safe_load(files[name].read_text())
    if recipe.get("agent") not in AGENTS:
        raise RlregError(
            f"recipe '{name}' names unknown agent kind {recipe.get('agent')!r}",
            f"use one of: {', '.join(AGENTS)}",
        )
    return recipe


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
    """
    recipe = load_recipe(recipe_name)
    kind = recipe["agent"]
    agent_cls = AGENTS[kind][0]
    regs = dict(recipe.get("regularizers") or {})
    for reg_name in regs:
        if reg_name not in REGISTRY:
            raise RlregError(
                f"recipe '{recipe_name}' uses unknown regularizer '{reg_name}'",
                f"registered: {', '.join(sorted(REGISTRY))}",
            )
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
        "sources": dict(recipe.get("sources") or {}),
        "applied": [],
    }
    base: dict[str, Any] = {}
    base.update({f"agent.{k}": v for k, v in (recipe.get("agent_config") or {}).items()})
    for n, values in regs.items():
        base.update({f"{n}.{k}": v for k, v in (values or {}).items()})
    base.update({f"train.{k}": v for k, v in (recipe.get("train") or {}).items()})
    apply_sets(cfg, base, origin=f"recipe {recipe_name}")
    name = dataset or env or ""
    for ov in recipe.get("overrides") or []:
        if fnmatch.fnmatch(name.split(":")[-1].split("/")[-1], ov["match"]):
            applied = apply_sets(cfg, ov["set"], origin=f"recipe {recipe_name} override {ov['match']}")
            cfg["applied"] += [f"{a}  # {ov.get('source', ov['match'])}" for a in applied]
    if sets:
        cfg["applied"] += [f"{a}  # --set" for a in apply_sets(cfg, sets)]
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict[str, Any]) -> None:
    """Build every config dataclass once so bad values fail before anything runs."""
    config_from_dict(AGENTS[cfg["agent"]][0], cfg["agent_config"], "agent")
    config_from_dict(TrainConfig, cfg["train"], "train")
    for reg in cfg["regularizers"]:
        REGISTRY[reg["name"]](config_from_dict(REGISTRY[reg["name"]].Config, reg["config"], reg["name"]))


def copy_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(cfg)
