"""World-model slot leases in Redis: grant with a fencing token, heartbeat, release, fenced publish.

One lease per slot (see docs/leases.md for the protocol and its failure cases):

- **Grant**: one Lua script does `SET lease value NX PX ttl` and, only when that succeeded, `INCR`
  on the slot's fence key, so fences are strictly increasing per slot and a number is consumed only
  by an actual grant. The value is a small JSON record holding a random token (`secrets`) and who
  holds it (node, pid, host, fence, since); every later compare uses the whole value.
- **Heartbeat**: one daemon thread per manager extends each lease's TTL every ttl/3 with a
  compare-and-`PEXPIRE`. If the key is gone or holds another value the lease is lost: `lease.lost`
  is set and `lease.check()` raises `LeaseLost`. Redis errors are retried until the lease's own
  expiry deadline, then it is lost.
- **Release**: `with manager.acquire(slot) as lease:` releases in `finally` with a compare-and-delete;
  releasing a lost lease is a no-op. A holder that dies stops renewing and the TTL frees the slot.
- **Publish**: a compare-and-set on the slot's published hash that refuses (`StaleLease`) a fence
  lower than the last published one, or a caller that no longer holds the lease.
- **Waiting**: a caller that finds every slot busy takes a ticket in the FIFO of the callers asking
  for the same set of slots, and a free slot goes only to a caller with fewer live tickets ahead of
  it than there are free slots, so grants follow arrival order. Releases are announced on a pub/sub
  channel per slot, so a waiter wakes at once; it also re-checks every `recheck_s`, which keeps its
  ticket alive and notices slots freed by expiry. A ticket not refreshed for `waiter_timeout_s`
  (its waiter died) is dropped. After `wait_s` the caller leaves the queue and raises `NoFreeSlot`
  naming the slots and their holders.

Metrics stay outside: pass `on_event(event, slot, info)` to observe "granted", "waited",
"no_free_slot", "lost", "released", "published" and "refused".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from shared import lease_scripts
from shared.keys import Keys
from shared.lease_holder import Lease, LeaseError, LeaseHeartbeat, LeaseLost, as_text

__all__ = ["DEFAULT_RECHECK_S", "DEFAULT_TTL_MS", "DEFAULT_WAITER_TIMEOUT_S", "DEFAULT_WAIT_S",
           "MIN_TTL_MS", "ORDERS", "RESERVED_FIELDS", "EventHook", "Lease", "LeaseError",
           "LeaseLost", "LeaseManager", "NoFreeSlot", "StaleLease", "slot_group"]

log = logging.getLogger(__name__)

DEFAULT_TTL_MS = 30_000
DEFAULT_WAIT_S = 30.0
MIN_TTL_MS = 50
DEFAULT_RECHECK_S = 0.1
DEFAULT_WAITER_TIMEOUT_S = 2.0
ORDERS = ("least_recent", "random", "given")
RESERVED_FIELDS = frozenset({"version", "fence", "node", "time"})
_SLOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

EventHook = Callable[[str, str, dict], None]

class NoFreeSlot(LeaseError):
    """Every requested slot stayed held (or went to waiters queued earlier) for the whole wait."""

    def __init__(self, slots: list[str], holders: dict[str, dict | None], waited_s: float,
                 queued: int = 0):
        self.slots = slots
        self.holders = holders
        self.waited_s = waited_s
        self.queued = queued
        listed = ", ".join(f"{slot} ({_describe(holders.get(slot))})" for slot in slots)
        ahead = f"; {queued} waiter(s) queued ahead" if queued else ""
        super().__init__(f"no free slot after waiting {waited_s:.2f} s; all held: {listed}{ahead}")


class StaleLease(LeaseError):
    """A publish was refused: the caller's fence is outdated or it no longer holds the lease."""

    def __init__(self, slot: str, fence: int, reason: str, last_fence: int | None = None):
        self.slot = slot
        self.fence = fence
        self.last_fence = last_fence
        self.reason = reason
        super().__init__(f"publish to slot '{slot}' with fence {fence} refused: {reason}")


def _describe(info: dict | None) -> str:
    if info is None:
        return "free now"
    if "raw" in info:
        return f"held by an unknown holder, expires in {info.get('ttl_ms')} ms"
    return (f"held by node {info.get('node')} pid {info.get('pid')} on {info.get('host')}, "
            f"fence {info.get('fence')}, expires in {info.get('ttl_ms')} ms")


class LeaseManager:
    """Grants, renews, releases and publishes world-model slot leases for one node."""

    def __init__(self, client: redis.Redis, keys: Keys, node: str, *,
                 on_event: EventHook | None = None,
                 recheck_s: float = DEFAULT_RECHECK_S,
                 waiter_timeout_s: float = DEFAULT_WAITER_TIMEOUT_S):
        if recheck_s <= 0 or waiter_timeout_s < 3 * recheck_s:
            raise ValueError("need 0 < recheck_s and waiter_timeout_s >= 3 * recheck_s (a live "
                             "waiter must be seen several times within the timeout)")
        self.client = client
        self.keys = keys
        self.node = node
        self.host = socket.gethostname()
        self._on_event = on_event
        self._heartbeat = LeaseHeartbeat()
        self._waiting = threading.local()
        self._recheck_s = recheck_s
        self._waiter_timeout_ms = int(waiter_timeout_s * 1000)
        self._acquire = client.register_script(lease_scripts.ACQUIRE)
        self._leave = client.register_script(lease_scripts.LEAVE)
        self._renew = client.register_script(lease_scripts.RENEW)
        self._release = client.register_script(lease_scripts.RELEASE)
        self._publish = client.register_script(lease_scripts.PUBLISH)

    # ---- acquisition -------------------------------------------------------------------------

    def acquire(self, slot: str, *, ttl_ms: int = DEFAULT_TTL_MS,
                wait_s: float = DEFAULT_WAIT_S, heartbeat: bool = True) -> Lease:
        """The lease on `slot`, waiting at most `wait_s` for it; else `NoFreeSlot`."""
        return self.acquire_any([slot], ttl_ms=ttl_ms, wait_s=wait_s, order="given",
                                heartbeat=heartbeat)

    def acquire_any(self, slots: Iterable[str], *, ttl_ms: int = DEFAULT_TTL_MS,
                    wait_s: float = DEFAULT_WAIT_S, order: str = "least_recent",
                    heartbeat: bool = True) -> Lease:
        """A lease on one free slot of `slots`; waits at most `wait_s` when all are busy.

        `order`: "least_recent" tries the slot published longest ago (or never) first, ties in
        random order; "random" shuffles; "given" keeps the caller's order. A caller that finds
        every slot busy (or finds waiters queued before it) takes a ticket in the FIFO of callers
        asking for the same set of slots and is granted in ticket order: it sleeps until a release
        is announced, re-checking every `recheck_s`, never past `wait_s`, then leaves the queue and
        raises `NoFreeSlot` listing the holders. `wait_s=0` is a single try that never queues.
        `heartbeat=False` grants a lease that nobody renews (it expires after `ttl_ms`).
        """
        slots = list(dict.fromkeys(slots))
        if not slots:
            raise ValueError("acquire_any needs at least one slot")
        for slot in slots:
            _check_slot(slot)
        if not isinstance(ttl_ms, int) or ttl_ms < MIN_TTL_MS:
            raise ValueError(f"ttl_ms must be an int >= {MIN_TTL_MS}, got {ttl_ms!r}")
        if wait_s < 0:
            raise ValueError(f"wait_s must be >= 0, got {wait_s!r}")
        if order not in ORDERS:
            raise ValueError(f"unknown order '{order}', expected one of {ORDERS}")

        start = time.monotonic()
        ordered = self._ordered(slots, order)
        wait = _Wait(self, slots, ordered, ttl_ms, start + wait_s)
        try:
            while True:
                lease = wait.attempt(heartbeat)
                if lease is not None:
                    waited = lease._granted_at - start
                    if wait.rounds:
                        self._emit("waited", lease.slot, {"waited_s": waited, "granted": True})
                    self._emit("granted", lease.slot, {"fence": lease.fence, "waited_s": waited,
                                                       "ttl_ms": ttl_ms})
                    log.debug("granted slot '%s' fence %d to %s", lease.slot, lease.fence,
                              self.node)
                    return lease
                if not wait.sleep():
                    break
        finally:
            wait.close()

        waited = time.monotonic() - start
        holders = self.holders(slots)
        label = ",".join(slots)  # one event per call, not per slot, so counts stay per call
        if wait.rounds:
            self._emit("waited", label, {"waited_s": waited, "granted": False})
        self._emit("no_free_slot", label, {"waited_s": waited, "slots": slots,
                                           "holders": holders})
        raise NoFreeSlot(slots, holders, waited, queued=wait.ahead)

    def _ordered(self, slots: list[str], order: str) -> list[str]:
        if order == "given":
            return slots
        shuffled = random.sample(slots, len(slots))
        if order == "random":
            return shuffled
        pipe = self.client.pipeline(transaction=False)
        for slot in shuffled:
            pipe.hget(self.keys.slot_published(slot), "time")
        times = {slot: float(t) if t is not None else float("-inf")
                 for slot, t in zip(shuffled, pipe.execute(), strict=True)}
        return sorted(shuffled, key=times.__getitem__)  # stable: ties keep the shuffled order

    # ---- publication -------------------------------------------------------------------------

    def publish(self, lease: Lease, version_id: str,
                extra: Mapping[str, Any] | None = None) -> dict:
        """Record `version_id` as the slot's latest version, fenced by the lease; the record.

        Raises `StaleLease` when the lease's fence is lower than the slot's last published fence or
        when the caller no longer holds the lease. `extra` values are stored as JSON text.
        """
        if not isinstance(version_id, str) or not version_id:
            raise ValueError("version_id must be a non-empty string")
        extra = dict(extra or {})
        clash = RESERVED_FIELDS.intersection(extra)
        if clash:
            raise ValueError(f"extra may not set reserved fields {sorted(clash)}")
        if lease._manager is not self:
            raise ValueError("publish takes a lease granted by this manager")
        if lease.lost.is_set() or lease._released:
            reason = "the lease was released" if lease._released and not lease.lost.is_set() \
                else f"the lease was lost ({lease.lost_reason})"
            self._emit("refused", lease.slot, {"fence": lease.fence, "reason": reason})
            raise StaleLease(lease.slot, lease.fence, reason)

        now = time.time()
        fields: dict[str, str] = {"version": version_id, "fence": str(lease.fence),
                                  "node": lease.node, "time": repr(now)}
        for name, value in extra.items():
            fields[str(name)] = json.dumps(value)
        args: list[Any] = [lease._value, lease.fence]
        for name, value in fields.items():
            args += [name, value]
        status, last = self._publish(
            keys=[self.keys.slot_lease(lease.slot), self.keys.slot_published(lease.slot)], args=args)
        status, last = int(status), int(last)
        if status == -1:
            reason = f"fence {lease.fence} is older than the slot's last published fence {last}"
        elif status == 0:
            reason = "the caller no longer holds the lease (expired or taken by another holder)"
            lease._mark_lost("publish found the lease expired or taken by another holder")
        else:
            self._emit("published", lease.slot, {"fence": lease.fence, "version": version_id})
            return {"version": version_id, "fence": lease.fence, "node": lease.node, "time": now,
                    **extra}
        self._emit("refused", lease.slot, {"fence": lease.fence, "reason": reason})
        raise StaleLease(lease.slot, lease.fence, reason, last_fence=last)

    def latest(self, slot: str) -> dict | None:
        """The slot's last published record, or None if nothing was published yet."""
        _check_slot(slot)
        raw = self.client.hgetall(self.keys.slot_published(slot))
        if not raw:
            return None
        record: dict[str, Any] = {}
        for name, value in raw.items():
            name, value = as_text(name), as_text(value)
            if name in ("version", "node"):
                record[name] = value
            elif name == "fence":
                record[name] = int(value)
            elif name == "time":
                record[name] = float(value)
            else:
                try:
                    record[name] = json.loads(value)
                except ValueError:
                    record[name] = value
        return record

    # ---- status ------------------------------------------------------------------------------

    def holders(self, slots: Iterable[str]) -> dict[str, dict | None]:
        """Who holds each slot: {slot: {node, pid, host, fence, since, ttl_ms} or None if free}.

        The token is left out: it is the holder's capability to release and publish.
        """
        slots = list(slots)
        pipe = self.client.pipeline(transaction=False)
        for slot in slots:
            _check_slot(slot)
            pipe.get(self.keys.slot_lease(slot))
            pipe.pttl(self.keys.slot_lease(slot))
        replies = pipe.execute()
        result: dict[str, dict | None] = {}
        for i, slot in enumerate(slots):
            value, ttl = replies[2 * i], replies[2 * i + 1]
            if value is None:
                result[slot] = None
                continue
            try:
                info = json.loads(as_text(value))
                info.pop("token", None)
            except ValueError:
                info = {"raw": "<not a ptzjepa lease>"}
            info["ttl_ms"] = int(ttl)
            result[slot] = info
        return result

    def _pubsub(self) -> redis.client.PubSub:
        """This thread's pub/sub connection for waiting (kept, so a wait opens no connection)."""
        pubsub = getattr(self._waiting, "pubsub", None)
        if pubsub is None or getattr(self._waiting, "pid", None) != os.getpid():
            pubsub = self._waiting.pubsub = self.client.pubsub()
            self._waiting.pid = os.getpid()
        return pubsub

    def _unsubscribe(self, pubsub: redis.client.PubSub) -> None:
        try:
            pubsub.unsubscribe()  # what is still on the way is read past at the next subscribe
        except (redis.RedisError, OSError):
            pubsub.close()
            self._waiting.pubsub = None

    def _emit(self, event: str, slot: str, info: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event, slot, info)
        except Exception:  # a metrics hook must never break the lease protocol
            log.exception("lease event hook failed on %s for slot '%s'", event, slot)


def slot_group(slots: Iterable[str]) -> str:
    """The name of the waiter queue of a set of slots: the same set in any order, the same queue."""
    joined = ",".join(sorted(set(slots)))
    if len(joined) <= 200:
        return joined
    return "sha256-" + hashlib.sha256(joined.encode()).hexdigest()[:32]


class _Wait:
    """One `acquire_any` call's place in the waiter queue of its slot set, and its wake-ups.

    The first attempt needs no subscription, so an uncontended grant is one round trip. A caller
    refused while willing to wait holds a ticket (its `number`) and a pub/sub subscription to the
    freed-slot channels of its slots; `close()` leaves the queue (in `finally`, so giving up, an
    exception or KeyboardInterrupt all remove the ticket) and drops the subscription.
    """

    def __init__(self, manager: LeaseManager, slots: list[str], ordered: list[str], ttl_ms: int,
                 deadline: float):
        self.manager = manager
        self.slots = slots
        self.ordered = ordered
        self.ttl_ms = ttl_ms
        self.deadline = deadline
        self.rounds = 0
        self.waiter = secrets.token_hex(16)
        self.number = ""  # our ticket number, once known
        self.queued = False  # whether we may hold a ticket
        self.ahead = 0  # live waiters queued before us at the last attempt
        self.shortfall = 0  # announcements that cannot yet make us eligible
        keys = manager.keys
        group = slot_group(slots)
        self.queue_keys = [keys.slot_queue(group), keys.slot_queue_seen(group),
                           keys.slot_queue_ticket(group)]
        self.script_keys = list(self.queue_keys)
        for slot in ordered:
            self.script_keys += [keys.slot_lease(slot), keys.slot_fence(slot)]
        self.channels = [keys.slot_freed(slot) for slot in slots]
        self.pubsub: redis.client.PubSub | None = None

    def attempt(self, heartbeat: bool) -> Lease | None:
        """One atomic try: the lease when granted, else None (holding a ticket if willing to wait)."""
        manager = self.manager
        holder = json.dumps({"token": secrets.token_hex(16), "node": manager.node,
                             "pid": os.getpid(), "host": manager.host, "since": time.time()})
        join = 1 if self.deadline > time.monotonic() else 0
        # Set before the call: an interrupt while its reply is on the way must still leave.
        self.queued = self.queued or bool(join)
        timeout_ms = manager._waiter_timeout_ms
        sent = time.monotonic()
        reply = manager._acquire(keys=self.script_keys, args=[
            holder, self.ttl_ms, self.waiter, join, self.number, timeout_ms,
            max(60_000, 10 * timeout_ms)])
        if int(reply[0]) != 1:
            # Each announcement (a release, a waiter leaving) lowers ahead - free by at most one, so
            # that many announcements cannot make us eligible yet.
            self.ahead = int(reply[1])
            self.shortfall = int(reply[1]) - int(reply[3])
            self.number = str(int(reply[2])) if int(reply[2]) else ""
            return None
        self.number, self.queued = "", False  # the grant removed the ticket
        _, index, fence, value = reply
        lease = Lease(manager, self.ordered[int(index) - 1], value, int(fence), self.ttl_ms, sent)
        if heartbeat:
            lease._renewing = True
            manager._heartbeat.add(lease, sent + self.ttl_ms / 3000)
        return lease

    def sleep(self) -> bool:
        """Wait for an announcement that may make us eligible, or for `recheck_s` (which keeps our
        ticket alive and notices slots freed by expiry); False once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.rounds += 1
        if self.pubsub is None:
            # Subscribe, then try again at once: a release between the refused attempt and the
            # subscription was announced to nobody.
            self.pubsub = self._subscribe(remaining)
            return True
        end = time.monotonic() + min(remaining, self.manager._recheck_s)
        while (left := end - time.monotonic()) > 0:
            message = self.pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "message":
                if self.shortfall <= 0:
                    break
                self.shortfall -= 1  # waking the whole queue per release would cost a round trip each
        return True

    def _subscribe(self, limit_s: float) -> redis.client.PubSub:
        pubsub = self.manager._pubsub()
        pubsub.subscribe(*self.channels)
        # Wait for the confirmations: only then does the server deliver what is published.
        confirmed, end = 0, time.monotonic() + min(limit_s, 5.0)
        while confirmed < len(self.channels) and (left := end - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "subscribe":
                confirmed += 1
        return pubsub

    def close(self) -> None:
        try:
            if self.queued:
                self.manager._leave(keys=self.queue_keys[:2], args=[self.waiter, *self.channels])
                self.number, self.queued = "", False
        except redis.RedisError as exc:  # the ticket then goes with the waiter timeout
            log.warning("could not leave the waiter queue of %s: %s; the ticket is dropped "
                        "%d ms after its last refresh", ",".join(self.slots), exc,
                        self.manager._waiter_timeout_ms)
        finally:
            if self.pubsub is not None:
                self.manager._unsubscribe(self.pubsub)
                self.pubsub = None


def _check_slot(slot: str) -> None:
    if not isinstance(slot, str) or not _SLOT_RE.match(slot):
        raise ValueError(f"invalid slot name {slot!r}: use letters, digits, '_', '.', '-'")
