"""scripts/siren_demo.py end to end on a tiny budget: curves, plots and the table are written."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_siren_demo_writes_curves_plots_and_table(tmp_path):
    spec = importlib.util.spec_from_file_location("siren_demo", REPO / "scripts" / "siren_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.main(
        ["--steps", "4", "--seeds", "0", "--warm-steps", "5", "--log-every", "2", "--out", str(tmp_path)]
    )
    with (tmp_path / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["arm"] for r in rows} == {"none", "naive", "siren"} and len(rows) == 9  # steps 0, 2, 4
    assert set(demo.METRICS) <= set(rows[0])
    for metric in demo.METRICS:
        assert (tmp_path / f"{metric}.png").stat().st_size > 1000
    table = (tmp_path / "table.md").read_text()
    assert "| siren |" in table and "| naive |" in table
