"""The slot lease protocol against a real Redis server (never a mock)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from shared.keys import Keys
from shared.leases import LeaseLost, LeaseManager, NoFreeSlot, StaleLease, slot_group

KEYS = Keys("ptzjepa-test")
TTL = 400  # ms: short enough that expiry tests stay fast


@pytest.fixture
def events():
    return []


@pytest.fixture
def manager(redis_client, events):
    return LeaseManager(redis_client, KEYS, "node-a",
                        on_event=lambda event, slot, info: events.append((event, slot, info)))


@pytest.fixture
def other(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield LeaseManager(client, KEYS, "node-b")
    client.close()


def test_grant_and_release(manager, redis_client, events):
    with manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=0) as lease:
        assert lease.held and lease.fence == 1 and lease.node == "node-a"
        value = json.loads(redis_client.get(KEYS.slot_lease("wm_00_00")))
        assert value["token"] == lease.token and len(lease.token) == 32
        assert 0 < redis_client.pttl(KEYS.slot_lease("wm_00_00")) <= TTL
        info = manager.holders(["wm_00_00", "wm_00_01"])
        assert info["wm_00_01"] is None
        assert info["wm_00_00"]["node"] == "node-a" and info["wm_00_00"]["pid"] == os.getpid()
        assert info["wm_00_00"]["fence"] == 1 and "token" not in info["wm_00_00"]
        lease.check()
    assert not lease.held and not lease.lost.is_set()
    assert redis_client.exists(KEYS.slot_lease("wm_00_00")) == 0
    assert lease.release() is False  # idempotent
    with pytest.raises(LeaseLost, match="released"):
        lease.check()
    assert [e for e, _, _ in events] == ["granted", "released"]
    assert events[1][2]["deleted"] is True


def test_second_acquirer_refused_while_held(manager, other):
    with manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=0):
        start = time.monotonic()
        with pytest.raises(NoFreeSlot, match=r"wm_00_00 \(held by node node-a pid \d+") as err:
            other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0.2)
        assert 0.15 <= time.monotonic() - start < 1.5
        assert err.value.holders["wm_00_00"]["node"] == "node-a"
    with other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0) as lease:
        assert lease.node == "node-b"


def test_fencing_tokens_strictly_increase(manager, other, redis_client):
    fences = []
    for i in range(6):
        mgr = manager if i % 2 else other
        with mgr.acquire("wm_00_00", ttl_ms=TTL, wait_s=0) as lease:
            fences.append(lease.fence)
            with pytest.raises(NoFreeSlot):  # a refused attempt consumes no fence number
                (other if i % 2 else manager).acquire("wm_00_00", ttl_ms=TTL, wait_s=0)
    assert fences == [1, 2, 3, 4, 5, 6]
    assert int(redis_client.get(KEYS.slot_fence("wm_00_00"))) == 6
    with manager.acquire("wm_00_01", ttl_ms=TTL, wait_s=0) as lease:
        assert lease.fence == 1  # fences are per slot


def test_heartbeat_keeps_leases_past_ttl(manager, other, redis_client):
    # One manager's heartbeat renews all of its leases, each on its own TTL.
    with manager.acquire("wm_00_00", ttl_ms=300, wait_s=0) as first, \
            manager.acquire("wm_00_01", ttl_ms=450, wait_s=0) as second:
        time.sleep(1.0)  # more than three TTLs
        for lease in (first, second):
            lease.check()
            assert lease.held and redis_client.pttl(KEYS.slot_lease(lease.slot)) > 0
            with pytest.raises(NoFreeSlot):
                other.acquire(lease.slot, ttl_ms=300, wait_s=0)
        first.release()
        time.sleep(0.5)
        second.check()  # still renewed after the other lease left the schedule
        assert redis_client.exists(KEYS.slot_lease("wm_00_00")) == 0


def test_lease_without_heartbeat_expires(manager, other):
    lease = manager.acquire("wm_00_00", ttl_ms=300, wait_s=0, heartbeat=False)
    lease.check()
    time.sleep(0.35)
    with pytest.raises(LeaseLost, match="no renewal"):
        lease.check()
    assert lease.lost.is_set()
    with other.acquire("wm_00_00", ttl_ms=300, wait_s=0) as newer:
        assert newer.fence == lease.fence + 1
    assert lease.release() is False


HOLDER = """
import sys, time
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.redis import connect
manager = LeaseManager(connect(sys.argv[1]), Keys(sys.argv[2]), "doomed")
lease = manager.acquire("wm_00_00", ttl_ms=int(sys.argv[3]), wait_s=0)
print(lease.fence, flush=True)
time.sleep(60)
"""


def test_killed_holder_frees_slot_after_ttl(redis_url, other):
    ttl = 500
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, redis_url, KEYS.prefix, str(ttl)],
                            stdout=subprocess.PIPE, text=True)
    try:
        fence = int(proc.stdout.readline())
        time.sleep(0.6)  # longer than the TTL: the child's heartbeat keeps it
        assert other.holders(["wm_00_00"])["wm_00_00"]["node"] == "doomed"
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(5)
        with other.acquire("wm_00_00", ttl_ms=ttl, wait_s=3) as lease:
            freed_after = time.monotonic() - killed
            assert lease.fence > fence
        assert freed_after < ttl / 1000 + 0.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stale_holder_cannot_publish(manager, other):
    old = manager.acquire("wm_00_00", ttl_ms=300, wait_s=0, heartbeat=False)
    assert manager.publish(old, "v1", {"epochs": 3})["fence"] == old.fence
    time.sleep(0.35)  # old holder stalls (no heartbeat): its lease expires
    with other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0) as new:
        other.publish(new, "v2", {"epochs": 5, "parent": "v1", "images": [1, 2]})
    # The old holder has not noticed (no check() yet): Redis refuses its older fence.
    with pytest.raises(StaleLease, match="older than the slot's last published fence") as err:
        manager.publish(old, "v1-late")
    assert err.value.fence == old.fence and err.value.last_fence == new.fence
    with pytest.raises(LeaseLost):
        old.check()
    with pytest.raises(StaleLease, match="lost"):  # once it knows, it is refused locally
        manager.publish(old, "v1-late")
    latest = manager.latest("wm_00_00")
    assert latest["version"] == "v2" and latest["fence"] == new.fence and latest["node"] == "node-b"
    assert latest["epochs"] == 5 and latest["parent"] == "v1" and latest["images"] == [1, 2]
    assert isinstance(latest["time"], float)


def test_publish_refused_by_redis(manager, other, redis_client):
    # The server-side checks, for a holder that has not noticed anything yet.
    old = manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=0)
    redis_client.delete(KEYS.slot_lease("wm_00_00"))  # expired behind the holder's back
    with other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0):
        with pytest.raises(StaleLease, match="no longer holds the lease"):
            manager.publish(old, "v-old")
    assert old.lost.is_set()
    old.release()
    assert manager.latest("wm_00_00") is None

    # A holder whose fence is older than the published one is refused even with its token.
    with manager.acquire("wm_00_01", ttl_ms=TTL, wait_s=0) as lease:
        redis_client.hset(KEYS.slot_published("wm_00_01"), "fence", lease.fence + 1)
        with pytest.raises(StaleLease, match="older than the slot's last published fence") as err:
            manager.publish(lease, "v-old")
        assert err.value.last_fence == lease.fence + 1


def test_publish_validates_input(manager):
    with manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=0) as lease:
        with pytest.raises(ValueError, match="reserved"):
            manager.publish(lease, "v1", {"fence": 99})
        with pytest.raises(ValueError, match="version_id"):
            manager.publish(lease, "")
    with pytest.raises(StaleLease, match="released"):
        manager.publish(lease, "v1")
    with pytest.raises(ValueError, match="invalid slot"):
        manager.acquire("wm:00", wait_s=0)
    with pytest.raises(ValueError, match="ttl_ms"):
        manager.acquire("wm_00_00", ttl_ms=1, wait_s=0)


def test_release_in_finally_on_exception(manager, other, redis_client):
    with pytest.raises(RuntimeError, match="training blew up"):
        with manager.acquire("wm_00_00", ttl_ms=5000, wait_s=0) as lease:
            raise RuntimeError("training blew up")
    assert redis_client.exists(KEYS.slot_lease("wm_00_00")) == 0
    with other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0) as newer:  # free at once, not after TTL
        assert newer.fence == lease.fence + 1


def test_acquire_any_picks_free_slot(manager, other):
    slots = ["wm_00_00", "wm_00_01", "wm_00_02"]
    with other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0), \
            other.acquire("wm_00_02", ttl_ms=TTL, wait_s=0):
        for order in ("random", "given", "least_recent"):
            with manager.acquire_any(slots, ttl_ms=TTL, wait_s=0, order=order) as lease:
                assert lease.slot == "wm_00_01"


def test_acquire_any_least_recently_trained_first(manager):
    slots = ["wm_00_00", "wm_00_01", "wm_00_02"]
    for slot in ("wm_00_01", "wm_00_00"):  # 01 published before 00; 02 never
        with manager.acquire(slot, ttl_ms=TTL, wait_s=0) as lease:
            manager.publish(lease, f"v-{slot}")
    picked = []
    for _ in range(3):
        lease = manager.acquire_any(slots, ttl_ms=TTL, wait_s=0)
        picked.append(lease.slot)
    assert picked == ["wm_00_02", "wm_00_01", "wm_00_00"]


def test_acquire_any_all_busy_waits_bounded(manager, other, redis_client, events):
    slots = ["wm_00_00", "wm_00_01", "wm_00_02"]
    held = [other.acquire(slot, ttl_ms=TTL, wait_s=0) for slot in slots]
    try:
        redis_client.config_resetstat()
        start = time.monotonic()
        with pytest.raises(NoFreeSlot) as err:
            manager.acquire_any(slots, ttl_ms=TTL, wait_s=0.6)
        elapsed = time.monotonic() - start
        assert 0.55 <= elapsed < 1.5
        message = str(err.value)
        assert all(slot in message for slot in slots) and "node-b" in message
        assert set(err.value.holders) == set(slots)
        # Backoff, not a spin: a few rounds of three attempts (heartbeats add a handful more).
        calls = redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        assert calls < 80
        assert {e for e, _, _ in events} == {"waited", "no_free_slot"}
    finally:
        for lease in held:
            lease.release()


def test_waiting_acquirer_gets_slot_when_released(manager, other, events):
    held = other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0)
    threading.Timer(0.2, held.release).start()
    with manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=3) as lease:
        assert lease.fence == held.fence + 1
    waited = [info for event, _, info in events if event == "waited"]
    assert len(waited) == 1 and waited[0]["granted"] and 0.15 < waited[0]["waited_s"] < 1.5


@pytest.mark.parametrize("intrusion", ["delete", "overwrite"])
def test_lost_lease_detected(manager, redis_client, events, intrusion):
    key = KEYS.slot_lease("wm_00_00")
    with manager.acquire("wm_00_00", ttl_ms=300, wait_s=0) as lease:
        if intrusion == "delete":
            redis_client.delete(key)
        else:
            redis_client.set(key, "someone-else", px=5000)
        assert lease.lost.wait(1.0)
        with pytest.raises(LeaseLost, match="expired or was taken"):
            lease.check()
        with pytest.raises(StaleLease):
            manager.publish(lease, "v1")
    # Releasing the lost lease neither fails nor deletes another holder's key.
    assert redis_client.get(key) == (None if intrusion == "delete" else b"someone-else")
    assert ("lost", "wm_00_00") in [(e, s) for e, s, _ in events]


def test_heartbeat_retries_redis_errors_until_expiry(redis_url, redis_client):
    # A client with a 50 ms read timeout; DEBUG SLEEP freezes the real server.
    client = redis.Redis.from_url(redis_url, socket_timeout=0.05)
    manager = LeaseManager(client, KEYS, "node-a")
    freeze = lambda seconds: redis_client.execute_command("DEBUG", "SLEEP", seconds)  # noqa: E731
    try:
        with manager.acquire("wm_00_00", ttl_ms=600, wait_s=0) as lease:
            freeze(0.25)  # shorter than the TTL: the heartbeat retries and recovers
            time.sleep(0.5)
            lease.check()
            assert redis_client.pttl(KEYS.slot_lease("wm_00_00")) > 0
        with manager.acquire("wm_00_01", ttl_ms=300, wait_s=0) as lease:
            freeze(0.9)  # longer than the TTL: lost when the deadline passes
            assert lease.lost.wait(1.0)
            assert "Redis unreachable" in lease.lost_reason
    finally:
        client.close()


def test_concurrent_threads_never_share_a_slot(redis_url):
    slots = ["wm_00_00", "wm_00_01"]
    inside = {slot: 0 for slot in slots}
    overlaps, fences, errors = [], [], []
    guard = threading.Lock()

    def worker(n: int) -> None:
        client = redis.Redis.from_url(redis_url)
        manager = LeaseManager(client, KEYS, f"node-{n}")
        try:
            for _ in range(15):
                with manager.acquire_any(slots, ttl_ms=2000, wait_s=5, order="random") as lease:
                    with guard:
                        inside[lease.slot] += 1
                        if inside[lease.slot] > 1:
                            overlaps.append(lease.slot)
                        fences.append((lease.slot, lease.fence))
                    time.sleep(0.001)
                    with guard:
                        inside[lease.slot] -= 1
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not overlaps
    assert len(fences) == 90 and len(set(fences)) == 90


# ---- fairness: the waiter queue -----------------------------------------------------------------

WAITER = """
import sys
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.redis import connect
manager = LeaseManager(connect(sys.argv[1]), Keys(sys.argv[2]), "waiter")
try:
    with manager.acquire("wm_00_00", ttl_ms=5000, wait_s=60) as lease:
        print("granted", lease.fence, flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def wait_until(predicate, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def queued(redis_client, slots) -> int:
    return redis_client.zcard(KEYS.slot_queue(slot_group(slots)))


def test_slot_group_names_a_set_of_slots():
    assert slot_group(["wm_00_01", "wm_00_00", "wm_00_01"]) == "wm_00_00,wm_00_01"
    many = [f"wm_{i:02d}_{j:02d}" for i in range(10) for j in range(10)]
    assert slot_group(many) == slot_group(reversed(many))
    assert slot_group(many).startswith("sha256-") and len(slot_group(many)) < 50


def test_waiters_are_granted_in_arrival_order(redis_url, redis_client, other):
    slots = ["wm_00_00", "wm_00_01"]
    held = [other.acquire(slot, ttl_ms=2000, wait_s=0) for slot in slots]
    granted, errors = [], []

    def waiter(name: str) -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            with LeaseManager(client, KEYS, name).acquire_any(slots, ttl_ms=2000, wait_s=10):
                granted.append(name)
                time.sleep(0.05)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            client.close()

    names = ["first", "second", "third", "fourth", "fifth"]
    threads = []
    for i, name in enumerate(names):
        threads.append(threading.Thread(target=waiter, args=(name,)))
        threads[-1].start()
        wait_until(lambda n=i + 1: queued(redis_client, slots) == n)  # queued in a known order
    held[0].release()
    wait_until(lambda: len(granted) == 1)
    held[1].release()
    for thread in threads:
        thread.join(10)
    assert not errors and granted == names
    assert queued(redis_client, slots) == 0


def test_release_wakes_a_waiter_at_once(redis_client, other, events):
    # A re-check every second: a grant well within it came from the release's announcement.
    slow = LeaseManager(redis_client, KEYS, "node-a", recheck_s=1.0, waiter_timeout_s=3.0,
                        on_event=lambda event, slot, info: events.append((event, slot, info)))
    held = other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0)
    threading.Timer(0.2, held.release).start()
    with slow.acquire("wm_00_00", ttl_ms=TTL, wait_s=5):
        pass
    waited = [info["waited_s"] for event, _, info in events if event == "waited"]
    assert len(waited) == 1 and 0.15 < waited[0] < 0.6


def test_giving_up_leaves_the_queue(manager, other, redis_client):
    with other.acquire("wm_00_00", ttl_ms=TTL, wait_s=0):
        with pytest.raises(NoFreeSlot) as err:
            manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=0.3)
        assert err.value.queued == 0
        assert queued(redis_client, ["wm_00_00"]) == 0
        assert redis_client.zcard(KEYS.slot_queue_seen("wm_00_00")) == 0


def test_interrupted_waiter_leaves_the_queue(redis_url, redis_client, other):
    with other.acquire("wm_00_00", ttl_ms=5000, wait_s=0):
        proc = subprocess.Popen([sys.executable, "-c", WAITER, redis_url, KEYS.prefix],
                                stdout=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: queued(redis_client, ["wm_00_00"]) == 1)
            proc.send_signal(signal.SIGINT)  # KeyboardInterrupt inside the wait
            assert proc.stdout.readline().strip() == "interrupted"
            proc.wait(5)
            # Gone at once, not after the waiter timeout (2 s).
            assert queued(redis_client, ["wm_00_00"]) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_dead_waiter_blocks_no_longer_than_its_timeout(redis_url, redis_client, manager, other):
    held = other.acquire("wm_00_00", ttl_ms=5000, wait_s=0)
    proc = subprocess.Popen([sys.executable, "-c", WAITER, redis_url, KEYS.prefix],
                            stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: queued(redis_client, ["wm_00_00"]) == 1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        killed = time.monotonic()
        held.release()
        # The slot is free, but the ticket queued first still counts until it times out:
        # a newcomer does not jump the queue.
        with pytest.raises(NoFreeSlot, match=r"1 waiter\(s\) queued ahead") as err:
            manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=0)
        assert err.value.queued == 1 and err.value.holders["wm_00_00"] is None
        patient = LeaseManager(redis_client, KEYS, "node-c", recheck_s=0.05, waiter_timeout_s=0.6)
        with patient.acquire("wm_00_00", ttl_ms=TTL, wait_s=5) as lease:
            freed_after = time.monotonic() - killed
            assert lease.node == "node-c"
        assert 0.3 < freed_after < 0.6 + 0.6
        assert queued(redis_client, ["wm_00_00"]) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stalled_waiter_gets_its_place_back(redis_url, redis_client, other):
    # Stopped past the timeout, the waiter's ticket is dropped; alive again, it rejoins with its
    # old number, ahead of the waiter that queued after it.
    held = other.acquire("wm_00_00", ttl_ms=5000, wait_s=0)
    proc = subprocess.Popen([sys.executable, "-c", WAITER, redis_url, KEYS.prefix],
                            stdout=subprocess.PIPE, text=True)
    fences, errors = [], []

    def patient() -> None:
        manager = LeaseManager(redis_client, KEYS, "node-c", recheck_s=0.05, waiter_timeout_s=0.6)
        try:
            with manager.acquire("wm_00_00", ttl_ms=TTL, wait_s=10) as lease:
                fences.append(lease.fence)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=patient)
    try:
        wait_until(lambda: queued(redis_client, ["wm_00_00"]) == 1)
        proc.send_signal(signal.SIGSTOP)
        thread.start()
        wait_until(lambda: queued(redis_client, ["wm_00_00"]) == 2)
        time.sleep(0.8)  # the patient waiter's re-checks drop the stopped one's ticket
        assert queued(redis_client, ["wm_00_00"]) == 1
        proc.send_signal(signal.SIGCONT)
        wait_until(lambda: queued(redis_client, ["wm_00_00"]) == 2)
        held.release()
        first = proc.stdout.readline().split()
        thread.join(10)
        assert first[0] == "granted" and not errors and fences == [int(first[1]) + 1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if thread.is_alive():
            thread.join(10)
