"""scripts/seed_table.py's report: summary table, Welch's t against the first agent, curves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


def write_run(folder: Path, returns: list[float]) -> None:
    folder.mkdir(parents=True)
    lines = ["step,return_mean,return_std,length_mean,score"]
    lines += [f"{(i + 1) * 100},{r},0.0,10.0,nan" for i, r in enumerate(returns)]
    (folder / "eval.csv").write_text("\n".join(lines) + "\n")


def test_welch_t_matches_scipy(load_script):
    st = load_script("seed_table")
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.0, 9.0]
    assert st.welch_t(a, b) == pytest.approx(stats.ttest_ind(b, a, equal_var=False).statistic)
    assert st.welch_t([1.0], b) is None and st.welch_t([2.0, 2.0], [2.0, 2.0]) is None


def test_report_prints_summary_t_and_curves(tmp_path, monkeypatch, capsys, load_script):
    st = load_script("seed_table")
    runs = {"dqn-s0": [1, 2, 3], "dqn-s1": [1, 3, 5], "mdqn-s0": [2, 4, 8], "mdqn-s1": [2, 5, 9]}
    for name, returns in runs.items():
        write_run(tmp_path / name, [float(r) for r in returns])
    write_run(tmp_path / "mdqn-s2", [1.0])  # unfinished: left out
    argv = ["seed_table.py", "--env", "minatar:breakout", "--agents", "dqn", "mdqn", "--seeds", "0", "1", "2"]
    argv += ["--steps", "300", "--out", str(tmp_path), "--report", "--curves"]
    monkeypatch.setattr(sys, "argv", argv)
    st.main()
    out = capsys.readouterr().out
    assert "| dqn | 4.0 ± 1.4 | 2.5 ± 0.7 | 4.0 ± 1.4 | 2.5 ± 0.7 | 2/3 | — |" in out
    assert "| mdqn | 8.5 ± 0.7 | 5.0 ± 0.5 | 8.5 ± 0.7 | 5.0 ± 0.5 | 2/3 | — |" in out
    t_final = stats.ttest_ind([8, 9], [3, 5], equal_var=False).statistic
    assert f"Welch t, mdqn − dqn (over seeds): final {t_final:+.1f}" in out
    assert "| mdqn seed 1 | 2.0 | 5.0 | 9.0 |" in out
    assert "| mdqn | 2.0 ± 0.0 | 4.5 ± 0.7 | 8.5 ± 0.7 |" in out


def test_jobs_train_concurrently_with_cores_over_jobs_threads(
    tmp_path, monkeypatch, pendulum_medium, load_script
):
    """--jobs 2: two runs at once, each new run recording cores // 2 torch threads in its config."""
    import json

    from rlreg.threads import default_threads

    st = load_script("seed_table")
    argv = ["seed_table.py", "--dataset", pendulum_medium, "--agents", "td3bc", "--seeds", "0", "1"]
    argv += [
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--eval-episodes",
        "1",
        "--jobs",
        "2",
        "--out",
        str(tmp_path),
    ]
    argv += ["--set", "agent.actor_hidden=[16]", "--set", "agent.critic_hidden=[16]"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(ROOT)
    st.main()
    for seed in (0, 1):
        summary = json.loads((tmp_path / f"td3bc-s{seed}" / "summary.json").read_text())
        assert summary["threads"] == default_threads(jobs=2)
