"""The report's HTML tables of cycles, world-model versions and agents (cells are HTML)."""

from __future__ import annotations

import math
from html import escape

from services.coordinator.report.data import ReportData
from services.coordinator.report.html import _time


def _status(value: str) -> str:
    return f"<span class='status-{escape(value)}'>{escape(value)}</span>"


def cycle_rows(data: ReportData) -> list[list]:
    rows = []
    for c in data.cycles:
        phases = ", ".join(f"{p.get('name')}: {_status(str(p.get('status')))}" for p in c.phases) or "&mdash;"
        started = _time(c.start) if math.isfinite(c.start) else ""
        rows.append([c.label, escape(c.id), _status(c.status), started, phases, len(c.rounds),
                     len(c.versions), len(c.agents)])
    return rows


def version_rows(data: ReportData, cycle_of_version: dict[str, int]) -> list[list]:
    rows = []
    for meta in data.versions:
        losses = meta.get("epoch_losses") or []
        parent = meta.get("parent") or {}
        rows.append([f"c{cycle_of_version.get(meta['version'], '?')}", escape(meta["slot"]),
                     f"<code>{escape(meta['version'][:12])}</code>",
                     f"<code>{escape(str(parent.get('version', ''))[:12])}</code>",
                     meta.get("epochs", ""), f"{losses[-1]:.4g}" if losses else "",
                     escape(str(meta.get("stop_reason", ""))), meta.get("frames_used", ""),
                     _time(meta.get("finished_at"))])
    return rows


def agent_rows(data: ReportData, cycle_of_agent: dict[str, int]) -> list[list]:
    rows = []
    for a in data.agents:
        loss = a.get("final_loss")
        rows.append([f"c{cycle_of_agent.get(a['sha256'], '?')}", f"<code>{escape(a['sha256'][:12])}</code>",
                     f"{escape(str(a.get('wm_slot')))}/<code>{escape(str(a.get('wm_version'))[:12])}</code>",
                     a.get("updates", ""), f"{loss:.4g}" if isinstance(loss, (int, float)) else "",
                     escape(str(a.get("stop_reason", ""))), _time(a.get("trained_at"))])
    return rows
