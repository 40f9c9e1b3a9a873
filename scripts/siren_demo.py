"""SIREN's claim at toy scale: a naive entropy bonus lets an LM policy's entropy explode into
meaningless tokens, while SIREN's selective, self-anchored term holds it near its start.

**Task.** This is a verifiable reward with many correct answers. A prompt is a target sum S in
[14, 40]. The policy emits L = 6 tokens from a vocabulary of V = 64, of which only tokens 0–9 are
digits; the other 54 tokens are meaningless and never rewarded (the long tail a bonus can leak
into). The reward is 1 when all L tokens are digits and they sum to S, else 0. There are thousands
of correct answers per prompt. Training prompts are S ~ U{14..40}; the held-out set is every S in
that range, twice (54 prompts).

**Policy.** A causal transformer: 2 pre-norm layers, d = 64, 4 heads, over ``[S, t₁ … t_L]``.

**Warm start.** This is a stand-in for pretraining, done once per seed, so every arm of a seed
starts from the same weights. It is 500 steps of supervised next-token learning on uniformly random
correct answers, where each token is replaced by a random non-digit with probability 5 %. The
initial policy is therefore broad: about 2.3 nats of full entropy, 0.05 tail mass, pass@1 ≈ 0.18
and pass@8 ≈ 0.78 on the held-out set. It is also mildly competent, so the "initial" anchor means
something.

**RL: Dr.GRPO** (Liu et al. 2025, arXiv:2503.20783), the base of the SIREN paper. Each step samples
G = 8 responses to each of P = 16 prompts at temperature 1. The advantage is A = r − mean_group(r),
with no std normalisation. The loss is PPO-clip (ε = 0.2) for one epoch, so the ratio is 1 and the
clip never binds. The loss is summed over tokens and divided by the constant L, which for this
fixed length is Dr.GRPO's normalisation and the token mean. Adam is used with no KL term. There are
three arms, with the same seeds, warm starts and rollout streams:

- ``none``: ``loss = L_pg``;
- ``naive``: ``loss = L_pg − c_naive · mean_t H_full(π_t)``, the classic bonus over all response
  tokens and the whole vocabulary (default ``c_naive = 0.05``);
- ``siren``: ``loss = L_pg + c · (H_sel − H_anchor)²`` through ``rlreg.regularizers.Siren``
  (``token_terms``; default ``c = 0.5``). H_sel is the top-p entropy (exclusive nucleus, p = 0.8)
  at the positions above each response's 0.8 quantile of top-p entropy (the ≈ 20 % most uncertain),
  aggregated seq-mean-token-mean. H_anchor is H_sel of the first rollout batch under the initial
  policy (``anchor_from_logits``), as in the official code.

**Logged** every ``--log-every`` steps:

- on the training batch: the mean reward; the full-vocabulary entropy, the top-p entropy and H_sel
  (means over response tokens); the probability mass on the 54 non-digit tokens (``tail_mass``);
- on the held-out prompts, with k = 8 samples each: ``pass_at_k`` (the fraction of prompts with a
  correct sample), ``acc_at_k`` (the mean correctness of all samples, a pass@1 estimate),
  ``distinct_correct`` (distinct correct answers per prompt, at most k) and ``distinct_frac``
  (distinct sequences / k).

Written to ``--out``: ``curves.csv`` (one row per arm, seed and logged step), one PNG per metric
plus ``overview.png`` (mean over seeds, min–max band), and ``table.md``, which is also printed.

**The paper.** Jiang et al., *Rethinking Entropy Regularization in Large Reasoning Models* (SIREN),
2025, arXiv:2509.25133; code github.com/Linn3a/siren @ fa59a8d. It claims that a plain entropy
bonus in RLVR for large reasoning models makes entropy explode: mass leaks into the long tail of
the huge vocabulary, and uncertainty compounds along long responses. It claims that SIREN's top-p,
peak-position, self-anchored term instead keeps entropy in a stable range. It reports higher
maj@k and avg@k than Dr.GRPO (no entropy term, entropy collapse) and than entropy baselines, with
more diverse responses and pass@k preserved.

**What it shows** (the default run; 3 seeds, 400 steps, on a CPU in about 3 minutes):

- ``none`` collapses: H_sel goes from 1.9 to below 0.1, and distinct correct answers per 8 samples
  peak at about 5 and fall to about 3.4;
- ``naive`` (c = 0.05) explodes within about 50 steps: the policy becomes uniform over all 64
  tokens (entropy log 64, tail mass 54/64) and reward and pass@8 fall to 0;
- ``siren`` holds H_sel at about 1.3 (the anchor is 1.9). It prunes the tail as ``none`` does, and
  matches ``none``'s reward (about 0.9) with about 7 distinct correct answers out of 8.

pass@8 saturates near 1 for ``none`` and ``siren`` on this easy task, so the diversity columns are
the ones that tell them apart. The naive bonus has a cliff here. With c = 0.01, 0.02 and 0.03 it
does not explode within 400 steps (at 0.01 entropy still decays, slower than ``none``; at 0.01–0.02
it is competitive on diversity). With c = 0.04 it explodes on all three seeds. SIREN with c
between 0.1 and 5 never leaks mass into the tail; a larger c holds H_sel closer to the anchor, at
some cost in reward.

**Caveats.** This is a toy and not the paper's setting. The paper uses 1.5–8B models, maths
problems, responses of up to 3072 tokens and coefficients around 0.005. Here there is a
0.1M-parameter model, 6 tokens, a synthetic task and a few hundred steps. The coefficients were
chosen so that the effects are visible at this scale; they are not transferable values. With 6
tokens the peak mask keeps about one position per response. The script shows the mechanism (where
the entropy mass goes and what that does to reward and diversity), not the paper's accuracy
numbers. A well-tuned naive bonus is not beaten here on these metrics: the demonstration is about
the cliff, not about a best-case comparison.

    python scripts/siren_demo.py                 # 3 seeds x 3 arms, a few minutes on one thread
    python scripts/siren_demo.py --quick         # a ~30 s smoke run (1 seed, 60 steps)
    python scripts/siren_demo.py --arms naive --naive-coef 0.02 --out runs/siren-demo-c002
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlreg.regularizers.siren import Siren, selective_entropy

V, DIGITS, L = 64, 10, 6
S_LOW, S_HIGH = 14, 40
ARMS = ("none", "naive", "siren")
TRAIN_METRICS = ("reward", "entropy_full", "entropy_topp", "entropy_sel", "tail_mass")
EVAL_METRICS = ("pass_at_k", "acc_at_k", "distinct_correct", "distinct_frac")
METRICS = TRAIN_METRICS + EVAL_METRICS
TABLE_METRICS = (
    "reward",
    "entropy_full",
    "entropy_sel",
    "tail_mass",
    "pass_at_k",
    "acc_at_k",
    "distinct_correct",
    "distinct_frac",
)


class Policy(nn.Module):
    """A causal transformer over ``[S, t₁ … t_L]``: the output at position i predicts token i + 1."""

    def __init__(self, d: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.target = nn.Embedding(S_HIGH + 1, d)
        self.tok = nn.Embedding(V, d)
        self.pos = nn.Embedding(L + 1, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, V)
        self.register_buffer("causal", torch.triu(torch.full((L + 1, L + 1), float("-inf")), 1))

    def forward(self, s: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n + 1, V)`` for prompts ``s (B,)`` and the first ``n`` tokens ``(B, n)``."""
        x = torch.cat([self.target(s)[:, None], self.tok(tokens)], 1)
        n = x.shape[1]
        x = x + self.pos.weight[:n]
        return self.head(self.body(x, mask=self.causal[:n, :n], is_causal=True))


@torch.no_grad()
def sample(policy: Policy, s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``(B, L)`` responses sampled at temperature 1."""
    tokens = torch.zeros(len(s), 0, dtype=torch.long)
    for _ in range(L):
        probs = policy(s, tokens)[:, -1].softmax(-1)
        tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=gen)], 1)
    return tokens


def reward(s: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """1 where every token is a digit and the digits sum to ``s``, else 0."""
    ok = (tokens < DIGITS).all(1)
    return (ok & (tokens.clamp(max=DIGITS - 1).sum(1) == s)).float()


def correct_answers() -> tuple[torch.Tensor, torch.Tensor]:
    """Every digit string of length L sorted by its sum, and the offset of each sum's block."""
    n = torch.arange(DIGITS**L)
    strings = torch.stack([n // DIGITS**i % DIGITS for i in reversed(range(L))], 1)
    sums = strings.sum(1)
    order = sums.argsort(stable=True)
    offsets = torch.zeros(DIGITS * L + 2, dtype=torch.long)
    offsets[1:] = torch.bincount(sums, minlength=DIGITS * L + 1).cumsum(0)
    return strings[order].to(torch.uint8), offsets


def warm_start(seed: int, steps: int, correct: float = 1.0, junk: float = 0.05) -> dict[str, torch.Tensor]:
    """The initial policy's weights (the "pretrained LM"): next-token learning on digit strings,
    a fraction ``correct`` of them uniformly random correct answers to their prompt and the rest
    uniformly random, each token then replaced by a random non-digit with probability ``junk``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    answers, offsets = correct_answers()
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    for _ in range(steps):
        s = torch.randint(S_LOW, S_HIGH + 1, (128,), generator=gen)
        count = offsets[s + 1] - offsets[s]
        pick = offsets[s] + (torch.rand(128, generator=gen) * count).long()
        good = torch.rand(128, 1, generator=gen) < correct
        tokens = torch.where(good, answers[pick].long(), torch.randint(0, DIGITS, (128, L), generator=gen))
        noise = torch.rand(128, L, generator=gen) < junk
        tokens = torch.where(noise, torch.randint(DIGITS, V, (128, L), generator=gen), tokens)
        logits = policy(s, tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), tokens.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return copy.deepcopy(policy.state_dict())


def held_out_prompts(repeats: int = 2) -> torch.Tensor:
    """The held-out set: every target sum in ``[S_LOW, S_HIGH]``, ``repeats`` times."""
    return torch.arange(S_LOW, S_HIGH + 1).repeat(repeats)


@torch.no_grad()
def evaluate(policy: Policy, prompts: torch.Tensor, gen: torch.Generator, k: int) -> dict[str, float]:
    """pass@k, mean accuracy, distinct correct answers and distinct sequences among k samples."""
    s = prompts.repeat_interleave(k)
    tokens = sample(policy, s, gen).reshape(len(prompts), k, L).tolist()
    r = reward(s, torch.tensor(tokens).reshape(-1, L)).reshape(-1, k)
    correct = [{tuple(t) for t, ok in zip(seqs, hits.tolist()) if ok} for seqs, hits in zip(tokens, r)]
    return {
        "pass_at_k": float((r.sum(1) > 0).float().mean()),
        "acc_at_k": float(r.mean()),
        "distinct_correct": statistics.mean(len(c) for c in correct),
        "distinct_frac": statistics.mean(len({tuple(t) for t in seqs}) / k for seqs in tokens),
    }


def full_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy of the whole vocabulary, ``(B, T)``, with gradient."""
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def entropy_loss(arm: str, logits: torch.Tensor, siren: Siren, coef: float) -> torch.Tensor:
    """The arm's entropy term: none, the naive bonus or SIREN's anchored term."""
    if arm == "naive":
        return -coef * full_entropy(logits).mean()
    if arm == "siren":
        return sum(siren.token_terms(logits, torch.ones(logits.shape[:2], dtype=torch.bool)).losses.values())
    return logits.new_zeros(())


def grpo_step(
    policy: Policy,
    opt: torch.optim.Optimizer,
    arm: str,
    siren: Siren,
    args: argparse.Namespace,
    gen: torch.Generator,
) -> dict[str, float]:
    """One Dr.GRPO step: sample groups, advantages r − group mean, the PPO-clip loss (one epoch)
    plus the arm's entropy term, then one Adam step. Returns the batch's stats before the step."""
    s = torch.randint(S_LOW, S_HIGH + 1, (args.prompts,), generator=gen).repeat_interleave(args.group)
    tokens = sample(policy, s, gen)
    r = reward(s, tokens)
    grouped = r.reshape(-1, args.group)
    adv = (grouped - grouped.mean(1, keepdim=True)).reshape(-1, 1)
    logits = policy(s, tokens[:, :-1])  # (B, L, V): the output at position t predicts token t
    mask = torch.ones(tokens.shape, dtype=torch.bool)
    if arm == "siren" and siren.anchor is None:
        siren.anchor_from_logits(logits.detach(), mask)  # the first rollout batch, the initial policy
    logp = logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
    ratio = torch.exp(logp - logp.detach())  # one epoch on fresh samples: the old policy is this one
    clipped = ratio.clamp(1 - args.clip, 1 + args.clip)
    pg = torch.maximum(-adv * ratio, -adv * clipped).sum(-1).mean() / L  # Dr.GRPO: / constant L
    loss = pg + entropy_loss(arm, logits, siren, args.naive_coef)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(policy.parameters(), args.grad_clip)
    opt.step()
    with torch.no_grad():
        h_sel, stats = selective_entropy(logits.detach(), mask, top_p=args.top_p, quantile=args.quantile)
        tail = logits.softmax(-1)[..., DIGITS:].sum(-1).mean()
    return {
        "reward": float(r.mean()),
        "entropy_full": float(stats["entropy_full"]),
        "entropy_topp": float(stats["entropy_topp"]),
        "entropy_sel": float(h_sel),
        "tail_mass": float(tail),
    }


def run(arm: str, seed: int, init: dict[str, torch.Tensor], args: argparse.Namespace) -> list[dict]:
    """One arm from the seed's warm start; rollouts and evaluations use the seed's streams."""
    torch.manual_seed(seed)
    policy = Policy()
    policy.load_state_dict(init)
    opt = torch.optim.Adam(policy.parameters(), lr=args.lr)
    siren = Siren(coef=args.siren_coef, top_p=args.top_p, quantile=args.quantile, anchor="initial")
    gen = torch.Generator().manual_seed(1000 + seed)
    prompts = held_out_prompts()
    rows = []
    for step in range(args.steps + 1):
        log = step % args.log_every == 0 or step == args.steps
        if log:  # evaluate the policy before this step's update, as the batch stats are
            ev = evaluate(policy, prompts, torch.Generator().manual_seed(10_000 * (seed + 1) + step), args.k)
        row = grpo_step(policy, opt, arm, siren, args, gen)
        if log:
            rows.append({"arm": arm, "seed": seed, "step": step, **row, **ev})
    return rows


def band(rows: list[dict], arm: str, metric: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, mean, min and max over seeds of ``metric`` for ``arm``."""
    steps = sorted({r["step"] for r in rows if r["arm"] == arm})
    by = [[r[metric] for r in rows if r["arm"] == arm and r["step"] == s] for s in steps]
    return steps, [statistics.mean(v) for v in by], [min(v) for v in by], [max(v) for v in by]


def draw(ax: Any, rows: list[dict], metric: str, arms: list[str]) -> None:
    """Mean over seeds with a min–max band, one line per arm; H_sel gets the anchor as a dashed line."""
    for arm in arms:
        steps, mean, lo, hi = band(rows, arm, metric)
        (line,) = ax.plot(steps, mean, label=arm)
        ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())
    if metric == "entropy_sel":
        start = statistics.mean(r[metric] for r in rows if r["step"] == 0)
        ax.axhline(start, ls="--", lw=0.8, color="gray", label="anchor (step 0)")
    ax.set_xlabel("GRPO step")
    ax.set_title(metric, fontsize=10)
    ax.legend(fontsize=7)


def plot(rows: list[dict], out: Path, arms: list[str]) -> list[Path]:
    """One PNG per metric and an overview grid; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        draw(ax, rows, metric, arms)
        fig.tight_layout()
        paths.append(out / f"{metric}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    fig, axes = plt.subplots(3, 3, figsize=(13, 10))
    for ax, metric in zip(axes.flat, METRICS):
        draw(ax, rows, metric, arms)
    fig.tight_layout()
    paths.append(out / "overview.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def summary(rows: list[dict], arm: str, metric: str, last: int | None) -> str:
    """``mean ± std`` over seeds of the final value (``last=None``) or the mean of the last logs."""
    per_seed = []
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r[metric] for r in rows if r["arm"] == arm and r["seed"] == seed]
        per_seed.append(mine[-1] if last is None else statistics.mean(mine[-last:]))
    sd = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
    return f"{statistics.mean(per_seed):.3f} ± {sd:.3f}"


def table(rows: list[dict], arms: list[str], last: int) -> str:
    """Markdown: per arm, the final value and the mean of the last ``last`` logs (mean ± std over
    seeds), and the start (step 0, the same policy for every arm of a seed)."""
    lines = ["| arm | | " + " | ".join(TABLE_METRICS) + " |", "|---|---" + "|---" * len(TABLE_METRICS) + "|"]
    start = [r for r in rows if r["step"] == 0 and r["arm"] == arms[0]]
    cells = " | ".join(f"{statistics.mean(r[m] for r in start):.3f}" for m in TABLE_METRICS)
    lines.append(f"| start (all arms) | step 0 | {cells} |")
    for arm in arms:
        for what, k in ((f"last {last} logs", last), ("final", None)):
            cells = " | ".join(summary(rows, arm, m, k) for m in TABLE_METRICS)
            lines.append(f"| {arm} | {what} | {cells} |")
    return "\n".join(lines)


def machine_line(seconds: float) -> str:
    """Date, torch and Python versions, the CPU model, cores, torch threads and the wall time."""
    from rlreg.threads import cpu_model

    cpu = cpu_model()
    return (
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; torch {torch.__version__}, "
        f"Python {platform.python_version()}, {cpu} ({os.cpu_count()} cores), "
        f"{torch.get_num_threads()} torch thread(s); wall {seconds:.0f} s"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--quick`` overrides steps, seeds, warm-start steps and logging)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=400, help="GRPO steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--prompts", type=int, default=16, help="prompts per step (P)")
    p.add_argument("--group", type=int, default=8, help="responses per prompt (G)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--warm-steps", type=int, default=500, help="supervised warm-start steps")
    p.add_argument("--warm-correct", type=float, default=1.0, help="correct fraction of warm-start data")
    p.add_argument("--naive-coef", type=float, default=0.05, help="c_naive of the naive bonus")
    p.add_argument("--siren-coef", type=float, default=0.5, help="c of SIREN's squared deviation")
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--quantile", type=float, default=0.8)
    p.add_argument("--k", type=int, default=8, help="samples per held-out prompt (pass@k)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--last", type=int, default=5, help="the table's mean over the last N logs")
    p.add_argument("--out", default="runs/siren-demo")
    p.add_argument("--quick", action="store_true", help="a ~30 s smoke run: 1 seed, 60 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.warm_steps, args.log_every, args.last = 60, [0], 300, 10, 2
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    """Run every seed and arm, write the CSV, plots and table under ``--out``; return the rows."""
    args = parse(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    for seed in args.seeds:
        init = warm_start(seed, args.warm_steps, args.warm_correct)
        for arm in args.arms:
            rows += run(arm, seed, init, args)
            print(f"seed {seed} {arm}: done at {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    with (out / "curves.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["arm", "seed", "step", *METRICS])
        w.writeheader()
        w.writerows(rows)
    paths = plot(rows, out, args.arms)
    cmd = "python scripts/siren_demo.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (
        f"`{cmd.strip()}`\n\n{machine_line(time.perf_counter() - t0)}\n\n"
        f"Seeds {args.seeds}; {args.steps} steps of P = {args.prompts} prompts × G = {args.group}; "
        f"lr {args.lr}; naive c = {args.naive_coef}; SIREN c = {args.siren_coef} (top-p {args.top_p}, "
        f"quantile {args.quantile}, anchor = H_sel of the first rollout batch); pass@k with k = {args.k} "
        f"on {len(held_out_prompts())} held-out prompts. Cells: mean ± std over seeds.\n\n"
        f"{table(rows, args.arms, args.last)}\n\nPlots: {', '.join(str(p) for p in paths)}\n"
    )
    (out / "table.md").write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
