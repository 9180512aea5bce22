"""The `ptzjepa` command line as a user runs it: real subprocesses, real ports, real signals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.coordinator.test_full_cycle import TINY
from tests.support.servers import free_port, free_port_block, wait_for, wait_http_ok

pytestmark = pytest.mark.integration


def _env(tmp_path: Path) -> tuple[dict, dict]:
    ports = {"camera": free_port(), "coordinator": free_port(), "worker": free_port_block(8)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTZJEPA_")}
    env.update({
        "PTZJEPA_DATA_DIR": str(tmp_path / "data"),
        "PTZJEPA_SERVICES__CAMERA_PORT": str(ports["camera"]),
        "PTZJEPA_SERVICES__COORDINATOR_PORT": str(ports["coordinator"]),
        "PTZJEPA_SERVICES__WORKER_METRICS_PORT": str(ports["worker"]),
        "PTZJEPA_CAMERA__SIM__WIDTH": "64", "PTZJEPA_CAMERA__SIM__HEIGHT": "64",
    })
    return env, ports


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ptzjepa.cli", *args]


def test_demo_runs_a_cycle_and_reports_where_everything_is(tmp_path):
    env, _ = _env(tmp_path)
    config = json.loads(json.dumps(TINY))
    config.pop("camera")
    config["collect"] = {"iterations": 2, "movements": 3}  # the config file beats the demo's sizes
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    out = subprocess.run(_cli("demo", "--cycles", "1", "--config", str(tmp_path / "demo.yaml")), env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "collected 16 frames in 2 rounds" in text and ": finished" in text
    for phase in ("collect", "worldmodel", "dreamer", "agent"):
        assert f"{phase} finished" in text
    sheets = list((tmp_path / "data" / "store" / "reports" / "node0").glob("contact_sheet-*.png"))
    assert len(sheets) == 1 and sheets[0].stat().st_size > 1000
    assert len(list((tmp_path / "data" / "store" / "manifests" / "node0").glob("*.jsonl"))) == 2
    assert list((tmp_path / "data" / "store" / "agents" / "node0").glob("*.safetensors"))


def test_up_serves_until_ctrl_c_then_stops_everything(tmp_path):
    env, ports = _env(tmp_path)
    proc = subprocess.Popen(_cli("up"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{ports['coordinator']}/readyz", timeout_s=90)
        wait_http_ok(f"http://127.0.0.1:{ports['camera']}/readyz", timeout_s=30)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "is up" in output and "stopping" in output
    time.sleep(0.5)
    for port in (ports["camera"], ports["coordinator"]):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_bad_config_exits_2_naming_the_field(tmp_path):
    env, _ = _env(tmp_path)
    env["PTZJEPA_COLLECT__ITERATIONS"] = "-3"
    out = subprocess.run(_cli("demo"), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout
    assert "collect.iterations" in out.stdout


def test_a_typo_in_a_frozen_section_stops_up_before_anything_starts(tmp_path):
    env, ports = _env(tmp_path)
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump({"worldmodel": {"train": {"lrr": 1e-3}}}))
    out = subprocess.run(_cli("up", "--config", str(config)), env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "worldmodel.train" in out.stdout and "lrr" in out.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports['coordinator']}/healthz", timeout=2)


def test_a_second_up_on_the_same_data_dir_is_refused_and_down_stops_the_first(tmp_path):
    env, ports = _env(tmp_path)
    first = subprocess.Popen(_cli("up"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{ports['coordinator']}/readyz", timeout_s=90)
        record = json.loads((tmp_path / "data" / "run" / "node.json").read_text())
        assert record["launcher"]["pid"] == first.pid
        children = [c["pid"] for c in record["children"]]
        assert len(children) == 6

        status = subprocess.run(_cli("status"), env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"launcher pid {first.pid}" in status.stdout and "worker-worldmodel" in status.stdout

        second = subprocess.run(_cli("up"), env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        text = " ".join(second.stdout.split())
        assert f"already running: launcher pid {first.pid}" in text and "ptzjepa down" in text
        assert httpx.get(f"http://127.0.0.1:{ports['coordinator']}/healthz", timeout=5).status_code == 200

        started = time.monotonic()
        down = subprocess.run(_cli("down"), env=env, capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopped" in down.stdout
        output, _ = first.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output
    assert "did not stop" not in output, output
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    assert not (tmp_path / "data" / "run" / "node.json").exists()
    print(f"`ptzjepa down` of an idle node: {took:.2f} s")


def test_after_up_is_killed_its_children_are_gone_and_a_new_up_starts(tmp_path):
    env, ports = _env(tmp_path)
    ready = f"http://127.0.0.1:{ports['coordinator']}/readyz"
    first = subprocess.Popen(_cli("up"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http_ok(ready, timeout_s=90)
        record = json.loads((tmp_path / "data" / "run" / "node.json").read_text())
        first.kill()  # SIGKILL: the launcher runs no clean-up at all
        first.wait(10)
        children = [c["pid"] for c in record["children"]]
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 5,
                 what="the children to die with `ptzjepa up`")
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.Popen(_cli("up"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        wait_http_ok(ready, timeout_s=90)
        second.send_signal(signal.SIGINT)
        output, _ = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output
    text = " ".join(output.split())
    assert "is up" in text
