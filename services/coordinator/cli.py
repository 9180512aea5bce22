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

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from services.coordinator.launcher import Launcher, LaunchError, Node, site_settings
from shared.config import ConfigError, Settings, load_settings
from shared.logs import setup_logging

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ptzjepa: lifelong curiosity-driven world models for PTZ cameras")
console = Console()

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (PTZJEPA_CONFIG)")
DataDirOpt = typer.Option(None, "--data-dir", help="where Redis, the store and logs live")
UrlOpt = typer.Option(None, "--url", help="coordinator URL (default from the config)")


def _settings(config: Path | None, data_dir: Path | None = None,
              defaults: dict | None = None) -> Settings:
    overrides = {"data_dir": data_dir} if data_dir else {}
    try:
        return load_settings(config, defaults=defaults, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _coordinator(settings: Settings, url: str | None) -> httpx.Client:
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


def _start_collect(http: httpx.Client, iterations: int | None, movements: int | None,
                   seed: int | None) -> str:
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
def up(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
       nodes: int = typer.Option(1, min=1, max=16, help="simulated sites sharing Redis, store and "
                                                        "world-model slots (ports +10 per node)")) -> None:
    """Start the embedded node(s) (Redis, cameras, workers, coordinators) until Ctrl-C."""
    settings = _settings(config, data_dir)
    setup_logging(settings.log_level)
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set a flag: a signal arriving mid-start must not leave half a node.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with Launcher(site_settings(settings, nodes)) as node:
            for site in node.sites:
                console.print(f"[green]node {site.node} is up[/green]: coordinator "
                              f"{node.coordinator_url_of(site)}, camera {site.services.camera_base_url()}")
            console.print(f"logs in {node.data_dir / 'logs'}; Ctrl-C stops everything")
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


# The demo's budget: two whole cycles in a couple of minutes on 2 cores (the presets are sized
# for real runs; these bounds only shorten each phase).
DEMO_SETTINGS = {
    "collect": {"iterations": 5, "movements": 10},
    "worldmodel": {"time_budget_s": 15.0},
    "dreamer": {"dreams": 32},
    "agent": {"time_budget_s": 8.0, "navigate_iterations": 2, "navigate_movements": 10},
}


def _follow_cycle(http: httpx.Client, cycle_id: str, poll_s: float = 0.5) -> dict:
    """A progress bar per phase until the cycle ends; returns its final view."""
    shown: set[str] = set()
    with Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, int] = {}
        while True:
            view = http.get(f"/v1/cycles/{cycle_id}").json()
            for phase in view["phases"]:
                name, progress = phase["name"], phase.get("progress") or {}
                if name not in tasks and (progress or phase["status"] in ("started", "finished")):
                    tasks[name] = bar.add_task(name, total=None)
                if name in tasks:
                    done = progress.get("done", 0)
                    total = progress.get("total") or None
                    if phase["status"] == "finished":
                        done = total = total or max(done, 1)
                    bar.update(tasks[name], total=total, completed=done)
                    shown.add(name)
            if view["status"] != "running":
                return view
            time.sleep(poll_s)


def _print_cycle(view: dict) -> None:
    console.print(f"cycle {view['id']}: [bold]{view['status']}[/bold]"
                  + (f" ({view['reason']})" if view.get("reason") else ""))
    for phase in view["phases"]:
        result = phase.get("result") or {}
        detail = {
            "collect": lambda r: f"{r.get('frames')} frames, contact sheet {r.get('contact_sheet')}",
            "navigate": lambda r: f"{r.get('frames')} frames, mean dynamic fraction "
                                  f"{r.get('mean_dynamic_fraction')}, mean observed WM error "
                                  f"{r.get('mean_observed_error')}",
            "worldmodel": lambda r: f"slot {r.get('slot')} version {str(r.get('version'))[:12]}, "
                                    f"{r.get('epochs')} epochs ({r.get('stop_reason')}), "
                                    f"loss {r.get('final_loss')}",
            "dreamer": lambda r: f"{r.get('dreams')} dreams x {r.get('length')} steps in "
                                 f"{r.get('folder')}, mean surprise {r.get('mean_surprise')}",
            "agent": lambda r: f"{r.get('updates')} updates ({r.get('stop_reason')}), "
                               f"loss {r.get('final_loss')}",
        }[phase["name"]](result) if result else phase.get("error") or phase["status"]
        console.print(f"  {phase['name']:<10} {phase['status']:<9} {phase.get('seconds', '')!s:>8}s  {detail}")


@app.command()
def demo(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
         cycles: int = typer.Option(2, min=1, max=20, help="full cycles to run"),
         full: bool = typer.Option(False, help="use the preset's full phase sizes, not the demo's")) -> None:
    """Start the node on the simulated camera, run full learning cycles, show the results, stop."""
    settings = _settings(config, data_dir, None if full else DEMO_SETTINGS)
    setup_logging("WARNING")
    try:
        with Node(settings) as node:
            console.print(f"node up: coordinator {node.coordinator_url}, camera {node.camera_url}")
            with _coordinator(node.settings, node.coordinator_url) as http:
                for _ in range(cycles):
                    r = http.post("/v1/cycles")
                    if r.status_code >= 400:
                        console.print(f"[red]cycle refused ({r.status_code}):[/red] {r.text}")
                        raise typer.Exit(1)
                    view = _follow_cycle(http, r.json()["id"])
                    _print_cycle(view)
                    if view["status"] != "finished":
                        raise typer.Exit(1)
                    first = view["phases"][0]
                    if first["name"] == "collect" and first.get("result"):
                        _print_collection(node.settings, first["result"])
            console.print(f"everything is under {Path(node.settings.resolved_store_url())}")
    except LaunchError as exc:
        console.print(f"[red]the node did not start:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def collect(config: Path | None = ConfigOpt, url: str | None = UrlOpt,
            iterations: int | None = None, movements: int | None = None,
            seed: int | None = None, wait: bool = typer.Option(True, help="follow until done")) -> None:
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
def phase(name: str = typer.Argument(..., help="collect, worldmodel, dreamer, agent or navigate"),
          config: Path | None = ConfigOpt, url: str | None = UrlOpt,
          slot: str | None = typer.Option(None, help="worldmodel/dreamer: the slot"),
          version: str | None = typer.Option(None, help="dreamer: the version"),
          iterations: int | None = typer.Option(None, help="collect/navigate: rounds"),
          movements: int | None = typer.Option(None, help="collect/navigate: moves per round"),
          updates: int | None = typer.Option(None, help="agent: gradient updates"),
          wait: bool = typer.Option(True, help="follow until done")) -> None:
    """Run one phase alone on a running node (through its coordinator)."""
    fields = {"collect": ("iterations", "movements"), "navigate": ("iterations", "movements"),
              "worldmodel": ("slot",), "dreamer": ("slot", "version"), "agent": ("updates",)}
    if name not in fields:
        console.print(f"[red]unknown phase '{name}'[/red]; choose one of {', '.join(fields)}")
        raise typer.Exit(2)
    given = {"slot": slot, "version": version, "iterations": iterations, "movements": movements,
             "updates": updates}
    body = {k: given[k] for k in fields[name] if given[k] is not None}
    settings = _settings(config)
    with _coordinator(settings, url) as http:
        r = http.post(f"/v1/phases/{name}", json=body)
        if r.status_code >= 400:
            console.print(f"[red]{name} refused ({r.status_code}):[/red] {r.json().get('detail')}")
            raise typer.Exit(1)
        job_id = r.json()["job_id"]
        console.print(f"{name} job {job_id}")
        if wait:
            view = follow_job(http, job_id, name)
            console.print_json(data=view.get("result") if view["status"] == "finished" else view)
            if view["status"] != "finished":
                raise typer.Exit(1)


@app.command()
def cycle(config: Path | None = ConfigOpt, url: str | None = UrlOpt,
          wait: bool = typer.Option(True, help="follow until the cycle ends")) -> None:
    """Run one full cycle (collect or navigate, world model, dreams, agent) on a running node."""
    settings = _settings(config)
    with _coordinator(settings, url) as http:
        r = http.post("/v1/cycles")
        if r.status_code >= 400:
            console.print(f"[red]cycle refused ({r.status_code}):[/red] {r.text}")
            raise typer.Exit(1)
        console.print(f"cycle {r.json()['id']}")
        if wait:
            view = _follow_cycle(http, r.json()["id"])
            _print_cycle(view)
            if view["status"] != "finished":
                raise typer.Exit(1)


@app.command()
def lifelong(action: str = typer.Argument(..., help="start, stop or status"),
             config: Path | None = ConfigOpt, url: str | None = UrlOpt,
             now: bool = typer.Option(False, help="stop: also stop the running cycle")) -> None:
    """Start or stop lifelong mode (cycle after cycle until stopped), or show its state."""
    settings = _settings(config)
    with _coordinator(settings, url) as http:
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


@app.command()
def models(config: Path | None = ConfigOpt, url: str | None = UrlOpt,
           slot: str | None = typer.Option(None, help="show this slot's lineage")) -> None:
    """World-model slots (latest version, holder), or one slot's lineage across sites."""
    settings = _settings(config)
    with _coordinator(settings, url) as http:
        if slot is None:
            for entry in http.get("/v1/models").json()["slots"]:
                latest, holder = entry["latest"], entry["holder"]
                what = (f"{latest['version'][:12]} (fence {latest['fence']}, by {latest['node']})"
                        if latest else "nothing published")
                busy = f", held by {holder['node']}" if holder else ""
                console.print(f"{entry['slot']}: {what}{busy}")
            return
        r = http.get(f"/v1/models/{slot}/history")
        if r.status_code >= 400:
            console.print(f"[red]{r.json().get('detail')}[/red]")
            raise typer.Exit(1)
        for v in r.json()["versions"]:
            console.print(f"{v['version'][:12]}  fence {v['fence']:>3}  node {v['node']:<10} "
                          f"epochs {v['epochs']:>3} (total {v['lineage_epochs']})  frames {v['frames_used']} "
                          f"from {', '.join(v.get('frame_nodes') or [])}")


@app.command()
def job(job_id: str, config: Path | None = ConfigOpt, url: str | None = UrlOpt) -> None:
    """Show a job's status, progress and result or error."""
    settings = _settings(config)
    with _coordinator(settings, url) as http:
        r = http.get(f"/v1/jobs/{job_id}")
        console.print_json(r.text)
        if r.status_code >= 400:
            raise typer.Exit(1)


@app.command()
def worker(queues: list[str], config: Path | None = ConfigOpt,
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def emulate(ctx: typer.Context) -> None:
    """Serve an emulated camera (hanwha, axis or onvif) over the simulated world, e.g.
    `ptzjepa emulate hanwha --port 8081` (password from the environment or --password-file)."""
    from services.camera.emulators.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args)))


# ---- analysis and migration (docs/analysis.md, docs/migrating.md) ------------------------------------
def _plain(text: str) -> str:
    """`text` shown as it is (paths and messages may hold rich markup such as [brackets])."""
    from rich.markup import escape

    return escape(text)


@app.command()
def report(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
           node: str | None = typer.Option(None, help="the node to report on (default: this one)"),
           cycles: str | None = typer.Option(None, "--cycles",
                                                help="cycles A:B (from 1, both included), A:, :B or A"),
           out: Path = typer.Option(Path("ptzjepa-report"), "--out", help="folder for index.html and the PNGs"),
           publish: bool = typer.Option(True, help="also store the report, for the status page"),
           max_frames: int = typer.Option(1500, min=10, help="newest frames measured (whole rounds)"),
           tsne: bool = typer.Option(True, help="t-SNE projection too (needs scikit-learn)")) -> None:
    """Write an HTML report with plots: losses, where the camera pointed, episodes, embeddings,
    world-model error per region over cycles (reads the store, and Redis where it can)."""
    from services.coordinator.report import ReportError, build_report
    from services.coordinator.report.redis_access import open_redis

    settings = _settings(config, data_dir)
    setup_logging("WARNING")
    client, problem = open_redis(settings)
    if problem:
        console.print(f"[yellow]{_plain(problem)}: reporting from the store alone[/yellow]")
    try:
        result = build_report(settings, out, node=node, cycles=cycles, redis_client=client,
                              redis_problem=problem, max_frames=max_frames, tsne=tsne, publish=publish)
    except (ReportError, ValueError) as exc:
        console.print(f"[red]no report:[/red] {_plain(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        if client is not None:
            client.close()
    s = result["summary"]
    console.print(f"[green]report written[/green]: {_plain(str(Path(out).resolve() / 'index.html'))} "
                  f"({len(result['figures'])} plots; {s['cycles']} cycles, {s['frames']} frames, "
                  f"{s['versions']} world-model versions, {s['agents']} agents, {result['seconds']} s)")
    if result.get("published"):
        console.print(f"  stored as {result['published']} (shown on the status page)")
    for note in result["notes"]:
        console.print(f"  [yellow]missing:[/yellow] {_plain(note)}")


@app.command("export-embeddings")
def export_embeddings_command(
        out: Path = typer.Option(..., "--out", help="FILE.safetensors (+ FILE.safetensors.json) or FILE.parquet"),
        config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
        slot: str | None = typer.Option(None, help="world-model slot (default: the newest version)"),
        version: str | None = typer.Option(None, help="version (default: the slot's latest)"),
        node: str | None = typer.Option(None, help="whose frames (default: this node)"),
        all_nodes: bool = typer.Option(False, "--all-nodes", help="frames of every node"),
        tokens: bool = typer.Option(False, help="every token (N, T, D) instead of the token mean (N, D)"),
        max_frames: int | None = typer.Option(None, min=1, help="only the newest frames (whole rounds)")) -> None:
    """Write embeddings of recorded frames (context encoder, target encoder, predictor) with their
    poses and times to a columnar file."""
    from services.coordinator.export import ExportError, export_embeddings
    from services.coordinator.report.redis_access import open_redis

    settings = _settings(config, data_dir)
    setup_logging("WARNING")
    client, _problem = open_redis(settings)
    latest = newest = None
    if client is not None:  # published records, not files a refused publication left behind
        from shared import versions as wm_versions
        from shared.keys import Keys
        from shared.leases import LeaseManager

        manager = LeaseManager(client, Keys(settings.redis_prefix), settings.node)
        latest = manager.latest
        newest = lambda: wm_versions.newest(manager, settings.worldmodel.slot_names())  # noqa: E731
    try:
        result = export_embeddings(settings, out, slot=slot, version=version, node=node,
                                   all_nodes=all_nodes, tokens=tokens, max_frames=max_frames,
                                   redis_latest=latest, redis_newest=newest)
    except ExportError as exc:
        console.print(f"[red]nothing exported:[/red] {_plain(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        if client is not None:
            client.close()
    console.print(f"[green]{result['frames']} frames[/green] embedded with {result['slot']}/"
                  f"{result['version'][:12]} ({result['pooling']}, dim {result['dim']}): "
                  + _plain(", ".join(result["out"])))
    for note in result["notes"]:
        console.print(f"  [yellow]note:[/yellow] {_plain(note)}")


@app.command("import-legacy")
def import_legacy_command(
        path: Path = typer.Argument(..., help="the original's persistence folder (or its collected_imgs/)"),
        config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
        node: str | None = typer.Option(None, help="import as this node (default: this one)"),
        camera: str | None = typer.Option(None, help="camera name (default: camera.name)"),
        camera_brand: str = typer.Option("hanwha", "--camera-brand", "-cb",
                                         help="hanwha (0) or axis (1): Axis zoom units become magnification"),
        axis_max_zoom: float | None = typer.Option(None, help="Axis: magnification at zoom unit 9999"),
        movements: int | None = typer.Option(None, "--movements", "-mv",
                                                help="the original's -mv: sweep rounds of mv+1 frames"),
        timezone: str = typer.Option("UTC", help="time zone of the names' times (the container's)"),
        ignore_positions: bool = typer.Option(False, help="do not group frames by the positions files"),
        dry_run: bool = typer.Option(False, help="check everything and say what would be imported")) -> None:
    """Import the original PTZJEPA's frames (and its positions/commands files) as `import` rounds."""
    from services.coordinator.legacy import LegacyImportError, import_plan, scan
    from shared.store import store_for

    settings = _settings(config, data_dir)
    brand = {"0": "hanwha", "1": "axis"}.get(camera_brand, camera_brand.lower())
    try:
        plan = scan(path, camera_brand=brand, movements=movements, timezone=timezone,
                    ignore_positions=ignore_positions,
                    axis_max_zoom=axis_max_zoom or settings.camera.zoom_max)
        if dry_run:
            console.print(f"would import {plan.frames} frames in {len(plan.rounds)} rounds as {plan.import_id}")
            result = None
        else:
            result = import_plan(store_for(settings), plan, node=node or settings.node,
                                 camera=camera or settings.camera.name)
    except LegacyImportError as exc:
        console.print(f"[red]import refused:[/red] {_plain(str(exc))}")
        raise typer.Exit(1) from None
    if result:
        console.print(f"[green]imported {result['frames']} frames[/green] in {result['rounds']} rounds "
                      f"({result['agent_rounds']} agent, {result['sweep_rounds']} sweep) as "
                      f"{result['import_id']}, {result['first_frame']} .. {result['last_frame']}")
    for note in plan.notes:
        console.print(f"  [yellow]note:[/yellow] {_plain(note)}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def legacy(ctx: typer.Context) -> None:
    """Translate the original's command line (`main.py -rm lifelong -it 20 -mv 20 -cb 0 ...`) into
    ptzjepa's configuration and commands. A camera password flag is refused."""
    from services.coordinator.legacy import PasswordOnCommandLine, translate

    args = list(ctx.args)
    if args and args[0] in ("--help", "-h"):
        console.print("usage: ptzjepa legacy FLAGS-OF-THE-ORIGINAL-main.py  (see docs/migrating.md)")
        return
    try:
        result = translate(args)
    except PasswordOnCommandLine as exc:
        console.print(f"[red]refused:[/red] {_plain(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        console.print(f"[red]{_plain(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print("# ptzjepa.yaml (use with --config ptzjepa.yaml or PTZJEPA_CONFIG=ptzjepa.yaml)")
    print(result.config_yaml(), end="")
    console.print("\n# commands")
    for command in result.commands:
        print(command)
    console.print("\n# notes")
    for note in result.notes:
        console.print(f"- {note}", soft_wrap=True, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
