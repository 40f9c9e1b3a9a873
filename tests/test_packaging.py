"""``pip install .`` puts only ``rlreg`` into site-packages: ``agents/`` and ``envs/`` install as
``rlreg.agents`` and ``rlreg.envs`` (issue 14, item 8), with their data files and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_no_top_level_agents_or_envs(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("rlreg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"rlreg"}, tops
    assert "rlreg/agents/cli.py" in names and "rlreg/envs/minatar/base.py" in names
    assert any(n.startswith("rlreg/agents/recipes/") and n.endswith(".yaml") for n in names)
    assert "rlreg/agents/specs/offline-locomotion.yaml" in names  # the shipped table specs
    assert any(n.startswith("rlreg/envs/policies/") and n.endswith(".pt") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rlreg = rlreg.agents.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()

    # installed into an empty folder standing for a fresh site-packages (no dependencies: only
    # what the wheel itself puts there)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert installed == {"rlreg"}, installed
