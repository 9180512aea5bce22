"""Offline analysis of what a node learned: `report` (docs/analysis.md) and `export-embeddings`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ptzjepa.cli.common import ConfigOpt, DataDirOpt, console, load_cli_settings, plain
from shared.config import Settings
from shared.logs import setup_logging
from shared.scene import Scene


def report_scene(settings: Settings, node: str | None) -> Scene:
    """The scene of the node reported on: the simulated world for this configuration's node,
    else the generic scene (with a note saying why)."""
    scene = Scene(settings.camera.ranges())
    if node is not None and node != settings.node:
        scene.notes.append(f"node {node} is not this configuration's node ({settings.node}): its simulated "
                           f"scene is unknown here, so maps are scatters and regions are pan sectors")
        return scene
    if settings.camera.driver != "sim":
        return scene
    try:  # lazy: an image that holds the coordinator and not the camera package reports without it
        from services.camera.sim.scene_map import scene_for
    except ImportError as exc:
        scene.notes.append(f"the simulator is not installed here ({exc}): maps are scatters and "
                           f"regions are pan sectors")
        return scene
    return scene_for(settings)


def _print_report(result: dict[str, Any], out: Path) -> None:
    s = result["summary"]
    console.print(f"[green]report written[/green]: {plain(str(Path(out).resolve() / 'index.html'))} "
                  f"({len(result['figures'])} plots; {s['cycles']} cycles, {s['frames']} frames, "
                  f"{s['versions']} world-model versions, {s['agents']} agents, {result['seconds']} s)")
    for bench in result.get("learning_curves", []):
        console.print(f"  learning curves of {plain(bench['file'])}: {bench['figure']}")
    if result.get("published"):
        console.print(f"  stored as {result['published']} (shown on the status page)")
    for note in result["notes"]:
        console.print(f"  [yellow]missing:[/yellow] {plain(note)}")


def report(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
           node: str | None = typer.Option(None, help="the node to report on (default: this one)"),
           cycles: str | None = typer.Option(None, "--cycles",
                                             help="cycles A:B (from 1, both included), A:, :B or A"),
           out: Path = typer.Option(Path("ptzjepa-report"), "--out",
                                    help="folder for index.html and the PNGs"),
           publish: bool = typer.Option(True, help="also store the report, for the status page"),
           max_frames: int = typer.Option(1500, min=10, help="newest frames measured (whole rounds)"),
           tsne: bool = typer.Option(True, help="t-SNE projection too (needs scikit-learn)"),
           curiosity: list[Path] | None = typer.Option(
               None, "--curiosity", help="a bench/curiosity.py result (JSON): plot its learning "
                                         "curves too (repeatable)")) -> None:
    """Write an HTML report with plots: losses, where the camera pointed, episodes, embeddings,
    world-model error per region over cycles (reads the store, and Redis where it can), and the
    learning curves of curiosity benchmark results given with --curiosity."""
    from services.coordinator.report import ReportError, build_report
    from services.coordinator.report.redis_access import open_redis

    settings = load_cli_settings(config, data_dir)
    setup_logging("WARNING")
    client, problem = open_redis(settings)
    if problem:
        console.print(f"[yellow]{plain(problem)}: reporting from the store alone[/yellow]")
    try:
        result = build_report(settings, out, scene=report_scene(settings, node), node=node,
                              cycles=cycles, redis_client=client, redis_problem=problem,
                              max_frames=max_frames, tsne=tsne, publish=publish,
                              curiosity=curiosity or [])
    except (ReportError, ValueError) as exc:
        console.print(f"[red]no report:[/red] {plain(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        if client is not None:
            client.close()
    _print_report(result, out)


def _published_versions(client: Any, settings: Settings) -> tuple[Callable | None, Callable | None]:
    """Redis's `latest(slot)` and `newest()` of published versions (not files a refused
    publication left behind), or (None, None) without Redis."""
    if client is None:
        return None, None
    from shared import versions as wm_versions
    from shared.keys import Keys
    from shared.leases import LeaseManager

    manager = LeaseManager(client, Keys(settings.redis_prefix), settings.node)

    def newest() -> Any:
        return wm_versions.newest(manager, settings.worldmodel.slot_names())

    return manager.latest, newest


def export_embeddings_command(
        out: Path = typer.Option(..., "--out",
                                 help="FILE.safetensors (+ FILE.safetensors.json) or FILE.parquet"),
        config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt,
        slot: str | None = typer.Option(None, help="world-model slot (default: the newest version)"),
        version: str | None = typer.Option(None, help="version (default: the slot's latest)"),
        node: str | None = typer.Option(None, help="whose frames (default: this node)"),
        all_nodes: bool = typer.Option(False, "--all-nodes", help="frames of every node"),
        tokens: bool = typer.Option(False, help="every token (N, T, D) instead of the token mean (N, D)"),
        max_frames: int | None = typer.Option(None, min=1,
                                              help="only the newest frames (whole rounds)")) -> None:
    """Write embeddings of recorded frames (context encoder, target encoder, predictor) with their
    poses and times to a columnar file."""
    from services.coordinator.export import ExportError, export_embeddings
    from services.coordinator.report.redis_access import open_redis

    settings = load_cli_settings(config, data_dir)
    setup_logging("WARNING")
    client, _problem = open_redis(settings)
    latest, newest = _published_versions(client, settings)
    try:
        result = export_embeddings(settings, out, slot=slot, version=version, node=node,
                                   all_nodes=all_nodes, tokens=tokens, max_frames=max_frames,
                                   redis_latest=latest, redis_newest=newest)
    except ExportError as exc:
        console.print(f"[red]nothing exported:[/red] {plain(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        if client is not None:
            client.close()
    console.print(f"[green]{result['frames']} frames[/green] embedded with {result['slot']}/"
                  f"{result['version'][:12]} ({result['pooling']}, dim {result['dim']}): "
                  + plain(", ".join(result["out"])))
    for note in result["notes"]:
        console.print(f"  [yellow]note:[/yellow] {plain(note)}")
