"""Settings for tests: explicit values, nothing read from the developer's environment."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings, load_settings
from tests.support.servers import free_port, free_port_block


def make_settings(tmp_path: Path, redis_url: str | None = None, **overrides) -> Settings:
    services = {"camera_port": free_port(), "coordinator_port": free_port(),
                "worker_metrics_port": free_port_block(8), "job_retries": 1, "retry_intervals_s": [1],
                "job_heartbeat_s": 1}
    services.update(overrides.pop("services", {}))
    camera = {"sim": {"seed": 0, "width": 96, "height": 96}}
    camera_over = overrides.pop("camera", {})
    camera["sim"].update(camera_over.pop("sim", {}))
    camera.update(camera_over)
    return load_settings(environ={}, data_dir=tmp_path / "data", redis_url=redis_url,
                         redis_prefix="test", services=services, camera=camera, **overrides)
