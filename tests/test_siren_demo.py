"""scripts/siren_demo.py end to end on a tiny budget: the curves, plots and table are written, and the
task's reward and warm-start data are what the docstring says."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _demo():
    spec = importlib.util.spec_from_file_location("siren_demo", REPO / "scripts" / "siren_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def test_siren_demo_writes_curves_plots_and_table(tmp_path):
    demo = _demo()
    argv = ["--steps", "4", "--seeds", "0", "--warm-steps", "5", "--log-every", "2", "--out", str(tmp_path)]
    demo.main(argv)
    with (tmp_path / "curves.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["arm", "seed", "step", *demo.METRICS]
    assert [(r["arm"], r["step"]) for r in rows] == [(a, s) for a in demo.ARMS for s in ("0", "2", "4")]
    for r in rows:
        assert all(float(r[m]) == float(r[m]) for m in demo.METRICS)  # no NaN
    # step 0 is the same warm-started policy and the same first batch in every arm
    starts = [r for r in rows if r["step"] == "0"]
    assert all(r["entropy_sel"] == starts[0]["entropy_sel"] for r in starts)
    for name in [*demo.METRICS, "overview"]:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    table = (tmp_path / "table.md").read_text()
    for arm in demo.ARMS:
        assert f"| {arm} | final |" in table and f"| {arm} | last 5 logs |" in table
    assert "torch " + torch.__version__ in table and "--steps 4" in table


def test_reward_and_correct_answers():
    demo = _demo()
    s = torch.tensor([10, 10, 10, 19])
    tokens = torch.tensor([[1, 2, 3, 4, 0, 0], [9, 1, 0, 0, 0, 0], [1, 2, 3, 4, 0, 1], [1, 2, 3, 4, 0, 10]])
    # the last row's digits and its non-digit 10 (clamped to 9) sum to 19, but a non-digit scores 0
    assert demo.reward(s, tokens).tolist() == [1.0, 1.0, 0.0, 0.0]
    answers, offsets = demo.correct_answers()
    block = answers[offsets[20] : offsets[21]].long()
    assert len(block) > 1000 and (block.sum(1) == 20).all()
    assert len(set(map(tuple, block.tolist()))) == len(block)
