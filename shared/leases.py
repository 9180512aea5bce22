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
- **Waiting**: when every slot is busy, `acquire_any` polls with jittered exponential backoff for at
  most `wait_s` and then raises `NoFreeSlot` naming the slots and their holders. It never spins.

Metrics stay outside: pass `on_event(event, slot, info)` to observe "granted", "waited",
"no_free_slot", "lost", "released", "published" and "refused".
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from shared.keys import Keys
from shared.lease_holder import Lease, LeaseError, LeaseHeartbeat, LeaseLost, as_text

__all__ = ["DEFAULT_TTL_MS", "DEFAULT_WAIT_S", "MIN_TTL_MS", "ORDERS", "RESERVED_FIELDS", "EventHook",
           "Lease", "LeaseError", "LeaseLost", "LeaseManager", "NoFreeSlot", "StaleLease"]

log = logging.getLogger(__name__)

DEFAULT_TTL_MS = 30_000
DEFAULT_WAIT_S = 30.0
MIN_TTL_MS = 50
ORDERS = ("least_recent", "random", "given")
RESERVED_FIELDS = frozenset({"version", "fence", "node", "time"})
_SLOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

EventHook = Callable[[str, str, dict], None]

# KEYS: lease, fence. ARGV: holder JSON (without fence), ttl ms.
# The next fence is written into the value before the SET; INCR runs only after the SET succeeded,
# and the script is atomic, so the INCR returns exactly that number.
_ACQUIRE = """
local fence = (tonumber(redis.call('GET', KEYS[2])) or 0) + 1
local holder = cjson.decode(ARGV[1])
holder['fence'] = fence
local value = cjson.encode(holder)
if redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2]), value}
end
return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1])}
"""

# KEYS: lease. ARGV: our value, ttl ms. 1 = renewed, 0 = not ours any more.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: our value. 1 = deleted, 0 = not ours any more.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: lease, published. ARGV: our value, our fence, then field/value pairs.
# {1, last} = written; {-1, last} = our fence is older than the last published; {0, last} = not ours.
_PUBLISH = """
local last = tonumber(redis.call('HGET', KEYS[2], 'fence')) or 0
if tonumber(ARGV[2]) < last then
  return {-1, last}
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, last}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return {1, last}
"""


class NoFreeSlot(LeaseError):
    """Every requested slot stayed held for the whole bounded wait."""

    def __init__(self, slots: list[str], holders: dict[str, dict | None], waited_s: float):
        self.slots = slots
        self.holders = holders
        self.waited_s = waited_s
        listed = ", ".join(f"{slot} ({_describe(holders.get(slot))})" for slot in slots)
        super().__init__(f"no free slot after waiting {waited_s:.2f} s; all held: {listed}")


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
                 poll_initial_s: float = 0.01, poll_max_s: float = 0.25):
        if poll_initial_s <= 0 or poll_max_s < poll_initial_s:
            raise ValueError("need 0 < poll_initial_s <= poll_max_s")
        self.client = client
        self.keys = keys
        self.node = node
        self.host = socket.gethostname()
        self._on_event = on_event
        self._heartbeat = LeaseHeartbeat()
        self._poll_initial_s = poll_initial_s
        self._poll_max_s = poll_max_s
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._publish = client.register_script(_PUBLISH)

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
        random order; "random" shuffles; "given" keeps the caller's order. While every slot is
        held it sleeps with jittered exponential backoff (poll_initial_s doubling to poll_max_s),
        never past `wait_s`, then raises `NoFreeSlot` listing the holders.
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
        deadline = start + wait_s
        ordered = self._ordered(slots, order)
        token = secrets.token_hex(16)
        delay = self._poll_initial_s
        rounds = 0
        while True:
            for slot in ordered:
                holder = json.dumps({"token": token, "node": self.node, "pid": os.getpid(),
                                     "host": self.host, "since": time.time()})
                sent = time.monotonic()
                granted, number, value = self._acquire(
                    keys=[self.keys.slot_lease(slot), self.keys.slot_fence(slot)],
                    args=[holder, ttl_ms])
                if granted:
                    lease = Lease(self, slot, value, int(number), ttl_ms, sent)
                    if heartbeat:
                        lease._renewing = True
                        self._heartbeat.add(lease, sent + ttl_ms / 3000)
                    waited = sent - start
                    if rounds:
                        self._emit("waited", slot, {"waited_s": waited, "granted": True})
                    self._emit("granted", slot, {"fence": lease.fence, "waited_s": waited,
                                                 "ttl_ms": ttl_ms})
                    log.debug("granted slot '%s' fence %d to %s", slot, lease.fence, self.node)
                    return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            rounds += 1
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, self._poll_max_s)

        waited = time.monotonic() - start
        holders = self.holders(slots)
        label = ",".join(slots)  # one event per call, not per slot, so counts stay per call
        if rounds:
            self._emit("waited", label, {"waited_s": waited, "granted": False})
        self._emit("no_free_slot", label, {"waited_s": waited, "slots": slots,
                                           "holders": holders})
        raise NoFreeSlot(slots, holders, waited)

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

    def _emit(self, event: str, slot: str, info: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event, slot, info)
        except Exception:  # a metrics hook must never break the lease protocol
            log.exception("lease event hook failed on %s for slot '%s'", event, slot)


def _check_slot(slot: str) -> None:
    if not isinstance(slot, str) or not _SLOT_RE.match(slot):
        raise ValueError(f"invalid slot name {slot!r}: use letters, digits, '_', '.', '-'")
