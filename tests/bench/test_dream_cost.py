"""bench/dream_cost.py on a tiny budget: both variants run the dream job's compute, the one with
an older model measures the progress map, and the JSON holds the figures."""

from __future__ import annotations

import json

import pytest

from bench import dream_cost


def test_it_times_the_job_with_and_without_the_progress_terms(tmp_path):
    out = tmp_path / "cost.json"
    dream_cost.main(["--out", str(out), "--repeats", "1", "--rounds", "2", "--dreams", "8",
                     "--threads", "1"])
    result = json.loads(out.read_text())
    assert len(result["seconds"]["without"]) == len(result["seconds"]["with"]) == 1
    assert result["slowdown"] > 0 and result["target"] == "<= 1.25"
    assert result["parts"]["without"][0]["progress_s"] == 0.0
    assert result["parts"]["with"][0]["progress_s"] > 0.0
    assert result["config"]["frames"] == 2 * 42  # per round the start view and 20 moves, each held


def test_bad_budgets_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        dream_cost.main(["--out", str(tmp_path / "x.json"), "--repeats", "0"])
