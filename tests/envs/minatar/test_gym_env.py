"""Gymnasium interfaces of the batched MinAtar games: registered ids, the vector env, the single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from rlreg.envs.minatar import GYM_IDS, MinAtarBatch, MinAtarEnv, MinAtarVectorEnv

from rlreg.errors import RlregError


@pytest.mark.parametrize("game", sorted(GYM_IDS))
def test_registered_single_env_passes_gymnasium_checker(game):
    env = gym.make(GYM_IDS[game])
    assert isinstance(env.unwrapped, MinAtarEnv)
    channels = len(MinAtarBatch(game, 1).game.channels)
    assert env.observation_space.shape == (channels, 10, 10)
    assert env.action_space == gym.spaces.Discrete(6)
    check_env(env.unwrapped, skip_render_check=True)


def test_make_vec_builds_one_batched_env_equal_to_minatar_batch():
    vec = gym.make_vec(GYM_IDS["breakout"], num_envs=16, obs_dtype="bool")
    assert isinstance(vec, MinAtarVectorEnv)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert vec.observation_space.shape == (16, 4, 10, 10) and vec.observation_space.dtype == np.bool_
    ref = MinAtarBatch("breakout", 16, seed=5, obs_dtype=torch.bool)
    obs, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(obs, ref.reset().numpy())
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(300):
        a = rng.integers(0, 6, 16)
        obs, rew, term, trunc, info = vec.step(a)
        r_obs, r_rew, r_term, r_trunc, r_final = ref.step(torch.as_tensor(a))
        np.testing.assert_array_equal(obs, r_obs.numpy())
        np.testing.assert_array_equal(rew, r_rew.numpy())
        np.testing.assert_array_equal(term, r_term.numpy())
        np.testing.assert_array_equal(info["_final_obs"], (r_term | r_trunc).numpy())
        np.testing.assert_array_equal(info["final_obs"], r_final.numpy())
        ended += int(term.sum())
    assert ended > 0  # autoreset was exercised


def test_single_env_episode_is_the_batch_of_one_without_autoreset():
    env = MinAtarEnv("breakout", seed=2)
    ref = MinAtarBatch("breakout", 1, seed=2)
    obs, _ = env.reset(seed=2)
    np.testing.assert_array_equal(obs, ref.reset()[0].numpy())
    done, steps = False, 0
    while not done:
        obs, rew, term, trunc, _ = env.step(3)
        r_obs, r_rew, r_term, _, r_final = ref.step(torch.tensor([3]))
        np.testing.assert_array_equal(obs, r_final[0].numpy())  # the episode's own last frame
        assert rew == float(r_rew[0]) and term == bool(r_term[0])
        done, steps = term or trunc, steps + 1
    assert steps > 1
    with pytest.raises(RlregError, match="after the episode ended"):
        env.step(0)
    obs, _ = env.reset()
    assert obs.shape == (4, 10, 10) and obs.sum() > 0


def test_vector_env_options_and_torch_outputs():
    vec = MinAtarVectorEnv("asterix", 4, minimal_actions=True, obs_dtype=torch.uint8, numpy=False)
    assert vec.single_action_space == gym.spaces.Discrete(5)
    obs, _ = vec.reset()
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.uint8 and obs.shape == (4, 4, 10, 10)
    obs, rew, term, trunc, info = vec.step(torch.zeros(4, dtype=torch.int64))
    assert isinstance(rew, torch.Tensor) and isinstance(info["final_obs"], torch.Tensor)
    # reset(seed) restarts the streams: the same seed twice gives the same episodes
    a, _ = vec.reset(seed=9)
    first = [vec.step(torch.full((4,), 2))[0].clone() for _ in range(20)]
    b, _ = vec.reset(seed=9)
    assert torch.equal(a, b)
    assert all(torch.equal(x, vec.step(torch.full((4,), 2))[0]) for x in first)


def test_bad_input_is_named():
    with pytest.raises(RlregError, match="obs_dtype 'float64'"):
        MinAtarVectorEnv("breakout", 2, obs_dtype="float64")
    vec = MinAtarVectorEnv("breakout", 2)
    with pytest.raises(RlregError, match="before reset"):
        vec.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(RlregError, match="seed must be an int"):
        vec.reset(seed=[1, 2])
    with pytest.raises(RlregError, match="one environment"):
        MinAtarEnv("breakout", num_envs=4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize(
    "make",
    [
        lambda: gym.make_vec(GYM_IDS["breakout"], num_envs=4, device="cuda", numpy=False),
        lambda: gym.make(GYM_IDS["breakout"], device="cuda"),
        lambda: MinAtarVectorEnv("breakout", 4, device=torch.device("cuda")),
        lambda: MinAtarBatch("breakout", 4, device="cuda"),
    ],
    ids=["make_vec", "make", "vector_env", "batch"],
)
def test_cuda_without_cuda_is_a_clear_error(make):
    with pytest.raises(RlregError, match="device 'cuda' requested but CUDA is not available") as e:
        make()
    assert "device='cpu'" in e.value.fix and "CUDA build of torch" in e.value.fix


def test_bad_device_is_a_clear_error():
    with pytest.raises(RlregError, match="not a torch device"):
        MinAtarBatch("breakout", 4, device="gpu")
    n = torch.cuda.device_count()
    if torch.cuda.is_available():
        with pytest.raises(RlregError, match="CUDA device"):
            MinAtarBatch("breakout", 4, device=f"cuda:{n}")
