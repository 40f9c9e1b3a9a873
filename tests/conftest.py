"""Shared fixtures: an isolated RLREG_HOME with a small Pendulum dataset made once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
# The suite's runs register in a folder of their own: rlreg runs training elsewhere on the machine
# must not change the suite's thread counts (torch is imported here before rlreg could make the
# numerics thread-independent, so a run and its resumed copy must see the same count to be exact).
os.environ["RLREG_JOBS_DIR"] = tempfile.mkdtemp(prefix="rlreg-test-jobs-")


@pytest.fixture(scope="session", autouse=True)
def rlreg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RLREG_HOME pointing at a session temp folder (nothing is written to the user's home)."""
    home = tmp_path_factory.mktemp("rlreg_home")
    old = os.environ.get("RLREG_HOME")
    os.environ["RLREG_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("RLREG_HOME", None)
    else:
        os.environ["RLREG_HOME"] = old


@pytest.fixture(scope="session")
def pendulum_medium(rlreg_home: Path) -> str:
    """The registered pendulum-medium-v0 dataset, made once (≈4 s); returns its name."""
    from rlreg.envs.datasets import make_dataset

    make_dataset("pendulum-medium-v0")
    return "pendulum-medium-v0"


@pytest.fixture(scope="session")
def cartpole_medium(rlreg_home: Path) -> str:
    """The registered cartpole-medium-v0 dataset (discrete actions), made once (≈10 s)."""
    from rlreg.envs.datasets import make_dataset

    make_dataset("cartpole-medium-v0", progress=False)
    return "cartpole-medium-v0"


def random_batch(n: int = 32, obs_dim: int = 5, act_dim: int = 2, seed: int = 0):
    """A fixed synthetic TensorBatch."""
    from rlreg.data.transitions import TensorBatch

    g = torch.Generator().manual_seed(seed)
    return TensorBatch(
        torch.randn(n, obs_dim, generator=g),
        torch.rand(n, act_dim, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, obs_dim, generator=g),
        (torch.rand(n, generator=g) < 0.1).float(),
    )


def unit_box(act_dim: int) -> tuple[np.ndarray, np.ndarray]:
    return -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32)


def _load_script(name: str):
    """Import ``scripts/<name>.py`` as module ``name`` (once per session)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_script():
    """``load_script("seed_table")``: a script under ``scripts/`` imported as a module."""
    return _load_script


@pytest.fixture
def make_batch():
    """Factory for fixed synthetic batches: ``make_batch(n, obs_dim, act_dim, seed)``."""
    return random_batch


def _poor_half_task(n: int = 4000, seed: int = 0):
    """A one-step offline task where the behaviour is poor in half the states.

    s ~ U[-1, 1]², a ∈ [-1, 1], r = 1 − 4 (a − s₀/2)², every transition terminal. The behaviour
    acts near-optimally (noise 0.05) where s₁ > 0 and 0.5 off where s₁ ≤ 0. Returns the
    :class:`TransitionStore` and the data's mean reward (≈ 0.49).
    """
    from rlreg.data.transitions import TransitionStore

    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    best = 0.5 * s[:, :1]
    a = np.clip(best + np.where(s[:, 1:] <= 0, 0.5, 0.0) + 0.05 * rng.standard_normal((n, 1)), -1, 1)
    r = (1 - 4 * (a - best) ** 2)[:, 0]
    store = TransitionStore(n, 2, 1)
    store.add(s, a, r, s, np.ones(n))
    return store, float(r.mean())


def _poor_half_score(actor, n: int = 1000) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Mean true reward of ``actor`` on fixed test states of :func:`_poor_half_task`."""
    s = torch.rand(n, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        a = actor(s)
    return (1 - 4 * (a - 0.5 * s[:, :1]) ** 2).mean().item(), s, a


@pytest.fixture
def poor_half():
    """``(make_task, score)``: :func:`_poor_half_task` and :func:`_poor_half_score`."""
    return _poor_half_task, _poor_half_score
