"""The README's "Writing an agent" example runs as printed: a user-defined agent, registered and
trained through ``rlreg.train`` like the built-in ones."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_code(heading: str, index: int = 0) -> str:
    text = README.read_text()
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    blocks = re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)
    assert blocks, f"no python block under {heading}"
    return blocks[index]


def test_writing_an_agent_example_runs(pendulum_medium, tmp_path, monkeypatch, capsys):
    code = section_code("### Writing an agent")
    assert len(code.strip().splitlines()) <= 50
    monkeypatch.chdir(tmp_path)  # rlreg.train writes runs/ here
    module = types.ModuleType("readme_example")  # dataclasses look their module up in sys.modules
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, "README.md (Writing an agent)", "exec"), module.__dict__)
    run = module.run
    assert run.summary["steps"] == 2000 and run.summary["agent"] == "bc-mlp"
    assert run.metrics["train/bc_loss"][-1] < run.metrics["train/bc_loss"][0]
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(printed) == run.summary["final_score"]


def test_stable_baselines3_examples_run(pendulum_medium, monkeypatch, capsys):
    """Both SB3 blocks, as printed except for their budgets (cut to a few hundred steps)."""
    for index in (0, 1):
        code = section_code("### Use with Stable-Baselines3", index)
        assert len(code.strip().splitlines()) <= 12
        code = code.replace("2_000", "300").replace("5_000", "300")
        exec(compile(code, f"README.md (Use with Stable-Baselines3, block {index})", "exec"), {})
    printed = capsys.readouterr().out
    assert "offline score" in printed and "online return" in printed


def test_stable_baselines3_offline_dqn_line_runs(cartpole_medium):
    """The inline offline DQN example of the SB3 section, with its budget cut."""
    text = README.read_text()
    section = text[text.index("### Use with Stable-Baselines3") :]
    code = re.search(r"`(DQN\(\"MlpPolicy\", \"CartPole-v1\".*?learn_offline\(.*?\))`", section, flags=re.S)
    assert code, "no inline offline DQN example"
    line = code.group(1).replace("\n", " ").replace("10_000", "300")
    env = {}
    exec("from rlreg.agents.sb3 import DQN\nfrom rlreg.regularizers import Munchausen", env)
    out = eval(compile(line, "README.md (offline DQN)", "eval"), env)
    assert out["dataset"] == "cartpole-medium-v0" and out["gradient_steps"] == 300
