"""Write the Grafana dashboards of ptzjepa (deploy/grafana/dashboards/*.json) from one description.

    .venv/bin/python deploy/grafana/dashboards.py          # rewrite the JSON files (both copies)
    .venv/bin/python deploy/grafana/dashboards.py --check  # exit 1 when a file is out of date

The JSON files are what Grafana loads (provisioned by docker compose, shipped as ConfigMaps by
k8s/components/monitoring, or imported); this script is
how they are edited, so that every panel follows the same conventions: the `datasource` variable
(any Prometheus, default the provisioned `ptzjepa-prometheus`), `$node` filters, `$__rate_interval`.

A panel may only query metrics that ptzjepa exports (`tests/deploy/test_dashboards.py` checks
it). Panels listed with `needs=` query metrics proposed but not yet defined in shared/metrics.py:
they are written only once every metric they need is registered there, so a dashboard never shows
a query for a series that cannot exist. When one is added, rerun this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Grafana under compose mounts the first; the Kubernetes monitoring component ships the second
# (kustomize reads files only below its own folder).
OUTS = (HERE / "dashboards", HERE.parents[1] / "k8s" / "components" / "monitoring" / "dashboards")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    title: str
    targets: list[Target]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    needs: tuple[str, ...] = ()  # proposed metrics (not yet in shared/metrics.py)
    options: dict = field(default_factory=dict)
    mappings: list = field(default_factory=list)
    thresholds: list | None = None
    stack: bool = False
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class Row:
    title: str
    panels: list[Panel]


def registered_metrics() -> set[str]:
    """Names of the metric families defined in shared/metrics.py (imported from the repository)."""
    sys.path.insert(0, str(HERE.parents[1]))
    from prometheus_client import REGISTRY

    import shared.metrics  # noqa: F401 - registers the metrics

    return {metric.name for metric in REGISTRY.collect()}


# ---- the dashboards -------------------------------------------------------------------------------

def camera_row() -> Row:
    """The camera service's requests, errors and latency, and the frames it collects."""
    return Row("Camera", [
        Panel("Camera requests by operation and outcome",
              [Target(f"sum by (camera, op, outcome) (rate(ptzjepa_camera_requests_total[{RATE}]))",
                      "{{camera}} {{op}} {{outcome}}")], unit="reqps", width=8),
        Panel("Camera errors",
              [Target("sum by (camera, op, outcome) "
                      f'(rate(ptzjepa_camera_requests_total{{outcome!="ok"}}[{RATE}]))',
                      "{{camera}} {{op}} {{outcome}}")], unit="reqps", width=8,
              description="Driver calls that did not succeed (timeouts, error bodies, bad images...)."),
        Panel("Camera latency by operation",
              [Target("histogram_quantile(0.5, sum by (camera, op, le) "
                      f"(rate(ptzjepa_camera_request_seconds_bucket[{RATE}])))",
                      "p50 {{camera}} {{op}}"),
               Target("histogram_quantile(0.95, sum by (camera, op, le) "
                      f"(rate(ptzjepa_camera_request_seconds_bucket[{RATE}])))",
                      "p95 {{camera}} {{op}}")],
              unit="s", width=8),
        Panel("Frames collected per minute",
              [Target("60 * sum by (node, source) "
                      f'(rate(ptzjepa_frames_collected_total{{node=~"$node"}}[{RATE}]))',
                      "{{node}} {{source}}")], unit="short", width=24, height=7,
              description="Frames written to the store: `sweep` (random collection) and "
                          "`navigate` (the agent drives the camera)."),
    ])


def node_overview() -> tuple[dict, list[Row]]:
    meta = {"uid": "ptzjepa-node-overview", "title": "ptzjepa / Node overview",
            "description": "Services and workers of ptzjepa nodes: health, HTTP, camera, queues, "
                           "leases and processes.",
            "tags": ["ptzjepa"]}
    up_mappings = [{"type": "value", "options": {
        "0": {"text": "DOWN", "color": "red", "index": 0},
        "1": {"text": "UP", "color": "green", "index": 1}}}]
    rows = [
        Row("Services", [
            Panel("Targets up", [Target('up{job=~"$job"}', "{{job}} {{instance}}", instant=True)],
                  kind="stat", width=24, height=5, mappings=up_mappings,
                  thresholds=[("red", None), ("green", 1)],
                  description="Every service and worker Prometheus scrapes (1 = the last scrape worked).",
                  options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                           "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
            Panel("HTTP requests by service and status",
                  [Target(f"sum by (service, status) (rate(ptzjepa_http_requests_total[{RATE}]))",
                          "{{service}} {{status}}")], unit="reqps", width=8),
            Panel("HTTP 5xx ratio by service",
                  [Target(f'sum by (service) (rate(ptzjepa_http_requests_total{{status=~"5.."}}[{RATE}]))'
                          f" / sum by (service) (rate(ptzjepa_http_requests_total[{RATE}]))",
                          "{{service}}")], unit="percentunit", width=8, minimum=0),
            Panel("HTTP latency p95 by route",
                  [Target("histogram_quantile(0.95, sum by (service, route, le) "
                          f"(rate(ptzjepa_http_request_seconds_bucket[{RATE}])))",
                          "{{service}} {{route}}")], unit="s", width=8),
        ]),
        camera_row(),
        Row("Queues, jobs and leases", [
            Panel("Queue depth", [Target("max by (queue) (ptzjepa_queue_depth)", "{{queue}}")],
                  width=8, description="Jobs waiting in each rq queue."),
            Panel("Job failures (per hour)",
                  [Target("sum by (queue, func) (increase(ptzjepa_job_failures_total[1h]))",
                          "{{queue}} {{func}}")], width=8),
            Panel("World-model lease events per minute",
                  [Target(f'60 * sum by (event) (rate(ptzjepa_lease_events_total{{node=~"$node"}}[{RATE}]))',
                          "{{event}}")], width=8, stack=True,
                  description="granted, waited, no_free_slot, released, lost (expired while held), "
                              "refused (a stale fencing token), published."),
            Panel("Lease wait p95",
                  [Target("histogram_quantile(0.95, sum by (le) "
                          f'(rate(ptzjepa_lease_wait_seconds_bucket{{node=~"$node"}}[{RATE}])))', "p95")],
                  unit="s", width=12, needs=("ptzjepa_lease_wait_seconds",)),
            Panel("Cycles by outcome (per hour)",
                  [Target('sum by (node, outcome) (increase(ptzjepa_cycles_total{node=~"$node"}[1h]))',
                          "{{node}} {{outcome}}")], width=12, needs=("ptzjepa_cycles",)),
        ]),
        Row("Processes", [
            Panel("Resident memory",
                  [Target('sum by (job, instance) (process_resident_memory_bytes{job=~"$job"})',
                          "{{job}} {{instance}}")], unit="bytes", width=12),
            Panel("CPU",
                  [Target(f'sum by (job, instance) (rate(process_cpu_seconds_total{{job=~"$job"}}[{RATE}]))',
                          "{{job}} {{instance}}")], unit="percentunit", width=12,
                  description="CPU seconds per second (1 = one core)."),
        ]),
    ]
    return meta, rows


def learning_progress() -> tuple[dict, list[Row]]:
    meta = {"uid": "ptzjepa-learning-progress", "title": "ptzjepa / Learning progress",
            "description": "Phases, world-model training, dreams, agent and surprise of ptzjepa nodes.",
            "tags": ["ptzjepa"]}
    rows = [
        Row("Phases", [
            Panel("Running phases", [Target('ptzjepa_phase_progress_ratio{node=~"$node"}',
                                            "{{node}} {{phase}}", instant=True)],
                  kind="bargauge", unit="percentunit", width=8, minimum=0, maximum=1,
                  options={"orientation": "horizontal", "displayMode": "gradient",
                           "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
                  description="Fraction done of the running (or last) phase of each node."),
            Panel("Phase duration p50 / p95",
                  [Target("histogram_quantile(0.5, sum by (phase, le) "
                          '(rate(ptzjepa_phase_seconds_bucket{node=~"$node"}[1h])))', "p50 {{phase}}"),
                   Target("histogram_quantile(0.95, sum by (phase, le) "
                          '(rate(ptzjepa_phase_seconds_bucket{node=~"$node"}[1h])))', "p95 {{phase}}")],
                  unit="s", width=8),
            Panel("Phases finished (per hour) by outcome",
                  [Target("sum by (phase, outcome) "
                          '(increase(ptzjepa_phase_seconds_count{node=~"$node"}[1h]))',
                          "{{phase}} {{outcome}}")], width=8, stack=True,
                  description="ok, stopped, failed, no_free_slot..."),
            Panel("Mean phase duration",
                  [Target('sum by (phase) (rate(ptzjepa_phase_seconds_sum{node=~"$node"}[1h])) / '
                          'sum by (phase) (rate(ptzjepa_phase_seconds_count{node=~"$node"}[1h]))',
                          "{{phase}}")], unit="s", width=24, height=7),
        ]),
        Row("World model", [
            Panel("World-model training loss",
                  [Target('ptzjepa_worldmodel_loss{node=~"$node", slot=~"$slot"}',
                          "{{node}} {{slot}}")], width=12,
                  description="The latest loss a training job reported, per slot."),
            Panel("World-model versions published",
                  [Target("sum by (slot) (increase(ptzjepa_worldmodel_versions_published_total"
                          '{node=~"$node", slot=~"$slot"}[1h]))', "{{slot}} per hour"),
                   Target("sum by (slot) (ptzjepa_worldmodel_versions_published_total"
                          '{node=~"$node", slot=~"$slot"})', "{{slot}} total")], width=12),
            Panel("World-model prediction error vs copy baseline",
                  [Target('ptzjepa_worldmodel_eval_error{node=~"$node", slot=~"$slot"}',
                          "{{slot}} {{horizon}} {{kind}}")], width=24, height=7,
                  needs=("ptzjepa_worldmodel_eval_error",)),
        ]),
        Row("Data", [
            Panel("Frames collected (per hour) by source",
                  [Target("sum by (node, source) "
                          '(increase(ptzjepa_frames_collected_total{node=~"$node"}[1h]))',
                          "{{node}} {{source}}")], width=12, stack=True),
            Panel("Frames collected (total)",
                  [Target('sum by (source) (ptzjepa_frames_collected_total{node=~"$node"})', "{{source}}",
                          instant=True)], kind="stat", width=12,
                  options={"colorMode": "value", "graphMode": "area", "textMode": "value_and_name",
                           "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
            Panel("Dreams generated (per hour)",
                  [Target('sum by (node) (increase(ptzjepa_dreams_generated_total{node=~"$node"}[1h]))',
                          "{{node}}")],
                  width=12, needs=("ptzjepa_dreams_generated",)),
        ]),
        Row("Agent and surprise", [
            Panel("Agent training loss", [Target('ptzjepa_agent_loss{node=~"$node"}', "{{node}}")],
                  width=12, needs=("ptzjepa_agent_loss",)),
            Panel("Surprise while navigating (median)",
                  [Target("histogram_quantile(0.5, sum by (node, kind, le) "
                          f'(rate(ptzjepa_surprise_bucket{{node=~"$node", source="navigate"}}[{RATE}])))',
                          "{{node}} {{kind}}")],
                  width=12, needs=("ptzjepa_surprise",),
                  description="Per transition: `predicted` by the world model when the agent chose "
                              "the move, `observed` after it (the reward the agent seeks)."),
            Panel("Mean surprise of dreams", [Target('ptzjepa_dream_surprise_mean{node=~"$node"}',
                                                     "{{node}} {{slot}}")],
                  width=12, needs=("ptzjepa_dream_surprise_mean",)),
        ]),
    ]
    return meta, rows


DASHBOARDS = {"node-overview.json": node_overview, "learning-progress.json": learning_progress}


# ---- JSON -----------------------------------------------------------------------------------------

def _variables(uid: str) -> list[dict]:
    def query_var(name: str, label: str, query: str, metric_hint: str) -> dict:
        return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
                "definition": query, "query": {"query": query, "refId": f"{name}-var"},
                "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1, "hide": 0, "description": metric_hint}

    variables = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {"selected": False, "text": "Prometheus", "value": "ptzjepa-prometheus"},
         "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False},
        query_var("node", "Node", 'label_values({__name__=~"ptzjepa_.+", node!=""}, node)',
                  "ptzjepa nodes (sites) seen in any metric"),
    ]
    if uid == "ptzjepa-node-overview":
        variables.append(query_var("job", "Job", "label_values(up, job)", "Prometheus scrape jobs"))
    else:
        variables.append(query_var("slot", "Slot", "label_values(ptzjepa_worldmodel_loss, slot)",
                                   "world-model slots"))
    return variables


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    if panel.kind == "text":
        return {"id": panel_id, "type": "text", "title": panel.title,
                "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
                "options": panel.options}
    defaults: dict = {"unit": panel.unit, "mappings": panel.mappings}
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.maximum is not None:
        defaults["max"] = panel.maximum
    steps = panel.thresholds or [("green", None)]
    defaults["thresholds"] = {"mode": "absolute",
                              "steps": [{"color": c, "value": v} for c, v in steps]}
    if panel.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if panel.stack else 0,
                              "showPoints": "never", "spanNulls": True,
                              "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"}}
        defaults["color"] = {"mode": "palette-classic"}
    options = dict(panel.options)
    if panel.kind == "timeseries":
        options.setdefault("legend", {"displayMode": "list", "placement": "bottom", "showLegend": True})
        options.setdefault("tooltip", {"mode": "multi", "sort": "desc"})
    targets = []
    for i, t in enumerate(panel.targets):
        target = {"datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend,
                  "refId": chr(ord("A") + i), "range": not t.instant, "instant": t.instant}
        targets.append(target)
    return {"id": panel_id, "type": panel.kind, "title": panel.title, "description": panel.description,
            "datasource": DATASOURCE, "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options,
            "targets": targets}


def render(meta: dict, rows: list[Row], available: set[str]) -> dict:
    panels: list[dict] = []
    panel_id, y = 1, 0
    for row in rows:
        shown = [p for p in row.panels if all(n in available for n in p.needs)]
        waiting = sorted({n for p in row.panels for n in p.needs if n not in available})
        if waiting:
            shown.append(Panel("Not measured yet", [], kind="text", width=24 if not shown else 12,
                               height=4, options={"mode": "markdown", "content": (
                                   "More panels appear here once ptzjepa exports "
                                   + ", ".join(f"`{n}`" for n in waiting)
                                   + " (see docs/deployment.md, Monitoring).")}))
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y, x, line_height = panel_id + 1, y + 1, 0, 0
        for panel in shown:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        **meta,
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "browser",
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "timepicker": {}, "links": [{"type": "dashboards", "tags": ["ptzjepa"], "asDropdown": True,
                                     "title": "ptzjepa dashboards", "includeVars": True,
                                     "keepTime": True}],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": _variables(meta["uid"])},
        "panels": panels,
    }


def build(available: set[str] | None = None) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    available = registered_metrics() if available is None else available
    out = {}
    for name, make in DASHBOARDS.items():
        meta, rows = make()
        out[name] = json.dumps(render(meta, rows, available), indent=2, sort_keys=False) + "\n"
    return out


def pending(available: set[str] | None = None) -> dict[str, list[str]]:
    """Panels left out because a metric they need is not defined yet: title -> missing names."""
    available = registered_metrics() if available is None else available
    left = {}
    for make in DASHBOARDS.values():
        for row in make()[1]:
            for panel in row.panels:
                missing = [n for n in panel.needs if n not in available]
                if missing:
                    left[panel.title] = missing
    return left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write ptzjepa's Grafana dashboards")
    parser.add_argument("--check", action="store_true", help="only check the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        for out in OUTS:
            path = out / name
            if path.exists() and path.read_text() == text:
                continue
            stale.append(str(path.relative_to(HERE.parents[1])))
            if not args.check:
                out.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {path}")
    for title, missing in pending().items():
        print(f"left out until shared/metrics.py defines {', '.join(missing)}: {title}")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python deploy/grafana/dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
