"""Whether a process of this host still runs, as the launcher, the embedded Redis and the
benchmarks need to know about the processes they started or found recorded."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
