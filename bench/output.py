"""What every benchmark does with its figures: JSON to `--out` (folders made) and to stdout, with
the machine it ran on (other work on a shared host skews timings, so the load is recorded too)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(load_start: float | None = None) -> dict[str, Any]:
    """CPU, cores, torch threads (when torch is loaded) and the 1-minute load average now and, when
    given, at the start of the measurement."""
    import sys
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(),
                            "cores": os.cpu_count()}
    if "torch" in sys.modules:
        info["threads"] = sys.modules["torch"].get_num_threads()
    if load_start is not None:
        info["load_avg_1m_at_start"] = round(load_start, 2)
    info["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return info


def write_result(out: str | os.PathLike, result: dict[str, Any], *, echo: bool = True,
                 **json_options: Any) -> str:
    """Write `result` as indented JSON to `out` (whole or not at all: through a temporary file
    and a rename) and, with `echo`, print it; returns the text."""
    text = json.dumps(result, indent=2, **json_options)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    if echo:
        print(text)
    return text
