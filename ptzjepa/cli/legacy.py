"""Coming from the original PTZJEPA (docs/migrating.md): `import-legacy` and `legacy`."""

from __future__ import annotations

from pathlib import Path

import typer

from ptzjepa.cli.common import ConfigOpt, DataDirOpt, console, load_cli_settings, plain
from services.coordinator.legacy import LegacyPlan


def _print_import(result: dict | None, plan: LegacyPlan) -> None:
    if result:
        console.print(f"[green]imported {result['frames']} frames[/green] in {result['rounds']} rounds "
                      f"({result['agent_rounds']} agent, {result['sweep_rounds']} sweep) as "
                      f"{result['import_id']}, {result['first_frame']} .. {result['last_frame']}")
    for note in plan.notes:
        console.print(f"  [yellow]note:[/yellow] {plain(note)}")


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

    settings = load_cli_settings(config, data_dir)
    brand = {"0": "hanwha", "1": "axis"}.get(camera_brand, camera_brand.lower())
    try:
        plan = scan(path, camera_brand=brand, movements=movements, timezone=timezone,
                    ignore_positions=ignore_positions,
                    axis_max_zoom=axis_max_zoom or settings.camera.zoom_max)
        if dry_run:
            console.print(f"would import {plan.frames} frames in {len(plan.rounds)} rounds as "
                          f"{plan.import_id}")
            result = None
        else:
            result = import_plan(store_for(settings), plan, node=node or settings.node,
                                 camera=camera or settings.camera.name)
    except LegacyImportError as exc:
        console.print(f"[red]import refused:[/red] {plain(str(exc))}")
        raise typer.Exit(1) from None
    _print_import(result, plan)


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
        console.print(f"[red]refused:[/red] {plain(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        console.print(f"[red]{plain(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print("# ptzjepa.yaml (use with --config ptzjepa.yaml or PTZJEPA_CONFIG=ptzjepa.yaml)")
    print(result.config_yaml(), end="")
    console.print("\n# commands")
    for command in result.commands:
        print(command)
    console.print("\n# notes")
    for note in result.notes:
        console.print(f"- {note}", soft_wrap=True, markup=False)
