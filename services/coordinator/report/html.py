"""The report's HTML page: one file, inline CSS, no scripts, images by relative file name."""

from __future__ import annotations

import datetime as dt
from html import escape

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#666}.missing{background:#fff6e0;border:1px solid #f0c36d;padding:.6em 1em;border-radius:6px}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left}th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .25em}
.status-finished{color:#176f2c}.status-failed{color:#b00020}.status-running{color:#0b5cad}
"""


def _time(t) -> str:
    if t is None:
        return ""
    try:
        return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        return escape(str(t))


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict, figures: list[tuple[str, str, str]], cycles_rows: list[list],
           version_rows: list[list], agent_rows: list[list],
           tables_after: dict[str, tuple[list[str], list[list]]]) -> str:
    """`figures`: (file name, title, caption) of each PNG written; `tables_after`: the (headers,
    rows) of a table shown below the figure of that file name; every other value is text."""
    s = report["summary"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>ptzjepa report: {escape(s['node'])}</title><style>{CSS}</style></head><body>",
             f"<h1>ptzjepa report: node {escape(s['node'])}</h1>",
             f"<p class='meta'>generated {escape(report['generated_at'])}; store "
             f"<code>{escape(report['store'])}</code>; cycles {escape(report['cycles_selected'])} of "
             f"{s['cycles_total']} (from {escape(s['cycle_source'])}); {s['frames']} frames in "
             f"{s['rounds']} rounds "
             + escape(", ".join(f"{k}: {v}" for k, v in sorted(s["frames_by_source"].items())))
             + f"; {s['versions']} world-model versions; {s['agents']} agents.</p>"]
    if report.get("model"):
        m = report["model"]
        parts.append(f"<p class='meta'>surprise and embeddings from world model "
                     f"<code>{escape(m['slot'])}/{escape(m['version'][:12])}</code> ({escape(m['kind'])} "
                     f"file); the error of a move is the mean squared difference between the "
                     f"predicted and the observed next state.</p>")
    if report["notes"]:
        items = "".join(f"<li>{escape(n)}</li>" for n in report["notes"])
        parts.append(f"<div class='missing'><strong>Missing or partial:</strong><ul>{items}</ul></div>")
    for name, title, caption in figures:
        parts.append(f"<h2>{escape(title)}</h2><figure><img src='{escape(name)}' alt='{escape(title)}'>"
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
        headers, rows = tables_after.get(name, ([], []))
        if rows:
            parts.append(_table(headers, rows))
    parts.append("<h2>Cycles</h2>")
    parts.append(_table(["cycle", "id", "status", "started", "phases", "rounds", "WM versions", "agents"],
                        cycles_rows) if cycles_rows else "<p>no cycles</p>")
    parts.append("<h2>World-model versions</h2>")
    parts.append(_table(["cycle", "slot", "version", "parent", "epochs", "final loss", "stop reason",
                         "frames", "finished"], version_rows) if version_rows else "<p>none</p>")
    parts.append("<h2>Agents</h2>")
    parts.append(_table(["cycle", "agent", "world model", "updates", "final loss", "stop reason",
                         "trained"], agent_rows) if agent_rows else "<p>none</p>")
    parts.append("<p class='meta'>Files: "
                 + ", ".join(f"<a href='{escape(n)}'>{escape(n)}</a>" for n, _, _ in figures)
                 + ", <a href='report.json'>report.json</a></p></body></html>")
    return "\n".join(parts)


__all__ = ["_time", "render"]
