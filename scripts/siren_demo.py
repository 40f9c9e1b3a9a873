"""SIREN's claim at toy scale: a naive entropy bonus lets a language-model policy's entropy explode
into meaningless tokens, SIREN's selective, self-anchored term holds it near its start.

The task (verifiable reward, many correct answers): a prompt is a target sum S ∈ [10, 44]; the
policy, a small causal transformer (2 layers, d = 64, 4 heads), emits L = 6 tokens from a
vocabulary of 64, of which only 10 are digits; the reward is 1 when all six are digits and they sum
to S, else 0. Before RL the policy is warm-started by supervised learning on random digit strings
with 5 % random non-digit tokens (a "pretrained LM": broad over digits, a thin tail), so that the
initial policy has a meaningful entropy to anchor to.

RL is Dr.GRPO-style (the SIREN paper's base): per step, G = 8 samples for each of P = 16 prompts at
temperature 1, advantages A = r − mean_group(r) (no std normalisation), the PPO-clip loss of one
epoch averaged over tokens, Adam. Three arms, the same seeds:

- ``none``: no entropy term;
- ``naive``: ``−c_naive · mean H_full`` over all response tokens (the classic bonus);
- ``siren``: ``rlreg.regularizers.Siren`` (top-p 0.8 exclusive nucleus, per-response 0.8
  quantile peak mask, seq-mean-token-mean), ``c · (H_sel − H_anchor)²`` with the anchor computed
  by ``anchor_from_logits`` on the first rollout batch under the initial policy (the official
  code's anchor).

Logged every ``--log-every`` steps: the batch reward, the full and top-p entropy, H_sel, the
probability mass on non-digit tokens (the "tail"), pass@8 and the number of distinct correct
answers among 8 samples on 32 held-out prompts. Written to ``--out``: ``curves.csv``, one PNG per
metric (mean over seeds with a min–max band) and ``table.md``, printed too.

Paper: Jiang et al., *Rethinking Entropy Regularization in Large Reasoning Models* (SIREN), 2025,
arXiv:2509.25133. This is a toy, not the paper's setting (7B models, math, 3072-token responses):
it shows the mechanism (where the entropy goes), not the paper's accuracy gains.

    python scripts/siren_demo.py                 # 3 seeds x 3 arms, a few minutes on one core
    python scripts/siren_demo.py --quick         # a ~30 s smoke run
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlreg.regularizers import Siren

V, DIGITS, L = 64, 10, 6
S_LOW, S_HIGH = 10, 44
ARMS = ("none", "naive", "siren")
METRICS = (
    "reward",
    "entropy_full",
    "entropy_topp",
    "entropy_sel",
    "tail_mass",
    "pass_at_8",
    "distinct_correct",
)


class Policy(nn.Module):
    """A causal transformer over [target, t₁ … t_L]: position i predicts token i + 1."""

    def __init__(self, d: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.target = nn.Embedding(S_HIGH + 1, d)
        self.tok = nn.Embedding(V, d)
        self.pos = nn.Embedding(L + 1, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, V)
        self.register_buffer("causal", torch.triu(torch.full((L, L), float("-inf")), 1))

    def forward(self, s: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n + 1, V)`` for prompts ``s (B,)`` and the first ``n`` tokens ``(B, n)``."""
        x = torch.cat([self.target(s)[:, None], self.tok(tokens)], 1)
        n = x.shape[1]
        x = x + self.pos.weight[:n]
        return self.head(self.body(x, mask=self.causal[:n, :n], is_causal=True))


@torch.no_grad()
def sample(policy: Policy, s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    tokens = torch.zeros(len(s), 0, dtype=torch.long)
    for _ in range(L):
        probs = policy(s, tokens)[:, -1].softmax(-1)
        tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=gen)], 1)
    return tokens


def reward(s: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    ok = (tokens < DIGITS).all(1)
    return (ok & (tokens.clamp(max=DIGITS - 1).sum(1) == s)).float()


def warm_start(policy: Policy, gen: torch.Generator, steps: int) -> None:
    """Supervised pretraining on random digit strings with 5 % random non-digit tokens."""
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    for _ in range(steps):
        s = torch.randint(S_LOW, S_HIGH + 1, (128,), generator=gen)
        tokens = torch.randint(0, DIGITS, (128, L), generator=gen)
        junk = torch.rand(128, L, generator=gen) < 0.05
        tokens = torch.where(junk, torch.randint(DIGITS, V, (128, L), generator=gen), tokens)
        logits = policy(s, tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), tokens.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def evaluate(policy: Policy, prompts: torch.Tensor, gen: torch.Generator, k: int = 8) -> dict[str, float]:
    s = prompts.repeat_interleave(k)
    tokens = sample(policy, s, gen)
    r = reward(s, tokens).reshape(-1, k)
    distinct = []
    for i in range(len(prompts)):
        good = {tuple(t) for t, ok in zip(tokens[i * k : (i + 1) * k].tolist(), r[i].tolist()) if ok}
        distinct.append(len(good))
    return {"pass_at_8": float((r.sum(1) > 0).float().mean()), "distinct_correct": statistics.mean(distinct)}


def grpo_step(
    policy: Policy,
    opt: torch.optim.Optimizer,
    arm: str,
    reg: Siren,
    args: argparse.Namespace,
    gen: torch.Generator,
) -> dict[str, float]:
    """One Dr.GRPO step: sample groups, advantages r − group mean, PPO-clip loss (one epoch)."""
    s = torch.randint(S_LOW, S_HIGH + 1, (args.prompts,), generator=gen).repeat_interleave(args.group)
    tokens = sample(policy, s, gen)
    r = reward(s, tokens)
    adv = (r.reshape(-1, args.group) - r.reshape(-1, args.group).mean(1, keepdim=True)).reshape(-1)
    logits = policy(s, tokens[:, :-1])  # (B, L, V): position t predicts token t
    mask = torch.ones(tokens.shape, dtype=torch.bool)
    if arm == "siren" and reg.anchor is None:
        reg.anchor_from_logits(logits.detach(), mask)  # the first rollout batch, the initial policy
    logp = logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
    ratio = torch.exp(logp - logp.detach())
    a = adv[:, None]
    pg = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
    terms = reg.token_terms(logits, mask)
    h_full = terms.stats["entropy_full"]
    if arm == "naive":
        full = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()
        loss = pg - args.naive_coef * full
    elif arm == "siren":
        loss = pg + terms.losses["siren_loss"]
    else:
        loss = pg
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        tail = logits.softmax(-1)[..., DIGITS:].sum(-1).mean()
    return {
        "reward": float(r.mean()),
        "entropy_full": float(h_full),
        "entropy_topp": float(terms.stats["entropy_topp"]),
        "entropy_sel": float(terms.stats["entropy_sel"]),
        "tail_mass": float(tail),
    }


def run(arm: str, seed: int, args: argparse.Namespace) -> list[dict[str, float]]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy = Policy()
    warm_start(policy, gen, args.warm_steps)
    opt = torch.optim.Adam(policy.parameters(), lr=args.lr)
    reg = Siren(coef=args.siren_coef, top_p=0.8, quantile=0.8, anchor="initial")
    held_out = torch.arange(S_LOW, S_HIGH + 1, (S_HIGH - S_LOW) // 31 or 1)[:32]
    rows = []
    for step in range(args.steps + 1):
        row = grpo_step(policy, opt, arm, reg, args, gen)
        if step % args.log_every == 0:
            row.update(evaluate(policy, held_out, torch.Generator().manual_seed(10_000 + step)))
            rows.append({"arm": arm, "seed": seed, "step": step, **row})
    return rows


def plot(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for arm in ARMS:
            steps = sorted({r["step"] for r in rows if r["arm"] == arm})
            by = [[r[metric] for r in rows if r["arm"] == arm and r["step"] == s] for s in steps]
            ax.plot(steps, [statistics.mean(v) for v in by], label=arm)
            ax.fill_between(steps, [min(v) for v in by], [max(v) for v in by], alpha=0.2)
        ax.set_xlabel("GRPO step")
        ax.set_ylabel(metric)
        ax.legend()
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def table(rows: list[dict], last: int) -> str:
    """Markdown: per arm, the start and the mean over the last ``last`` logs, mean ± std over seeds."""
    lines = ["| arm | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for arm in ARMS:
        cells = []
        for m in METRICS:
            per_seed = []
            for seed in sorted({r["seed"] for r in rows}):
                mine = [r[m] for r in rows if r["arm"] == arm and r["seed"] == seed]
                per_seed.append(statistics.mean(mine[-last:]))
            sd = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
            cells.append(f"{statistics.mean(per_seed):.3f} ± {sd:.3f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    start = [r for r in rows if r["step"] == 0 and r["arm"] == "none"]
    first = " | ".join(f"{statistics.mean(r[m] for r in start):.3f}" for m in METRICS)
    lines.append(f"| (start, all arms) | {first} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warm-steps", type=int, default=300)
    p.add_argument("--naive-coef", type=float, default=0.05)
    p.add_argument("--siren-coef", type=float, default=0.5)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--out", default="runs/siren-demo")
    p.add_argument("--quick", action="store_true", help="a smoke run: 30 steps, one seed")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.warm_steps, args.log_every = 30, [0], 50, 10
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = [r for seed in args.seeds for arm in ARMS for r in run(arm, seed, args)]
    with (out / "curves.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["arm", "seed", "step", *METRICS])
        w.writeheader()
        w.writerows(rows)
    plot(rows, out)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    cmd = "python scripts/siren_demo.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (
        f"`{cmd.strip()}` — {now}, torch {torch.__version__}, {platform.machine()}, 1 thread, "
        f"{time.perf_counter() - t0:.0f} s; seeds {args.seeds}, {args.steps} steps; naive c = "
        f"{args.naive_coef}, SIREN c = {args.siren_coef}; mean of the last 5 logs\n\n{table(rows, 5)}\n"
    )
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
