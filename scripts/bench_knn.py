"""PRDC's nearest-neighbour cost: scipy cKDTree (the official path) vs rlreg, and PRDC ÷ TD3+BC.

Part 1, search. Synthetic trajectory-like data: ``--size`` rows (1M) of 17-dim states (random walks
in episodes of 1000 steps, z-normalised) and 6-dim actions (a smooth function of the state plus
noise); keys ``(β s) ⊕ a`` with β = 2 (23 dims). Queries are 256 dataset states with three kinds of
action part: ``random`` (uniform), ``untrained`` (an untrained 2×256 tanh actor) and ``dataset``
(the row's own action). Printed: ms per 256-query batch for scipy ``cKDTree.query(k=[1],
workers=-1)`` and for rlreg (``RowCertifiedKNN``: certified candidates + bounded tree fallback;
``brute`` on CUDA), the certified fraction, and whether both return the same neighbours.

Part 2, training. TD3+BC and PRDC agents (recipe networks, batch 256) train on the same data in
one process, alternating blocks of updates; printed: updates/s of each and the PRDC ÷ TD3+BC
update-time ratio (target ≤ 1.15), with the certified fraction as PRDC's policy trains.

    python scripts/bench_knn.py                       # CPU, 1M rows
    python scripts/bench_knn.py --dataset hopper-medium-replay-v0
    python scripts/bench_knn.py --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch


def trajectory_data(size: int, obs_dim: int = 17, act_dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    episode = 1000
    steps = rng.standard_normal((size, obs_dim)).astype(np.float32) * 0.05
    starts = np.zeros(size, bool)
    starts[::episode] = True
    steps[starts] = rng.standard_normal((starts.sum(), obs_dim)).astype(np.float32)
    # random walks restarted at each episode start: cumulative sum within episodes
    states = np.cumsum(steps, 0)
    first = np.maximum.accumulate(np.where(starts, np.arange(size), 0))
    states -= np.cumsum(steps, 0)[first] - steps[first]
    w = rng.standard_normal((obs_dim, act_dim)).astype(np.float32) / np.sqrt(obs_dim)
    actions = np.tanh(states @ w + 0.2 * rng.standard_normal((size, act_dim)).astype(np.float32))
    states = (states - states.mean(0)) / (states.std(0) + 1e-3)
    rewards = rng.standard_normal(size).astype(np.float32)
    dones = np.zeros(size, np.float32)
    return states.astype(np.float32), actions.astype(np.float32), rewards, dones


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1e3


def part_search(states, actions, device: str, beta: float, repeats: int) -> None:
    from scipy.spatial import cKDTree

    from rlreg.knn import KNNIndex, RowCertifiedKNN
    from rlreg.nets import Actor

    n, obs_dim = states.shape
    act_dim = actions.shape[1]
    keys_np = np.concatenate([beta * states, actions], 1).astype(np.float32)
    t = time.perf_counter()
    tree = cKDTree(keys_np)
    t_tree = time.perf_counter() - t
    keys = torch.as_tensor(keys_np, device=device)
    t = time.perf_counter()
    index = KNNIndex(keys)
    fast = RowCertifiedKNN(keys, obs_dim, 32, index) if device == "cpu" else None
    t_ours = time.perf_counter() - t
    print(
        f"build: scipy cKDTree {t_tree:.1f} s; rlreg ({index.backend}"
        + (" + row candidates" if fast else "")
        + f") {t_ours:.1f} s"
    )
    rng = np.random.default_rng(1)
    actor = Actor(obs_dim, act_dim, (256, 256), -torch.ones(act_dim), torch.ones(act_dim))
    print(
        f"{'action part':<12} {'scipy ms':>9} {'rlreg ms':>9} {'speed-up':>9} {'certified':>10} {'same':>6}"
    )
    for kind in ("random", "untrained", "dataset"):
        batches = []
        for _ in range(repeats + 1):
            rows = rng.integers(0, n, 256)
            s = states[rows]
            if kind == "random":
                a = rng.uniform(-1, 1, (256, act_dim)).astype(np.float32)
            elif kind == "untrained":
                with torch.no_grad():
                    a = actor(torch.as_tensor(s)).numpy()
            else:
                a = actions[rows]
            q = np.concatenate([beta * s, a], 1).astype(np.float32)
            batches.append((rows, q))
        scipy_it = iter(batches)
        ms_scipy = timed(lambda it=scipy_it: tree.query(next(it)[1], k=[1], workers=-1), repeats)
        oks: list[float] = []
        ours_it = iter(batches)

        def ours(it=ours_it, oks=oks) -> None:
            rows, q = next(it)
            qt = torch.as_tensor(q, device=device)
            if fast is not None:
                _, _, ok = fast.query_rows(torch.as_tensor(rows), qt, 1)
                oks.append(ok.float().mean().item())
            else:
                index.query(qt, 1)
                if device == "cuda":
                    torch.cuda.synchronize()

        ms_ours = timed(ours, repeats)
        rows, q = batches[-1]
        _, ref = tree.query(q, k=[1], workers=-1)
        if fast is not None:
            d_ours, got, _ = fast.query_rows(torch.as_tensor(rows), torch.as_tensor(q), 1)
        else:
            d_ours, got = index.query(torch.as_tensor(q, device=device), 1)
        ref_d = ((q - keys_np[ref[:, 0]]) ** 2).sum(1)
        same = np.allclose(d_ours.cpu().numpy(), ref_d, rtol=1e-5, atol=1e-6)
        cert = f"{statistics.mean(oks):.3f}" if oks else "-"
        print(
            f"{kind:<12} {ms_scipy:9.2f} {ms_ours:9.3f} {ms_scipy / ms_ours:8.1f}x {cert:>10} {str(same):>6}"
        )


def part_candidates(states, actions, beta: float, ms: list[int], queries: int = 4096) -> None:
    """Certified fraction vs candidates per row M, for π(s) = the row's action + Gaussian noise."""
    from rlreg.knn import RowCertifiedKNN
    from rlreg.paths import rlreg_home

    nb = RowCertifiedKNN.state_neighbours(states, max(ms), cache_dir=rlreg_home() / "cache" / "knn")
    keys = torch.as_tensor(np.concatenate([beta * states, actions], 1))
    rng = np.random.default_rng(0)
    print("noise std   " + "  ".join(f"M={m:<4d}" for m in ms))
    for noise in (0.05, 0.1, 0.2, 0.3):
        rows = rng.integers(0, len(states), queries)
        pi = np.clip(actions[rows] + noise * rng.standard_normal((queries, actions.shape[1])), -1, 1)
        q = torch.as_tensor(np.concatenate([beta * states[rows], pi], 1), dtype=torch.float32)
        fracs = []
        for m in ms:
            cand = torch.as_tensor(nb[rows, :m]).long()
            d = (keys[cand] - q[:, None, :]).square().sum(2).min(1).values
            r2 = beta**2 * torch.as_tensor(states[nb[rows, m - 1]] - states[rows]).square().sum(1)
            fracs.append((d <= r2).float().mean().item())
        print(f"{noise:<11} " + "  ".join(f"{f:<6.3f}" for f in fracs))


def part_training(data, device: str, updates: int, block: int) -> None:
    from rlreg.agents.recipes import resolve_config
    from rlreg.agents.sources import OfflineSampler
    from rlreg.agents.td3 import TD3Agent, TD3Config

    from rlreg.data.transitions import TransitionStore
    from rlreg.regularizers import BC, PRDC, SetupSource

    states, actions, rewards, dones = data
    n, obs_dim = states.shape
    act_dim = actions.shape[1]
    store = TransitionStore(n, obs_dim, act_dim, device)
    store.add(states, actions, rewards, np.roll(states, -1, 0), dones)
    low, high = -torch.ones(act_dim), torch.ones(act_dim)
    agents = {}
    prdc_config = resolve_config("prdc", None)["regularizers"][0]["config"]
    for name, reg in (
        ("td3bc", BC()),
        ("prdc", PRDC(**prdc_config)),
        ("prdc-inline", PRDC(**{**prdc_config, "overlap": False})),
    ):
        agent = TD3Agent(TD3Config(alpha=2.5), obs_dim, act_dim, low, high, [reg], device=device, seed=0)
        # as the trainer does: the offline sampler, whose look-ahead PRDC asks for (same batches)
        sampler = OfflineSampler(store, 256, torch.device(device), seed=0)
        t = time.perf_counter()
        spec = SetupSource(obs_dim, act_dim, agent.action_low, agent.action_high, store=store)
        agent.setup(dataclasses.replace(spec, lookahead=sampler.lookahead))
        if name.startswith("prdc"):
            print(f"{name} setup (keys, tree, candidates per row): {time.perf_counter() - t:.1f} s")
        agents[name] = (agent, sampler)
    times: dict[str, list[float]] = {name: [] for name in agents}
    certified = []
    for i in range(updates // block):
        for name in list(agents) if i % 2 == 0 else list(agents)[::-1]:
            agent, sampler = agents[name]
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(block):
                m = agent.update(sampler.sample())
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t) / block)
            if name == "prdc" and "reg/prdc/certified" in m:
                certified.append(m["reg/prdc/certified"].item())
    ups = {k: 1 / statistics.median(v) for k, v in times.items()}
    half = len(times["td3bc"]) // 2
    for name, label in (("prdc", "search overlapping the critic step"), ("prdc-inline", "search inline")):
        ratios = [p / b for p, b in zip(times[name], times["td3bc"])]
        print(
            f"TD3+BC {ups['td3bc']:.0f} updates/s, PRDC ({label}) {ups[name]:.0f} updates/s; "
            f"PRDC / TD3+BC update time: median of paired blocks {statistics.median(ratios):.3f}, "
            f"second half {statistics.median(ratios[half:]):.3f}"
        )
    same = torch.equal(agents["prdc"][0].actor.net.flat, agents["prdc-inline"][0].actor.net.flat)
    print(f"overlapped and inline PRDC end with identical actor weights: {same}")
    if certified:
        print("certified fraction per PRDC block: " + " ".join(f"{c:.2f}" for c in certified))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--dataset", help="a dataset spec (e.g. hopper-medium-v0) instead of the synthetic data")
    p.add_argument("--device", default="cpu")
    p.add_argument("--beta", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--updates", type=int, default=4000)
    p.add_argument("--block", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument(
        "--candidates-table", metavar="M,M,...", help="also print certified fraction vs M, e.g. 16,32,64,128"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpu = platform.processor() or platform.machine()
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    print(f"# bench_knn {when}, {cpu}, {args.device}, torch {torch.__version__}, {args.threads} threads")
    if args.dataset:
        from rlreg.envs.datasets import load_dataset

        from rlreg.data.transitions import ObsNormalizer

        t = load_dataset(args.dataset, progress=True)
        norm = ObsNormalizer.from_observations(t.observations)
        data = (norm(t.observations), t.actions, t.rewards, t.terminals.astype(np.float32))
        print(f"data: {args.dataset} ({len(t)} transitions, {t.obs_dim}+{t.act_dim} dims)")
    else:
        data = trajectory_data(args.size)
        print(f"data: synthetic trajectories ({args.size} transitions, 17+6 dims)")
    if not args.skip_search:
        part_search(data[0], data[1], args.device, args.beta, args.repeats)
    if args.candidates_table:
        part_candidates(data[0], data[1], args.beta, [int(m) for m in args.candidates_table.split(",")])
    if not args.skip_training:
        part_training(data, args.device, args.updates, args.block)


if __name__ == "__main__":
    main()
