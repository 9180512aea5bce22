"""`ptzjepa status` and `ptzjepa down`: the node that `ptzjepa up` runs on a data directory, found
through its record (`<data_dir>/run/node.json`, services/coordinator/node_record.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import typer

from ptzjepa.cli.common import ConfigOpt, DataDirOpt, console, load_cli_settings, plain
from services.coordinator import node_record


def _data_dir(config: Path | None, data_dir: Path | None) -> Path:
    return Path(load_cli_settings(config, data_dir).data_dir).resolve()


def status(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt) -> None:
    """Say whether a node runs on this data directory, and which of its processes are alive.
    Exit code 0: it runs; 1: no node (or only leftovers of a dead one)."""
    folder = _data_dir(config, data_dir)
    record = node_record.read_record(folder)
    if record is None:
        console.print(f"no node runs on {plain(str(folder))}")
        raise typer.Exit(1)
    pid = node_record.live_launcher(record)
    launcher = record.get("launcher") or {}
    if pid is None:
        console.print(f"[yellow]the node of {plain(str(folder))} is not running[/yellow]: its launcher "
                      f"(pid {launcher.get('pid')}) is gone; `ptzjepa up` or `ptzjepa down` clears "
                      "what it left")
    else:
        console.print(f"[green]node running[/green]: launcher pid {pid}, coordinator "
                      f"{plain(str(record.get('coordinator_url')))} (status page there)")
    for child in record.get("children") or []:
        alive = node_record.same_process(child.get("pid", 0), child.get("start_ticks"))
        ports = ", ".join(str(p) for p in child.get("ports") or []) or "-"
        console.print(f"  {plain(str(child.get('name'))):<28} pid {child.get('pid')!s:<8} "
                      f"{'alive' if alive else 'dead':<6} ports {ports}")
    if pid is None:
        raise typer.Exit(1)


def down(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
         timeout_s: float = typer.Option(30.0, min=1.0, help="how long to wait for it to stop")) -> None:
    """Stop the node that `ptzjepa up` runs on this data directory (as Ctrl-C would), or clear
    what a dead one left running."""
    folder = _data_dir(config, data_dir)
    record = node_record.read_record(folder)
    pid = node_record.live_launcher(record) if record else None
    if pid is None:
        done = node_record.clear_stale_node(folder)
        for line in done:
            console.print(plain(line))
        console.print(f"no node runs on {plain(str(folder))}")
        return
    os.kill(pid, signal.SIGTERM)
    console.print(f"asked the launcher (pid {pid}) to stop...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = node_record.process_info(pid)
        if info is None or info.zombie:
            console.print("[green]stopped[/green]")
            return
        time.sleep(0.1)
    console.print(f"[red]the launcher (pid {pid}) did not stop within {timeout_s:.0f} s[/red]")
    raise typer.Exit(1)
