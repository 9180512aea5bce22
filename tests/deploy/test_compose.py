"""docker-compose.yml and its overrides, checked without a Docker engine: the official Compose
schema, secrets only through files, healthchecks, the store volume, settings that load."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest
from jsonschema import Draft202012Validator

from shared.config import load_settings
from tests.deploy.support import (
    COMPOSE_FILE,
    OVERRIDES,
    REPO,
    SCHEMA_FILE,
    compose,
    env_file_lines,
    image_of_build,
    load_yaml,
    ptzjepa_services,
)

SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|ACCESS_KEY", re.I)


def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _errors(doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(doc)]


def merged(base: dict, override: dict) -> dict:
    """docker compose's merge of an override file, for the keys these files use: mappings merge,
    `secrets` and `env_file` lists are unions, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key.startswith("x-"):
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        elif key in ("secrets", "env_file") and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + [v for v in value if v not in out[key]]
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_env(service: dict, env_files: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment a container gets: env files in order, then `environment` (which wins)."""
    env: dict[str, str] = {}
    for item in service.get("env_file", []):
        path = item["path"] if isinstance(item, dict) else item
        if path in env_files:
            env.update(env_files[path])
        else:
            assert isinstance(item, dict) and item.get("required") is False, f"{path} is required but missing"
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    return env


def settings_from(env: dict[str, str], mounted: dict[str, str], tmp_path):
    """Load the settings a container would, with its secret files (target -> content) in tmp_path."""
    env = dict(env)
    for key, value in list(env.items()):
        if key.endswith("_FILE"):
            assert value in mounted, f"{key}={value} is not a mounted secret ({sorted(mounted)})"
            path = tmp_path / value.strip("/").replace("/", "_")
            path.write_text(mounted[value])
            env[key] = str(path)
    return load_settings(environ={k: v for k, v in env.items() if k.startswith("PTZJEPA_")})


def mounted_secrets(service: dict, doc: dict) -> dict[str, str]:
    out = {}
    for item in service.get("secrets", []):
        name = item if isinstance(item, str) else item["source"]
        assert name in doc["secrets"], f"undeclared secret {name}"
        target = item.get("target", name) if isinstance(item, dict) else name
        out[target if target.startswith("/") else f"/run/secrets/{target}"] = f"dummy-{name}"
    return out


# ---- the schema -----------------------------------------------------------------------------------

def test_the_vendored_schema_is_the_official_compose_spec():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$id"] == "compose_spec.json" and schema["title"] == "Compose Specification"
    assert (REPO / "deploy/schemas/LICENSE.compose-spec").is_file()


@pytest.mark.parametrize("path", [COMPOSE_FILE, *OVERRIDES], ids=lambda p: p.name)
def test_compose_files_validate_against_the_compose_spec(path):
    assert _errors(load_yaml(path)) == []


def test_the_schema_check_rejects_mistakes():
    doc = compose()
    doc["services"]["camera"]["helthcheck"] = doc["services"]["camera"].pop("healthcheck")
    doc["volumes"]["store"] = {"driver": 3}
    errors = _errors(doc)
    assert any("helthcheck" in e for e in errors) and any("volumes/store" in e for e in errors)


def test_the_node_is_complete():
    doc = compose()
    assert set(doc["services"]) == {"redis", "camera", "camera-worker", "worldmodel", "dreamer", "agent",
                                    "coordinator", "prometheus", "grafana"}
    for name, svc in doc["services"].items():
        assert svc.get("privileged", False) is False, name
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert svc.get("restart") == "unless-stopped", name
        for port in svc.get("ports", []):
            assert port.startswith("${PTZJEPA_BIND:-127.0.0.1}:"), \
                f"{name} publishes {port} on every interface"


# ---- secrets --------------------------------------------------------------------------------------

def _all_environment_items():
    for path in [COMPOSE_FILE, *OVERRIDES]:
        for name, svc in load_yaml(path)["services"].items():
            env = svc.get("environment") or {}
            assert isinstance(env, dict), f"{path.name}:{name}: use a mapping for environment"
            for key, value in env.items():
                yield path.name, name, key, value


def test_no_secret_is_written_inline():
    for where, name, key, value in _all_environment_items():
        if SECRET_WORDS.search(key):
            assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), \
                f"{where}:{name}: {key} must name a secret file, not hold a secret"
    for example in (REPO / "deploy/env").glob("*.example"):
        for key in env_file_lines(example, include_commented=True):
            assert not SECRET_WORDS.search(key), f"{example.name} sets {key}: secrets go in deploy/secrets/"
    for path in [COMPOSE_FILE, *OVERRIDES]:
        for name, secret in (load_yaml(path).get("secrets") or {}).items():
            assert set(secret) == {"file"} and secret["file"].startswith("deploy/secrets/"), name


def test_secret_files_are_never_committed(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = [s["file"] for p in [COMPOSE_FILE, *OVERRIDES]
             for s in (load_yaml(p).get("secrets") or {}).values()]
    names += ["k8s/base/shared/secrets/api_token", "k8s/base/shared/secrets/redis_password",
              "k8s/overlays/multi-site/site-b/secrets/camera_password", "deploy/env/node.env",
              "deploy/env/camera.env"]
    for name in names:
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=REPO)
        assert done.returncode == 0, f"{name} is not ignored by git"
    for kept in ("deploy/secrets/init.sh", "deploy/env/node.env.example", "deploy/env/camera.env.example"):
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", kept], cwd=REPO)
        assert done.returncode == 1, f"{kept} must stay in git"


def test_init_script_makes_the_secrets_compose_needs(tmp_path):
    target = tmp_path / "secrets"
    subprocess.run(["sh", str(REPO / "deploy/secrets/init.sh"), str(target)], check=True, capture_output=True)
    doc = compose()
    for name, secret in doc["secrets"].items():
        made = target / secret["file"].rsplit("/", 1)[1]
        assert made.is_file() and len(made.read_text()) == 32, name
        assert made.stat().st_mode & 0o777 == 0o644
    assert target.stat().st_mode & 0o777 == 0o700
    first = (target / "api_token").read_text()
    subprocess.run(["sh", str(REPO / "deploy/secrets/init.sh"), str(target)], check=True, capture_output=True)
    assert (target / "api_token").read_text() == first  # never overwritten


def test_redis_requires_its_password_and_persists():
    redis = compose()["services"]["redis"]
    script = " ".join(redis["command"])
    assert "requirepass" in script and "/run/secrets/redis_password" in script
    assert "--appendonly yes" in script
    assert "redis:/data" in redis["volumes"] and redis["secrets"] == ["redis_password"]
    assert "REDISCLI_AUTH" in redis["healthcheck"]["test"][1]
    assert redis["user"] == "redis"


# ---- the ptzjepa services -------------------------------------------------------------------------

def test_services_share_the_store_volume_and_reach_redis_with_the_password():
    doc = compose()
    for name, svc in ptzjepa_services(doc).items():
        assert "store:/data" in svc["volumes"], name
        env = svc["environment"]
        assert env["PTZJEPA_STORE_URL"].startswith("/data/"), name
        assert env["PTZJEPA_REDIS_URL"].startswith("redis://redis:6379"), name
        assert env["PTZJEPA_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password", name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name


def test_healthchecks_probe_healthz_or_the_worker_metrics_port():
    for name, svc in ptzjepa_services(compose()).items():
        test = svc["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/usr/local/bin/ptzjepa-healthcheck"], name
        url = test[3]
        command = svc["command"]
        if "uvicorn" in command:
            port = command[command.index("--port") + 1]
            assert url == f"http://127.0.0.1:{port}/healthz", name
        else:
            port = command[command.index("--metrics-port") + 1]
            assert url == f"http://127.0.0.1:{port}/metrics", name


def test_every_container_gets_a_valid_configuration_with_the_simulated_camera(tmp_path):
    doc = compose()
    files = {"deploy/env/node.env": env_file_lines(REPO / "deploy/env/node.env.example")}
    nodes = set()
    for name, svc in ptzjepa_services(doc).items():
        settings = settings_from(effective_env(svc, files), mounted_secrets(svc, doc), tmp_path)
        assert settings.camera.driver == "sim", name
        assert settings.api_token is not None and settings.redis_password is not None, name
        assert settings.services.host == "0.0.0.0"
        assert settings.services.camera_base_url() == "http://camera:8701"
        nodes.add(settings.node)
    assert nodes == {"node0"}
    # and without the optional env file
    for svc in ptzjepa_services(doc).values():
        settings_from(effective_env(svc, {}), mounted_secrets(svc, doc), tmp_path)


def test_the_env_examples_hold_valid_settings(tmp_path):
    for example in sorted((REPO / "deploy/env").glob("*.example")):
        env = env_file_lines(example, include_commented=True)
        env.setdefault("PTZJEPA_CAMERA__PASSWORD", "x")
        load_settings(environ=env)  # raises ConfigError naming a bad field


def test_the_real_camera_override_switches_the_driver_and_mounts_its_password(tmp_path):
    doc = merged(compose(), load_yaml(REPO / "deploy/compose/real-camera.yml"))
    files = {"deploy/env/node.env": env_file_lines(REPO / "deploy/env/node.env.example"),
             "deploy/env/camera.env": env_file_lines(REPO / "deploy/env/camera.env.example")}
    camera = doc["services"]["camera"]
    settings = settings_from(effective_env(camera, files), mounted_secrets(camera, doc), tmp_path)
    assert settings.camera.driver == "hanwha"
    assert settings.camera.password.get_secret_value() == "dummy-camera_password"
    for name in ("camera-worker", "agent"):
        svc = doc["services"][name]
        other = settings_from(effective_env(svc, files), mounted_secrets(svc, doc), tmp_path)
        assert other.camera.name == settings.camera.name and other.camera.password is None, name
        assert "camera_password" not in svc["secrets"], f"{name} must not see the camera password"
    assert doc["secrets"]["camera_password"]["file"] == "deploy/secrets/camera_password"


def test_the_gpu_override_reserves_a_gpu_for_each_training_worker():
    doc = merged(compose(), load_yaml(REPO / "deploy/compose/gpu.yml"))
    for name in ("worldmodel", "dreamer", "agent"):
        (device,) = doc["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert image_of_build(doc["services"][name]["build"]) == "worker"
    assert "deploy" not in doc["services"]["camera"]


# ---- Prometheus and Grafana wiring ----------------------------------------------------------------

def test_prometheus_scrapes_every_service_and_worker_on_its_port():
    doc = compose()
    config = load_yaml(REPO / "deploy/prometheus/prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, svc in ptzjepa_services(doc).items():
        assert name in jobs, f"Prometheus does not scrape {name}"
        command = svc["command"]
        port = command[command.index("--port" if "uvicorn" in command else "--metrics-port") + 1]
        job = jobs[name]
        targets = [t for c in job.get("static_configs", []) for t in c["targets"]]
        targets += [f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]]
        assert targets == [f"{name}:{port}"], (name, targets)
    mounts = doc["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_promtool_accepts_the_prometheus_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    done = subprocess.run([promtool, "check", "config", str(REPO / "deploy/prometheus/prometheus.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_is_provisioned_with_the_datasource_and_dashboards():
    doc = compose()
    grafana = doc["services"]["grafana"]
    datasources = load_yaml(REPO / "deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    (ds,) = datasources
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert ds["uid"] == "ptzjepa-prometheus"
    (provider,) = load_yaml(REPO / "deploy/grafana/provisioning/dashboards/ptzjepa.yml")["providers"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "deploy/grafana/dashboards" / home.rsplit("/", 1)[1]).is_file()
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
