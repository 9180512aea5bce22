"""Run an rq worker for one or more ptzjepa queues (the entry point of every worker process).

Workers are rq `SimpleWorker`s: each job runs in the worker process itself rather than in a forked
child. That keeps what a job counts in Prometheus metrics (a forked child's counters die with it)
and lets a worker keep loaded models between jobs; rq still enforces job timeouts.
"""

from __future__ import annotations

import logging

from prometheus_client import start_http_server
from rq import Queue, SimpleWorker

from shared.config import Settings
from shared.keys import QUEUE_NAMES, Keys
from shared.redis import client_for

log = logging.getLogger(__name__)


def queues_for(settings: Settings, names: list[str]) -> list[Queue]:
    client = client_for(settings)
    keys = Keys(settings.redis_prefix)
    return [Queue(keys.queue(n, settings.node), connection=client, default_timeout=settings.services.job_timeout_s)
            for n in names]


def run_worker(settings: Settings, names: list[str], burst: bool = False,
               metrics_port: int | None = None) -> bool:
    """Work jobs from `names` until stopped (SIGTERM/SIGINT finish the current job first)."""
    unknown = [n for n in names if n not in QUEUE_NAMES]
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}; known: {list(QUEUE_NAMES)}")
    port = settings.services.worker_metrics_port if metrics_port is None else metrics_port
    if port:
        start_http_server(port, addr=settings.services.host)
        log.info("worker metrics on http://%s:%d/metrics", settings.services.host, port)
    queues = queues_for(settings, names)
    worker = SimpleWorker(queues, connection=queues[0].connection)
    # The scheduler (moving delayed jobs, e.g. lifelong restarts, onto their queues) runs in
    # whichever worker takes its lock; every worker offers to.
    return worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=True)


def main(argv: list[str] | None = None) -> None:
    """`python -m shared.worker QUEUE [QUEUE...] [--burst]`: what `ptzjepa up` starts per worker."""
    import argparse

    from shared.config import load_settings
    from shared.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m shared.worker")
    parser.add_argument("queues", nargs="+", choices=QUEUE_NAMES)
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /metrics on this port (default: services.worker_metrics_port)")
    args = parser.parse_args(argv)
    settings = load_settings()
    setup_logging(settings.log_level)
    run_worker(settings, args.queues, burst=args.burst, metrics_port=args.metrics_port)


if __name__ == "__main__":
    main()
