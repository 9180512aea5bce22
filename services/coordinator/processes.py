"""The child processes of `ptzjepa up`: how each is started, stopped and killed.

Each child leads its own process group (`start_new_session`), so stopping or killing it also ends
what it forked (an rq worker's scheduler, a training job's helpers) instead of leaving it
orphaned and holding the child's ports.

On Linux each child also gets the parent-death signal SIGKILL (`prctl(PR_SET_PDEATHSIG)`), set
by a tiny wrapper that then execs the real command: when the launcher dies, however it dies
(SIGKILL, the OOM killer, a crash), its children die with it. SIGKILL rather than SIGTERM
because an unclean launcher death is a container's death: jobs are retried and store writes
are atomic, so nothing needs a graceful exit, and a child that ignored SIGTERM would outlive us.
The wrapper runs in the new process rather than as a `preexec_fn` hook, which is unsafe in a
process with threads (the supervisor's). The kernel sends the signal when the *thread* that
started the child ends, so the supervisor's thread outlives the children it restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

# Run by `python -S -c`: arm the parent-death signal, give up if the launcher is already gone
# (it may have died between fork and prctl, and then no signal would ever come), exec the child.
PARENT_DEATH_GUARD = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if libc.prctl(1, 9, 0, 0, 0) != 0:\n"  # PR_SET_PDEATHSIG = 1, SIGKILL = 9
    "    sys.exit('prctl(PR_SET_PDEATHSIG) failed: errno %d' % ctypes.get_errno())\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('the launcher is gone: not starting ' + sys.argv[2])\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str | None = None
    node: str = ""
    ports: list[int] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def exit_code(self) -> int | None:
        """The exit code once the process ended; None while it runs (or before it started)."""
        return self.proc.poll() if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def guarded_argv(argv: list[str]) -> list[str]:
    """`argv` run under the parent-death guard (Linux only; elsewhere as it is)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-S", "-c", PARENT_DEATH_GUARD, str(os.getpid()), *argv]


def spawn(child: Child) -> subprocess.Popen:
    """Start `child` (its log file open already) as the leader of a new process group."""
    child.proc = subprocess.Popen(guarded_argv(child.argv), env=child.env, stdout=child.log_file,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    return child.proc


def kill_group(child: Child) -> None:
    """SIGKILL the child's process group (the child and whatever it forked) and reap the child."""
    if child.proc is None:
        return
    try:
        os.killpg(child.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.proc.wait()


def stop_all(children: list[Child], grace_s: float) -> list[str]:
    """SIGTERM every running child, wait up to `grace_s` for all of them, then SIGKILL every
    child's group (also of those that exited: what they forked may live on). Returns the names
    of the children that had to be killed."""
    for child in reversed(children):  # in reverse start order: the camera service goes last
        if child.running() and child.proc is not None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    killed = []
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed.append(child.name)
        kill_group(child)
    if killed:
        log.warning("%s did not stop within %.1f s of SIGTERM; killed", ", ".join(killed), grace_s)
    return killed
