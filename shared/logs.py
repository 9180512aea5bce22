"""Logging set-up shared by every process, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import re

_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
    re.compile(r"(?i)(password=)[^&\s]+"),
    re.compile(r"(redis://[^:/@\s]*:)[^@\s]+(@)"),
]


class SecretFilter(logging.Filter):
    """Masks bearer tokens, password query parameters and Redis URL passwords in log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = message
        for pattern in _SECRET_PATTERNS:
            cleaned = pattern.sub(_masked, cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def _masked(match: re.Match[str]) -> str:
    """The secret's prefix (group 1), stars, and its suffix (group 2) when the pattern has one."""
    suffix = match.group(2) if match.lastindex and match.lastindex > 1 else ""
    return match.group(1) + "***" + suffix


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
