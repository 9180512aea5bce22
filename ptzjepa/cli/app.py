"""The `ptzjepa` typer app: every command, registered from the module of its concern.

`ptzjepa up` runs the embedded node until Ctrl-C; `ptzjepa demo` starts it, runs learning cycles
with progress bars, says where the frames are and what they show, and shuts down. Phase commands
talk to a running coordinator over REST, exactly as any other client would.
"""

from __future__ import annotations

import typer

from ptzjepa.cli import analysis, jobs, legacy, node, run

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ptzjepa: lifelong curiosity-driven world models for PTZ cameras")

# Commands that pass their arguments on untouched (to the emulators, or as the original's flags).
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

app.command()(run.up)
app.command()(run.demo)
app.command()(node.status)
app.command()(node.down)
app.command()(jobs.collect)
app.command()(jobs.phase)
app.command()(jobs.cycle)
app.command()(jobs.lifelong)
app.command()(jobs.models)
app.command()(jobs.job)
app.command()(run.worker)
app.command(context_settings=PASS_THROUGH, add_help_option=False)(run.emulate)
app.command()(analysis.report)
app.command("export-embeddings")(analysis.export_embeddings_command)
app.command("import-legacy")(legacy.import_legacy_command)
app.command(context_settings=PASS_THROUGH, add_help_option=False)(legacy.legacy)


def main() -> None:
    app()
