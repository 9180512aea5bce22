"""The report's one error: what `ptzjepa report` prints (exit code 1) instead of a report."""

from __future__ import annotations


class ReportError(RuntimeError):
    pass
