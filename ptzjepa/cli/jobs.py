"""Phase, cycle and job commands: they talk to a running coordinator over REST, exactly as any other
client would (`collect`, `phase`, `cycle`, `lifelong`, `models`, `job`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ptzjepa.cli.common import ConfigOpt, UrlOpt, console, coordinator_client, load_cli_settings
from shared.config import Settings

JOB_ENDED = ("finished", "failed", "stopped", "canceled")
# The request fields each phase takes from the `phase` command's options.
PHASE_FIELDS = {"collect": ("iterations", "movements"), "navigate": ("iterations", "movements"),
                "worldmodel": ("slot",), "dreamer": ("slot", "version"), "agent": ("updates",)}


def follow_job(http: httpx.Client, job_id: str, label: str, poll_s: float = 0.5) -> dict:
    """Show a progress bar for a job until it ends; returns its final view."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task(label, total=None)
        while True:
            r = http.get(f"/v1/jobs/{job_id}")
            r.raise_for_status()
            view = r.json()
            progress = view.get("progress") or {}
            if progress:
                bar.update(task, total=progress.get("total"), completed=progress.get("done", 0))
            if view["status"] in JOB_ENDED:
                return view
            time.sleep(poll_s)


def follow_cycle(http: httpx.Client, cycle_id: str, poll_s: float = 0.5) -> dict:
    """A progress bar per phase until the cycle ends; returns its final view."""
    with Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, TaskID] = {}
        while True:
            view = http.get(f"/v1/cycles/{cycle_id}").json()
            for phase_view in view["phases"]:
                _show_phase_progress(bar, tasks, phase_view)
            if view["status"] != "running":
                return view
            time.sleep(poll_s)


def _show_phase_progress(bar: Progress, tasks: dict[str, TaskID], phase_view: dict) -> None:
    name, progress = phase_view["name"], phase_view.get("progress") or {}
    if name not in tasks and (progress or phase_view["status"] in ("started", "finished")):
        tasks[name] = bar.add_task(name, total=None)
    if name in tasks:
        done = progress.get("done", 0)
        total = progress.get("total") or None
        if phase_view["status"] == "finished":
            done = total = total or max(done, 1)
        bar.update(tasks[name], total=total, completed=done)


def _phase_detail(name: str, r: dict) -> str:
    """One line on what a finished phase produced."""
    if name == "collect":
        return f"{r.get('frames')} frames, contact sheet {r.get('contact_sheet')}"
    if name == "navigate":
        return (f"{r.get('frames')} frames, mean dynamic fraction {r.get('mean_dynamic_fraction')}, "
                f"mean observed WM error {r.get('mean_observed_error')}")
    if name == "worldmodel":
        return (f"slot {r.get('slot')} version {str(r.get('version'))[:12]}, "
                f"{r.get('epochs')} epochs ({r.get('stop_reason')}), loss {r.get('final_loss')}")
    if name == "dreamer":
        return (f"{r.get('dreams')} dreams x {r.get('length')} steps in {r.get('folder')}, "
                f"mean surprise {r.get('mean_surprise')}")
    if name == "agent":
        return f"{r.get('updates')} updates ({r.get('stop_reason')}), loss {r.get('final_loss')}"
    raise KeyError(name)


def print_cycle(view: dict) -> None:
    console.print(f"cycle {view['id']}: [bold]{view['status']}[/bold]"
                  + (f" ({view['reason']})" if view.get("reason") else ""))
    for phase_view in view["phases"]:
        result = phase_view.get("result") or {}
        detail = (_phase_detail(phase_view["name"], result) if result
                  else phase_view.get("error") or phase_view["status"])
        console.print(f"  {phase_view['name']:<10} {phase_view['status']:<9} "
                      f"{phase_view.get('seconds', '')!s:>8}s  {detail}")


def print_collection(settings: Settings, result: dict) -> None:
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


def start_cycle(http: httpx.Client) -> str:
    """POST /v1/cycles; exit code 1 when the coordinator refuses. Returns the cycle id."""
    r = http.post("/v1/cycles")
    if r.status_code >= 400:
        console.print(f"[red]cycle refused ({r.status_code}):[/red] {r.text}")
        raise typer.Exit(1)
    return r.json()["id"]


def _start_phase(http: httpx.Client, name: str, body: dict[str, Any]) -> str:
    r = http.post(f"/v1/phases/{name}", json=body)
    if r.status_code >= 400:
        console.print(f"[red]{name} refused ({r.status_code}):[/red] {r.json().get('detail')}")
        raise typer.Exit(1)
    return r.json()["job_id"]


def collect(config: Path | None = ConfigOpt, url: str | None = UrlOpt,
            iterations: int | None = None, movements: int | None = None,
            seed: int | None = None, wait: bool = typer.Option(True, help="follow until done")) -> None:
    """Run a random sweep on a running node (through its coordinator)."""
    settings = load_cli_settings(config)
    body = {k: v for k, v in {"iterations": iterations, "movements": movements, "seed": seed}.items()
            if v is not None}
    with coordinator_client(settings, url) as http:
        job_id = _start_phase(http, "collect", body)
        console.print(f"collect job {job_id}")
        if wait:
            view = follow_job(http, job_id, "collect")
            if view["status"] != "finished":
                console.print(f"[red]collection {view['status']}:[/red] {view.get('error')}")
                raise typer.Exit(1)
            print_collection(settings, view["result"])


def phase(name: str = typer.Argument(..., help="collect, worldmodel, dreamer, agent or navigate"),
          config: Path | None = ConfigOpt, url: str | None = UrlOpt,
          slot: str | None = typer.Option(None, help="worldmodel/dreamer: the slot"),
          version: str | None = typer.Option(None, help="dreamer: the version"),
          iterations: int | None = typer.Option(None, help="collect/navigate: rounds"),
          movements: int | None = typer.Option(None, help="collect/navigate: moves per round"),
          updates: int | None = typer.Option(None, help="agent: gradient updates"),
          wait: bool = typer.Option(True, help="follow until done")) -> None:
    """Run one phase alone on a running node (through its coordinator)."""
    if name not in PHASE_FIELDS:
        console.print(f"[red]unknown phase '{name}'[/red]; choose one of {', '.join(PHASE_FIELDS)}")
        raise typer.Exit(2)
    given = {"slot": slot, "version": version, "iterations": iterations, "movements": movements,
             "updates": updates}
    body = {k: given[k] for k in PHASE_FIELDS[name] if given[k] is not None}
    settings = load_cli_settings(config)
    with coordinator_client(settings, url) as http:
        job_id = _start_phase(http, name, body)
        console.print(f"{name} job {job_id}")
        if wait:
            view = follow_job(http, job_id, name)
            console.print_json(data=view.get("result") if view["status"] == "finished" else view)
            if view["status"] != "finished":
                raise typer.Exit(1)


def cycle(config: Path | None = ConfigOpt, url: str | None = UrlOpt,
          wait: bool = typer.Option(True, help="follow until the cycle ends")) -> None:
    """Run one full cycle (collect or navigate, world model, dreams, agent) on a running node."""
    settings = load_cli_settings(config)
    with coordinator_client(settings, url) as http:
        cycle_id = start_cycle(http)
        console.print(f"cycle {cycle_id}")
        if wait:
            view = follow_cycle(http, cycle_id)
            print_cycle(view)
            if view["status"] != "finished":
                raise typer.Exit(1)


def lifelong(action: str = typer.Argument(..., help="start, stop or status"),
             config: Path | None = ConfigOpt, url: str | None = UrlOpt,
             now: bool = typer.Option(False, help="stop: also stop the running cycle")) -> None:
    """Start or stop lifelong mode (cycle after cycle until stopped), or show its state."""
    settings = load_cli_settings(config)
    with coordinator_client(settings, url) as http:
        if action == "status":
            r = http.get("/v1/lifelong")
        elif action in ("start", "stop"):
            r = http.post(f"/v1/lifelong/{action}", json={"now": now} if action == "stop" else None)
        else:
            console.print(f"[red]unknown action '{action}'[/red]; choose start, stop or status")
            raise typer.Exit(2)
        console.print_json(r.text)
        if r.status_code >= 400:
            raise typer.Exit(1)


def _print_slots(http: httpx.Client) -> None:
    for entry in http.get("/v1/models").json()["slots"]:
        latest, holder = entry["latest"], entry["holder"]
        what = (f"{latest['version'][:12]} (fence {latest['fence']}, by {latest['node']})"
                if latest else "nothing published")
        busy = f", held by {holder['node']}" if holder else ""
        console.print(f"{entry['slot']}: {what}{busy}")


def _print_lineage(http: httpx.Client, slot: str) -> None:
    r = http.get(f"/v1/models/{slot}/history")
    if r.status_code >= 400:
        console.print(f"[red]{r.json().get('detail')}[/red]")
        raise typer.Exit(1)
    for v in r.json()["versions"]:
        console.print(f"{v['version'][:12]}  fence {v['fence']:>3}  node {v['node']:<10} "
                      f"epochs {v['epochs']:>3} (total {v['lineage_epochs']})  frames {v['frames_used']} "
                      f"from {', '.join(v.get('frame_nodes') or [])}")


def models(config: Path | None = ConfigOpt, url: str | None = UrlOpt,
           slot: str | None = typer.Option(None, help="show this slot's lineage")) -> None:
    """World-model slots (latest version, holder), or one slot's lineage across sites."""
    settings = load_cli_settings(config)
    with coordinator_client(settings, url) as http:
        if slot is None:
            _print_slots(http)
        else:
            _print_lineage(http, slot)


def job(job_id: str, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Show a job's status, progress and result or error."""
    settings = load_cli_settings(config)
    with coordinator_client(settings, url) as http:
        r = http.get(f"/v1/jobs/{job_id}")
        console.print_json(r.text)
        if r.status_code >= 400:
            raise typer.Exit(1)
