"""What every command shares: the console, the common options, settings and the coordinator client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from services.agent.setup import agent_config
from services.worldmodel.setup import model_config, train_config
from shared.config import ConfigError, Settings, load_settings

console = Console()

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (PTZJEPA_CONFIG)")
DataDirOpt = typer.Option(None, "--data-dir", help="where Redis, the store and logs live")
UrlOpt = typer.Option(None, "--url", help="coordinator URL (default from the config)")


def load_cli_settings(config: Path | None, data_dir: Path | None = None,
                      defaults: dict[str, Any] | None = None) -> Settings:
    """The settings, or exit code 2 with the configuration error."""
    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    try:
        return load_settings(config, defaults=defaults, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def load_node_settings(config: Path | None, data_dir: Path | None = None,
                       defaults: dict[str, Any] | None = None) -> Settings:
    """The settings of a node that this command starts, with the frozen sections
    (`worldmodel.model`, `worldmodel.train`, `agent.config`) built once: the settings model holds
    them as free mappings (their dataclasses live in the services), so without this check a typo
    there would surface only when the first job of that phase runs."""
    settings = load_cli_settings(config, data_dir, defaults)
    try:
        model_config(settings)
        train_config(settings)
        agent_config(settings)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    return settings


def coordinator_client(settings: Settings, url: str | None) -> httpx.Client:
    """An HTTP client for the coordinator's REST API (with the API token when one is set)."""
    base = url or f"http://{settings.services.host}:{settings.services.coordinator_port}"
    headers = {}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    return httpx.Client(base_url=base, headers=headers, timeout=30.0)


def plain(text: str) -> str:
    """`text` shown as it is (paths and messages may hold rich markup such as [brackets])."""
    return escape(text)
