"""What one borg run prints, line by line: logged, parsed, folded into progress.

`BorgOutput.stderr` is the hot path (``compact`` and ``check`` print one line
per segment, unthrottled): it writes the line to the job log, parses it,
remembers what the exit-code table needs (msgids, the last error text) and
feeds the progress tracker, which only marks the snapshot dirty.  Nothing is
published from there: `BorgOutput.due` is asked by a ticker and answers at
most once per `publish_every` seconds with the fields to publish, and at most
once per `store_every` seconds with the fields to store.  A change that was
published but not yet stored is stored at the next store slot, so the store
never keeps a stale snapshot for long.

Consecutive unfinished ``progress_percent`` lines (one per segment) each
replace the last, so only the newest is parsed — when progress is asked for,
or when any other line arrives.  Finished lines, which end a phase, are always
parsed in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from borgd.core.borg_output import LogMessage, PlainLine, parse_line
from borgd.core.jobs import JobType
from borgd.core.progress import Progress, ProgressTracker, Throttle
from borgd.execution.joblog import JobLog

PUBLISH_EVERY = 1.0  # seconds: "progress at most once a second per job"
STORE_EVERY = 2.0  # seconds

_ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
_PERCENT = '"type": "progress_percent"'
_FINISHED = '"finished": true'


def progress_fields(p: Progress) -> dict[str, Any]:
    """A progress snapshot as job-row fields (the keys D-Bus publishes)."""
    return {
        "progress": p.fraction,
        "progress_message": p.message,
        "current_file": p.current_file,
        "nfiles": p.nfiles,
        "original_size": p.original_size,
        "compressed_size": p.compressed_size,
        "deduplicated_size": p.deduplicated_size,
        "rate": p.rate,
        "eta": p.eta,
    }


@dataclass(frozen=True)
class Due:
    """Progress fields to publish now and/or to store now (None: not now)."""

    publish: dict[str, Any] | None
    store: dict[str, Any] | None


class BorgOutput:
    def __init__(
        self,
        job_type: JobType,
        jlog: JobLog | None,
        *,
        expected_size: int = 0,
        phases: tuple[str, ...] | None = None,
        clock: Callable[[], float],
        publish_every: float = PUBLISH_EVERY,
        store_every: float = STORE_EVERY,
    ) -> None:
        self.tracker = ProgressTracker(job_type, expected_size, phases=phases)
        self._jlog = jlog
        self._clock = clock
        self.msgids: list[str] = []
        self._last_error: str | None = None
        self._last_warning: str | None = None
        self._last_plain: str | None = None
        self._publish = Throttle(publish_every)
        self._store = Throttle(store_every)
        self._unpublished = False
        self._unstored = False
        self._pending: str | None = None  # the newest unparsed progress_percent line
        self.lines = 0

    def stderr(self, line: str) -> None:
        self.lines += 1
        if self._jlog is not None:
            self._jlog.write(line)
        if _PERCENT in line and _FINISHED not in line:
            self._pending = line
            return
        self.flush()
        self._handle(line)

    def flush(self) -> None:
        """Fold the pending progress line into the tracker."""
        if self._pending is not None:
            line, self._pending = self._pending, None
            self._handle(line)

    @property
    def snapshot(self) -> Progress:
        self.flush()
        return self.tracker.snapshot()

    def _handle(self, line: str) -> None:
        event = parse_line(line)
        kind = type(event)
        if kind is LogMessage:
            assert isinstance(event, LogMessage)
            if event.msgid:
                self.msgids.append(event.msgid)
            if event.levelname in _ERROR_LEVELS:
                self._last_error = event.message
            elif event.levelname == "WARNING":
                self._last_warning = event.message
            return
        if kind is PlainLine:
            assert isinstance(event, PlainLine)
            text = event.text.strip()
            if text:
                self._last_plain = text
            return
        if self.tracker.feed(event, self._clock()):
            self._unpublished = self._unstored = True

    @property
    def last_error(self) -> str | None:
        """The detail for the job's message: the last error, else warning, else plain text."""
        return self._last_error or self._last_warning or self._last_plain

    def due(self, now: float) -> Due:
        self.flush()
        publish = self._unpublished and self._publish.due(now)
        store = self._unstored and self._store.due(now)
        if not (publish or store):
            return Due(None, None)
        fields = progress_fields(self.tracker.snapshot())
        if publish:
            self._unpublished = False
        if store:
            self._unstored = False
        return Due(fields if publish else None, fields if store else None)
