"""Prometheus metrics of every service and worker, all named `ptzjepa_*`.

Defined once here so names and labels stay consistent across services and dashboards.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("ptzjepa_http_requests_total", "HTTP requests served",
                        ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("ptzjepa_http_request_seconds", "HTTP request latency",
                         ["service", "route"])
CAMERA_REQUESTS = Counter("ptzjepa_camera_requests_total", "Requests sent to a camera driver",
                          ["camera", "driver", "op", "outcome"])
CAMERA_LATENCY = Histogram("ptzjepa_camera_request_seconds", "Camera driver call latency",
                           ["camera", "driver", "op"])
FRAMES_COLLECTED = Counter("ptzjepa_frames_collected_total", "Frames written to the store",
                           ["node", "source"])
PHASE_SECONDS = Histogram("ptzjepa_phase_seconds", "Wall time of a finished phase",
                          ["node", "phase", "outcome"],
                          buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600, 7200))
PHASE_PROGRESS = Gauge("ptzjepa_phase_progress_ratio", "Fraction of the running phase done",
                       ["node", "phase"])
JOB_FAILURES = Counter("ptzjepa_job_failures_total", "Jobs that raised", ["queue", "func"])
QUEUE_DEPTH = Gauge("ptzjepa_queue_depth", "Jobs waiting in an rq queue", ["queue"])
WM_LOSS = Gauge("ptzjepa_worldmodel_loss", "Latest world-model training loss", ["node", "slot"])
WM_VERSIONS = Counter("ptzjepa_worldmodel_versions_published_total", "World-model versions published",
                      ["node", "slot"])
LEASE_EVENTS = Counter("ptzjepa_lease_events_total", "Slot lease events (granted, waited, lost...)",
                       ["node", "event"])
AGENT_LOSS = Gauge("ptzjepa_agent_loss", "Latest agent (DQN) training loss", ["node"])
SURPRISE = Histogram("ptzjepa_surprise", "World-model surprise per camera move while navigating",
                     ["node", "source", "kind"],
                     buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10))
DREAM_SURPRISE = Gauge("ptzjepa_dream_surprise_mean", "Mean predicted surprise of the latest dreams",
                       ["node", "slot"])
DREAMS = Counter("ptzjepa_dreams_generated_total", "Imagined rollouts written", ["node", "slot"])
LEASE_WAIT = Histogram("ptzjepa_lease_wait_seconds", "Time waited for a world-model slot", ["node"],
                       buckets=(0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300))
CYCLES = Counter("ptzjepa_cycles_total", "Learning cycles ended", ["node", "outcome"])
CHILD_UP = Gauge("ptzjepa_child_up", "1 while a supervised process of `ptzjepa up` runs, else 0",
                 ["node", "child"])
CHILD_RESTARTS = Gauge("ptzjepa_child_restarts", "Restarts of a supervised process since its node started",
                       ["node", "child"])
