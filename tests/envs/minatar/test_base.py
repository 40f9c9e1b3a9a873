"""MinAtarBatch machinery shared by the games: output buffers that are reused only when unshared."""

from __future__ import annotations

import numpy as np
import pytest
import rlreg.envs.minatar.seaquest  # noqa: F401  (registers the game)
import rlreg.envs.minatar.space_invaders  # noqa: F401
import torch
from rlreg.envs.minatar import MinAtarBatch


def test_outputs_held_by_the_caller_are_never_overwritten():
    """Observations the caller still holds (the tensor, a view of it or a numpy alias) keep their
    values while the environment steps on; dropped ones are reused (no fresh allocation)."""
    env = MinAtarBatch("breakout", 256, seed=0, obs_dtype=torch.float32)
    assert env._reuse  # 256 x 400 float32 outputs are large enough to be pooled
    gen = torch.Generator().manual_seed(0)
    held: list[tuple[torch.Tensor, torch.Tensor]] = []
    views, arrays = [], []
    for t in range(40):
        obs, _, _, _, final = env.step(torch.randint(0, 6, (256,), generator=gen))
        if t % 3 == 0:
            held.append((obs, obs.clone()))
        elif t % 3 == 1:
            views.append((final[5:], final[5:].clone()))
        else:
            arrays.append((obs.numpy(), obs.numpy().copy()))
        del obs, final
    for kept, copy in held + views:
        assert torch.equal(kept, copy)
    for kept, copy in arrays:
        assert np.array_equal(kept, copy)

    # nothing held: the two tensors of one step are the two of the step before
    env.step(torch.zeros(256, dtype=torch.int64))
    before = {t.data_ptr() for t in env._pool}
    ptrs = set()
    for _ in range(5):
        obs, _, _, _, final = env.step(torch.zeros(256, dtype=torch.int64))
        ptrs |= {obs.data_ptr(), final.data_ptr()}
        del obs, final
    assert ptrs <= before


def test_outputs_are_distinct_tensors_with_the_dtype():
    for dtype in (torch.float32, torch.uint8, torch.bool):
        env = MinAtarBatch("freeway", 300, seed=1, obs_dtype=dtype)
        for _ in range(3):
            obs, _, _, _, final = env.step(torch.full((300,), 2))
            assert obs.dtype == final.dtype == dtype and obs.shape == final.shape == (300, 7, 10, 10)
            assert obs.data_ptr() != final.data_ptr() and torch.equal(obs, final)  # no episode ended


def _trajectory(game: str, sparse_from: int, monkeypatch, dtype=torch.bool) -> list[torch.Tensor]:
    monkeypatch.setattr(MinAtarBatch, "sparse_reset_min_envs", sparse_from)
    env = MinAtarBatch(game, 40, seed=3, obs_dtype=dtype)
    if game == "freeway":  # staggered episode ends, so a few environments reset at a time
        env.game.time_left.copy_(torch.arange(40) * 7)
    gen = torch.Generator().manual_seed(3)
    out = []
    for _ in range(300):
        up = torch.rand(40, generator=gen) < 0.5  # Freeway: score now and then
        actions = torch.where(up, 2, torch.randint(0, 6, (40,), generator=gen))
        out += [x.clone() for x in env.step(actions)]
    return out


@pytest.mark.parametrize("game", ["breakout", "freeway", "asterix", "space_invaders", "seaquest"])
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32])
def test_sparse_resets_and_lazy_draws_change_nothing(game, dtype, monkeypatch):
    """Resetting a few environments on a sub-batch, rendering only their rows anew and computing
    only the random draws in use (the large-batch CPU path, forced here at N=40) gives exactly the
    dense path's trajectories and observations."""
    sparse = _trajectory(game, 0, monkeypatch, dtype)
    dense = _trajectory(game, 10**9, monkeypatch, dtype)
    assert sum(int(x.sum()) for x in sparse[2::5]) > 5  # episodes ended along the way
    for a, b in zip(sparse, dense, strict=True):
        assert torch.equal(a, b)
