"""GPU checks (skipped without CUDA): no host synchronisation in an update; CPU/CUDA parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rlreg.agents.td3 import TD3Agent, TD3Config

from rlreg.data.transitions import TransitionStore
from rlreg.regularizers import BC

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
S, A = 11, 3


def agent_on(device: str, **cfg) -> TD3Agent:
    low, high = -np.ones(A, np.float32), np.ones(A, np.float32)
    return TD3Agent(TD3Config(alpha=2.5, **cfg), S, A, low, high, [BC()], device=device, seed=0)


def synthetic_store(device: str, n: int = 10_000) -> TransitionStore:
    rng = np.random.default_rng(0)
    store = TransitionStore(n, S, A, device)
    store.add(
        rng.normal(size=(n, S)),
        rng.uniform(-1, 1, (n, A)),
        rng.normal(size=n),
        rng.normal(size=(n, S)),
        rng.uniform(size=n) < 0.01,
    )
    return store


@cuda
def test_update_and_sampling_never_synchronise_with_the_host():
    agent = agent_on("cuda")
    store = synthetic_store("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(4):  # warm-up: lazy optimizer state, cuBLAS handles
        agent.update(store.sample(256, gen))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(6):
            metrics = agent.update(store.sample(256, gen))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(v.device.type == "cuda" for v in metrics.values())


@cuda
def test_cpu_and_cuda_updates_agree():
    # No smoothing noise: CPU and CUDA random streams differ, everything else must match.
    cpu, gpu = agent_on("cpu", policy_noise=0.0), agent_on("cuda", policy_noise=0.0)
    store = synthetic_store("cpu")
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        batch = store.sample(256, gen)
        m_cpu = cpu.update(batch)
        m_gpu = gpu.update(type(batch)(*(t.cuda() for t in batch[:5])))
    for k in m_cpu:
        assert m_gpu[k].item() == pytest.approx(m_cpu[k].item(), rel=1e-3, abs=1e-5), k
    for p, q in zip(cpu.actor.parameters(), gpu.actor.parameters()):
        torch.testing.assert_close(p, q.cpu(), rtol=1e-3, atol=1e-5)


@cuda
def test_update_is_capturable_in_a_cuda_graph():
    # Static shapes and no host syncs make the whole update (critic, actor, Adam, Polyak) capturable.
    # Smoothing noise is off so eager and replayed runs see identical inputs.
    eager, graphed = (
        agent_on("cuda", policy_noise=0.0, policy_freq=1),
        agent_on("cuda", policy_noise=0.0, policy_freq=1),
    )
    store = synthetic_store("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    static = store.sample(256, gen)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up on a side stream, as CUDA graphs require
            batch = store.sample(256, gen)
            for t, b in zip(static, batch):
                t.copy_(b)
            eager.update(batch)
            graphed.update(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = graphed.update(static)
    for _ in range(5):
        batch = store.sample(256, gen)
        for t, b in zip(static, batch):
            t.copy_(b)
        graph.replay()
        ref = eager.update(batch)
    torch.cuda.synchronize()
    assert out["train/critic_loss"].item() == pytest.approx(ref["train/critic_loss"].item(), rel=1e-4)
    assert_same_networks(eager, graphed, "actor", "critic_target")


def assert_same_networks(a, b, *names: str) -> None:
    for name in names:
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


@cuda
def test_captured_training_matches_eager_training():
    # train.cuda_graph: sampling and smoothing noise draw from the same generators as eager updates
    eager, graphed = agent_on("cuda"), agent_on("cuda")
    store = synthetic_store("cuda")
    g_eager = torch.Generator(device="cuda").manual_seed(5)
    g_graph = torch.Generator(device="cuda").manual_seed(5)
    step = graphed.captured_steps(store, 256, g_graph)
    for _ in range(7):
        ref = eager.update(store.sample(256, g_eager))
        out = step()
    torch.cuda.synchronize()
    assert graphed.num_updates == eager.num_updates == 7
    assert out["train/critic_loss"].item() == pytest.approx(ref["train/critic_loss"].item(), rel=1e-4)
    assert_same_networks(eager, graphed, "critic", "actor_target")


@cuda
def test_online_captured_training_matches_eager(tmp_path):
    import json

    from rlreg.agents.recipes import resolve_config
    from rlreg.agents.trainer import train

    metrics = []
    for name, graph in (("eager", "false"), ("graph", "true")):
        cfg = resolve_config(
            "td3",
            None,
            env="Pendulum-v1",
            device="cuda",
            seed=1,
            sets={
                "train.steps": "600",
                "train.learning_starts": "200",
                "train.log_every": "200",
                "train.eval_episodes": "0",
                "train.cuda_graph": graph,
                "actor_hidden": "[64]",
                "critic_hidden": "[64]",
            },
        )
        train(cfg, tmp_path / name, progress=False)
        metrics.append(json.loads(json.dumps((tmp_path / name / "metrics.csv").read_text().splitlines()[-1])))
    last_eager, last_graph = (m.split(",") for m in metrics)
    for a, b in zip(last_eager[3:], last_graph[3:]):  # skip step, time, updates_per_s
        if a and b:
            assert float(a) == pytest.approx(float(b), rel=1e-3, abs=1e-5)
