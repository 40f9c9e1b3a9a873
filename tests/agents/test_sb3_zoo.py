"""The rl-zoo3 example (docs/rl_zoo3): the zoo's own train entry point runs rlreg's TD3 with the
regularizers its hyper-parameter file names, and the saved model carries them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3")
ROOT = Path(__file__).resolve().parents[2]


def test_zoo_trains_rlreg_td3_with_the_regularizers_of_its_file(tmp_path):
    from rlreg.agents.sb3 import TD3

    cmd = [
        sys.executable, str(ROOT / "docs/rl_zoo3/train.py"), "--algo", "td3", "--env", "Pendulum-v1",
        "--conf-file", str(ROOT / "docs/rl_zoo3/td3bc.yml"), "-n", "400", "-f", str(tmp_path),
        "--seed", "0", "-params", "learning_starts:200", "policy_kwargs:dict(net_arch=[32])",
    ]  # fmt: skip
    subprocess.run(
        cmd, check=True, cwd=tmp_path, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    (saved,) = tmp_path.glob("td3/Pendulum-v1_*/Pendulum-v1.zip")
    model = TD3.load(saved, device="cpu")
    assert [r.name for r in model.regularizers] == ["bc"] and model.alpha == 2.5
    assert model._n_updates > 0
