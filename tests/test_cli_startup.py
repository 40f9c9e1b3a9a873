"""The CLI's cheap commands (``--help``, ``agents``, ``datasets``) answer without importing torch.

Each command runs in a fresh interpreter that records where torch was first imported from, so a
failure names the import chain. The parts are attributable: ``test_cli_alone_imports_no_torch``
checks the CLI itself (``agents/cli.py``, ``agents/policy_cli.py``, the package inits) with the
recipes and the dataset suite replaced by torch-free stand-ins; ``test_cheap_commands_import_no_torch``
runs the real modules, and its ids name what each command also needs: the help texts list the
recipes (``rlreg.agents.recipes.recipe_names``), ``agents`` reads them (``rlreg.agents.recipes.load_recipe``),
``datasets`` lists the suite (``rlreg.envs.datasets.dataset_status``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# runs main(argv) and prints {"torch": bool, "chain": [file:line, ...]} (the repo frames of the
# first `import torch`) as the last line of stdout
_PROBE = r"""
import json, sys, traceback
repo = sys.argv[1]
found = {}

class _Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "chain" not in found:
            found["chain"] = [
                f"{f.filename[len(repo) + 1:]}:{f.lineno}"
                for f in traceback.extract_stack()
                if f.filename.startswith(repo)
            ]
        return None

sys.meta_path.insert(0, _Spy())
if sys.argv[2] == "stubs":  # the CLI alone: torch-free stand-ins for the recipes and the suite
    import types
    recipes = sys.modules["rlreg.agents.recipes"] = types.ModuleType("rlreg.agents.recipes")
    recipes.recipe_names = lambda: ["td3bc"]
    recipes.load_recipe = lambda name: {"agent": "td3", "regularizers": {"bc": {}}, "summary": "stub"}
    datasets = sys.modules["rlreg.envs.datasets"] = types.ModuleType("rlreg.envs.datasets")
    datasets.dataset_status = lambda: []
    datasets.default_export_path = datasets.export_d4rl = datasets.make_dataset = None
from rlreg.agents.cli import main
try:
    rc = main(sys.argv[3:])
except SystemExit as e:
    rc = e.code
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "chain": found.get("chain", [])}))
"""


def _probe(argv: list[str], home: Path, stubs: bool = False) -> dict:
    env = dict(os.environ, RLREG_HOME=str(home), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(REPO), "stubs" if stubs else "real", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


_CHEAP = [["--help"], ["train", "--help"], ["policy", "--help"], ["agents"], ["datasets"]]


@pytest.mark.parametrize("argv", _CHEAP, ids=lambda a: "_".join(a).strip("-"))
def test_cli_alone_imports_no_torch(argv, tmp_path):
    """agents/cli.py, policy_cli.py and the package inits, with the recipes and the dataset suite
    replaced by torch-free stand-ins."""
    r = _probe(argv, tmp_path, stubs=True)
    assert r["rc"] in (0, None), r
    assert not r["torch"], f"`rlreg {' '.join(argv)}` imported torch via: {' -> '.join(r['chain'])}"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="help-cli+recipe_names"),
        pytest.param(["train", "--help"], id="train_help-cli+recipe_names"),
        pytest.param(["policy", "--help"], id="policy_help-cli+recipe_names"),
        pytest.param(["agents"], id="agents-cli+load_recipe"),
        pytest.param(["datasets"], id="datasets-cli+dataset_status"),
    ],
)
def test_cheap_commands_import_no_torch(argv, tmp_path):
    r = _probe(argv, tmp_path)
    assert r["rc"] in (0, None), r
    assert not r["torch"], f"`rlreg {' '.join(argv)}` imported torch via: {' -> '.join(r['chain'])}"


def test_agent_kinds_match_the_registry():
    from rlreg.agents import AGENT_KINDS
    from rlreg.agents.base import agent_class, agent_names

    builtin = [k for k in agent_names() if agent_class(k).__module__.startswith("rlreg.")]
    assert builtin == sorted(AGENT_KINDS)


def _best_wall(cmd: list[str], runs: int = 3) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=True, timeout=300)
        best = min(best, time.perf_counter() - t)
    return best


def test_help_is_fast_relative_to_a_bare_interpreter():
    """``rlreg --help`` costs a few bare interpreter starts (about 2-4x here), not a torch import
    (the eager code took about 75x ``python -c pass``)."""
    bare = _best_wall([sys.executable, "-c", "pass"])
    cli = _best_wall([sys.executable, "-m", "rlreg.agents.cli", "--help"])
    assert cli < 20 * bare, f"`python -m rlreg.agents.cli --help` {cli:.3f}s vs `python -c pass` {bare:.3f}s"
