"""The outbox: events become delivery rows first, then go out, in order, at least once.

As an `Events` listener it turns each job status (and each overdue episode)
that a notifier wants into a row in the store, at once, on the event loop:
nothing is sent there.  Its `run` loop sends each notifier's rows oldest
first, one at a time, in a worker thread with a timeout; a failure is tried
again later (30 s, doubling, at most an hour apart) and the notifier's later
rows wait behind it, so they arrive in order; after a day it is `failed`.
While the network is down nothing is tried (no attempt is spent), and the
network's return or a resume sends at once.  A row's key (notifier, event,
job) keeps a restart or a replay from queueing it twice.  A delivery never
delays or fails a job: the job's row is written before the listener runs, and
a listener's failure is only logged.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from enum import Enum
from pathlib import Path
from typing import Any

import anyio
import structlog

from borgd.clock import Clock
from borgd.core import notifications as n
from borgd.core.jobs import JobStatus
from borgd.core.records import Delivery, Job, Notifier
from borgd.events import IgnoresEvents
from borgd.execution import joblog
from borgd.notify.senders import SendFailed, send
from borgd.offloop import call_with_timeout
from borgd.scheduling.alerts import REASON_TEXT, when_text
from borgd.store import Store
from borgd.store.engine import StoreUnavailable
from borgd.wakeups import Poke

log = structlog.get_logger(__name__)

UrlSource = Callable[[str], Awaitable[bytes | None]]
LOG_LINES = 100
IDLE_WAIT_US = 3_600_000_000  # look again at least hourly (a clock jump)
# How each event looks where it lands (Apprise's notification types); others: info.
_LEVELS = {
    "job-succeeded": "success",
    "job-warning": "warning",
    "job-failed": "failure",
    "missed-window": "warning",
}
# Keys of the job document a webhook receives: what ListJobs shows, no internals.
_PRIVATE = {"pid", "pid_start_time", "log_path", "options"}


def job_document(job: Job) -> dict[str, Any]:
    """The job as JSON: the public dictionary of JobAdded/ListJobs, plain values."""
    out: dict[str, Any] = {}
    for key, value in job.as_dict().items():
        if key in _PRIVATE:
            continue
        out[key] = value.value if isinstance(value, Enum) else value
    out["skip_reason"] = out.get("skip_reason") or ""
    return out


class Outbox(IgnoresEvents):
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        url_of: UrlSource,
        online: Callable[[], bool] = lambda: True,
        host: str | None = None,
        retry_first_us: int = n.RETRY_FIRST_US,
    ) -> None:
        self.store = store
        self.clock = clock
        self.url_of = url_of
        self.online = online
        self.host = host or socket.gethostname()
        self.poke = Poke()
        self.retry_first_us = retry_first_us
        self._sending: set[int] = set()
        self._now_all = False  # the next look sends every waiting row, due or not

    def kick(self) -> None:
        """Look at the outbox now: a new row, or a sender done."""
        self.poke()

    def wake(self) -> None:
        """The network is back, or the machine resumed: whatever waits goes now, also
        what failed before (a backoff counted while offline or asleep means nothing)."""
        self._now_all = True
        self.poke()

    # -- Events listener: rows, never sends ---------------------------------------

    def job_added(self, job: Job) -> None:
        if job.status is JobStatus.SKIPPED:
            self._job_event(job)

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        if "status" in changed:
            self._job_event(job)

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        if changed.get("overdue") is True:
            last = int(changed.get("last_success") or 0)
            payload = self._message(
                "overdue",
                f"borgd on {self.host}: backups of {name} are overdue",
                f"No successful backup of {name} since "
                + (f"{when_text(last)}." if last else "it was added."),
                "warning",
            )
            payload["job"] = {"profile": name, "last_success": last, "event": "overdue"}
            self._enqueue("overdue", name, 0, f"{name}:{last}", payload)

    def blocked(self, profile: str, since: int, reason: str) -> None:
        """A due backup of `profile` held back by `reason` since `since`, too long."""
        payload = self._message(
            "blocked",
            f"borgd on {self.host}: the backup of {profile} is waiting",
            f"Held back since {when_text(since)}: {REASON_TEXT.get(reason, reason)}.",
            "warning",
        )
        payload["job"] = {"profile": profile, "blocked_by": reason, "since": since}
        self._enqueue("blocked", profile, 0, f"{profile}:{since}", payload)

    def _job_event(self, job: Job) -> None:
        for event in n.job_events(job.status, job.skip_reason):
            self._job_message(job, event)

    def _job_message(self, job: Job, event: str) -> None:
        subject = job.profile or job.repository
        what = {
            "job-started": "started",
            "job-skipped": f"skipped ({job.skip_reason or 'no reason'})",
            "missed-window": "missed its catch-up window",
        }.get(event, job.status.value)
        payload = self._message(
            event,
            f"borgd on {self.host}: {job.type.value} of {subject} {what}",
            job.message or what,
            _LEVELS.get(event, "info"),
        )
        payload["job"] = job_document(job)
        payload["rid"] = n.run_id(self.host, job.id)
        payload["log_path"] = job.log_path
        self._enqueue(event, job.profile, job.id, str(job.id), payload, job)

    def _message(self, event: str, title: str, body: str, level: str) -> dict[str, Any]:
        return {"event": event, "host": self.host, "title": title, "body": body, "level": level}

    def _enqueue(
        self,
        event: str,
        profile: str,
        job_id: int,
        subject: str,
        payload: dict[str, Any],
        job: Job | None = None,
    ) -> None:
        now = self.clock()
        queued = False
        for notifier in self.store.notifiers.all():
            if not n.wants(
                kind=notifier.kind,
                events=notifier.events,
                profiles=notifier.profiles,
                enabled=notifier.enabled,
                event=event,
                profile=profile,
                job_type=job.type if job is not None else None,
            ):
                continue
            row = {**payload, "warning_fails": "job-warning" in notifier.events}
            key = n.delivery_key(notifier.id, event, subject)
            try:
                if self.store.notifiers.enqueue(notifier, event, job_id, key, row, now):
                    queued = True
            except StoreUnavailable as exc:
                log.warning("outbox.not_queued", notifier=notifier.name, on=event, why=str(exc))
        if queued:
            self.kick()

    def test(self, notifier: Notifier) -> int:
        """A test message, sent like any other delivery."""
        now = self.clock()
        payload = self._message(
            n.TEST_EVENT,
            f"borgd on {self.host}: test of notifier {notifier.name}",
            "If you read this, borgd can reach you.",
            "info",
        )
        payload |= {"job": {"event": n.TEST_EVENT, "host": self.host}, "warning_fails": False}
        payload["rid"] = n.run_id(self.host, 0)
        key = n.delivery_key(notifier.id, n.TEST_EVENT, f"{now}")
        found = self.store.notifiers.enqueue(notifier, n.TEST_EVENT, 0, key, payload, now)
        assert found is not None
        self.kick()
        return found

    # -- sending -----------------------------------------------------------------

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                since = self.poke.generation
                deadline = self._start_due(tg)
                await self.poke.wait(since, max(0.0, (deadline - self.clock()) / 1e6))

    def _start_due(self, tg: anyio.abc.TaskGroup) -> int:
        """Start a sender for each notifier whose first row is due; when to look again."""
        now = self.clock()
        deadline = now + IDLE_WAIT_US
        if not self.online():
            return deadline  # the network's return kicks us
        try:
            waiting = self.store.notifiers.waiting()
        except StoreUnavailable:
            return now + 5_000_000
        self._now_all, now_all = False, self._now_all
        for notifier_id, due in waiting.items():
            if notifier_id in self._sending:
                continue
            if due <= now or now_all:
                self._sending.add(notifier_id)
                tg.start_soon(self._drain, notifier_id, now_all)
            else:
                deadline = min(deadline, due)
        return deadline

    async def _drain(self, notifier_id: int, now_anyway: bool = False) -> None:
        """Send one notifier's rows in order until one fails or none is due (`now_anyway`:
        the first one goes even if its retry was not due yet)."""
        try:
            while self.online():
                row = self.store.notifiers.first_waiting(notifier_id)
                if row is None or (row.next_attempt_at > self.clock() and not now_anyway):
                    return
                now_anyway = False
                if not await self._attempt(row):
                    return
        except StoreUnavailable as exc:
            log.warning("outbox.store_unavailable", why=str(exc))
        except Exception:  # a fault in one delivery never stops borgd or the others
            log.exception("outbox.send_crashed", notifier_id=notifier_id)
            await anyio.sleep(5)  # not in a tight loop
        finally:
            self._sending.discard(notifier_id)
            self.kick()

    async def _attempt(self, row: Delivery) -> bool:
        notifier = self.store.notifiers.by_id(row.notifier_id)
        if notifier is None or not notifier.enabled:
            why = "the notifier was removed" if notifier is None else "the notifier is disabled"
            self.store.notifiers.settle(row.id, status="dropped", last_error=why)
            return True
        error = await self._send(notifier, row)
        now = self.clock()
        attempts = row.attempts + 1
        if error is None:
            self.store.notifiers.settle(
                row.id, status="sent", attempts=attempts, sent_at=now, last_error=""
            )
            log.info("outbox.sent", notifier=notifier.name, on=row.event, job_id=row.job_id)
            return True
        retry = n.next_attempt(row.created_at, attempts, now, first=self.retry_first_us)
        if retry is None:
            self.store.notifiers.settle(
                row.id, status="failed", attempts=attempts, last_error=error
            )
            log.warning("outbox.gave_up", notifier=notifier.name, on=row.event, why=error)
            return True  # the next row may go now
        self.store.notifiers.settle(
            row.id, attempts=attempts, last_error=error, next_attempt_at=retry
        )
        log.info("outbox.retry_later", notifier=notifier.name, on=row.event, why=error)
        return False

    async def _send(self, notifier: Notifier, row: Delivery) -> str | None:
        """None when it arrived, else why not (no piece of the URL in it)."""
        try:
            secret = await self.url_of(notifier.name)
        except Exception as exc:
            return f"the notifier's URL cannot be read: {exc}"
        if not secret:
            return "the notifier's URL is missing from the secret store"
        url = secret.decode("utf-8", "replace")
        payload = row.payload

        def deliver() -> None:
            if notifier.kind == "healthchecks" and payload.get("log_path"):
                payload["log"] = "\n".join(joblog.tail(Path(payload["log_path"]), LOG_LINES))
            send(notifier.kind, url, row.event, row.key, payload)

        try:
            await call_with_timeout(deliver, n.SEND_TIMEOUT_S + 5, "notify")
        except SendFailed as exc:
            return str(exc)
        except TimeoutError:
            return f"no answer within {n.SEND_TIMEOUT_S + 5:g} s"
        except Exception as exc:
            return n.scrub(f"{type(exc).__name__}: {exc}", url)
        return None
