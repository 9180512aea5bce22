"""Coming from the original PTZJEPA: import its persistence folder, translate its command line.

See docs/migrating.md for the formats and the mapping. Two tools:

`import_legacy(store, folder, ...)` (`ptzjepa import-legacy PATH`) reads the original's persistence
folder (the `/persistence` volume of its container):

    collected_imgs/{pan},{tilt},{zoom}_{YYYY-mm-dd_HH:MM:SS.ffffff}.jpg   frames (kept with -ki)
    collected_positions/positions_at_{YYYY-mm-dd_HH:MM:SS.ffffff}.txt     one agent round: a
        "pan,tilt,zoom" line per frame (-tp / --track_all)
    collected_commands/commands_at_{same time}.txt                        that round's relative
        moves, a "pan,tilt,zoom" line per move (--track_all)
    collected_embeds/*.pt, world_models/, agents/                          pickles: never loaded

and writes its frames into the store as `source: import` rounds with manifests, exactly like the
rounds a sweep or a navigation writes, plus an import record `imports/<node>/<import id>.json`.
It is strict: every name is parsed and every image decoded *before* anything is written, and any
bad name, corrupt or truncated image, unreadable positions/commands file or pose that does not
match its positions line stops the import with a message naming the files; a failure while writing
removes what this import wrote, so an import is all or nothing. Importing the same folder twice is
refused (the import id is a hash of its files).

`translate(argv)` (`ptzjepa legacy ARGS`) accepts the original's `main.py` flags and answers with
the equivalent ptzjepa configuration and commands. A camera password on the command line is
refused without being echoed: it belongs in the environment or a secret file.

Modules: `scan` (reading and checking the folder), `importer` (writing it), `argv` (the command line).
"""

from services.coordinator.legacy.argv import PasswordOnCommandLine, Translation, translate
from services.coordinator.legacy.importer import import_legacy, import_plan
from services.coordinator.legacy.scan import (
    LegacyFrame,
    LegacyImportError,
    LegacyPlan,
    LegacyRound,
    action_of,
    parse_frame_name,
    scan,
)

__all__ = [
    "LegacyFrame", "LegacyImportError", "LegacyPlan", "LegacyRound", "PasswordOnCommandLine",
    "Translation", "action_of", "import_legacy", "import_plan", "parse_frame_name", "scan", "translate",
]
