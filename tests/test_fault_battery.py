"""scripts/fault_battery.py keeps working: a fast subset of its cases passes, the table is well formed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAST = (
    "^(hdf5-missing-key|hdf5-lengths-disagree|hdf5-nan-observations|hdf5-not-hdf5|"
    "flag-unknown-agent|flag-set-nan|flag-set-no-equals)$"
)
"""Cases that need no dataset or training run: a subprocess of about 1.5 s each."""


def load_battery() -> ModuleType:
    """Import scripts/fault_battery.py as module ``fault_battery``."""
    name = "fault_battery"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "fault_battery.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_cases_are_registered_and_selectable() -> None:
    fb = load_battery()
    names = [c.name for c in fb.CASES]
    assert len(names) == len(set(names)) >= 40
    groups = {c.group for c in fb.CASES}
    assert {"hdf5", "flags", "resume", "artifacts", "folders", "datasets", "determinism", "recipes"} <= groups
    assert [c.name for c in fb.select(FAST)] == [n for n in names if n in FAST]
    assert {c.group for c in fb.select("flags")} == {"flags"}


def test_list_prints_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    fb = load_battery()
    assert fb.main(["--list", "--only", "hdf5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(fb.select("hdf5")) and all(line.startswith("hdf5-") for line in out)


def test_fast_cases_pass(tmp_path: Path) -> None:
    fb = load_battery()
    results = fb.run_battery(FAST, root=tmp_path / "battery")
    assert len(results) == 7
    failed = [(r.case.name, r.outcome.detail) for r in results if not r.outcome.ok]
    assert not failed, failed
    table = fb.format_table(results)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "**PASS**" in line]
    assert len(rows) == 7
    assert all(row.count(" | ") == 3 for row in rows)  # '|' inside cells is escaped
    assert not (tmp_path / "battery").exists()  # removed without --keep


def test_check_error_rejects_tracebacks_and_missing_fix() -> None:
    fb = load_battery()
    b = fb.Battery.__new__(fb.Battery)
    b.root, b.last_command = Path("/nowhere"), "rlreg x"
    good = fb.Result([], 2, "", "rlreg: error: bad thing\n  fix: do this\n", 0.1)
    assert fb.check_error(b, good, "bad thing").ok
    assert not fb.check_error(b, good, "other thing").ok
    tb = fb.Result([], 1, "", "Traceback (most recent call last):\nValueError: x\n", 0.1)
    assert not fb.check_error(b, tb).ok
    nofix = fb.Result([], 2, "", "rlreg: error: bad thing\n", 0.1)
    assert not fb.check_error(b, nofix).ok


@pytest.mark.slow
def test_whole_battery_passes(tmp_path: Path) -> None:
    fb = load_battery()
    results = fb.run_battery(None, root=tmp_path / "battery")
    failed = [(r.case.name, r.outcome.command, r.outcome.detail) for r in results if not r.outcome.ok]
    assert not failed, failed
