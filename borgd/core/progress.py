"""One progress model for every job type, fed with parsed borg events.

No clock is read here: every call takes ``now``, a monotonic time in seconds.

* Percent jobs (prune, compact, check, restore): ``current/total`` of borg's
  ``progress_percent`` lines.  ``check`` runs several phases, each counting from
  0 to 100 %; with `phases` (see `check_phases`) they are laid end to end so the
  fraction only grows.  The fraction never goes backwards.
* Backup: borg does not know the total, so the fraction is
  ``original_size / expected_size`` (the profile's previous archive), capped at
  0.99 until `finish`; -1 (unknown) without an expectation.
* ``rate`` is bytes/s over a ~5 s window: original size for a backup, extracted
  bytes for a restore, 0 for jobs that count segments (compact, check).
* ``eta`` (µs, 0 = unknown) comes from the rate of the job's own measure of
  work, so segment-counting jobs get an ETA too.

`ProgressTracker.feed` costs a few attribute updates per event: compact and
check send one line per segment, unthrottled.  `Throttle` decides when to
publish or store.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from borgd.core.borg_output import (
    ArchiveProgress,
    ArchiveResult,
    Event,
    ProgressMessage,
    ProgressPercent,
)
from borgd.core.jobs import JobType

__all__ = ["Progress", "ProgressTracker", "Throttle", "check_phases"]

BACKUP_CAP = 0.99
RATE_WINDOW = 5.0  # seconds
_SAMPLE_EVERY = 0.25  # seconds between rate samples
_MIN_RATE_SPAN = 0.5  # seconds of samples before a rate is reported
_FRACTION_STEP = 0.001  # smaller changes are not "meaningful"


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0..1, or -1 when unknown
    message: str
    current_file: str
    nfiles: int
    original_size: int
    compressed_size: int
    deduplicated_size: int
    rate: float  # bytes/s
    eta: int  # microseconds; 0 = unknown


UNKNOWN = Progress(-1.0, "", "", 0, 0, 0, 0, 0.0, 0)

_CHECK_REPOSITORY = "repository.check"
_CHECK_VERIFY = "check.verify_data"
_CHECK_ARCHIVES = "check.rebuild_refcounts"


def check_phases(
    *, repository_only: bool = False, archives_only: bool = False, verify_data: bool = False
) -> tuple[str, ...]:
    """The msgids of the ``progress_percent`` phases a ``borg check`` will run, in order."""
    phases: list[str] = []
    if not archives_only:
        phases.append(_CHECK_REPOSITORY)
    if not repository_only:
        if verify_data:
            phases.append(_CHECK_VERIFY)
        phases.append(_CHECK_ARCHIVES)
    return tuple(phases)


_DEFAULT_PHASES: dict[JobType, tuple[str, ...]] = {
    JobType.CHECK: check_phases(),
    JobType.COMPACT: ("repository.compact_segments",),
    JobType.PRUNE: ("prune",),
    JobType.RESTORE: ("extract",),
}
_BYTE_PHASES = frozenset({"extract"})


class ProgressTracker:
    """Folds a job's events into a `Progress` snapshot."""

    __slots__ = (
        "_compressed",
        "_current_file",
        "_dedup",
        "_expected",
        "_finished",
        "_fraction",
        "_is_backup",
        "_last_now",
        "_message",
        "_nfiles",
        "_original",
        "_phase_bytes",
        "_phases",
        "_samples",
        "_work",
        "_work_bytes",
        "job_type",
    )

    def __init__(
        self,
        job_type: JobType,
        expected_size: int = 0,
        *,
        phases: tuple[str, ...] | None = None,
    ) -> None:
        self.job_type = job_type
        self._is_backup = job_type is JobType.BACKUP
        self._expected = max(0, expected_size)
        self._phases = phases if phases is not None else _DEFAULT_PHASES.get(job_type, ())
        self._fraction = -1.0
        self._message = ""
        self._current_file = ""
        self._nfiles = 0
        self._original = 0
        self._compressed = 0
        self._dedup = 0
        self._finished = False
        # rate/eta: samples of (now, work, bytes); "work" is bytes for a backup and the
        # overall fraction for a percent job.
        self._work = 0.0
        self._work_bytes = 0
        self._phase_bytes = False
        self._last_now = 0.0
        self._samples: deque[tuple[float, float, int]] = deque()

    # --- feeding ---

    def feed(self, event: Event, now: float) -> bool:
        """Apply one event; True when the snapshot changed meaningfully."""
        if isinstance(event, ProgressPercent):
            changed = self._percent(event)
        elif isinstance(event, ArchiveProgress):
            changed = self._archive(event)
        elif isinstance(event, ProgressMessage):
            message = "" if event.finished else event.message.removeprefix("Remote: ")
            changed = message != self._message
            self._message = message
        else:
            return False
        self._sample(now)
        return changed

    def _percent(self, ev: ProgressPercent) -> bool:
        phases = self._phases
        changed = False
        if ev.finished:
            if ev.msgid in phases and not self._is_backup:
                fraction = (phases.index(ev.msgid) + 1) / len(phases)
                changed = self._set_fraction(fraction)
                self._work = max(0.0, self._fraction)
            if self._message:
                self._message = ""
                changed = True
            return changed
        message = ev.message
        if message.startswith("Remote: "):
            message = message[8:]
        if message != self._message:
            self._message = message
            changed = True
        if ev.info and ev.info[0] != self._current_file:
            self._current_file = ev.info[0]
            changed = True
        if self._is_backup:
            # e.g. cache.sync during create: a phase message, not the backup's progress
            return changed
        if ev.total > 0:
            part = min(1.0, max(0.0, ev.current / ev.total))
            if phases:
                if ev.msgid in phases:
                    fraction = (phases.index(ev.msgid) + part) / len(phases)
                    changed |= self._set_fraction(fraction)
            else:
                changed |= self._set_fraction(part)
            if ev.msgid in _BYTE_PHASES:
                self._phase_bytes = True
                self._work_bytes = ev.current
        self._work = max(0.0, self._fraction)
        return changed

    def _set_fraction(self, fraction: float) -> bool:
        if fraction <= self._fraction:
            return False
        old = self._fraction
        self._fraction = fraction
        if old < 0:
            # Rates start when the amount of work is known (not during "Calculating…").
            self._samples.clear()
        return old < 0 or int(fraction / _FRACTION_STEP) != int(old / _FRACTION_STEP)

    def _archive(self, ev: ArchiveProgress) -> bool:
        if ev.finished:
            # The last archive_progress has no figures: keep the ones we have.
            changed = self._message != "Finishing the archive"
            self._message = "Finishing the archive"
            return changed
        changed = (
            ev.original_size != self._original
            or ev.nfiles != self._nfiles
            or ev.path != self._current_file
        )
        self._original = ev.original_size
        self._compressed = ev.compressed_size
        self._dedup = ev.deduplicated_size
        self._nfiles = ev.nfiles
        self._current_file = ev.path
        self._work = float(ev.original_size)
        self._work_bytes = ev.original_size
        if self._message != "Backing up files":
            self._message = "Backing up files"
            changed = True
        if self._expected > 0 and not self._finished:
            fraction = min(BACKUP_CAP, ev.original_size / self._expected)
            changed |= self._set_fraction(fraction)
        return changed

    def _sample(self, now: float) -> None:
        self._last_now = now
        samples = self._samples
        if not samples or now - samples[-1][0] >= _SAMPLE_EVERY:
            samples.append((now, self._work, self._work_bytes))
            horizon = now - RATE_WINDOW
            while len(samples) > 2 and samples[1][0] <= horizon:
                samples.popleft()

    def finish(self, result: ArchiveResult | None = None) -> Progress:
        """borg exited successfully: fraction 1, and borg's final figures for a backup."""
        self._finished = True
        self._fraction = 1.0
        self._message = ""
        if result is not None:
            self._original = result.original_size
            self._compressed = result.compressed_size
            self._dedup = result.deduplicated_size
            self._nfiles = result.nfiles
        return self.snapshot()

    # --- reading ---

    def _rates(self) -> tuple[float, float]:
        """(work per second, bytes per second) over the window, 0 when unknown."""
        samples = self._samples
        if not samples:
            return 0.0, 0.0
        t0, w0, b0 = samples[0]
        span = self._last_now - t0
        if span < _MIN_RATE_SPAN:
            return 0.0, 0.0
        return (self._work - w0) / span, (self._work_bytes - b0) / span

    def snapshot(self) -> Progress:
        work_rate, byte_rate = self._rates()
        byte_rate = max(0.0, byte_rate)
        eta = 0
        if not self._finished and work_rate > 0:
            if self._is_backup:
                remaining = self._expected - self._original
                if self._expected > 0 and remaining > 0 and self._fraction < BACKUP_CAP:
                    eta = int(remaining / work_rate * 1_000_000)
            elif self._fraction >= 0:
                eta = int((1.0 - self._fraction) / work_rate * 1_000_000)
        has_bytes = self._is_backup or self._phase_bytes
        return Progress(
            fraction=self._fraction,
            message=self._message,
            current_file=self._current_file,
            nfiles=self._nfiles,
            original_size=self._original,
            compressed_size=self._compressed,
            deduplicated_size=self._dedup,
            rate=byte_rate if has_bytes else 0.0,
            eta=eta,
        )


class Throttle:
    """At most one "yes" per `min_interval` seconds ("publish once a second")."""

    __slots__ = ("_last", "min_interval")

    def __init__(self, min_interval: float) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must be >= 0")
        self.min_interval = min_interval
        self._last: float | None = None

    def due(self, now: float) -> bool:
        """True (and remember `now`) when nothing was due within the last interval."""
        last = self._last
        if last is None or now - last >= self.min_interval or now < last:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        """Make the next `due` call return True (e.g. after a status change)."""
        self._last = None
