"""k8s/: every overlay renders with `kubectl kustomize` and validates against the Kubernetes
schemas offline (kubernetes-validate, strict: unknown fields are errors); then what the
manifests mean: probes, limits, non-root pods, the store, secrets as files, one camera owner per
site, GPUs for the training workers, settings that load."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared.config import load_settings
from tests.deploy.support import IMAGES, REPO, dockerfile_of

K8S = REPO / "k8s"
# The secret files a checkout may hold under k8s/; renders never read them.
SECRET_FILES = shutil.ignore_patterns("api_token", "redis_password", "camera_password")
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes these manifests are written for
TRAINING = ("worldmodel", "dreamer", "agent")


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render k8s/ (kubectl kustomize)"
    return kubectl


def _secret_files(root: Path) -> list[Path]:
    """Every file a secretGenerator of the tree reads (they are not in git)."""
    files = []
    for kustomization in root.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kustomization.read_text())
        for generator in doc.get("secretGenerator", []):
            for entry in generator.get("files", []):
                files.append(kustomization.parent / entry.split("=", 1)[-1])
    return files


@cache
def _render_tree(tmp: str) -> Path:
    """A copy of k8s/ with placeholder secret files, as `sh deploy/secrets/init.sh` would leave."""
    root = Path(tmp) / "k8s"
    shutil.copytree(K8S, root, ignore=SECRET_FILES)
    for path in _secret_files(root):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"placeholder-{path.name}")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return _render_tree(str(tmp_path_factory.mktemp("kustomize")))


@cache
def _rendered(root: Path, overlay: str) -> tuple[dict, ...]:
    done = subprocess.run([_kubectl(), "kustomize", str(root / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {overlay}: {done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def render(tree: Path, overlay: str) -> list[dict]:
    return list(_rendered(tree, overlay))


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def ptzjepa_workloads(docs: list[dict]) -> dict[str, dict]:
    return {n: d for n, d in by_kind(docs, "Deployment").items()
            if d["spec"]["template"]["spec"]["containers"][0]["image"].startswith("ptzjepa/")}


def container_env(deployment: dict, docs: list[dict]) -> dict[str, str]:
    """The environment of a pod's container: its ConfigMaps (envFrom), then its env entries."""
    maps = by_kind(docs, "ConfigMap")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env


def mounted_secret_files(deployment: dict, docs: list[dict]) -> dict[str, str]:
    """Path in the container -> content, for every Secret volume mounted."""
    secrets = by_kind(docs, "Secret")
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    files = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            secret = secrets[volume["secret"]["secretName"]]
            for key, value in secret["data"].items():
                files[f"{mount['mountPath']}/{key}"] = base64.b64decode(value).decode()
    return files


# ---- rendering and schemas ------------------------------------------------------------------------

def test_there_are_the_expected_overlays():
    assert {"single-node", "gpu", "multi-site"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_against_the_kubernetes_schemas(tree, overlay):
    docs = render(tree, overlay)
    assert docs
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except Exception as exc:
            problems.append(f"{doc['kind']}/{doc['metadata'].get('name')}: {getattr(exc, 'message', exc)}")
    assert not problems, "\n".join(problems)


def test_the_schema_check_rejects_mistakes(tree):
    deployment = dict(by_kind(render(tree, "single-node"), "Deployment")["camera"])
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_without_the_secret_files_the_build_says_which_file_is_missing(tmp_path):
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=SECRET_FILES)
    done = subprocess.run([_kubectl(), "kustomize", str(root / "overlays" / "single-node")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "secrets/api_token" in done.stderr


# ---- what the manifests say -----------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_probed_limited_and_unprivileged(tree, overlay):
    docs = render(tree, overlay)
    for kind in ("Deployment", "StatefulSet"):
        for name, d in by_kind(docs, kind).items():
            spec = d["spec"]["template"]["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
            for c in spec["containers"]:
                assert c["livenessProbe"] and c["readinessProbe"], name
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
                assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and sc.get("privileged") is False, name
                assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ptzjepa_pods_run_their_image_with_its_probes_and_metrics(tree, overlay):
    docs = render(tree, overlay)
    for name, d in ptzjepa_workloads(docs).items():
        pod = d["spec"]["template"]
        c = pod["spec"]["containers"][0]
        image = re.fullmatch(r"ptzjepa/([a-z]+):[\w.-]+", c["image"])
        assert image and image.group(1) in IMAGES, c["image"]
        assert dockerfile_of(image.group(1)).target == image.group(1)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        scrape_port = int(pod["metadata"]["annotations"]["prometheus.io/port"])
        assert scrape_port in ports.values(), name
        if "uvicorn" in c["command"]:
            assert int(c["command"][c["command"].index("--port") + 1]) == ports["http"]
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        else:
            assert int(c["command"][c["command"].index("--metrics-port") + 1]) == ports["metrics"]
            assert c["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_store_is_one_read_write_many_volume_at_data(tree, overlay):
    docs = render(tree, overlay)
    pvc = by_kind(docs, "PersistentVolumeClaim")["ptzjepa-store"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, d in ptzjepa_workloads(docs).items():
        spec = d["spec"]["template"]["spec"]
        store = [v for v in spec["volumes"]
                 if v.get("persistentVolumeClaim", {}).get("claimName") == "ptzjepa-store"]
        assert len(store) == 1, name
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts[store[0]["name"]] == "/data", name
        assert container_env(d, docs)["PTZJEPA_STORE_URL"].startswith("/data/"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_gets_valid_settings_with_secrets_from_files(tree, overlay, tmp_path):
    docs = render(tree, overlay)
    services = by_kind(docs, "Service")
    for name, d in ptzjepa_workloads(docs).items():
        env = container_env(d, docs)
        files = mounted_secret_files(d, docs)
        for key, value in env.items():
            if re.search(r"PASSWORD|TOKEN", key):
                assert key.endswith("_FILE") and value in files, \
                    f"{name}: {key}={value} is not a mounted file"
                local = tmp_path / value.strip("/").replace("/", "_")
                local.write_text(files[value])
                env[key] = str(local)
        settings = load_settings(environ=env)
        assert settings.redis_url == "redis://redis:6379/0" and settings.redis_password is not None, name
        assert settings.api_token is not None and settings.services.host == "0.0.0.0", name
        if component(d) in ("worldmodel", "dreamer"):
            continue  # the shared pool works for every node; it never talks to a camera
        camera_host, camera_port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)",
                                                settings.services.camera_base_url()).groups()
        assert camera_host in services, f"{name}: no Service {camera_host}"
        assert int(camera_port) in [p["port"] for p in services[camera_host]["spec"]["ports"]]
        if component(d) == "camera" and settings.camera.driver != "sim":
            assert settings.camera.password is not None, f"{name}: a real camera needs its password file"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_exactly_one_workload(tree, overlay):
    docs = render(tree, overlay)
    workloads = list(by_kind(docs, "Deployment").values()) + list(by_kind(docs, "StatefulSet").values())
    for name, svc in by_kind(docs, "Service").items():
        selector = svc["spec"]["selector"]
        chosen = [w["metadata"]["name"] for w in workloads
                  if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(chosen) == 1, f"Service {name} selects {chosen}"
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_one_camera_owner_per_site(tree):
    for overlay in OVERLAYS:
        for name, d in ptzjepa_workloads(render(tree, overlay)).items():
            if component(d) in ("camera", "camera-worker", "agent"):
                assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate", name


def test_the_gpu_overlay_gives_the_training_workers_a_gpu_and_cuda_images(tree):
    docs = render(tree, "gpu")
    for name, d in ptzjepa_workloads(docs).items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        if component(d) in TRAINING:
            assert gpus == "1" and c["image"].endswith("-cuda"), name
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
                d["spec"]["template"]["spec"]["tolerations"]
        else:
            assert gpus is None and not c["image"].endswith("-cuda"), name
    assert "nvidia.com/gpu" not in str(render(tree, "single-node"))


def test_the_multi_site_overlay_has_a_node_per_site_and_shared_training(tree, tmp_path):
    docs = render(tree, "multi-site")
    workloads = ptzjepa_workloads(docs)
    per_site: dict[str, set[str]] = {}
    nodes: dict[str, str] = {}
    for name, d in workloads.items():
        site = d["spec"]["template"]["metadata"]["labels"].get("ptzjepa.io/site")
        kind = component(d)
        if kind in ("worldmodel", "dreamer"):
            assert site is None and d["spec"]["replicas"] >= 2, \
                f"{name}: the training pool is shared and scaled"
            continue
        assert site, f"{name} belongs to no site"
        per_site.setdefault(site, set()).add(kind)
        node = container_env(d, docs)["PTZJEPA_NODE"]
        assert nodes.setdefault(site, node) == node, f"{name}: site {site} has two node names"
    assert len(per_site) >= 2
    for site, kinds in per_site.items():
        assert kinds == {"camera", "camera-worker", "agent", "coordinator"}, site
    assert len(set(nodes.values())) == len(nodes), "two sites share a node name"
    assert sorted(component(d) for d in workloads.values()).count("worldmodel") == 1
    assert len(by_kind(docs, "StatefulSet")) == 1  # one Redis for all sites


def test_the_monitoring_component_scrapes_pods_by_annotation_and_ships_the_dashboards(tree):
    docs = render(tree, "single-node")
    maps = by_kind(docs, "ConfigMap")
    (config_map,) = [m for n, m in maps.items() if n.startswith("prometheus-config")]
    config = yaml.safe_load(config_map["data"]["prometheus.yml"])
    (pods,) = [j for j in config["scrape_configs"] if "kubernetes_sd_configs" in j]
    relabel = {tuple(r.get("source_labels", [])): r for r in pods["relabel_configs"]}
    assert relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]["action"] == "keep"
    assert relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)]["target_label"] == "job"
    (dashboards,) = [m for n, m in maps.items() if n.startswith("ptzjepa-dashboards")]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    for path in (REPO / "deploy/grafana/dashboards").glob("*.json"):
        assert dashboards["data"][path.name] == path.read_text(), \
            f"k8s/components/monitoring/dashboards/{path.name} differs from deploy/grafana/dashboards/"
    role = by_kind(docs, "Role")["prometheus"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def test_the_k8s_env_files_hold_valid_settings():
    for path in list(K8S.rglob("*.env")):
        env = dict(line.split("=", 1) for line in path.read_text().splitlines()
                   if line and not line.startswith("#"))
        env = {k: v for k, v in env.items() if not k.endswith("_FILE")}
        load_settings(environ=env)
