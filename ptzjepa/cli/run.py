"""Commands that run things on this machine: `up` (the embedded node), `demo`, `worker`, `emulate`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from ptzjepa.cli.common import (
    ConfigOpt,
    DataDirOpt,
    console,
    coordinator_client,
    load_cli_settings,
    load_node_settings,
    plain,
)
from ptzjepa.cli.jobs import follow_cycle, print_collection, print_cycle, start_cycle
from services.coordinator.launcher import Launcher, LaunchError, Node, site_settings
from shared.logs import setup_logging

# The demo's budget: two whole cycles in a couple of minutes on 2 cores (the presets are sized
# for real runs; these work budgets only shorten each phase, about 15 s of world-model training
# and 8 s of agent updates on an idle 2-core machine, and its lifetime schedule fits two cycles).
DEMO_SETTINGS = {
    "collect": {"iterations": 5, "movements": 10},
    "worldmodel": {"train": {"steps": 20, "schedule_steps": 200}},
    "dreamer": {"dreams": 32},
    "agent": {"config": {"updates": 1000}, "navigate_iterations": 2, "navigate_movements": 10},
}


def _serve_until_stopped(node: Launcher, stop: threading.Event) -> None:
    for line in node.stale_report:
        console.print(f"[yellow]stale node:[/yellow] {plain(line)}")
    for site in node.sites:
        console.print(f"[green]node {site.node} is up[/green]: coordinator "
                      f"{node.coordinator_url_of(site)}, camera {site.services.camera_base_url()}")
    console.print(f"logs in {node.data_dir / 'logs'}; dead children are restarted; Ctrl-C stops everything")
    reported: set[str] = set()
    while not stop.is_set():
        # A child the supervisor gave up on stays dead and visible (status page, metrics); the
        # rest of the node keeps serving.
        for name in sorted(set(node.failed_children()) - reported):
            console.print(f"[red]{name} keeps dying; it is no longer restarted (see "
                          f"{node.data_dir / 'logs' / (name + '.log')})[/red]")
            reported.add(name)
        stop.wait(1.0)
    console.print("stopping...")


def up(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
       nodes: int = typer.Option(1, min=1, max=16, help="simulated sites sharing Redis, store and "
                                                        "world-model slots (ports +10 per node)")) -> None:
    """Start the embedded node(s) (Redis, cameras, workers, coordinators) until Ctrl-C."""
    settings = load_node_settings(config, data_dir)
    setup_logging(settings.log_level)
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set a flag: a signal arriving mid-start must not leave half a node.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with Launcher(site_settings(settings, nodes), supervise=True) as node:
            _serve_until_stopped(node, stop)
    except LaunchError as exc:
        console.print(f"[red]the node did not start:[/red] {plain(str(exc))}")
        raise typer.Exit(1) from None


def _run_demo_cycles(node: Launcher, cycles: int) -> None:
    with coordinator_client(node.settings, node.coordinator_url) as http:
        for _ in range(cycles):
            view = follow_cycle(http, start_cycle(http))
            print_cycle(view)
            if view["status"] != "finished":
                raise typer.Exit(1)
            first = view["phases"][0]
            if first["name"] == "collect" and first.get("result"):
                print_collection(node.settings, first["result"])


def demo(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
         cycles: int = typer.Option(2, min=1, max=20, help="full cycles to run"),
         full: bool = typer.Option(False, help="use the preset's full phase sizes, not the demo's")) -> None:
    """Start the node on the simulated camera, run full learning cycles, show the results, stop."""
    settings = load_node_settings(config, data_dir, None if full else DEMO_SETTINGS)
    setup_logging("WARNING")
    try:
        with Node(settings) as node:
            console.print(f"node up: coordinator {node.coordinator_url}, camera {node.camera_url}")
            _run_demo_cycles(node, cycles)
            console.print(f"everything is under {Path(node.settings.resolved_store_url())}")
    except LaunchError as exc:
        console.print(f"[red]the node did not start:[/red] {exc}")
        raise typer.Exit(1) from None


def worker(queues: list[str], config: Path | None = ConfigOpt,
           burst: bool = typer.Option(False, help="exit when the queues are empty")) -> None:
    """Run an rq worker on the given queues (camera, worldmodel, dreamer, agent)."""
    from shared.worker import run_worker

    settings = load_cli_settings(config)
    setup_logging(settings.log_level)
    try:
        run_worker(settings, queues, burst=burst)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def emulate(ctx: typer.Context) -> None:
    """Serve an emulated camera (hanwha, axis or onvif) over the simulated world, e.g.
    `ptzjepa emulate hanwha --port 8081` (password from the environment or --password-file)."""
    from services.camera.emulators.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args)))
