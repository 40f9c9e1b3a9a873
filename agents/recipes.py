"""Agent recipes: hyper-parameters as data (``agents/recipes/*.yaml``) with per-dataset overrides
and the source of each value.

A recipe file has ``name``, ``agent`` (a kind in :data:`agents.config.AGENTS`), ``summary``,
``paper``, ``code``, ``agent_config``, ``regularizers`` (name → settings, in order), ``train``,
``sources`` (``section.field`` → where the value comes from) and ``overrides`` (a list of
``{match: <fnmatch pattern on the dataset name>, set: {section.field: value}, source: ...}``
applied in order).

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
    sets = dict(sets or {})
    given = [k for k in (recipe.get("switches") or {}) if k in sets]
    switches = _resolve_switches(recipe, sets)  # pops the switch keys from sets
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
        "sources": {**(recipe.get("sources") or {}), **switch_sources},
        "applied": [],
    }
    if switches:
        cfg["switches"] = switches
        cfg["applied"] += [f"{k}={'true' if switches[k] else 'false'}  # --set (switch)" for k in given]
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


def _resolve_switches(recipe: dict[str, Any], sets: dict[str, Any]) -> dict[str, bool]:
    """``{switch: on}`` for the recipe's switches (default, or a bare ``--set NAME=true|false``)."""
    from agents.config import coerce

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
    config_from_dict(AGENTS[cfg["agent"]][0], cfg["agent_config"], "agent")
    config_from_dict(TrainConfig, cfg["train"], "train")
    for reg in cfg["regularizers"]:
        REGISTRY[reg["name"]](config_from_dict(REGISTRY[reg["name"]].Config, reg["config"], reg["name"]))


def copy_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(cfg)
