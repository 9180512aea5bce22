"""Analysis reports of a node's learning (`ptzjepa report`); see docs/analysis.md.

Importing this package loads neither torch nor matplotlib; building a report does.
"""

from services.coordinator.report.build import REPORT_PREFIX, build_report, publish_report
from services.coordinator.report.data import parse_cycle_range
from services.coordinator.report.errors import ReportError

__all__ = ["REPORT_PREFIX", "ReportError", "build_report", "parse_cycle_range", "publish_report"]
