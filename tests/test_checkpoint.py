"""Checkpoints and policy files load without unpickling code, and round-trip RNG states exactly."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlreg.checkpoint import (
    UnsafeFileError,
    load_checkpoint,
    rng_state,
    safe_load,
    save_atomic,
    set_rng_state,
)
from rlreg.errors import RlregError


class _Evil:
    """Unpickling this runs ``os.system(touch <marker>)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_evil(path: Path, marker: Path, wrap: dict | None = None) -> None:
    payload = dict(wrap or {}, evil=_Evil(marker))
    torch.save(payload, path)  # a plain torch.save, as an attacker would write it


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoint.pt"
    _write_evil(ckpt, marker, {"format": "rlreg-checkpoint", "step": 1})
    with pytest.raises(UnsafeFileError, match="arbitrary code"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_malicious_policy_file_is_refused(tmp_path: Path) -> None:
    from rlreg.envs.policies import load_policy

    marker = tmp_path / "pwned"
    path = tmp_path / "step_00001000.pt"
    _write_evil(path, marker, {"format": "rlreg-policy"})
    with pytest.raises(UnsafeFileError, match="policy file"):
        load_policy(path)
    assert not marker.exists()


def test_rng_and_numpy_round_trip_bit_for_bit(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    for _ in range(7):
        random.random(), np.random.standard_normal(), torch.rand(1)  # noqa: B018 (advance the streams)
    pcg = np.random.default_rng(9).bit_generator.state
    gen = torch.Generator().manual_seed(11)
    obj = {
        "rng": rng_state(),
        "pcg": pcg,
        "gen": gen.get_state(),
        "arr": np.arange(6, dtype=np.uint32).reshape(2, 3),
        "scalar": np.float64(1.25),
        "nested": [(1, np.int64(2)), {"x": np.zeros(2, np.float16)}],
    }
    expect = (random.random(), float(np.random.standard_normal()), float(torch.rand(1)))
    save_atomic(obj, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt.tmp").exists()
    back = safe_load(tmp_path / "c.pt", "checkpoint", "n/a")
    set_rng_state(back["rng"])
    assert (random.random(), float(np.random.standard_normal()), float(torch.rand(1))) == expect
    assert back["pcg"] == pcg
    assert torch.equal(back["gen"], gen.get_state())
    assert back["arr"].dtype == np.uint32 and (back["arr"] == np.arange(6).reshape(2, 3)).all()
    assert back["scalar"] == 1.25 and back["nested"][0] == (1, 2)
    assert back["nested"][1]["x"].dtype == np.float16


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    save_atomic({"format": "rlreg-checkpoint", "w": torch.randn(1000)}, tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RlregError, match="truncated or corrupt") as e:
        load_checkpoint(tmp_path / "c.pt")
    assert not isinstance(e.value, UnsafeFileError)


def test_unsaveable_object_leaves_no_partial_file(tmp_path: Path) -> None:
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("no")

    with pytest.raises(TypeError):
        save_atomic({"x": Unpicklable()}, tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["evaluate", "resume", "export"])
def test_cli_refuses_crafted_files(tmp_path: Path, pendulum_medium: str, command: str) -> None:
    """``rlreg evaluate DIR``, ``rlreg train --resume DIR`` and ``rlreg policy export`` on a run whose
    checkpoint (or snapshot) is a crafted pickle: one line, exit 2, and the payload never runs."""
    from rlreg.agents.cli import main

    run = tmp_path / "run"
    code = main(
        [
            "train", "td3bc", "--dataset", pendulum_medium, "--steps", "40", "--eval-episodes", "0",
            "--set", "train.snapshot_every=40", "--out", str(run), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    marker = tmp_path / "pwned"
    if command == "export":
        _write_evil(run / "snapshots" / "step_00000040.pt", marker, {"format": "rlreg-policy"})
        argv = ["policy", "export", str(run), "--step", "40", "--out", str(tmp_path / "p.pt")]
    else:
        _write_evil(run / "checkpoint.pt", marker, {"format": "rlreg-checkpoint", "step": 1})
        argv = ["evaluate", str(run)] if command == "evaluate" else ["train", "--resume", str(run)]
    proc = subprocess.run(
        [sys.executable, "-m", "rlreg.agents.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "arbitrary code" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_garbage_bytes_are_corrupt_not_unsafe(tmp_path: Path) -> None:
    (tmp_path / "c.pt").write_bytes(b"not a torch file at all" * 10)
    with pytest.raises(RlregError, match="truncated or corrupt") as e:
        load_checkpoint(tmp_path / "c.pt")
    assert not isinstance(e.value, UnsafeFileError)


def test_policy_files_keep_the_actor_activation_and_layer_norm(tmp_path):
    """A tanh/LayerNorm actor saved as a policy file comes back with the same architecture and actions."""
    import numpy as np
    import torch
    from rlreg.envs.policies import load_policy, save_policy

    from rlreg.data.transitions import ObsNormalizer
    from rlreg.nets import Actor

    torch.manual_seed(0)
    actor = Actor(3, 1, (8, 8), -2 * torch.ones(1), 2 * torch.ones(1), activation="tanh", layer_norm=True)
    path = save_policy(
        tmp_path / "p.pt", env_id="Pendulum-v1", actor=actor, normalizer=ObsNormalizer.identity(3)
    )
    policy = load_policy(path)
    assert policy.actor.net.activation == "tanh" and policy.actor.net.layer_norm
    obs = torch.randn(5, 3)
    assert torch.equal(policy.actor(obs), actor(obs).detach()) and np.isfinite(obs.numpy()).all()
