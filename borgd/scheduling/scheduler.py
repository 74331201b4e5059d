"""The scheduler: persistent intents, one timer, catch-up, conditions, pause.

The next occurrence of every enabled schedule is a `scheduled` job row (an
intent).  Schedules are added, changed and paused by the use cases in
`borgd.app.schedules`, which then tell this loop to re-plan.  One loop
sleeps on a wall-clock timer until the earliest thing
that can change: a due intent, a held-back intent being overtaken by its
next occurrence, a pause expiring.  Changes to schedules, conditions, the
clock, the time zone or a resume wake the loop.  Settling an intent and
writing the next one is one transaction.

How one due intent is handled (`_fire`), in this order:

1. paused (globally or the schedule) at the occurrence's time, or now →
   `skipped/paused` for every occurrence inside the pause;
2. profile disabled → `skipped/profile-disabled`;
3. held back before and overtaken by a newer occurrence while a condition
   still holds → `skipped/<condition>`, the newest occurrence takes over;
4. first handled late (a later occurrence passed, or more than
   ``LATE_AFTER_US`` — or the catch-up window if shorter — after its due
   time): without catch-up or beyond the window → `skipped/missed-window`;
   else the intent becomes one catch-up run for all missed occurrences,
   with one `skipped/coalesced` row saying how many and over which span;
5. a condition holds → stays `scheduled` with `blocked_by`;
6. the previous run of the schedule is still queued or running →
   `skipped/already-active`;
7. otherwise → `queued` (trigger `schedule` or `catch-up`).

Lateness is judged once, when the occurrence is first handled: a job that
waited on a condition and then starts is on time, not a catch-up.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import structlog
from sqlalchemy import func, select

from borgd.clock import Clock, from_datetime, to_datetime
from borgd.core.blackout import BlackoutError, Window, parse_windows, window_end
from borgd.core.config import local_path
from borgd.core.jobs import JobStatus, SkipReason, Trigger
from borgd.core.records import Job, Profile, Repository, Schedule
from borgd.core.schedule import Spec, SpecError, parse_spec, plan_next, resolve_zone
from borgd.core.schedule.zones import zone_name
from borgd.events import Events, IgnoresEvents
from borgd.scheduling.conditions import Conditions, blocker
from borgd.scheduling.paths import PathProbe
from borgd.scheduling.timer import Timer
from borgd.scheduling.waker import Waker, Woke
from borgd.store import Store
from borgd.store.catalog import SCHEDULES, NotFound
from borgd.store.engine import StoreUnavailable
from borgd.store.jobs import JOBS, IntentStore, JobFilter, StaleState

log = structlog.get_logger(__name__)

# An occurrence first handled later than this (daemon down, asleep, clock set
# forward) counts as missed: it is caught up (or skipped), not run as scheduled.
LATE_AFTER_US = 60 * 1_000_000
# Settling an intent may write a next one that is due at once (a pause ended
# while the daemon was down, an overtaken intent): handle it in the same step.
MAX_PASSES = 50
# Something due that could not be handled (a lost race): look again this soon.
RETRY_US = 1_000_000
# A refresh of conditions that need I/O (the keyring) before due intents fire.
REFRESH_TIMEOUT_S = 5.0
# Changes of the clock smaller than this are not worth re-planning for.
JUMP_TOLERANCE_US = 1_000_000


def _fmt(us: int) -> str:
    return to_datetime(us).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _system_zone() -> str | None:
    return None  # the core reads $TZ or /etc/localtime afresh at each parse


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        timer: Timer,
        conditions: Conditions,
        wake_executor: Callable[[], None],
        rng: random.Random | None = None,
        system_zone: Callable[[], str | None] = _system_zone,
        refresh_conditions: Callable[[], Awaitable[None]] | None = None,
        paths: PathProbe | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.timer = timer
        self.conditions = conditions
        self.wake_executor = wake_executor
        self.rng = rng or random.Random()
        self.system_zone = system_zone
        self.refresh_conditions = refresh_conditions
        self.intents = IntentStore(store.engine, SCHEDULES)
        self.waker = Waker(timer)
        self.paths = paths or PathProbe()
        self._specs: dict[int, tuple[str, str | None, Spec]] = {}
        self._zone_fp: tuple[Any, ...] | None = None
        self._last_now = 0
        self._acted = False
        self.next_run = 0
        self.deadline: int | None = None
        self.paused = store.catalog.setting("paused") == "1"
        self.paused_until = int(store.catalog.setting("paused_until", "0") or 0)
        self.blackout: list[str] = _stored_windows(store.catalog.setting("blackout", "[]"))
        self._windows: dict[tuple[str, ...], list[Window]] = {}
        # Loop iterations; those ended by the timer; and those of them that found
        # nothing to do (a far-future schedule must not cause any).
        self.wakeups = 0
        self.timer_wakeups = 0
        self.idle_wakeups = 0

    # -- specs ----------------------------------------------------------------

    def spec_for(self, sched: Schedule) -> Spec:
        key = (sched.spec, sched.timezone)
        cached = self._specs.get(sched.id)
        if cached is not None and cached[:2] == key:
            return cached[2]
        spec = parse_spec(sched.spec, default_tz=sched.timezone or self.system_zone())
        self._specs[sched.id] = (*key, spec)
        return spec

    def forget_spec(self, schedule_id: int) -> None:
        self._specs.pop(schedule_id, None)

    # -- what the use cases tell the scheduler ---------------------------------------

    def set_pause(self, paused: bool, until: int) -> bool:
        """Store the global pause and follow it; returns whether it changed."""
        self.store.catalog.set_settings(
            {"paused": "1" if paused else "0", "paused_until": str(until if paused else 0)}
        )
        changed = (self.paused, self.paused_until) != (paused, until if paused else 0)
        self.paused, self.paused_until = paused, until if paused else 0
        if changed:
            self.events.manager_changed({"Paused": self.paused, "PausedUntil": self.paused_until})
            log.info("scheduler.paused" if paused else "scheduler.resumed", until=until)
            self.poke()
        return changed

    def set_blackout(self, windows: list[str]) -> bool:
        """Store the global blackout windows (checked already) and follow them."""
        self.store.catalog.set_settings({"blackout": json.dumps(windows)})
        changed = windows != self.blackout
        self.blackout = list(windows)
        if changed:
            self.events.manager_changed({"Blackout": list(windows)})
            log.info("scheduler.blackout", windows=windows)
            self.poke()
        return changed

    def blackout_end(self, profile: Profile | None, at: int) -> int | None:
        """When the blackout (global, and the profile's own) that holds at ``at`` ends."""
        texts = tuple(self.blackout) + tuple(profile.blackout if profile else ())
        if not texts:
            return None
        windows = self._windows.get(texts)
        if windows is None:
            try:
                windows = parse_windows(texts, self.system_zone())
            except BlackoutError as exc:  # checked when set; a zone may have gone since
                log.warning("scheduler.bad_blackout", reason=str(exc))
                windows = []
            self._windows[texts] = windows
        return window_end(windows, at)

    # -- the loop -------------------------------------------------------------

    def poke(self) -> None:
        """Something changed (a schedule, a condition, the zone, a resume): look again."""
        self.waker.poke()

    async def run(self) -> None:
        reason: Woke | None = None
        while True:
            since = self.waker.generation
            try:
                await self._refresh_if_due()
                deadline = self.step(reason)
            except StoreUnavailable:
                # Each intent settles in one transaction: what was done stays done, the
                # rest is handled once the store takes writes again.  Nothing is lost,
                # and an occurrence that fell due meanwhile runs then (or is caught up).
                await self.store.health.wait_recovered()
                reason = Woke.POKE
                continue
            if reason is not None and reason is not Woke.POKE:
                self.timer_wakeups += 1
                if not self._acted:
                    self.idle_wakeups += 1
            log.debug(
                "scheduler.woke",
                reason=reason.value if reason else "start",
                acted=self._acted,
                deadline=deadline or 0,
                idle_wakeups=self.idle_wakeups,
            )
            reason = await self.waker.wait(deadline, since=since)
            self.wakeups += 1

    async def _refresh_if_due(self) -> None:
        """Let conditions that need I/O (a locked keyring, a repository's folder) catch up
        before intents fire; off the event loop, each with a time limit."""
        now = self.clock()
        due = [
            j for j in self.store.jobs.with_status(JobStatus.SCHEDULED) if j.scheduled_for <= now
        ]
        if not due:
            return
        repos = {r.id: r.url for r in self.store.catalog.repositories()}
        folders = (local_path(repos.get(j.repository_id, "")) for j in due)
        await self.paths.refresh(p for p in folders if p)
        self.conditions.unavailable_paths = self.paths.unavailable
        if self.refresh_conditions is None:
            return
        with anyio.move_on_after(REFRESH_TIMEOUT_S):
            try:
                await self.refresh_conditions()
            except Exception:
                log.exception("scheduler.refresh_failed")

    def step(self, reason: Woke | None = None) -> int | None:
        """Handle everything due now; return the next wall-clock deadline (µs) or None."""
        now = self.clock()
        self._acted = False
        self._check_zone(now)
        if self._last_now and (
            reason is Woke.CLOCK_CHANGED or now < self._last_now - JUMP_TOLERANCE_US
        ):
            self._clock_changed(now)
        self._last_now = now
        self._reconcile(now)
        self._fire_due(now)
        self._expire_pauses(now)
        self.deadline = self._next_deadline(now)
        return self.deadline

    def _fire_due(self, now: int) -> None:
        handled: set[int] = set()
        for _ in range(MAX_PASSES):
            due = sorted(
                (
                    j
                    for j in self.store.jobs.with_status(JobStatus.SCHEDULED)
                    if j.scheduled_for <= now and j.id not in handled
                ),
                key=lambda j: (j.scheduled_for, j.id),
            )
            if not due:
                return
            for intent in due:
                handled.add(intent.id)
                try:
                    if intent.trigger == Trigger.RETRY:
                        self._fire_retry(intent, now)
                    else:
                        self._fire(intent, now)
                except StaleState:
                    log.info("scheduler.intent_moved", job_id=intent.id)
        log.warning("scheduler.too_many_passes", passes=MAX_PASSES)

    def _next_deadline(self, now: int) -> int | None:
        candidates: list[int] = []
        next_run = 0
        stuck = False
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            if intent.blocked_by:
                # A held-back intent needs the timer only when its next occurrence
                # would overtake it or its blackout ends; a condition clearing pokes
                # the loop.  A retry is never overtaken.
                retry = intent.trigger == Trigger.RETRY
                ends = [] if retry else [self._overtake_time(intent)]
                if intent.blocked_by == SkipReason.BLACKOUT:
                    ends.append(self._blackout_end_of(intent, now))
                found = [e for e in ends if e is not None]
                when = min(found) if found else None
            else:
                when = intent.scheduled_for
                if not next_run or when < next_run:
                    next_run = when
            if when is None:
                continue
            if when <= now:
                stuck = True
            else:
                candidates.append(when)
        if self.paused and self.paused_until:
            candidates.append(self.paused_until)
        for s in self.store.catalog.schedules(paused=True):
            if s.paused_until:
                candidates.append(s.paused_until)
        if next_run != self.next_run:
            self.next_run = next_run
            self.events.manager_changed({"NextRun": next_run})
        future = [c for c in candidates if c > now]
        deadline = min(future) if future else None
        if stuck:
            # Due but not handled (a lost race): look again soon, never spin.
            log.warning("scheduler.due_left_over", retry_in_us=RETRY_US)
            deadline = min(deadline, now + RETRY_US) if deadline else now + RETRY_US
        return deadline

    def _expire_pauses(self, now: int) -> None:
        if self.paused and self.paused_until and self.paused_until <= now:
            self.set_pause(False, 0)
            self._acted = True
        for s in self.store.catalog.schedules(paused=True):
            if s.paused_until and s.paused_until <= now:
                self.store.catalog.update_schedule(s.id, {"paused": False, "paused_until": 0})
                log.info("schedule.resumed", schedule_id=s.id, why="pause expired")
                self._acted = True

    # -- time zone and clock changes --------------------------------------------

    def timezone_changed(self) -> None:
        """The system's zone may have changed (timedated said so): re-check at once."""
        self.poke()

    def _zone_fingerprint(self) -> tuple[Any, ...]:
        try:
            tz = resolve_zone(self.system_zone())
        except SpecError:
            tz = UTC
        year = to_datetime(self.clock()).year
        probes = (datetime(year, 1, 1, tzinfo=UTC), datetime(year, 7, 1, tzinfo=UTC))
        return (zone_name(tz), *(p.astimezone(tz).utcoffset() for p in probes))

    def _check_zone(self, now: int) -> None:
        """Re-plan schedules read in the local zone when that zone changed."""
        fp = self._zone_fingerprint()
        if self._zone_fp is None or fp == self._zone_fp:
            self._zone_fp = fp
            return
        log.info("scheduler.timezone_changed", old=self._zone_fp[0], new=fp[0])
        self._zone_fp = fp
        self._specs.clear()
        schedules = {s.id: s for s in self.store.catalog.schedules() if not s.timezone}
        self._windows.clear()
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            sched = schedules.get(intent.schedule_id)
            if sched is None or intent.scheduled_for <= now or intent.trigger == Trigger.RETRY:
                continue  # explicit zone, or due already (held back), or a retry: leave it
            if self.spec_for(sched).kind == "interval":
                continue
            anchor = sched.anchor or sched.created_at
            occurrence = self._next_occurrence(sched, max(anchor, now))
            if occurrence is not None:
                self._move_intent(intent, occurrence, why="time zone changed")

    def _clock_changed(self, now: int) -> None:
        """The wall clock was set.  Forward: the step catches up as after downtime.
        Backward: occurrences already handled do not run again (intents stay where
        they are); an interval schedule waits at most one interval from now."""
        log.info("scheduler.clock_changed", now=now, before=self._last_now)
        if now >= self._last_now:
            return
        schedules = {s.id: s for s in self.store.catalog.schedules()}
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            sched = schedules.get(intent.schedule_id)
            if sched is None or intent.trigger == Trigger.RETRY:
                continue
            seconds = self.spec_for(sched).interval_seconds
            if seconds is None:
                continue
            latest = now + seconds * 1_000_000
            if _occurrence(intent) > latest:
                self._move_intent(intent, latest, why="the clock was set back")

    def _move_intent(self, intent: Job, occurrence: int, *, why: str) -> None:
        old = _occurrence(intent)
        if occurrence == old:
            return
        delay = max(0, intent.scheduled_for - old)
        fields = {
            "scheduled_for": occurrence + delay,
            "options": {**intent.options, "occurrence": occurrence},
        }
        self.store.jobs.update_fields(intent.id, **fields)
        self.events.job_changed(
            intent.id, {"scheduled_for": fields["scheduled_for"]}, intent.but(**fields)
        )
        log.info("scheduler.replanned", job_id=intent.id, why=why, was=old, now=occurrence)
        self._acted = True

    # -- intents --------------------------------------------------------------

    def reconcile(self, now: int | None = None, *, fresh: Iterable[int] = ()) -> None:
        """Every enabled schedule has exactly one intent; others none. Then re-arm.

        ``fresh`` names schedules just added or re-timed: their intent is planned
        from now, not from their last handled occurrence.
        """
        self._reconcile(self.clock() if now is None else now, fresh=frozenset(fresh))
        self._follow_repositories()
        self.poke()

    def reconcile_soon(self, *, fresh: Iterable[int] = ()) -> None:
        """Reconcile after a change the caller has stored already: if the store fails
        now, the loop reconciles once it is back (the change itself is kept)."""
        try:
            self.reconcile(fresh=fresh)
        except StoreUnavailable:
            self.poke()

    def _follow_repositories(self) -> None:
        """A profile moved to another repository: its intents show (and queue on) the new one."""
        repos = {r.id: r.name for r in self.store.catalog.repositories()}
        profiles = {p.name: p.repository_id for p in self.store.catalog.profiles()}
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            repo_id = profiles.get(intent.profile)
            if repo_id is None or repo_id == intent.repository_id:
                continue
            fields = {"repository_id": repo_id, "repository": repos.get(repo_id, "")}
            self.store.jobs.update_fields(intent.id, **fields)
            self.events.job_changed(
                intent.id, {"repository": fields["repository"]}, intent.but(**fields)
            )

    def _reconcile(self, now: int, *, fresh: frozenset[int] = frozenset()) -> None:
        intents = {
            j.schedule_id: j
            for j in self.store.jobs.with_status(JobStatus.SCHEDULED)
            if j.trigger != Trigger.RETRY
        }
        schedules = {s.id: s for s in self.store.catalog.schedules()}
        for schedule_id in intents:
            sched = schedules.get(schedule_id)
            if sched is None or not sched.enabled:
                self.drop_intent(
                    schedule_id,
                    "the schedule was removed or disabled",
                    SkipReason.SCHEDULE_REMOVED,
                )
        for sched in schedules.values():
            if sched.enabled and sched.id not in intents:
                self._write_intent(sched, now=now, fresh=sched.id in fresh)

    def drop_intent(self, schedule_id: int, message: str, reason: SkipReason) -> None:
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            if intent.schedule_id == schedule_id:
                try:
                    self._skip_row(intent.id, reason, message, self.clock())
                except StaleState:
                    continue

    def _skip_row(self, job_id: int, reason: SkipReason, message: str, now: int) -> None:
        """A `scheduled` row that will not run becomes skipped (compare-and-set)."""
        row = self.store.jobs.transition(
            job_id,
            JobStatus.SKIPPED,
            expect=[JobStatus.SCHEDULED],
            skip_reason=reason.value,
            message=message,
            blocked_by="",
            finished_at=now,
        )
        self._acted = True
        self.events.job_changed(
            job_id, {"status": "skipped", "skip_reason": reason.value, "message": message}, row
        )

    def _intent_values(self, sched: Schedule, occurrence: int, now: int) -> dict[str, Any]:
        prow = self.store.catalog.profile_by_id(sched.profile_id)
        rrow = self.store.catalog.repository_by_id(prow.repository_id)
        delay = 0
        if sched.randomized_delay:
            delay = self.rng.randrange(0, int(sched.randomized_delay))
        return {
            "type": sched.action,
            "status": JobStatus.SCHEDULED.value,
            "trigger": Trigger.SCHEDULE.value,
            "profile": prow.name,
            "repository": rrow.name,
            "repository_id": rrow.id,
            "schedule_id": sched.id,
            "scheduled_for": occurrence + delay,
            "created_at": now,
            "options": {"occurrence": occurrence},
        }

    def _next_occurrence(self, sched: Schedule, after: int) -> int | None:
        """The first occurrence after ``after`` (intervals: ``after`` + interval)."""
        spec = self.spec_for(sched)
        when = to_datetime(after)
        nxt = spec.next_after(when, when)
        return None if nxt is None else from_datetime(nxt)

    def _last_planned(self, schedule_id: int) -> int:
        """The newest occurrence this schedule ever had a row for (0: none)."""
        occurrence = func.coalesce(
            func.json_extract(JOBS.c.options, "$.occurrence"), JOBS.c.scheduled_for
        )
        stmt = select(func.max(occurrence)).where(
            JOBS.c.schedule_id == schedule_id,
            JOBS.c.trigger.in_([Trigger.SCHEDULE.value, Trigger.CATCH_UP.value]),
            JOBS.c.skip_reason != SkipReason.SCHEDULE_REMOVED.value,
        )
        with self.store.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one_or_none() or 0)

    def _write_intent(self, sched: Schedule, *, now: int, fresh: bool) -> None:
        anchor = sched.anchor or sched.created_at
        # A new or re-timed schedule starts from now; otherwise (start-up, an intent
        # cancelled by hand) from the last occurrence handled, so that nothing runs
        # twice and misses are caught up.
        after = max(anchor, now) if fresh else max(anchor, self._last_planned(sched.id))
        nxt = self.spec_for(sched).next_after(to_datetime(after), to_datetime(anchor))
        if nxt is None:
            return
        values = self._intent_values(sched, from_datetime(nxt), now)
        try:
            _, created = self.intents.settle(schedule_id=sched.id, anchor=None, next_intent=values)
        except StaleState:
            return  # another intent exists already: the store keeps one
        self._acted = True
        for row in created:
            self.events.job_added(row)

    def _overtake_time(self, intent: Job) -> int | None:
        try:
            sched = self.store.catalog.schedule(intent.schedule_id)
        except NotFound:
            return None
        return self._next_occurrence(sched, _occurrence(intent))

    def _passed_after(self, spec: Spec, occurrence: int, until: int) -> tuple[int, int]:
        """How many occurrences fall in (occurrence, until], and the newest of them
        (``occurrence`` itself when there are none).  Occurrences are spaced as
        handled: an interval counts from ``occurrence``."""
        if until <= occurrence:
            return 0, occurrence
        plan = plan_next(spec, to_datetime(occurrence), to_datetime(until) + timedelta(0, 0, 1))
        if not plan.missed or plan.last_missed is None:
            return 0, occurrence
        return plan.missed, from_datetime(plan.last_missed)

    def _pause_end(self, sched: Schedule, at: int) -> int | None:
        """None when nothing pauses the occurrence at ``at``; else the pause's end (0: none).

        A pause still recorded covers every occurrence before its end: one that
        ended while the daemon was down still skips what fell inside it.
        """
        ends: list[int] = []
        if self.paused and (not self.paused_until or self.paused_until > at):
            ends.append(self.paused_until)
        if sched.paused and (not sched.paused_until or sched.paused_until > at):
            ends.append(sched.paused_until)
        if not ends:
            return None
        return 0 if 0 in ends else max(ends)

    def _fire(self, intent: Job, now: int) -> None:
        try:
            sched = self.store.catalog.schedule(intent.schedule_id)
        except NotFound:
            self.drop_intent(
                intent.schedule_id, "the schedule was removed", SkipReason.SCHEDULE_REMOVED
            )
            return
        prow = self.store.catalog.profile_by_id(sched.profile_id)
        rrow = self.store.catalog.repository_by_id(prow.repository_id)
        spec = self.spec_for(sched)
        occurrence = _occurrence(intent)
        later, newest = self._passed_after(spec, occurrence, now)

        pause_end = self._pause_end(sched, occurrence)
        if pause_end is not None:
            if pause_end and pause_end <= now:
                # The pause ended meanwhile: skip what fell inside it, plan the rest.
                inside, last = self._passed_after(spec, occurrence, pause_end - 1)
            else:
                inside, last = later, newest
            what = "borgd was paused" if self.paused else "this schedule was paused"
            what += _count_note(1 + inside, occurrence, last)
            self._skip(intent, sched, now, SkipReason.PAUSED, what, count=1 + inside, last=last)
            return
        if not prow.enabled:
            self._skip(
                intent,
                sched,
                now,
                SkipReason.PROFILE_DISABLED,
                f"profile {prow.name} is disabled" + _count_note(1 + later, occurrence, newest),
                count=1 + later,
                last=newest,
            )
            return

        reason = self._reason_to_wait(prow, rrow, sched, now)
        handled_before = bool(intent.blocked_by) or intent.trigger == Trigger.CATCH_UP
        if handled_before and later and reason is not None:
            # Held back, and now overtaken by its next occurrence: that one takes over.
            self._skip(
                intent,
                sched,
                now,
                reason,
                f"held back ({reason.value}) until its next occurrence, {_fmt(newest)}, took over",
                count=1,
                last=occurrence,
                next_occurrence=newest,
            )
            return
        if not handled_before or later:
            window = int(sched.catch_up_window)
            limit = min(LATE_AFTER_US, window) if window else LATE_AFTER_US
            if later or now - intent.scheduled_for > limit:
                missed = 1 + later
                newest_due = newest if later else intent.scheduled_for
                note = _count_note(missed, occurrence, newest)
                if not sched.catch_up:
                    self._skip(
                        intent,
                        sched,
                        now,
                        SkipReason.MISSED_WINDOW,
                        "missed, and catch-up is off" + note,
                        count=missed,
                        last=newest,
                    )
                    return
                if window and now - newest_due > window:
                    self._skip(
                        intent,
                        sched,
                        now,
                        SkipReason.MISSED_WINDOW,
                        "missed by more than the catch-up window" + note,
                        count=missed,
                        last=newest,
                    )
                    return
                intent = self._to_catch_up(intent, sched, now, occurrence, newest, missed)
                occurrence = newest
        if reason is not None:
            self._hold(intent, reason)
            return
        if any(
            j.schedule_id == sched.id and j.status in ("queued", "running")
            for j in self.store.jobs.live()
        ):
            self._skip(
                intent,
                sched,
                now,
                SkipReason.ALREADY_ACTIVE,
                "the previous run of this schedule is still active"
                + _count_note(1 + later, occurrence, newest),
                count=1 + later,
                last=newest,
            )
            return
        self._queue(intent, sched, rrow, now, occurrence)

    def _reason_to_wait(
        self, prow: Profile, rrow: Repository, sched: Schedule, now: int
    ) -> SkipReason | None:
        """A blackout window, or the first condition that holds this start back."""
        if self.blackout_end(prow, now) is not None:
            return SkipReason.BLACKOUT
        return blocker(
            self.conditions,
            url=rrow.url,
            repository=rrow.name,
            skip_on_battery=bool(sched.skip_on_battery),
            skip_on_metered=bool(sched.skip_on_metered),
        )

    def _blackout_end_of(self, intent: Job, now: int) -> int | None:
        try:
            prow = self.store.catalog.profile(intent.profile)
        except NotFound:
            return None
        return self.blackout_end(prow, now)

    def _fire_retry(self, retry: Job, now: int) -> None:
        """A due retry: held like any scheduled start, skipped when it has become moot
        (paused, disabled, or a newer run of its schedule already started), else queued."""
        try:
            sched = self.store.catalog.schedule(retry.schedule_id)
            prow = self.store.catalog.profile(retry.profile)
            rrow = self.store.catalog.repository_by_id(prow.repository_id)
        except NotFound:
            self._end_retry(retry, now, SkipReason.SCHEDULE_REMOVED, "its schedule was removed")
            return
        if self._pause_end(sched, now) is not None:
            what = "borgd was paused" if self.paused else "this schedule was paused"
            self._end_retry(retry, now, SkipReason.PAUSED, what)
            return
        if not prow.enabled or not sched.enabled:
            what = f"profile {prow.name}" if not prow.enabled else "its schedule"
            self._end_retry(retry, now, SkipReason.PROFILE_DISABLED, f"{what} is disabled")
            return
        newer = [
            j
            for j in self.store.jobs.query(
                JobFilter(profiles=(retry.profile,), types=(retry.type.value,), limit=20)
            )
            if j.schedule_id == retry.schedule_id
            and j.id > retry.requeued_from
            and j.id != retry.id
            and j.status in _STARTED
        ]
        if newer:
            self._end_retry(
                retry,
                now,
                SkipReason.COALESCED,
                f"a newer run of its schedule (job {newer[-1].id}) took over",
            )
            return
        reason = self._reason_to_wait(prow, rrow, sched, now)
        if reason is not None:
            self._hold(retry, reason)
            return
        fields = {
            "queued_at": now,
            "blocked_by": "",
            "repository": rrow.name,
            "repository_id": rrow.id,
        }
        row = self.store.jobs.transition(
            retry.id, JobStatus.QUEUED, expect=[JobStatus.SCHEDULED], **fields
        )
        self._acted = True
        self.events.job_changed(retry.id, {"status": JobStatus.QUEUED.value, **fields}, row)
        log.info("scheduler.queued", job_id=retry.id, trigger=Trigger.RETRY.value)
        self.wake_executor()

    def _end_retry(self, retry: Job, now: int, reason: SkipReason, why: str) -> None:
        self._skip_row(retry.id, reason, f"retry not run: {why}", now)
        log.info("scheduler.skipped", job_id=retry.id, reason=reason.value, count=1)

    def _hold(self, intent: Job, reason: SkipReason) -> None:
        if intent.blocked_by == reason.value:
            return
        self.store.jobs.update_fields(intent.id, blocked_by=reason.value)
        self._acted = True
        row = intent.but(blocked_by=reason.value)
        self.events.job_changed(intent.id, {"blocked_by": reason.value}, row)
        log.info("scheduler.held_back", job_id=intent.id, reason=reason.value)

    def _to_catch_up(
        self,
        intent: Job,
        sched: Schedule,
        now: int,
        first: int,
        last: int,
        count: int,
    ) -> Job:
        """Turn a missed intent into the one catch-up run for ``count`` occurrences
        from ``first`` to ``last``; more than one leaves a skipped/coalesced row."""
        audit = []
        if count > 1:
            audit.append(
                {
                    **self._intent_values(sched, first, now),
                    "status": JobStatus.SKIPPED.value,
                    "scheduled_for": first,
                    "skip_reason": SkipReason.COALESCED.value,
                    "finished_at": now,
                    "options": {
                        "occurrence": first,
                        "coalesced": count,
                        "first": first,
                        "last": last,
                        "catch_up_job": intent.id,
                    },
                    "message": f"{count} missed occurrences from {_fmt(first)} to "
                    f"{_fmt(last)} replaced by one catch-up run (job {intent.id})",
                }
            )
        fields = {
            "trigger": Trigger.CATCH_UP.value,
            "scheduled_for": last,
            "options": {**intent.options, "occurrence": last, "missed": count},
            "message": f"catch-up for {count} missed occurrence"
            + ("s" if count > 1 else "")
            + f" (the last at {_fmt(last)})",
        }
        settled, created = self.intents.settle(
            schedule_id=sched.id,
            anchor=last,
            intent_id=intent.id,
            dst=JobStatus.SCHEDULED,
            fields=fields,
            audit=audit,
        )
        assert settled is not None
        self._acted = True
        changed = {k: v for k, v in fields.items() if k != "options"}
        self.events.job_changed(intent.id, changed, settled)
        for row in created:
            self.events.job_added(row)
        log.info("scheduler.catch_up", job_id=intent.id, missed=count, first=first, last=last)
        return settled

    def _skip(
        self,
        intent: Job,
        sched: Schedule,
        now: int,
        reason: SkipReason,
        message: str,
        *,
        count: int,
        last: int,
        next_occurrence: int | None = None,
    ) -> None:
        """Skip the intent for ``count`` occurrences up to ``last``; plan the one after."""
        if next_occurrence is None:
            next_occurrence = self._next_occurrence(sched, last)
        self._settle(
            intent,
            sched,
            JobStatus.SKIPPED,
            now,
            anchor=last,
            fields={
                "skip_reason": reason.value,
                "message": message,
                "finished_at": now,
                "blocked_by": "",
            },
            next_occurrence=next_occurrence,
        )
        log.info("scheduler.skipped", job_id=intent.id, reason=reason.value, count=count)

    def _queue(
        self,
        intent: Job,
        sched: Schedule,
        rrow: Repository,
        now: int,
        occurrence: int,
    ) -> None:
        trigger = Trigger(intent.trigger)
        on_time = trigger is Trigger.SCHEDULE and not intent.blocked_by
        # Intervals count from the start of the last run: a late one starts now.
        interval = self.spec_for(sched).kind == "interval"
        anchor = now if interval and not on_time else occurrence
        self._settle(
            intent,
            sched,
            JobStatus.QUEUED,
            now,
            anchor=anchor,
            fields={
                "queued_at": now,
                "blocked_by": "",
                # The profile may have moved to another repository since planning.
                "repository": rrow.name,
                "repository_id": rrow.id,
            },
            next_occurrence=self._next_occurrence(sched, anchor),
        )
        log.info("scheduler.queued", job_id=intent.id, trigger=trigger.value)
        self.wake_executor()

    def _settle(
        self,
        intent: Job,
        sched: Schedule,
        dst: JobStatus,
        now: int,
        *,
        anchor: int,
        fields: dict[str, Any],
        next_occurrence: int | None,
    ) -> None:
        nxt = (
            self._intent_values(sched, next_occurrence, now)
            if next_occurrence is not None
            else None
        )
        settled, created = self.intents.settle(
            schedule_id=sched.id,
            anchor=anchor,
            intent_id=intent.id,
            dst=dst,
            fields=fields,
            next_intent=nxt,
        )
        assert settled is not None
        self._acted = True
        self.events.job_changed(intent.id, {"status": dst.value, **fields}, settled)
        for row in created:
            self.events.job_added(row)

    # -- sleep and resume ---------------------------------------------------

    async def before_sleep(self) -> None:
        """Everything is in the store already; make sure the WAL is on disk."""
        try:
            with self.store.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except StoreUnavailable:
            return  # the WAL is durable as it is; the health has said why
        log.info("scheduler.persisted", why="sleep")

    async def after_resume(self) -> None:
        """Re-arm the timer and catch up (the step does both)."""
        log.info("scheduler.rearmed", why="resume")
        self.poke()


class SchedulerListener(IgnoresEvents):
    """The events the scheduler reacts to: an intent cancelled by hand (its schedule
    needs its next occurrence planned).  Subscribe it to :class:`Events`."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        if changed.get("status") == JobStatus.CANCELLED and job.schedule_id:
            self._scheduler.poke()


_STARTED = frozenset(
    {
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
        JobStatus.WARNING,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.INTERRUPTED,
    }
)


def _stored_windows(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(w) for w in value] if isinstance(value, list) else []


def _occurrence(intent: Job) -> int:
    return int(intent.options.get("occurrence") or intent.scheduled_for)


def _count_note(count: int, first: int, last: int) -> str:
    if count <= 1:
        return ""
    return f" ({count} occurrences from {_fmt(first)} to {_fmt(last)})"


__all__ = ["LATE_AFTER_US", "Scheduler", "SchedulerListener"]
