"""rlreg.plots and ``rlreg plot`` on hand-written run folders (no training)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rlreg.agents.plot_cli import add_plot_parser, cmd_plot

from rlreg.errors import RlregError
from rlreg.plots import _mean_ci, plot_curves, plot_intervals, plot_profiles, plot_runs, read_metric

EVAL_HEADER = "step,return_mean,return_std,length_mean,score"
METRICS_HEADER = (
    "step,time,updates_per_s,train/critic_loss,train/pg_loss,reg/beer/srank,rollout/episode_return"
)


def make_run(
    path: Path,
    *,
    scores: list[str] | None = None,
    recipe: str = "td3bc",
    seed: int = 0,
    metrics: bool = True,
    summary: bool = True,
) -> Path:
    """A run folder with eval.csv (5 evaluations), metrics.csv (10 rows) and summary.json."""
    path.mkdir(parents=True)
    scores = scores if scores is not None else [f"{10.0 * (i + 1) + seed}" for i in range(5)]
    rows = [f"{1000 * (i + 1)},{100.0 * (i + 1)},1.5,200.0,{s}" for i, s in enumerate(scores)]
    (path / "eval.csv").write_text("\n".join([EVAL_HEADER, *rows]) + "\n")
    if metrics:
        rows = []
        for i in range(10):
            srank = "" if i % 3 == 0 else f"{50 - i}"  # some rows without the regularizer term
            rows.append(f"{500 * (i + 1)},{0.1 * i},12.5,{1.0 / (i + 1) + seed},{-0.01 * i},{srank},")
        (path / "metrics.csv").write_text("\n".join([METRICS_HEADER, *rows]) + "\n")
    if summary:
        info = {"recipe": recipe, "seed": seed, "dataset": "pendulum-medium-v0", "env_id": "Pendulum-v1"}
        (path / "summary.json").write_text(json.dumps({**info, "normalizer": "d4rl"}))
    return path


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1024
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# --- read_metric ---------------------------------------------------------------------------------


def test_read_metric_eval_score_and_columns(tmp_path):
    run = make_run(tmp_path / "r")
    steps, values = read_metric(run, "eval/score")
    np.testing.assert_array_equal(steps, [1000, 2000, 3000, 4000, 5000])
    np.testing.assert_array_equal(values, [10, 20, 30, 40, 50])
    steps, values = read_metric(run, "eval/return_mean")
    np.testing.assert_array_equal(values, [100, 200, 300, 400, 500])
    assert steps.dtype == values.dtype == np.float64


def test_read_metric_eval_score_falls_back_to_return_where_nan(tmp_path):
    run = make_run(tmp_path / "minatar", scores=["nan"] * 5)  # no reference scores: the raw return
    _, values = read_metric(run, "eval/score")
    np.testing.assert_array_equal(values, [100, 200, 300, 400, 500])
    mixed = make_run(tmp_path / "mixed", scores=["1.0", "nan", "3.0", "", "5.0"])
    _, values = read_metric(mixed, "eval/score")
    np.testing.assert_array_equal(values, [1, 200, 3, 400, 5])


def test_read_metric_metrics_csv_skips_empty_cells(tmp_path):
    run = make_run(tmp_path / "r")
    steps, values = read_metric(run, "train/critic_loss")
    assert len(steps) == 10
    np.testing.assert_allclose(values, [1.0 / (i + 1) for i in range(10)])
    steps, values = read_metric(run, "reg/beer/srank")
    np.testing.assert_array_equal(steps, [500 * (i + 1) for i in range(10) if i % 3])
    np.testing.assert_array_equal(values, [50 - i for i in range(10) if i % 3])
    steps, values = read_metric(run, "rollout/episode_return")  # an all-empty column
    assert steps.size == values.size == 0


def test_read_metric_unknown_metric_lists_names(tmp_path):
    run = make_run(tmp_path / "r")
    with pytest.raises(RlregError) as e:
        read_metric(run, "train/foo")
    assert e.value.problem == f"run {run} has no metric 'train/foo'"
    assert e.value.fix.startswith("use one of: eval/score, eval/return_mean, ")
    assert "train/critic_loss" in e.value.fix and "reg/beer/srank" in e.value.fix
    assert "eval/step" not in e.value.fix
    with pytest.raises(RlregError, match="no metric 'eval/foo'"):
        read_metric(run, "eval/foo")
    with pytest.raises(RlregError, match="no metric 'step'"):
        read_metric(run, "step")


def test_read_metric_missing_run_or_logs(tmp_path):
    with pytest.raises(RlregError, match="does not exist"):
        read_metric(tmp_path / "nope", "eval/score")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RlregError, match="neither eval.csv nor metrics.csv"):
        read_metric(tmp_path / "empty", "eval/score")


def test_read_metric_bad_cell_names_line(tmp_path):
    run = make_run(tmp_path / "r")
    (run / "eval.csv").write_text(EVAL_HEADER + "\n1000,oops,0,1,nan\n")
    with pytest.raises(RlregError, match="line 2: column 'return_mean' holds 'oops'"):
        read_metric(run, "eval/return_mean")


# --- plot_runs -----------------------------------------------------------------------------------


def test_plot_runs_writes_png(tmp_path):
    runs = [make_run(tmp_path / f"r{s}", seed=s) for s in range(2)]
    out = plot_runs(runs, ["eval/score", "train/critic_loss", "reg/beer/srank"], tmp_path / "figs" / "p.png")
    assert out == tmp_path / "figs" / "p.png"
    assert_png(out)


def test_plot_runs_bad_metric_writes_nothing(tmp_path):
    runs = [make_run(tmp_path / "a"), make_run(tmp_path / "b", metrics=False, summary=False)]
    out = tmp_path / "p.png"
    with pytest.raises(RlregError, match=f"run {runs[1]} has no metric 'train/critic_loss'"):
        plot_runs(runs, ["train/critic_loss"], out)
    assert not out.exists()
    with pytest.raises(RlregError, match="1 labels for 2 runs"):
        plot_runs(runs, ["eval/score"], out, labels=["x"])


def test_plot_runs_out_is_folder(tmp_path):
    run = make_run(tmp_path / "r")
    with pytest.raises(RlregError, match="is a folder"):
        plot_runs([run], ["eval/score"], tmp_path)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_default_labels(tmp_path):
    from rlreg.plots import _run_info, _run_labels

    runs = [
        make_run(tmp_path / "a", recipe="prdc", seed=3),
        make_run(tmp_path / "b", summary=False),
        make_run(tmp_path / "c", recipe="prdc", seed=3),
    ]
    (runs[1] / "config.json").write_text(json.dumps({"recipe": "ppo", "seed": 1}))
    assert _run_labels(runs, [_run_info(r) for r in runs]) == ["prdc s3 (a)", "ppo s1", "prdc s3 (c)"]
    bare = make_run(tmp_path / "bare", summary=False)
    assert _run_labels([bare], [_run_info(bare)]) == ["bare"]


# --- report plots --------------------------------------------------------------------------------


def test_mean_ci_student_t():
    steps = np.array([0.0, 1.0, 2.0, 3.0])
    curves = [(steps, steps + d) for d in (-1.0, 0.0, 1.0)]
    curves.append((steps[1:], steps[1:]))  # a seed without step 0: step 0 is dropped
    s, mean, lo, hi = _mean_ci(curves, "test")
    np.testing.assert_array_equal(s, [1, 2, 3])
    np.testing.assert_allclose(mean, [1, 2, 3])
    half = 3.182446305284263 * math.sqrt(2 / 3) / 2  # t(0.975, df=3) * sd / sqrt(4)
    np.testing.assert_allclose(hi - mean, half)
    np.testing.assert_allclose(mean - lo, half)
    _, _, lo1, hi1 = _mean_ci([(steps, steps)], "one seed")  # one seed: no band
    assert np.isnan(lo1).all() and np.isnan(hi1).all()
    with pytest.raises(RlregError, match="share no step"):
        _mean_ci([(steps[:2], steps[:2]), (steps[2:], steps[2:])], "disjoint")


def test_plot_curves_two_agents_three_seeds(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.arange(0, 10_000, 1000)

    def seeds(base):
        return [
            (steps, base + np.linspace(0, 50, len(steps)) + rng.normal(0, 3, len(steps))) for _ in range(3)
        ]

    panels = {
        "hopper-medium": {"td3bc": seeds(20), "prdc": seeds(30)},
        "walker-medium": {"td3bc": seeds(40), "prdc": seeds(35)},
        "halfcheetah-medium": {"prdc": seeds(10)},
        "antmaze-umaze": {"td3bc": seeds(0)},
    }
    out = plot_curves(panels, tmp_path / "curves.png", ylabel="normalized score", ncols=3)
    assert_png(out)
    with pytest.raises(RlregError, match="panel 'x', agent 'a'"):
        plot_curves({"x": {"a": [(steps, steps[:3])]}}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_intervals(tmp_path):
    estimates = {
        "Median": {"td3bc": (50.0, 45.0, 55.0), "prdc": (60.0, 52.0, 66.0)},
        "IQM": {"td3bc": (52.0, 48.0, 57.0), "prdc": (61.0, 55.0, 65.0), "a2pr": (58.0, 50.0, 63.0)},
        "Mean": {"td3bc": (49.0, 46.0, 53.0), "prdc": (59.0, 54.0, 64.0)},
    }
    assert_png(plot_intervals(estimates, tmp_path / "intervals.png"))
    with pytest.raises(RlregError, match="above high"):
        plot_intervals({"IQM": {"a": (1.0, 2.0, 0.5)}}, tmp_path / "bad.png")


def test_plot_profiles(tmp_path):
    taus = np.linspace(0, 100, 51)
    profiles = {}
    for agent, center in (("td3bc", 50.0), ("prdc", 65.0)):
        frac = 1 / (1 + np.exp((taus - center) / 10))
        profiles[agent] = (taus, frac, np.clip(frac - 0.05, 0, 1), np.clip(frac + 0.05, 0, 1))
    assert_png(plot_profiles(profiles, tmp_path / "profiles.png"))
    with pytest.raises(RlregError, match="profile of 'x'"):
        plot_profiles({"x": (taus, taus[:3], taus, taus)}, tmp_path / "bad.png")


# --- rlreg plot ----------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    add_plot_parser(sub)
    return p.parse_args(argv)


def test_cli_plot_two_runs(tmp_path, capsys):
    run1, run2 = make_run(tmp_path / "r1"), make_run(tmp_path / "r2", seed=1)
    png = tmp_path / "out.png"
    args = parse(
        [
            "plot",
            str(run1),
            str(run2),
            "--metric",
            "eval/score",
            "--metric",
            "train/critic_loss",
            "--out",
            str(png),
        ]
    )
    assert args.metrics == ["eval/score", "train/critic_loss"]
    assert cmd_plot(args) == 0
    assert_png(png)
    assert capsys.readouterr().out.strip() == f"wrote {png}"


def test_cli_plot_defaults(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path / "r")
    args = parse(["plot", str(run)])
    assert args.metrics is None and args.out is None and args.labels is None
    assert cmd_plot(args) == 0
    assert_png(run / "plot.png")
    assert capsys.readouterr().out.strip() == f"wrote {run / 'plot.png'}"
    monkeypatch.chdir(tmp_path)
    other = make_run(tmp_path / "r2")
    assert cmd_plot(parse(["plot", str(run), str(other), "--label", "a", "--label", "b"])) == 0
    assert_png(tmp_path / "plot.png")


def test_cli_label_count_mismatch(tmp_path):
    run1, run2 = make_run(tmp_path / "r1"), make_run(tmp_path / "r2")
    args = parse(["plot", str(run1), str(run2), "--label", "only-one", "--out", str(tmp_path / "x.png")])
    with pytest.raises(RlregError, match="1 --label values for 2 runs"):
        cmd_plot(args)
    assert not (tmp_path / "x.png").exists()


def test_cli_expands_folder_of_runs(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "sweep"
    for name in ("b-s1", "a-s0", "c-s2"):
        make_run(sweep / name)
    (sweep / "notes").mkdir()  # not a run: ignored
    (sweep / "README.txt").write_text("sweep")
    seen = {}

    def fake_plot_runs(runs, metrics, out, labels=None):
        seen.update(runs=runs, metrics=metrics, out=out, labels=labels)
        return out

    monkeypatch.setattr("rlreg.plots.plot_runs", fake_plot_runs)
    monkeypatch.chdir(tmp_path)
    assert cmd_plot(parse(["plot", str(sweep), "--label", "1", "--label", "2", "--label", "3"])) == 0
    assert seen["runs"] == [sweep / "a-s0", sweep / "b-s1", sweep / "c-s2"]
    assert seen["metrics"] == ["eval/score"] and seen["out"] == Path("plot.png")
    assert seen["labels"] == ["1", "2", "3"]
    with pytest.raises(RlregError, match="2 --label values for 3 runs"):
        cmd_plot(parse(["plot", str(sweep), "--label", "1", "--label", "2"]))
    with pytest.raises(RlregError, match="neither a run folder nor a folder of run folders"):
        cmd_plot(parse(["plot", str(sweep / "notes")]))
    with pytest.raises(RlregError, match="does not exist"):
        cmd_plot(parse(["plot", str(tmp_path / "missing")]))


def test_cli_folder_of_runs_real_plot(tmp_path):
    sweep = tmp_path / "sweep"
    for s in range(3):
        make_run(sweep / f"run-s{s}", seed=s)
    out = tmp_path / "sweep.png"
    assert cmd_plot(parse(["plot", str(sweep), "--metric", "reg/beer/srank", "--out", str(out)])) == 0
    assert_png(out)
