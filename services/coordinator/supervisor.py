"""The supervisor of `ptzjepa up`: a thread that restarts children that die.

Every `poll_s` it looks at each child. One that ended is reaped with its whole process group (so
nothing it forked keeps its ports) and started again after a back-off (1, 2, 4 ... s, capped,
reset once a run lasted `healthy_after_s`), at most `max_restarts` times per `window_s`; past
that it is marked `gave_up` and left dead. Each death, restart and give-up goes on the event
stream (`node.child_died`, `node.child_restarted`, `node.child_gave_up`) and into the node's
children hash (services/coordinator/children.py). Redis may be away when a child dies (a Redis
restart is one of the faults this exists for): what could not be written is kept and written
when Redis answers again, and supervising never waits on Redis for more than a second or two.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.coordinator.children import child_record, describe_exit
from services.coordinator.processes import Child
from shared.events import emit
from shared.keys import Keys

log = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 1000
REFRESH_S = 5.0  # every record is written again this often: an external Redis may lose them


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 600.0
    backoff_first_s: float = 1.0
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        """The wait before the restart after `failures` short-lived runs in a row (>= 1)."""
        return min(self.backoff_max_s, self.backoff_first_s * 2 ** max(0, failures - 1))


@dataclass
class ChildState:
    state: str = "running"
    restarts: int = 0
    last_exit: str | None = None
    since: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    failures: int = 0
    due: float = 0.0
    restart_times: deque[float] = field(default_factory=deque)

    def record(self, pid: int | None) -> dict[str, Any]:
        """The child's record; a pid only while it runs (a dead one's may be anyone's by now)."""
        return child_record(self.state, pid if self.state == "running" else None, self.restarts,
                            self.last_exit, self.since)


class Publisher:
    """Events and child records for Redis, kept until a write succeeds."""

    def __init__(self, url: str, password: str | None, keys: Keys):
        self.keys = keys
        # No retries and short timeouts: a supervisor blocked on Redis would restart nothing.
        self._client = redis.Redis.from_url(url, password=password, socket_timeout=2.0,
                                            socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
        self._lock = threading.Lock()
        self._events: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=MAX_PENDING_EVENTS)
        self._records: dict[tuple[str, str], dict[str, Any]] = {}

    def event(self, kind: str, node: str, **data: Any) -> None:
        with self._lock:
            self._events.append((kind, node, data))

    def record(self, node: str, name: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records[(node, name)] = record

    def flush(self) -> bool:
        """Write what is pending; False (and everything kept) when Redis does not answer."""
        import json

        with self._lock:
            try:
                for (node, name), record in list(self._records.items()):
                    self._client.hset(self.keys.node_children(node), name, json.dumps(record))
                    del self._records[(node, name)]
                while self._events:
                    kind, node, data = self._events[0]
                    emit(self._client, self.keys, kind, node, **data)
                    self._events.popleft()
            except redis.RedisError as exc:
                log.debug("supervisor records wait for Redis: %s", exc)
                return False
        return True

    def close(self) -> None:
        self._client.close()


class Supervisor:
    """Restarts the children that die; `start()` runs it in a thread, `close()` ends it."""

    def __init__(self, children: list[Child], respawn: Callable[[Child], None],
                 reap: Callable[[Child], None], publisher: Publisher, policy: RestartPolicy,
                 on_change: Callable[[], None] = lambda: None,
                 watch: Callable[[], None] = lambda: None, poll_s: float = 0.5):
        self.children = children
        self.respawn, self.reap, self.publisher, self.policy = respawn, reap, publisher, policy
        self.on_change, self.watch, self.poll_s = on_change, watch, poll_s
        self.states = {c.name: ChildState() for c in children}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._release = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshed = 0.0

    def start(self) -> Supervisor:
        self.publish_all()
        self._thread = threading.Thread(target=self._run, name="ptzjepa-supervisor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            with self._lock:
                if self._stopping.is_set():
                    break
                try:
                    self.tick(time.monotonic())
                except Exception:
                    log.exception("supervisor: a round of checks failed")
        # The children this thread restarted get their parent-death signal when it ends: it
        # waits until the launcher has stopped them the clean way.
        self._release.wait()

    def pause(self) -> None:
        """Restart nothing any more (a node stopping); returns once a running round is done."""
        self._stopping.set()
        with self._lock:
            pass

    def close(self, timeout_s: float = 5.0) -> None:
        self.pause()
        self._release.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def publish_all(self) -> None:
        for child in self.children:
            self.publisher.record(child.node, child.name, self.states[child.name].record(child.pid))
        self._refreshed = time.monotonic()
        self.publisher.flush()

    def mark(self, child: Child, state: str) -> None:
        """Set a child's state from outside (the node stopping: `stopped`)."""
        st = self.states[child.name]
        st.state, st.since = state, time.time()
        self.publisher.record(child.node, child.name, st.record(child.pid))

    def start_by_hand(self, child: Child) -> None:
        """Start a dead child now (whatever its state: restarting or given up), as one of ours."""
        with self._lock:
            if child.running():
                raise RuntimeError(f"{child.name} is still running")
            self.reap(child)
            self.respawn(child)
            st = self.states[child.name]
            st.state, st.since, st.started = "running", time.time(), time.monotonic()
            self.publisher.record(child.node, child.name, st.record(child.pid))

    def tick(self, now: float) -> None:
        self.watch()
        for child in self.children:
            st = self.states[child.name]
            if st.state == "running" and (code := child.exit_code()) is not None:
                self._died(child, st, describe_exit(code), now)
            elif st.state == "restarting" and now >= st.due:
                self._restart(child, st, now)
        if now - self._refreshed > REFRESH_S:
            self.publish_all()
        else:
            self.publisher.flush()

    def _died(self, child: Child, st: ChildState, how: str, now: float, reap: bool = True) -> None:
        pid = child.pid
        if reap:
            self.reap(child)
        st.failures = 1 if now - st.started >= self.policy.healthy_after_s else st.failures + 1
        while st.restart_times and now - st.restart_times[0] > self.policy.window_s:
            st.restart_times.popleft()
        st.last_exit, st.since = how, time.time()
        if len(st.restart_times) >= self.policy.max_restarts:
            st.state = "gave_up"
            log.error("%s (pid %s) ended with %s: restarted %d times in %.0f s, giving up",
                      child.name, pid, how, len(st.restart_times), self.policy.window_s)
            self.publisher.event("node.child_gave_up", child.node, child=child.name, pid=pid,
                                 exit=how, restarts=st.restarts, window_s=self.policy.window_s)
        else:
            delay = self.policy.delay_s(st.failures)
            st.state, st.due = "restarting", now + delay
            log.warning("%s (pid %s) ended with %s; restarting it in %.0f s", child.name, pid, how, delay)
            self.publisher.event("node.child_died", child.node, child=child.name, pid=pid, exit=how,
                                 restart_in_s=delay, restarts=st.restarts)
        self.publisher.record(child.node, child.name, st.record(None))

    def _restart(self, child: Child, st: ChildState, now: float) -> None:
        st.restart_times.append(now)
        st.restarts += 1
        try:
            self.respawn(child)
        except (OSError, subprocess.SubprocessError) as exc:
            st.started = now
            self._died(child, st, f"could not start: {exc}", now, reap=False)
            return
        st.state, st.since, st.started = "running", time.time(), now
        log.warning("%s restarted (pid %s, restart %d)", child.name, child.pid, st.restarts)
        self.publisher.event("node.child_restarted", child.node, child=child.name, pid=child.pid,
                             restarts=st.restarts, last_exit=st.last_exit)
        self.publisher.record(child.node, child.name, st.record(child.pid))
        self.on_change()
