"""Run an rq worker for one or more ptzjepa queues (the entry point of every worker process).

Workers run each job in the worker process itself (rq's `SimpleWorker`) rather than in a forked
child. That keeps what a job counts in Prometheus metrics (a forked child's counters die with it)
and lets a worker keep loaded models between jobs; rq still enforces job timeouts.

A plain SimpleWorker only refreshes a running job's liveness when the job ends, so rq would take
the whole job timeout (an hour) to notice that a worker died mid-job. `LivenessWorker` keeps a
short heartbeat going from a thread while the job runs: a job whose worker was killed is found
abandoned (and retried, or failed with a reason) within a few heartbeats.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

from prometheus_client import start_http_server
from rq import Queue, SimpleWorker
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.worker import WorkerStatus

from shared.config import Settings
from shared.cycles import fail_cycle_of_refused_job
from shared.due_jobs import DueJobMover
from shared.keys import QUEUE_NAMES, Keys
from shared.metrics import JOB_FAILURES  # also registers every ptzjepa_* metric from the start
from shared.progress import request_shutdown
from shared.queues import SERIALIZER, job_queue
from shared.redis import client_for

log = logging.getLogger(__name__)


class LivenessWorker(SimpleWorker):
    heartbeat_s: int = 5
    settings: Settings  # set by run_worker: a refused job's cycle is looked up under its prefix

    def request_stop(self, signum, frame) -> None:
        """SIGTERM/SIGINT: the running job is told to stop at its next poll (it keeps what it
        finished: a world-model phase publishes what it trained), then rq's warm shutdown ends
        the worker once that job returned."""
        request_shutdown()
        super().request_stop(signum, frame)

    def subscribe(self) -> None:
        """rq's command channel, read in a thread that wakes every 0.5 s: rq's own thread waits up
        to 60 s per read, and closing the channel at shutdown blocks behind that read."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=0.5, daemon=True,
            exception_handler=self._pubsub_exception_handler)  # type: ignore[assignment]

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return 3 * self.heartbeat_s

    def execute_job(self, job: Job, queue: Queue):
        try:
            job.func_name  # noqa: B018 - loads the job's data with the JSON serializer
        except DeserializationError as exc:
            self.refuse(job, queue, f"job {job.id} cannot be read as JSON ({exc.__cause__!r}); "
                                    "refused, not run")
            return
        execution = self.prepare_execution(job)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_s):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:
                    log.warning("job heartbeat failed; retrying", exc_info=True)

        thread = threading.Thread(target=beat, name="job-heartbeat", daemon=True)
        thread.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            thread.join()
        self.set_state(WorkerStatus.IDLE)

    def refuse(self, job: Job, queue: Queue, reason: str) -> None:
        """Fail a job that cannot be read, without running it or any callback it names."""
        log.error("%s", reason)
        job.retries_left = 0
        with self.connection.pipeline() as pipe:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            job._handle_failure(reason, pipeline=pipe, worker_name=self.name)
            pipe.execute()
        JOB_FAILURES.labels(job.origin, "<unreadable>").inc()
        cycle_id = fail_cycle_of_refused_job(self.connection, self.settings, job.id, reason)
        if cycle_id:
            log.error("cycle %s failed: its job %s was refused", cycle_id, job.id)


def queues_for(settings: Settings, names: list[str]) -> list[Queue]:
    client = client_for(settings)
    keys = Keys(settings.redis_prefix)
    return [job_queue(keys.queue(n, settings.node), client,
                      default_timeout=settings.services.job_timeout_s)
            for n in names]


def serve_metrics(host: str, port: int, wait_s: float = 5.0) -> None:
    """Serve /metrics on `port`, retrying while an old process's socket is still closing."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            start_http_server(port, addr=host)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise SystemExit(f"worker metrics port {host}:{port} is taken by another process "
                                 f"({exc.strerror}); stop it or choose another "
                                 "services.worker_metrics_port") from exc
            time.sleep(0.2)


def run_worker(settings: Settings, names: list[str], burst: bool = False,
               metrics_port: int | None = None) -> bool:
    """Work jobs from `names` until stopped (SIGTERM/SIGINT stop the current job at its next poll)."""
    unknown = [n for n in names if n not in QUEUE_NAMES]
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}; known: {list(QUEUE_NAMES)}")
    port = settings.services.worker_metrics_port if metrics_port is None else metrics_port
    if port:
        serve_metrics(settings.services.host, port)
        log.info("worker metrics on http://%s:%d/metrics", settings.services.host, port)
    queues = queues_for(settings, names)
    def count_failure(job: Job, *exc_info) -> bool:
        JOB_FAILURES.labels(job.origin, job.func_name).inc()
        return True  # and let rq's default handling go on

    worker = LivenessWorker(queues, connection=queues[0].connection,
                            maintenance_interval=max(3 * settings.services.job_heartbeat_s, 10),
                            exception_handlers=[count_failure], serializer=SERIALIZER)
    worker.heartbeat_s = settings.services.job_heartbeat_s
    worker.settings = settings
    # Due jobs (retries after an interval, lifelong restarts) are moved by a thread of every
    # worker rather than rq's forked scheduler, whose child and lock outlive a killed worker.
    mover = DueJobMover(queues[0].connection, Keys(settings.redis_prefix),
                        [q.name for q in queues]).start()
    try:
        return worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=False)
    finally:
        mover.stop()


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
