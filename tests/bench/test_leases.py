"""The lease benchmark, small, against the test session's real Redis: its figures and checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_bench_reports_waits_beside_safety_figures(redis_url, tmp_path):
    out = tmp_path / "leases.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "leases.py"), "--out", str(out),
                    "--redis-url", redis_url, "--n", "50", "--processes", "3",
                    "--per-process", "30", "--slots", "2"],
                   check=True, cwd=ROOT, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    assert result["double_grants"] == 0 and result["repeated_fences"] == 0
    contention = result["contention"]
    assert contention["grants"] == 90 and contention["fence_errors"] == 0
    assert contention["no_free_slot"] == 0 and contention["publish_refused"] == 0
    assert 0 < result["wait_p50_ms"] <= result["wait_p99_ms"] <= result["max_wait_ms"]
    assert result["max_wait_ms"] == contention["acquire_wait_max_ms"]
    assert isinstance(result["max_wait_within_target"], bool)
    assert result["acquire_release_p99_ms"] > 0
