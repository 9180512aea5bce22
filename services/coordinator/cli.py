"""The `ptzjepa` command line: start a node, run phases, follow jobs.

`ptzjepa up` runs the embedded node until Ctrl-C; `ptzjepa demo` starts it, runs one collection
phase with a progress bar, says where the frames are and what they show, and shuts down.
Phase commands talk to a running coordinator over REST, exactly as any other client would.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Optional

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shared.config import ConfigError, Settings, load_settings
from shared.logs import setup_logging

from services.coordinator.launcher import LaunchError, Node

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ptzjepa: lifelong curiosity-driven world models for PTZ cameras")
console = Console()

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (PTZJEPA_CONFIG)")
DataDirOpt = typer.Option(None, "--data-dir", help="where Redis, the store and logs live")
UrlOpt = typer.Option(None, "--url", help="coordinator URL (default from the config)")


def _settings(config: Optional[Path], data_dir: Optional[Path] = None) -> Settings:
    overrides = {"data_dir": data_dir} if data_dir else {}
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _coordinator(settings: Settings, url: Optional[str]) -> httpx.Client:
    base = url or f"http://{settings.services.host}:{settings.services.coordinator_port}"
    headers = {}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    return httpx.Client(base_url=base, headers=headers, timeout=30.0)


def follow_job(http: httpx.Client, job_id: str, label: str, poll_s: float = 0.5) -> dict:
    """Show a progress bar for a job until it ends; returns its final view."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)
        while True:
            r = http.get(f"/v1/jobs/{job_id}")
            r.raise_for_status()
            view = r.json()
            progress = view.get("progress") or {}
            if progress:
                bar.update(task, total=progress.get("total"), completed=progress.get("done", 0))
            if view["status"] in ("finished", "failed", "stopped", "canceled"):
                return view
            time.sleep(poll_s)


def _start_collect(http: httpx.Client, iterations: Optional[int], movements: Optional[int],
                   seed: Optional[int]) -> str:
    body = {k: v for k, v in {"iterations": iterations, "movements": movements, "seed": seed}.items()
            if v is not None}
    r = http.post("/v1/phases/collect", json=body)
    if r.status_code >= 400:
        console.print(f"[red]collect refused ({r.status_code}):[/red] {r.json().get('detail')}")
        raise typer.Exit(1)
    return r.json()["job_id"]


def _print_collection(settings: Settings, result: dict) -> None:
    store = Path(settings.resolved_store_url())
    console.print(f"[green]collected {result['frames']} frames in {result['rounds']} rounds[/green] "
                  f"(collection {result['collection_id']}, seed {result.get('seed')})")
    console.print(f"  frames:        {result['frames_dir']}")
    console.print(f"  manifests:     {len(result['manifests'])} JSON-lines files under {store / 'manifests'}")
    if result.get("contact_sheet"):
        console.print(f"  contact sheet: {store / result['contact_sheet']}")
    if result.get("mean_dynamic_fraction") is not None:
        console.print(f"  what they show: a simulated outdoor site; on average "
                      f"{100 * result['mean_dynamic_fraction']:.1f}% of each view was moving "
                      f"(cars, people, a blinking light)")


@app.command()
def up(config: Optional[Path] = ConfigOpt, data_dir: Optional[Path] = DataDirOpt) -> None:
    """Start the embedded node (Redis, camera, workers, coordinator) until Ctrl-C."""
    settings = _settings(config, data_dir)
    setup_logging(settings.log_level)
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set a flag: a signal arriving mid-start must not leave half a node.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with Node(settings) as node:
            console.print(f"[green]node {settings.node} is up[/green]: coordinator {node.coordinator_url}, "
                          f"camera {node.camera_url}, logs in {node.data_dir / 'logs'}; Ctrl-C stops it")
            while not stop.is_set():
                failed = node.failed_children()
                if failed:
                    console.print(f"[red]{', '.join(failed)} exited; stopping the node[/red]")
                    raise typer.Exit(1)
                stop.wait(1.0)
            console.print("stopping...")
    except LaunchError as exc:
        console.print(f"[red]the node did not start:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def demo(config: Optional[Path] = ConfigOpt, data_dir: Optional[Path] = DataDirOpt,
         iterations: Optional[int] = typer.Option(None, help="sweep rounds (default from the preset)"),
         movements: Optional[int] = typer.Option(None, help="moves per round"),
         seed: int = typer.Option(0, help="sweep seed")) -> None:
    """Start the node, run one collection phase on the simulated camera, show the result, stop."""
    settings = _settings(config, data_dir)
    setup_logging("WARNING")
    try:
        with Node(settings) as node:
            console.print(f"node up: coordinator {node.coordinator_url}, camera {node.camera_url}")
            with _coordinator(node.settings, node.coordinator_url) as http:
                job_id = _start_collect(http, iterations, movements, seed)
                view = follow_job(http, job_id, "collect")
            if view["status"] != "finished":
                console.print(f"[red]collection {view['status']}:[/red] {view.get('error')}")
                raise typer.Exit(1)
            _print_collection(node.settings, view["result"])
    except LaunchError as exc:
        console.print(f"[red]the node did not start:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def collect(config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt,
            iterations: Optional[int] = None, movements: Optional[int] = None,
            seed: Optional[int] = None, wait: bool = typer.Option(True, help="follow until done")) -> None:
    """Run a random sweep on a running node (through its coordinator)."""
    settings = _settings(config)
    with _coordinator(settings, url) as http:
        job_id = _start_collect(http, iterations, movements, seed)
        console.print(f"collect job {job_id}")
        if wait:
            view = follow_job(http, job_id, "collect")
            if view["status"] != "finished":
                console.print(f"[red]collection {view['status']}:[/red] {view.get('error')}")
                raise typer.Exit(1)
            _print_collection(settings, view["result"])


@app.command()
def job(job_id: str, config: Optional[Path] = ConfigOpt, url: Optional[str] = UrlOpt) -> None:
    """Show a job's status, progress and result or error."""
    settings = _settings(config)
    with _coordinator(settings, url) as http:
        r = http.get(f"/v1/jobs/{job_id}")
        console.print_json(r.text)
        if r.status_code >= 400:
            raise typer.Exit(1)


@app.command()
def worker(queues: list[str], config: Optional[Path] = ConfigOpt,
           burst: bool = typer.Option(False, help="exit when the queues are empty")) -> None:
    """Run an rq worker on the given queues (camera, worldmodel, dreamer, agent)."""
    from shared.worker import run_worker

    settings = _settings(config)
    setup_logging(settings.log_level)
    try:
        run_worker(settings, queues, burst=burst)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
