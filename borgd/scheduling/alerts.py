"""Desktop notifications: a failed job, an overdue profile, a backup held back too long.

One notification per *episode* (the :class:`~borgd.system.notifications.Notifier`
keeps the episodes):

* ``failure:<profile>/<type>`` — a job failed; the episode ends when a job of
  the same profile and type succeeds (or ends with a warning);
* ``overdue:<profile>`` — from the :class:`~borgd.scheduling.overdue.OverdueWatcher`;
  ends when the profile is no longer overdue;
* ``overdue:<profile>/disk`` — the reminder to connect the profile's disk
  ("connect LABEL to back up PROFILE"), once per overdue episode, when the disk
  is known to be away after the episode began (at its start, the overdue
  notification itself is the reminder);
* ``blocked:<profile>`` — a due backup of the profile has been held back by a
  condition for ``blocked_after`` or longer (also across its occurrences
  being overtaken); ends when no backup of the profile is held back.

Each kind can be switched off (``borgd --notify``).  The alerts learn of jobs
from :class:`~borgd.events.Events`, send from their own task, and sleep on a
wall-clock timer only while a held-back backup is waiting for its
threshold.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from borgd.clock import Clock, to_datetime
from borgd.core.disks import reminder
from borgd.core.jobs import JobStatus, JobType
from borgd.core.records import Job
from borgd.events import IgnoresEvents
from borgd.scheduling.timer import Timer
from borgd.scheduling.waker import Waker
from borgd.store import Store

log = structlog.get_logger(__name__)

DEFAULT_BLOCKED_AFTER_US = 3600 * 1_000_000

REASON_TEXT = {
    "on-battery": "the computer runs on battery",
    "metered-network": "the network connection is metered",
    "network-unavailable": "the network is not available",
    "repository-unavailable": "the repository's disk is not connected",
    "secret-unavailable": "the keyring holding the passphrase is locked",
}


class NotifierLike(Protocol):
    @property
    def enabled(self) -> frozenset[str]: ...
    async def notify(self, key: str, summary: str, body: str) -> bool: ...
    def clear(self, key: str) -> None: ...


def when_text(us: int) -> str:
    """A moment as people read it in a notification (local time, with its zone)."""
    return to_datetime(us).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _overdue_body(info: dict[str, Any]) -> str:
    last = int(info.get("last_success") or 0)
    age = f"maximum age {_duration(int(info.get('max_age') or 0))}"
    if last:
        return f"No successful backup since {when_text(last)} ({age})."
    return f"No successful backup yet ({age})."


def _duration(us: int) -> str:
    minutes = us // 60_000_000
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(p for p in parts if p and not (p == "0 min" and (days or hours)))


class Alerts(IgnoresEvents):
    def __init__(
        self,
        *,
        notifier: NotifierLike,
        store: Store,
        clock: Clock,
        timer: Timer,
        blocked_after: int = DEFAULT_BLOCKED_AFTER_US,
        on_blocked: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.notifier = notifier
        # Also told of each blocked episode (profile, held back since, reason): the outbox.
        self.on_blocked = on_blocked
        self.store = store
        self.clock = clock
        self.blocked_after = blocked_after
        self.waker = Waker(timer)
        self._pending: deque[tuple[str, str, str]] = deque()
        self._clear: deque[str] = deque()
        self._blocked_since: dict[str, int] = {}
        self._blocked_sent: set[str] = set()
        self.deadline: int | None = None
        # The disk to connect for an overdue profile (its label), None when not known
        # to be away: set by the disk use cases.  One reminder per overdue episode.
        self.connect_label: Callable[[str], str | None] = lambda profile: None
        self._overdue: dict[str, dict[str, Any]] = {}
        self._reminded: set[str] = set()

    def poke(self) -> None:
        self.waker.poke()

    def _send(self, key: str, summary: str, body: str) -> None:
        self._pending.append((key, summary, body))
        self.poke()

    def _end(self, key: str) -> None:
        self._clear.append(key)
        self.poke()

    async def run(self) -> None:
        while True:
            since = self.waker.generation
            await self.flush()
            self.deadline = self.check_blocked()
            await self.waker.wait(self.deadline, since=since)

    async def flush(self) -> None:
        """Send what is pending, in order (episode ends first)."""
        while self._clear or self._pending:
            while self._clear:
                self.notifier.clear(self._clear.popleft())
            if self._pending:
                key, summary, body = self._pending.popleft()
                try:
                    await self.notifier.notify(key, summary, body)
                except Exception:
                    log.exception("alerts.notify_failed", key=key)

    # -- held-back backups ---------------------------------------------------------

    def check_blocked(self) -> int | None:
        """Notify for backups held back too long; return when the next one will be."""
        now = self.clock()
        held: dict[str, tuple[int, str]] = {}
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            if intent.type != JobType.BACKUP.value or intent.blocked_by in ("", "blackout"):
                continue  # a blackout window is the user's own wish, not a fault
            profile = intent.profile
            since = min(intent.scheduled_for, held.get(profile, (now, ""))[0])
            held[profile] = (since, intent.blocked_by)
        for profile in set(self._blocked_since) - set(held):
            del self._blocked_since[profile]
            self._blocked_sent.discard(profile)
            self.notifier.clear(f"blocked:{profile}")
        desktop = "blocked" in self.notifier.enabled
        if not desktop and self.on_blocked is None:
            self._blocked_since.update({p: s for p, (s, _) in held.items()})
            return None
        deadline: int | None = None
        for profile, (first_seen, reason) in held.items():
            since = self._blocked_since.setdefault(profile, first_seen)
            due = since + self.blocked_after
            if now >= due:
                if profile not in self._blocked_sent:  # one try per episode
                    self._blocked_sent.add(profile)
                    if self.on_blocked is not None:
                        try:
                            self.on_blocked(profile, since, reason)
                        except Exception:
                            log.exception("alerts.on_blocked_failed", profile=profile)
                    if desktop:
                        self._pending.append(
                            (
                                f"blocked:{profile}",
                                f"Backup of {profile} is waiting",
                                f"Held back since {when_text(since)}: "
                                f"{REASON_TEXT.get(reason, reason)}.",
                            )
                        )
            else:
                deadline = due if deadline is None else min(deadline, due)
        if self._pending:
            self.poke()
        return deadline

    # -- overdue (from the OverdueWatcher) -----------------------------------------

    def overdue(self, profile: str, overdue: bool, info: dict[str, Any]) -> None:
        key = f"overdue:{profile}"
        if not overdue:
            self._overdue.pop(profile, None)
            self._reminded.discard(profile)
            self._end(key)
            self._end(f"{key}/disk")
            return
        self._overdue[profile] = info
        label = self._label(profile)
        if label is None:
            self._send(key, f"Backups of {profile} are overdue", _overdue_body(info))
            return
        self._reminded.add(profile)  # the episode's one notification is the reminder
        self._send(key, reminder(label, profile), _overdue_body(info))

    def remind_absent_disks(self) -> None:
        """An overdue profile whose disk is now known to be away, not reminded of in
        this episode yet (the disk left, or UDisks2 came up after the episode began)."""
        for profile, info in list(self._overdue.items()):
            if profile in self._reminded:
                continue
            label = self._label(profile)
            if label is not None:
                self._reminded.add(profile)
                summary = reminder(label, profile)
                self._send(f"overdue:{profile}/disk", summary, _overdue_body(info))

    def _label(self, profile: str) -> str | None:
        try:
            return self.connect_label(profile)
        except Exception:  # the store or UDisks2 view failing costs the reminder, not the alert
            log.exception("alerts.connect_label_failed", profile=profile)
            return None

    # -- Events listener ---------------------------------------------------------

    def job_added(self, job: Job) -> None:
        if job.blocked_by:
            self.poke()

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        status = changed.get("status")
        owner = job.profile or job.repository
        subject = f"{owner}/{job.type}"
        what = f"{job.type.capitalize()} of {owner}"
        if status == JobStatus.FAILED:
            message = job.message or "no details"
            self._send(f"failure:{subject}", f"{what} failed", f"{message} (job {job_id})")
        elif status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
            self._end(f"failure:{subject}")
        if "blocked_by" in changed or (status and job.type is JobType.BACKUP):
            self.poke()
