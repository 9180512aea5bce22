"""Monitoring: the Grafana dashboards query only metrics ptzjepa exports, and a real Prometheus,
configured from deploy/prometheus/prometheus.yml, scrapes every service and worker of a node
started as local processes (loopback only)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import httpx
import pytest
import yaml

from services.coordinator.launcher import Node
from tests.deploy.support import REPO, compose, ptzjepa_services
from tests.support.servers import free_port, free_port_block, wait_for
from tests.support.settings import make_settings

DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
# Series Prometheus itself writes for every target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                 "scrape_samples_post_metric_relabeling", "scrape_series_added"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan", "atan2"}
HEALTHCHECK = REPO / "deploy/docker/healthcheck.py"


# ---- PromQL in the dashboards ---------------------------------------------------------------------

def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, keywords, labels and variables removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+(?::\w+)?\}?", "", text)           # Grafana variables
    text = re.sub(r"\{[^}]*\}", "", text)                        # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                       # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        token, before = match.group(0), text[:match.start()]
        rest = text[match.end():].lstrip()
        if token in PROMQL_WORDS or rest.startswith("(") or re.match(r"(by|without)\b", rest):
            continue  # a keyword, a function, or an aggregation (`sum by (x) (...)`)
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # the exponent or unit of a number
        names.add(token)
    return names


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    exprs = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        exprs += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
        if match:
            exprs.append(match.group(1))
        elif not re.fullmatch(r"label_values\(\w+\)", query.strip()):
            exprs.append(query)
    return exprs


def exported_from_text(text: str) -> set[str]:
    """Sample names a /metrics page exports, counting declared but empty families too."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names |= expand(name, kind)
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def expand(name: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "counter":
        base = name[:-6] if name.endswith("_total") else name
        return {f"{base}_total", f"{base}_created"}
    return {name}


def registered() -> set[str]:
    """What every ptzjepa HTTP service exports: shared/metrics.py plus the default collectors."""
    from prometheus_client import REGISTRY, generate_latest

    import shared.metrics  # noqa: F401 - registers them

    return exported_from_text(generate_latest(REGISTRY).decode())


def test_metric_name_extraction():
    assert metric_names('histogram_quantile(0.95, sum by (service, route, le) '
                        '(rate(ptzjepa_http_request_seconds_bucket{job=~"$job"}[$__rate_interval])))') \
        == {"ptzjepa_http_request_seconds_bucket"}
    assert metric_names('sum(rate(a_total{x="y{z}"}[5m])) by (job) / on (job) group_left b * 1e3 + up') \
        == {"a_total", "b", "up"}
    assert metric_names('60 * sum without (instance) (increase(c[1h] offset 1d)) > bool 2') == {"c"}


def test_metrics_are_defined_once_and_named_ptzjepa():
    from prometheus_client.metrics import MetricWrapperBase

    import shared.metrics as metrics

    defined = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert defined and all(m._name.startswith("ptzjepa_") for m in defined)
    elsewhere = []
    for path in list((REPO / "shared").rglob("*.py")) + list((REPO / "services").rglob("*.py")):
        if path.name != "metrics.py" and re.search(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*[\"']",
                                                   path.read_text()):
            elsewhere.append(str(path.relative_to(REPO)))
    assert not elsewhere, f"define metrics in shared/metrics.py, not in {elsewhere}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_panels_query_only_exported_metrics(path):
    dashboard = json.loads(path.read_text())
    exprs = dashboard_queries(dashboard)
    assert len(exprs) >= 8
    missing = {name: expr for expr in exprs for name in metric_names(expr)
               if name not in registered() | SCRAPE_SERIES}
    assert not missing, f"{path.name} queries metrics that no service exports: {missing}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("ptzjepa-") and dashboard["title"].startswith("ptzjepa")
    ids, variables = set(), {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "node"} <= variables
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] not in ("row", "text"):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                for var in re.findall(r"\$(\w+)", target["expr"]):
                    assert var in variables or var.startswith("__"), f"{panel['title']}: ${var} undefined"


def test_the_two_dashboards_exist_and_are_generated_from_dashboards_py():
    assert {p.name for p in DASHBOARDS} >= {"node-overview.json", "learning-progress.json"}
    done = subprocess.run([sys.executable, str(REPO / "deploy/grafana/dashboards.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- a real node, a real Prometheus ---------------------------------------------------------------

def _job_key(argv: list[str]) -> tuple:
    """What identifies a process across compose and the launcher: its app or its queues."""
    args = [a for a in argv if not a.endswith(("python", "python3")) and a != "-m"]
    if args[0] == "uvicorn":
        return ("app", next(a for a in args if ":" in a and not a.startswith("-")))
    assert args[0] == "shared.worker", argv
    queues = []
    for a in args[1:]:
        if a.startswith("-"):
            break
        queues.append(a)
    return ("worker", tuple(sorted(queues)))


def _local_targets(node: Node) -> dict[str, str]:
    """compose service name (= Prometheus job) -> host:port of the same process in the node."""
    jobs = {_job_key(svc["command"]): name for name, svc in ptzjepa_services(compose()).items()}
    targets = {}
    for child in node.children:
        key = _job_key(child.argv)
        assert key in jobs, f"{child.name} ({key}) runs nothing that docker-compose.yml runs"
        url = child.ready_url.replace("/readyz", "/metrics")
        targets[jobs[key]] = re.match(r"http://([^/]+)/", url).group(1)
    assert set(targets) == set(jobs.values()), f"the node runs no {set(jobs.values()) - set(targets)}"
    return targets


def _prometheus_config(targets: dict[str, str], own: str) -> dict:
    """deploy/prometheus/prometheus.yml with each job pointed at the local process, scraping fast."""
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    for job in config["scrape_configs"]:
        name = job["job_name"]
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        if name == "prometheus":
            job["static_configs"] = [{"targets": [own]}]
        else:
            assert name in targets, f"job {name} scrapes nothing the node runs"
            job["static_configs"] = [{"targets": [targets[name]]}]
    return config


def _documented_requests() -> list[tuple[str, str, str]]:
    """(port, method, path) of every curl command docs/deployment.md shows against the
    coordinator (8700) or the camera (8701)."""
    found = []
    text = (REPO / "docs/deployment.md").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "curl" not in line:
            continue
        for command in line.split(";"):
            match = re.search(r"localhost:(870[01])(/v1/[^\s'\"]*)", command)
            if match:
                method = re.search(r"-X\s+(\w+)", command)
                found.append((match.group(1), (method.group(1) if method else "GET").lower(), match.group(2)))
    return found


def _route_exists(openapi: dict, method: str, path: str) -> bool:
    for template, methods in openapi["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in methods:
            return True
    return False


@pytest.mark.integration
def test_prometheus_scrapes_every_service_and_worker_of_a_running_node(tmp_path):
    settings = make_settings(tmp_path, api_token="tok", services={"worker_metrics_port": free_port_block(6)})
    with Node(settings) as node:
        targets = _local_targets(node)

        # every /metrics answers in the Prometheus text format; together they export every
        # metric a dashboard panel queries
        exported = set()
        for job, hostport in targets.items():
            response = httpx.get(f"http://{hostport}/metrics", timeout=5)
            assert response.status_code == 200 and "text/plain" in response.headers["content-type"], job
            exported |= exported_from_text(response.text)
        assert any(n.startswith("ptzjepa_") for n in exported)
        stray = {n for n in exported if n.startswith("ptzjepa") and n not in registered()}
        assert not stray, f"metrics exported but not defined in shared/metrics.py: {stray}"
        for path in DASHBOARDS:
            queried = {n for e in dashboard_queries(json.loads(path.read_text())) for n in metric_names(e)}
            assert queried - SCRAPE_SERIES <= exported, \
                f"{path.name}: not exported: {queried - SCRAPE_SERIES - exported}"

        # the container health check passes on every process, and fails on a closed port
        for job, hostport in targets.items():
            url = f"http://{hostport}/metrics"
            if job in ("camera", "coordinator"):
                url = f"http://{hostport}/healthz"
            done = subprocess.run([sys.executable, str(HEALTHCHECK), url], capture_output=True, text=True,
                                  timeout=10)
            assert done.returncode == 0, (job, done.stdout)
        closed = subprocess.run([sys.executable, str(HEALTHCHECK), f"http://127.0.0.1:{free_port()}/healthz"],
                                capture_output=True, text=True, timeout=10)
        assert closed.returncode == 1

        # the curl commands of docs/deployment.md name real routes
        openapi = {"8700": httpx.get(f"{node.coordinator_url}/openapi.json", timeout=5).json(),
                   "8701": httpx.get(f"{node.camera_url}/openapi.json", timeout=5).json()}
        documented = _documented_requests()
        assert ("8700", "post", "/v1/lifelong/start") in documented
        unknown = [r for r in documented if not _route_exists(openapi[r[0]], r[1], r[2])]
        assert not unknown, f"docs/deployment.md shows requests the coordinator does not serve: {unknown}"

        prometheus = shutil.which("prometheus")
        if prometheus is None:
            pytest.skip("the prometheus binary is not installed (Debian package prometheus); "
                        "the scrape by a real Prometheus was not checked")
        port = free_port()
        own = f"127.0.0.1:{port}"
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(_prometheus_config(targets, own)))
        log = open(tmp_path / "prometheus.log", "wb")
        proc = subprocess.Popen([prometheus, f"--config.file={config}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address={own}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            api = f"http://{own}/api/v1"

            def all_up():
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                try:  # while it starts, Prometheus answers 503 in plain text
                    active = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
                except (httpx.HTTPError, ValueError, KeyError):
                    return None
                health = {t["labels"]["job"]: t["health"] for t in active}
                if len(active) == len(targets) + 1 and set(health.values()) == {"up"}:
                    return health
                return None

            health = wait_for(all_up, 45, interval_s=0.5, what="every Prometheus target up")
            assert set(health) == set(targets) | {"prometheus"}

            def scraped():
                result = httpx.get(f"{api}/query", params={"query": "up"}, timeout=2).json()["data"]["result"]
                return result if len(result) == len(targets) + 1 else None

            up = wait_for(scraped, 20, interval_s=0.5, what="the up series of every job")
            assert {r["metric"]["job"]: r["value"][1] for r in up} == {job: "1" for job in health}
            series = httpx.get(f"{api}/query", timeout=2, params={
                "query": 'count by (job) (ptzjepa_http_requests_total)'}).json()["data"]["result"]
            assert {r["metric"]["job"] for r in series} == {"camera", "coordinator"}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
