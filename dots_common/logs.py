"""Logging to stderr in a form journald understands: each line starts with
a syslog priority prefix (``<3>`` error … ``<7>`` debug), which journald
turns into the entry's priority. On a terminal the prefix is left out."""

from __future__ import annotations

import logging
import sys

PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
              logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    def __init__(self, prefix: bool) -> None:
        super().__init__("%(name)s: %(message)s")
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.prefix:
            return f"{record.levelname.lower()}: {text}"
        priority = PRIORITIES.get(record.levelno, 6)
        # a multi-line message (a traceback) keeps its priority on every line
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(prefix=not sys.stderr.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
