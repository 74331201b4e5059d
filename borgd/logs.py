"""structlog set-up for the daemon: journald-friendly lines or JSON, secrets redacted.

Configured once, in `borgd.daemon.main`; everything else just calls
`structlog.get_logger(__name__)`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = frozenset({"passphrase", "password", "secret", "borg_passphrase"})
_PRIORITY = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "info": 6,
    "debug": 7,
}


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No secret value ever reaches a log line, whatever a caller passed."""
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def journald_priority(
    _logger: Any, name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["_priority"] = _PRIORITY.get(event.get("level", name), 6)
    return event


class _PrefixedRenderer:
    """`<N>event key=value` for journald (JOURNAL_STREAM set), plain otherwise."""

    def __init__(self, journald: bool) -> None:
        self._journald = journald
        self._kv = structlog.processors.KeyValueRenderer(
            key_order=["event"], drop_missing=True, sort_keys=False
        )

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        priority = event.pop("_priority", 6)
        text = self._kv(logger, name, event)
        return f"<{priority}>{text}" if self._journald else text


def configure(fmt: str = "text", level: str = "info") -> None:
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        redact,
        structlog.processors.format_exc_info,
    ]
    if fmt == "json":
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ]
    else:
        if not journald:
            processors.insert(0, structlog.processors.TimeStamper(fmt="%H:%M:%S"))
        processors += [journald_priority, _PrefixedRenderer(journald)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
