"""Every Redis key and rq queue name of ptzjepa, under one prefix.

Nothing else in the code base spells a key: a service asks this module, so that two services never
disagree about a name and several deployments can share one Redis under different prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass

# "control" carries the coordinator's own small jobs (the lifelong loop's delayed restarts).
QUEUE_NAMES = ("camera", "worldmodel", "dreamer", "agent", "control")
# Queues whose jobs need this node's own camera or agent: one per node. The world-model and
# dreamer queues are shared by all nodes (their jobs name the node they work for), so a pool of
# training workers can serve many sites.
NODE_QUEUES = ("camera", "agent", "control")


@dataclass(frozen=True)
class Keys:
    prefix: str = "ptzjepa"

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # rq queues (rq adds its own `rq:queue:` namespace in front of these names).
    def queue(self, name: str, node: str | None = None) -> str:
        if name not in QUEUE_NAMES:
            raise ValueError(f"unknown queue '{name}', expected one of {QUEUE_NAMES}")
        if name in NODE_QUEUES:
            if not node:
                raise ValueError(f"queue '{name}' belongs to a node: name the node")
            return f"{self.prefix}.{node}.{name}"
        return f"{self.prefix}.{name}"

    # Events: one Redis Stream, so a restarted service can read what it missed.
    def events(self) -> str:
        return self._k("events")

    # Short per-queue locks: of whoever moves the queue's due scheduled jobs onto it
    # (shared.due_jobs), and of the coordinator sweeping its abandoned jobs.
    def due_jobs_lock(self, queue_name: str) -> str:
        return self._k("queue", queue_name, "due-lock")

    def maintenance_lock(self, queue_name: str) -> str:
        return self._k("maintenance", queue_name)

    # A job's stop request, set by the coordinator and polled by the worker running it.
    def stop_request(self, job_id: str) -> str:
        return self._k("job", job_id, "stop")

    # World-model slots (leases and fencing).
    def slot_lease(self, slot: str) -> str:
        return self._k("slot", slot, "lease")

    def slot_fence(self, slot: str) -> str:
        return self._k("slot", slot, "fence")

    def slot_published(self, slot: str) -> str:
        return self._k("slot", slot, "published")

    # A pub/sub channel, not a key: the lease release script announces a freed slot on it.
    def slot_freed(self, slot: str) -> str:
        return self._k("slot", slot, "freed")

    # The waiters for one set of slots (named by `group`): their tickets, when each was last seen
    # alive, and the ticket counter.
    def slot_queue(self, group: str) -> str:
        return self._k("slots", group, "queue")

    def slot_queue_seen(self, group: str) -> str:
        return self._k("slots", group, "seen")

    def slot_queue_ticket(self, group: str) -> str:
        return self._k("slots", group, "ticket")

    # Cycles: one hash per cycle, a sorted set of a node's cycles by start time.
    def cycle(self, cycle_id: str) -> str:
        return self._k("cycle", cycle_id)

    def cycles(self, node: str) -> str:
        return self._k("node", node, "cycles")

    def lifelong(self, node: str) -> str:
        return self._k("node", node, "lifelong")

    # The processes `ptzjepa up` supervises for a node: a hash, one JSON field per child.
    def node_children(self, node: str) -> str:
        return self._k("node", node, "children")

    # The node's latest dreams (a folder of shards in the store) and who reads which version.
    def dreams_latest(self, node: str) -> str:
        return self._k("node", node, "dreams")

    def version_readers(self, slot: str) -> str:
        return self._k("slot", slot, "readers")

    # The node's latest trained agent (agents stay local to their node).
    def agent_latest(self, node: str) -> str:
        return self._k("node", node, "agent")
