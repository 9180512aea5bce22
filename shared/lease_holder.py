"""One granted lease as its holder sees it: renewal on a heartbeat thread, loss, release.

`shared.leases.LeaseManager` grants the leases and owns the Redis scripts they renew and release
with; this module holds what happens to a lease between its grant and its end (the protocol is
described in `shared.leases`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, overload

import redis

if TYPE_CHECKING:
    from shared.leases import LeaseManager

# One logger for the whole lease protocol, whichever module of it speaks.
log = logging.getLogger("shared.leases")


class LeaseError(RuntimeError):
    """Base class of every lease failure."""


class LeaseLost(LeaseError):
    """The lease expired, was taken by another holder, or was released; stop working on the slot."""

    def __init__(self, slot: str, fence: int, reason: str):
        self.slot = slot
        self.fence = fence
        self.reason = reason
        super().__init__(f"lease on slot '{slot}' (fence {fence}) lost: {reason}")


@overload
def as_text(value: bytes | str) -> str: ...
@overload
def as_text(value: None) -> None: ...
def as_text(value: bytes | str | None) -> str | None:
    """A Redis reply as text (clients may or may not decode replies)."""
    return value.decode() if isinstance(value, bytes) else value


class Lease:
    """One granted lease. Use it as a context manager; it releases itself on exit.

    `lost` is an Event the work loop can poll; `check()` raises `LeaseLost` once it is set or once
    the last successful renewal is older than the TTL (the key has then expired in Redis too).
    """

    def __init__(self, manager: LeaseManager, slot: str, value: bytes | str, fence: int,
                 ttl_ms: int, granted_at: float):
        holder = json.loads(as_text(value))
        self.slot = slot
        self.fence = fence
        self.ttl_ms = ttl_ms
        self.token: str = holder["token"]
        self.node: str = holder["node"]
        self.lost = threading.Event()
        self.lost_reason: str | None = None
        self._manager = manager
        self._value = value
        self._granted_at = granted_at
        self._deadline = granted_at + ttl_ms / 1000  # local, never later than Redis's expiry
        self._released = False
        self._lock = threading.Lock()
        self._renewing = False  # scheduled on the manager's heartbeat thread
        self._failures = 0  # consecutive failed renewals

    def __repr__(self) -> str:
        state = "released" if self._released else "lost" if self.lost.is_set() else "held"
        return f"<Lease slot={self.slot} fence={self.fence} node={self.node} {state}>"

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """True while this process still holds the lease (not released, not lost, not expired)."""
        return not self._released and not self.lost.is_set() and time.monotonic() < self._deadline

    def check(self) -> None:
        """Raise `LeaseLost` unless the lease is still held. Call it between units of work."""
        if not self.lost.is_set() and not self._released and time.monotonic() >= self._deadline:
            self._mark_lost(f"no renewal succeeded within the {self.ttl_ms} ms TTL")
        if self.lost.is_set():
            raise LeaseLost(self.slot, self.fence, self.lost_reason or "lost")
        if self._released:
            raise LeaseLost(self.slot, self.fence, "released")

    def release(self) -> bool:
        """Stop the heartbeat and delete the key if it is still ours. True if it was deleted.

        Idempotent, and a no-op for a lost lease. A Redis error is logged, not raised (release runs
        in `finally`, where raising would hide the real error): the key then expires by its TTL.
        """
        with self._lock:
            if self._released:
                return False
            self._released = True
        self._stop_renewing()
        deleted = False
        if not self.lost.is_set():
            try:
                keys = self._manager.keys  # the script also wakes the slot's waiters
                deleted = bool(self._manager._release(keys=[keys.slot_lease(self.slot)],
                                                      args=[self._value, keys.slot_freed(self.slot)]))
            except redis.RedisError as exc:
                log.warning("could not release lease on slot '%s' (fence %d): %s; it expires in "
                            "at most %d ms", self.slot, self.fence, exc, self.ttl_ms)
            else:
                if not deleted:
                    self._mark_lost("the key had expired or was taken before release")
        self._manager._emit("released", self.slot, {
            "fence": self.fence, "held_s": time.monotonic() - self._granted_at,
            "deleted": deleted, "lost": self.lost.is_set()})
        return deleted

    def _stop_renewing(self) -> None:
        # No join: a renewal in flight that lands after our DEL finds the key gone and is ignored.
        self._renewing = False
        self._manager._heartbeat.discard(self)

    def _renew_once(self) -> float | None:
        """One renewal (on the heartbeat thread): when the next is due, or None to stop."""
        if not self._renewing:
            return None
        interval = self.ttl_ms / 3000
        sent = time.monotonic()
        try:
            renewed = self._manager._renew(keys=[self._manager.keys.slot_lease(self.slot)],
                                           args=[self._value, self.ttl_ms])
        except redis.RedisError as exc:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._mark_lost(f"Redis unreachable until the lease expired ({exc})")
                return None
            self._failures += 1
            log.warning("lease heartbeat for slot '%s' failed (%s); retrying for %.2f s more",
                        self.slot, exc, remaining)
            return time.monotonic() + max(0.01, min(interval, 0.02 * 2 ** self._failures,
                                                    remaining / 2))
        if not self._renewing:
            return None  # released meanwhile
        if not renewed:
            self._mark_lost("the key expired or was taken by another holder")
            return None
        with self._lock:
            self._deadline = sent + self.ttl_ms / 1000
        self._failures = 0
        return sent + interval

    def _mark_lost(self, reason: str) -> None:
        with self._lock:
            if self.lost_reason is not None:
                return
            self.lost_reason = reason
        self._stop_renewing()
        log.warning("lease on slot '%s' (fence %d) lost: %s", self.slot, self.fence, reason)
        self._manager._emit("lost", self.slot, {"fence": self.fence, "reason": reason})
        # Set last: whoever waits on `lost` then also sees the event it was told about.
        self.lost.set()


class LeaseHeartbeat:
    """One daemon thread per manager that renews each of its leases every ttl/3.

    Granting and releasing only touch a schedule under a lock, so neither waits for a thread to
    start or stop. Started on first use; restarted after a fork (the child has no such thread).
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._due: dict[Lease, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease, due: float) -> None:
        if self._pid != os.getpid():
            self._reset()
        with self._cond:
            self._due[lease] = due
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-heartbeat",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, lease: Lease) -> None:
        if self._pid != os.getpid():
            return
        with self._cond:
            self._due.pop(lease, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._due:
                        self._cond.wait()
                        continue
                    lease, due = min(self._due.items(), key=lambda item: item[1])
                    delay = due - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
            try:
                next_due = lease._renew_once()
            except Exception:  # never let one lease kill the thread that renews the others
                log.exception("lease heartbeat for slot '%s' crashed", lease.slot)
                next_due = time.monotonic() + lease.ttl_ms / 3000
            with self._cond:
                if lease in self._due:
                    if next_due is None:
                        del self._due[lease]
                    else:
                        self._due[lease] = next_due
