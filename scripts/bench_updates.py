"""TD3+BC gradient updates per second: rlreg vs plain PyTorch vs Stable-Baselines3 ``TD3.train()``.

Both learners get the same synthetic D4RL-sized data (``--size`` transitions, Hopper-like shapes by
default), batch 256, 2×256 MLPs, twin critics, policy delay 2, on the same device and thread count.
Runs alternate (rlreg, SB3, rlreg, SB3, ...) so machine noise hits both; reported: the median of
each, their ratio, and the median of the per-pair ratios (robust to the machine's drift).
SB3 has no BC term, so it does slightly less work than ours. "plain PyTorch" is the same TD3+BC
update written with ``nn.Linear``, autograd and ``Adam(fused=True)`` (the engine question of issue
14: what the hand-fused MLP and FlatAdam gain over it).

    python scripts/bench_updates.py                      # CPU, 2 threads
    python scripts/bench_updates.py --device cuda --updates 3000
    python scripts/bench_updates.py --engine-ref HEAD~1  # also the same agent on an earlier nets.py

``--engine-ref REV`` adds a fourth learner: the same agent code (a second copy of
``rlreg.agents.td3``) bound to ``rlreg/nets.py`` as of git revision ``REV``, to check that an engine
change keeps its speed (paired ratio against the current engine).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import numpy as np
import torch


def synthetic(size: int, obs_dim: int, act_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.normal(size=(size, obs_dim)).astype(np.float32),
        "act": rng.uniform(-1, 1, (size, act_dim)).astype(np.float32),
        "rew": rng.normal(size=size).astype(np.float32),
        "next_obs": rng.normal(size=(size, obs_dim)).astype(np.float32),
        "done": (rng.uniform(size=size) < 0.005).astype(np.float32),
    }


def _load_module(name: str, path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _backport(nets: ModuleType, rev: str) -> None:
    """Let the current agent code drive an older engine at its defaults: the names added since
    (``MLP.fused``, ``Critic.q1_frozen``, the ``activation``/``layer_norm`` keywords)."""
    if not hasattr(nets.MLP, "fused"):
        nets.MLP.fused = property(lambda self: True)  # the earlier engine was ReLU-only, all fused
    if not hasattr(nets.Critic, "q1_frozen"):
        nets.Critic.q1_frozen = nets.Critic.q1  # the earlier q1 treated the weights as constants
    for cls in (nets.Actor, nets.Critic):
        if "activation" in inspect.signature(cls.__init__).parameters:
            continue

        def init(self, *args, activation="relu", layer_norm=False, _init=cls.__init__, **kwargs):
            if activation != "relu" or layer_norm:
                raise SystemExit(f"nets.py@{rev} has only ReLU without LayerNorm: bench the defaults")
            _init(self, *args, **kwargs)

        cls.__init__ = init


def td3_with_engine(rev: str) -> ModuleType:
    """A separate copy of ``rlreg.agents.td3`` whose network names come from ``rlreg/nets.py`` at git
    revision ``rev`` (the agent code itself is the current one)."""
    import rlreg.agents.td3 as td3

    root = Path(__file__).resolve().parents[1]
    show = ["git", "-C", str(root), "show", f"{rev}:rlreg/nets.py"]
    source = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench_nets_")) / "nets.py"
    path.write_text(source)
    nets = _load_module("_bench_nets_ref", path)
    _backport(nets, rev)
    agent = _load_module("_bench_td3_ref", td3.__file__)
    for name in nets.__all__:
        if name in vars(agent):
            setattr(agent, name, getattr(nets, name))
    return agent


def make_rlreg(
    data: dict[str, np.ndarray], device: str, cuda_graph: bool = False, td3: ModuleType | None = None
):
    if td3 is None:
        import rlreg.agents.td3 as td3

    from rlreg.data.transitions import TransitionStore
    from rlreg.regularizers import BC

    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]
    store = TransitionStore(len(data["obs"]), obs_dim, act_dim, device)
    store.add(data["obs"], data["act"], data["rew"], data["next_obs"], data["done"])
    agent = td3.TD3Agent(
        td3.TD3Config(alpha=2.5),
        obs_dim,
        act_dim,
        -np.ones(act_dim),
        np.ones(act_dim),
        [BC()],
        device=device,
        seed=0,
    )
    gen = torch.Generator(device=device).manual_seed(0)
    if cuda_graph:
        step = agent.captured_steps(store, 256, gen)

        def run(n: int) -> None:
            for _ in range(n):
                step()

        return run

    def run(n: int) -> None:
        for _ in range(n):
            agent.update(store.sample(256, gen))

    return run


def make_plain(data: dict[str, np.ndarray], device: str):
    """TD3+BC in plain PyTorch: ``nn.Linear`` modules, autograd, ``Adam(fused=True)``, soft target
    updates with ``torch._foreach_lerp_``; the same computation as ours (twin critics, target
    smoothing 0.2/0.5, policy delay 2, lambda = 2.5 / mean|Q|, BC MSE), no hand-fused engine."""
    import copy

    from torch import nn

    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]
    dev = torch.device(device)
    t = {k: torch.as_tensor(v, device=dev) for k, v in data.items()}
    n = len(data["obs"])

    def mlp(i: int, o: int, tanh: bool = False) -> nn.Sequential:
        layers = [nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o)]
        return nn.Sequential(*layers, *([nn.Tanh()] if tanh else [])).to(dev)

    actor = mlp(obs_dim, act_dim, tanh=True)
    critics = nn.ModuleList([mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)])
    actor_t, critics_t = copy.deepcopy(actor), copy.deepcopy(critics)
    fused = dev.type in ("cpu", "cuda")
    a_opt = torch.optim.Adam(actor.parameters(), lr=3e-4, fused=fused)
    c_opt = torch.optim.Adam(critics.parameters(), lr=3e-4, fused=fused)
    pairs = [(list(actor_t.parameters()), list(actor.parameters()))]
    pairs.append((list(critics_t.parameters()), list(critics.parameters())))
    gen = torch.Generator(device=dev).manual_seed(0)
    it = [0]

    def update() -> None:
        idx = torch.randint(n, (256,), device=dev, generator=gen)
        s, a, r, s2, d = (t[k][idx] for k in ("obs", "act", "rew", "next_obs", "done"))
        with torch.no_grad():
            noise = (torch.randn(a.shape, device=dev, generator=gen) * 0.2).clamp(-0.5, 0.5)
            a2 = (actor_t(s2) + noise).clamp(-1, 1)
            x2 = torch.cat([s2, a2], 1)
            q_t = torch.min(critics_t[0](x2), critics_t[1](x2)).squeeze(1)
            y = r + 0.99 * (1 - d) * q_t
        x = torch.cat([s, a], 1)
        c_loss = sum(((c(x).squeeze(1) - y) ** 2).mean() for c in critics)
        c_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        c_opt.step()
        it[0] += 1
        if it[0] % 2 == 0:
            pi = actor(s)
            q = critics[0](torch.cat([s, pi], 1))
            lam = 2.5 / q.abs().mean().detach()
            a_loss = -lam * q.mean() + ((pi - a) ** 2).mean()
            a_opt.zero_grad(set_to_none=True)
            a_loss.backward()
            a_opt.step()
            with torch.no_grad():
                for target, online in pairs:
                    torch._foreach_lerp_(target, online, 0.005)

    def run(k: int) -> None:
        for _ in range(k):
            update()

    return run


def make_sb3(data: dict[str, np.ndarray], device: str, bc: bool = False):
    """SB3's TD3 on the data; ``bc``: rlreg's SB3 subclass with TD3+BC (``regularizers=[BC()]``,
    ``alpha=2.5``), the cost of a regularizer inside SB3."""
    import gymnasium as gym
    from stable_baselines3 import TD3

    extra: dict = {}
    if bc:
        from rlreg.agents.sb3 import TD3  # noqa: F811 (the subclass, same constructor)

        from rlreg.regularizers import BC

        extra = {"regularizers": [BC()], "alpha": 2.5}

    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]

    class Env(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (act_dim,), np.float32)

        def reset(self, seed=None, options=None):
            return np.zeros(obs_dim, np.float32), {}

        def step(self, action):
            return np.zeros(obs_dim, np.float32), 0.0, False, False, {}

    n = len(data["obs"])
    model = TD3(
        "MlpPolicy",
        Env(),
        policy_kwargs={"net_arch": [256, 256]},
        buffer_size=n,
        learning_starts=0,
        batch_size=256,
        device=device,
        seed=0,
        verbose=0,
        **extra,
    )
    rb = model.replay_buffer
    rb.observations[:, 0] = data["obs"]
    rb.next_observations[:, 0] = data["next_obs"]
    rb.actions[:, 0] = data["act"]
    rb.rewards[:, 0] = data["rew"]
    rb.dones[:, 0] = data["done"]
    rb.pos, rb.full = 0, True
    model._setup_learn(total_timesteps=1)  # sets up the logger that train() records into

    def run(k: int) -> None:
        model.train(gradient_steps=k, batch_size=256)

    return run


def timed(run, n: int, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    run(n)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--updates", type=int, default=300, help="updates per timed run")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--size", type=int, default=1_000_000, help="dataset transitions")
    p.add_argument(
        "--cuda-graph", action="store_true", help="also time rlreg with train.cuda_graph's captured update"
    )
    p.add_argument(
        "--engine-ref",
        metavar="REV",
        help="also time the same agent with rlreg/nets.py from git revision REV (e.g. HEAD~1)",
    )
    p.add_argument("--obs-dim", type=int, default=11)
    p.add_argument("--act-dim", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    data = synthetic(args.size, args.obs_dim, args.act_dim)
    runners = {
        "rlreg TD3+BC": make_rlreg(data, args.device),
        "plain PyTorch TD3+BC": make_plain(data, args.device),
        "SB3 TD3.train()": make_sb3(data, args.device),
        "SB3 TD3+BC (rlreg.agents.sb3)": make_sb3(data, args.device, bc=True),
    }
    if args.cuda_graph:
        runners["rlreg TD3+BC, CUDA graph"] = make_rlreg(data, args.device, cuda_graph=True)
    ref_name = f"rlreg, nets.py@{args.engine_ref}"
    if args.engine_ref:
        runners[ref_name] = make_rlreg(data, args.device, td3=td3_with_engine(args.engine_ref))
    for run in runners.values():  # warm-up (allocator, lazy optimizer state, cuBLAS)
        run(50)
    results: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            results[name].append(timed(run, args.updates, args.device))

    from rlreg.threads import cpu_model

    cpu = cpu_model()
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{cpu}, {args.threads} threads"
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d} torch {torch.__version__}, device {args.device}: {dev}")
    print(
        f"# obs {args.obs_dim}, act {args.act_dim}, batch 256, 2x256 MLPs, data {args.size}, "
        f"{args.updates} updates x {args.repeats} repeats (median)"
    )
    med = {k: statistics.median(v) for k, v in results.items()}
    for name, values in results.items():
        print(f"{name:30s} {med[name]:9.1f} updates/s   (runs: {', '.join(f'{v:.0f}' for v in values)})")
    ours, sb3 = med["rlreg TD3+BC"], med["SB3 TD3.train()"]
    paired = statistics.median(a / b for a, b in zip(results["rlreg TD3+BC"], results["SB3 TD3.train()"]))
    print(f"ratio rlreg / SB3: {ours / sb3:.2f}x (ratio of medians); {paired:.2f}x (median of paired runs)")
    plain = results["plain PyTorch TD3+BC"]
    paired_p = statistics.median(a / b for a, b in zip(results["rlreg TD3+BC"], plain))
    print(f"ratio rlreg / plain PyTorch: {ours / med['plain PyTorch TD3+BC']:.2f}x; {paired_p:.2f}x (paired)")
    print(f"ratio plain PyTorch / SB3: {med['plain PyTorch TD3+BC'] / sb3:.2f}x (ratio of medians)")
    sb3_bc = "SB3 TD3+BC (rlreg.agents.sb3)"
    paired_b = statistics.median(a / b for a, b in zip(results["SB3 TD3.train()"], results[sb3_bc]))
    cost = sb3 / med[sb3_bc]
    print(
        f"ratio SB3 TD3 / SB3 TD3+BC (a regularizer's cost inside SB3): {cost:.2f}x; {paired_b:.2f}x (paired)"
    )
    print(f"ratio rlreg / SB3 TD3+BC (the same objective): {ours / med[sb3_bc]:.2f}x")
    if args.engine_ref:
        paired_r = statistics.median(a / b for a, b in zip(results["rlreg TD3+BC"], results[ref_name]))
        print(f"ratio rlreg / {ref_name}: {ours / med[ref_name]:.2f}x; {paired_r:.2f}x (paired)")
    if args.cuda_graph:
        print(
            f"ratio rlreg CUDA graph / SB3: {med['rlreg TD3+BC, CUDA graph'] / sb3:.2f}x (ratio of medians)"
        )


if __name__ == "__main__":
    main()
