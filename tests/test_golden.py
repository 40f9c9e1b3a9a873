"""Golden digests (issue 14, item 7): every recipe's short CPU run gives the recorded numbers.

Recorded by ``scripts/golden_digests.py --update`` before the core redesign; a change that moves a
number must say why (and rerun the affected seed tables). Compared only on the CPU model the
digests were made on (other CPUs may round differently in some kernels), where a mismatch names
the differing columns of the last metrics row.

Deliberate changes since the recording before the core redesign (issue 14):

* ``td3-online``: two new columns, ``rollout/episode_length`` and ``rollout/episodes`` (the one
  replay collector logs the same episode statistics for Gymnasium as for MinAtar). Every other
  column of metrics.csv and all of eval.csv are unchanged (checked against the recorded digest with
  the two columns dropped).
* issue 16: eval.csv of the TD3-agent cases gains ``q_bias``, ``q_error``, ``q_mc`` (the
  Q-estimation error of ``evaluation_stats``); the eval digest leaves those columns out
  (``golden_digests.EVAL_STATS``) and the recorded columns are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_recipe_gives_the_recorded_numbers(pendulum_medium, load_script):
    gd = load_script("golden_digests")
    record = json.loads(gd.GOLDEN.read_text())
    assert set(record["cases"]) == set(gd.CASES), "a case without a recorded digest: run --update"
    if record["cpu"] != gd.cpu_model():
        pytest.skip(f"digests recorded on {record['cpu']!r}, this CPU is {gd.cpu_model()!r}")
    now = gd.run_all(list(gd.CASES))
    problems = {name: gd.differences(record["cases"][name], result) for name, result in now.items()}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


def test_differences_name_the_columns(load_script):
    gd = load_script("golden_digests")
    a = {"metrics": "x", "eval": "y", "last": {"step": "10", "train/critic_loss": "1.0"}}
    b = {"metrics": "z", "eval": "y", "last": {"step": "10", "train/critic_loss": "1.5"}}
    assert gd.differences(a, a) == []
    assert gd.differences(a, b) == [
        "metrics.csv digest differs",
        "last metrics row train/critic_loss: recorded 1.0, now 1.5",
    ]
