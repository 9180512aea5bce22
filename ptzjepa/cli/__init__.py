"""The `ptzjepa` command line: start a node, run phases, follow jobs, analyse and migrate.

The CLI is the project's top layer: it may import any service (services import only `shared/`).
"""

from ptzjepa.cli.app import app, main

__all__ = ["app", "main"]
