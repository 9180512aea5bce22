"""bench/curiosity_signals.py on a tiny budget: every signal per kind after every cycle."""

from __future__ import annotations

import json
import math

import pytest

from bench import curiosity_signals


def test_it_reports_each_signal_per_kind_after_every_cycle(tmp_path):
    out = tmp_path / "signals.json"
    curiosity_signals.main(["--out", str(out), "--seeds", "1", "--cycles", "2", "--rounds", "1",
                            "--wm-steps", "1", "--held-rounds", "4", "--held-moves", "3"])
    result = json.loads(out.read_text())
    cycles = result["per_seed"][0]["cycles"]
    assert [c["cycle"] for c in cycles] == [1, 2]
    assert [c["lifetime_steps"] for c in cycles] == [1, 2]  # one schedule, resumed
    for c in cycles:
        for signal in curiosity_signals.SIGNALS:
            assert math.isfinite(c[signal]["learnable"]) and math.isfinite(c[signal]["overall"])
        assert c["error"]["overall"] > 0 and c["disagreement"]["overall"] > 0
    assert set(result["noise_over_learnable"]) == set(curiosity_signals.SIGNALS)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        curiosity_signals.main(["--out", str(tmp_path / "x.json"), "--heads", "1"])
