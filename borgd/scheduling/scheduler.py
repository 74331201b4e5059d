"""The scheduler: persistent intents, one timer, catch-up, conditions, pause.

The next occurrence of every enabled schedule is a `scheduled` job row (an
intent).  One loop sleeps on a wall-clock timer until the earliest thing
that can change: a due intent, a blocked intent being overtaken, a pause
expiring.  Changes to schedules, conditions, the clock or a resume poke the
loop.  Settling an intent and writing the next one is one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
import structlog

from borgd import errors
from borgd.clock import Clock, from_datetime, to_datetime
from borgd.core.jobs import JobStatus, SkipReason, Trigger
from borgd.core.schedule import Spec, SpecError, parse_spec, upcoming
from borgd.core.validation import (
    SCHEDULE_OPTIONS,
    SCHEDULE_UPDATE_OPTIONS,
    InvalidArgument,
    Variant,
    check_id,
    check_name,
    check_options,
    check_schedule_action,
    check_text,
)
from borgd.events import Events
from borgd.scheduling.conditions import Conditions, blocker
from borgd.scheduling.timer import Timer
from borgd.store import Store
from borgd.store.catalog import SCHEDULES, NotFound
from borgd.store.jobs import IntentStore, JobRow, StaleState

log = structlog.get_logger(__name__)

# An occurrence handled later than this (daemon down, asleep) counts as missed.
LATE_AFTER_US = 60 * 1_000_000
MAX_COUNTED_MISSES = 100_000
UPCOMING_LIMIT = 10_000


def _fmt(us: int) -> str:
    return to_datetime(us).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


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
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.timer = timer
        self.conditions = conditions
        self.wake_executor = wake_executor
        self.rng = rng or random.Random()
        self.intents = IntentStore(store.engine, SCHEDULES)
        self._specs: dict[int, tuple[str, str | None, Spec]] = {}
        self._poke = anyio.Event()
        self.next_run = 0
        self.paused = store.catalog.setting("paused") == "1"
        self.paused_until = int(store.catalog.setting("paused_until", "0") or 0)
        self.wakeups = 0

    # -- specs ----------------------------------------------------------------

    def spec_for(self, sched: Mapping[str, Any]) -> Spec:
        key = (sched["spec"], sched["timezone"])
        cached = self._specs.get(sched["id"])
        if cached is not None and cached[:2] == key:
            return cached[2]
        spec = parse_spec(sched["spec"], default_tz=sched["timezone"])
        self._specs[sched["id"]] = (*key, spec)
        return spec

    @staticmethod
    def check_spec(spec: str, timezone: str | None) -> Spec:
        check_text("schedule spec", spec)
        if timezone:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise InvalidArgument(f"unknown time zone {timezone[:60]!r}") from None
        try:
            return parse_spec(spec, default_tz=timezone or None)
        except SpecError as exc:
            raise InvalidArgument(f"bad schedule spec: {exc}") from None

    # -- public API -----------------------------------------------------------

    def add_schedule(
        self, profile: str, action: str, spec: str, options: Mapping[str, Variant]
    ) -> int:
        check_name("profile", profile)
        check_schedule_action(action)
        opts = check_options("schedule", SCHEDULE_OPTIONS, options)
        self.check_spec(spec, opts.get("timezone"))
        try:
            prow = self.store.catalog.profile(profile)
        except NotFound as exc:
            raise errors.NotFound(f"no profile named {profile!r}") from exc
        values = {
            "profile_id": prow["id"],
            "action": action,
            "spec": spec,
            "timezone": opts.pop("timezone", None) or None,
            "created_at": self.clock(),
            **opts,
        }
        schedule_id = self.store.catalog.add_schedule(values)
        self.reconcile()
        return schedule_id

    def _schedule(self, schedule_id: int) -> dict[str, Any]:
        check_id("schedule id", schedule_id)
        try:
            return self.store.catalog.schedule(schedule_id)
        except NotFound as exc:
            raise errors.NotFound(f"no schedule with id {schedule_id}") from exc

    def update_schedule(self, schedule_id: int, options: Mapping[str, Variant]) -> None:
        sched = self._schedule(schedule_id)
        opts = check_options("schedule", SCHEDULE_UPDATE_OPTIONS, options)
        if "action" in opts:
            check_schedule_action(opts["action"])
        spec = opts.get("spec", sched["spec"])
        tz = opts.get("timezone", sched["timezone"]) or None
        self.check_spec(spec, tz)
        if "timezone" in opts:
            opts["timezone"] = tz
        self.store.catalog.update_schedule(schedule_id, opts)
        timing = {"spec", "timezone", "action", "enabled", "randomized_delay"}
        if timing & set(opts):
            self._drop_intent(schedule_id, "the schedule was changed", SkipReason.SCHEDULE_REMOVED)
        self.reconcile()

    def remove_schedule(self, schedule_id: int) -> None:
        self._schedule(schedule_id)
        self._drop_intent(schedule_id, "the schedule was removed", SkipReason.SCHEDULE_REMOVED)
        self.store.catalog.remove_schedule(schedule_id)
        self._specs.pop(schedule_id, None)
        self.reconcile()

    def list_schedules(self) -> list[dict[str, Any]]:
        profiles = {p["id"]: p["name"] for p in self.store.catalog.profiles()}
        intents = {j["schedule_id"]: j for j in self.store.jobs.with_status(JobStatus.SCHEDULED)}
        out = []
        for s in self.store.catalog.schedules():
            intent = intents.get(s["id"])
            out.append(
                {
                    **s,
                    "profile": profiles.get(s["profile_id"], ""),
                    "timezone": s["timezone"] or "",
                    "normalized": self.spec_for(s).normalized,
                    "next_run": intent["scheduled_for"] if intent else 0,
                }
            )
        return out

    def upcoming(self, start: int, end: int) -> list[dict[str, Any]]:
        if end <= start:
            raise InvalidArgument("'to' must be after 'from'")
        profiles = {p["id"]: p for p in self.store.catalog.profiles()}
        entries = []
        for s in self.store.catalog.schedules(enabled=True):
            profile = profiles.get(s["profile_id"])
            if profile is None or not profile["enabled"]:
                continue
            anchor = to_datetime(s["anchor"] or s["created_at"])
            entries.append(((s["id"], profile["name"], s["action"]), self.spec_for(s), anchor))
        instants, truncated = upcoming(
            entries, to_datetime(start), to_datetime(end), limit=UPCOMING_LIMIT
        )
        if truncated:
            log.info("upcoming.truncated", limit=UPCOMING_LIMIT)
        return [
            {
                "schedule_id": key[0],
                "profile": key[1],
                "action": key[2],
                "scheduled_for": from_datetime(when),
            }
            for when, key in instants
        ]

    def pause(self, until: int) -> None:
        if until and until <= self.clock():
            raise InvalidArgument("'until' is in the past; use 0 to pause until resumed")
        self.store.catalog.set_setting("paused", "1")
        self.store.catalog.set_setting("paused_until", str(until))
        self.paused, self.paused_until = True, until
        self.events.manager_changed({"Paused": True, "PausedUntil": until})
        log.info("scheduler.paused", until=until)
        self.poke()

    def resume(self) -> None:
        self.store.catalog.set_setting("paused", "0")
        self.store.catalog.set_setting("paused_until", "0")
        was = self.paused
        self.paused, self.paused_until = False, 0
        if was:
            self.events.manager_changed({"Paused": False, "PausedUntil": 0})
            log.info("scheduler.resumed")
        self.poke()

    def pause_schedule(self, schedule_id: int, until: int) -> None:
        self._schedule(schedule_id)
        if until and until <= self.clock():
            raise InvalidArgument("'until' is in the past; use 0 to pause until resumed")
        self.store.catalog.update_schedule(schedule_id, {"paused": True, "paused_until": until})
        self.poke()

    def resume_schedule(self, schedule_id: int) -> None:
        self._schedule(schedule_id)
        self.store.catalog.update_schedule(schedule_id, {"paused": False, "paused_until": 0})
        self.poke()

    # -- the loop -------------------------------------------------------------

    def poke(self) -> None:
        self._poke.set()

    async def run(self) -> None:
        while True:
            self._poke = anyio.Event()
            deadline = self.step()
            await self._wait(deadline)
            self.wakeups += 1

    async def _wait(self, deadline: int | None) -> None:
        async with anyio.create_task_group() as tg:

            async def on_timer() -> None:
                assert deadline is not None
                await self.timer.sleep_until(deadline / 1_000_000)
                tg.cancel_scope.cancel()

            async def on_poke() -> None:
                await self._poke.wait()
                tg.cancel_scope.cancel()

            if deadline is not None:
                tg.start_soon(on_timer)
            tg.start_soon(on_poke)

    def step(self) -> int | None:
        """Handle everything due now; return the next wall-clock deadline (µs) or None."""
        now = self.clock()
        self._expire_pauses(now)
        self._reconcile(now)
        intents = sorted(
            self.store.jobs.with_status(JobStatus.SCHEDULED),
            key=lambda j: (j["scheduled_for"], j["id"]),
        )
        for intent in intents:
            if intent["scheduled_for"] <= now:
                try:
                    self._fire(intent, now)
                except StaleState:
                    log.info("scheduler.intent_moved", job_id=intent["id"])
        return self._next_deadline(self.clock())

    def _next_deadline(self, now: int) -> int | None:
        candidates: list[int] = []
        next_run = 0
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            if intent["blocked_by"]:
                overtake = self._overtake_time(intent)
                if overtake:
                    candidates.append(overtake)
            else:
                candidates.append(intent["scheduled_for"])
                if not next_run or intent["scheduled_for"] < next_run:
                    next_run = intent["scheduled_for"]
        if self.paused and self.paused_until:
            candidates.append(self.paused_until)
        for s in self.store.catalog.schedules(paused=True):
            if s["paused_until"]:
                candidates.append(s["paused_until"])
        if next_run != self.next_run:
            self.next_run = next_run
            self.events.manager_changed({"NextRun": next_run})
        future = [c for c in candidates if c > now]
        if len(future) < len(candidates):
            return now  # something is due already: go round again
        return min(future) if future else None

    def _expire_pauses(self, now: int) -> None:
        if self.paused and self.paused_until and self.paused_until <= now:
            self.resume()
        for s in self.store.catalog.schedules(paused=True):
            if s["paused_until"] and s["paused_until"] <= now:
                self.store.catalog.update_schedule(s["id"], {"paused": False, "paused_until": 0})

    # -- intents --------------------------------------------------------------

    def reconcile(self, now: int | None = None) -> None:
        """Every enabled schedule has exactly one intent; others none. Then re-arm."""
        self._reconcile(self.clock() if now is None else now)
        self.poke()

    def _reconcile(self, now: int) -> None:
        intents = {j["schedule_id"]: j for j in self.store.jobs.with_status(JobStatus.SCHEDULED)}
        schedules = {s["id"]: s for s in self.store.catalog.schedules()}
        for schedule_id in intents:
            sched = schedules.get(schedule_id)
            if sched is None or not sched["enabled"]:
                self._drop_intent(
                    schedule_id,
                    "the schedule was removed or disabled",
                    SkipReason.SCHEDULE_REMOVED,
                )
        for sched in schedules.values():
            if sched["enabled"] and sched["id"] not in intents:
                self._write_intent(sched, anchor=sched["anchor"] or sched["created_at"], now=now)

    def _drop_intent(self, schedule_id: int, message: str, reason: SkipReason) -> None:
        for intent in self.store.jobs.with_status(JobStatus.SCHEDULED):
            if intent["schedule_id"] == schedule_id:
                try:
                    row = self.store.jobs.transition(
                        intent["id"],
                        JobStatus.SKIPPED,
                        expect=[JobStatus.SCHEDULED],
                        skip_reason=reason.value,
                        message=message,
                        finished_at=self.clock(),
                    )
                except StaleState:
                    continue
                self.events.job_changed(
                    row["id"], {"status": "skipped", "skip_reason": reason.value}, row
                )

    def _intent_values(
        self, sched: Mapping[str, Any], occurrence: int, now: int
    ) -> dict[str, Any]:
        prow = self.store.catalog.profile_by_id(sched["profile_id"])
        rrow = self.store.catalog.repository_by_id(prow["repository_id"])
        delay = 0
        if sched["randomized_delay"]:
            delay = self.rng.randrange(0, int(sched["randomized_delay"]))
        return {
            "type": sched["action"],
            "status": JobStatus.SCHEDULED.value,
            "trigger": Trigger.SCHEDULE.value,
            "profile": prow["name"],
            "repository": rrow["name"],
            "repository_id": rrow["id"],
            "schedule_id": sched["id"],
            "scheduled_for": occurrence + delay,
            "created_at": now,
            "options": {"occurrence": occurrence},
        }

    def _next_occurrence(self, sched: Mapping[str, Any], after: int) -> int | None:
        spec = self.spec_for(sched)
        when = to_datetime(after)
        nxt = spec.next_after(when, when)
        return None if nxt is None else from_datetime(nxt)

    def _write_intent(self, sched: Mapping[str, Any], *, anchor: int, now: int) -> None:
        occurrence = self._next_occurrence(sched, anchor)
        if occurrence is None:
            return
        values = self._intent_values(sched, occurrence, now)
        try:
            _, created = self.intents.settle(
                schedule_id=sched["id"], anchor=None, next_intent=values
            )
        except StaleState:
            return  # another intent exists already: the store keeps one
        for row in created:
            self.events.job_added(row)

    def _overtake_time(self, intent: JobRow) -> int | None:
        try:
            sched = self.store.catalog.schedule(intent["schedule_id"])
        except NotFound:
            return None
        return self._next_occurrence(sched, _occurrence(intent))

    def _passed_after(self, spec: Spec, occurrence: int, now: int) -> tuple[int, int]:
        """How many occurrences fall in (occurrence, now], and the last of them (or 0)."""
        count, last = 0, 0
        start = to_datetime(occurrence)
        for when in spec.iter_after(start, start):
            us = from_datetime(when)
            if us > now:
                break
            count, last = count + 1, us
            if count >= MAX_COUNTED_MISSES:
                break
        return count, last

    def _fire(self, intent: JobRow, now: int) -> None:
        try:
            sched = self.store.catalog.schedule(intent["schedule_id"])
        except NotFound:
            self._drop_intent(
                intent["schedule_id"], "the schedule was removed", SkipReason.SCHEDULE_REMOVED
            )
            return
        prow = self.store.catalog.profile_by_id(sched["profile_id"])
        rrow = self.store.catalog.repository_by_id(prow["repository_id"])
        spec = self.spec_for(sched)
        occurrence = _occurrence(intent)
        later, newest = self._passed_after(spec, occurrence, now)
        newest = newest or occurrence
        missed_total = 1 + later

        def skip(reason: SkipReason, message: str) -> None:
            self._settle(
                intent,
                sched,
                JobStatus.SKIPPED,
                now,
                anchor=newest,
                fields={
                    "skip_reason": reason.value,
                    "message": message,
                    "finished_at": now,
                    "blocked_by": "",
                },
            )

        paused = self.paused or (
            sched["paused"] and (not sched["paused_until"] or sched["paused_until"] > now)
        )
        if paused:
            what = "borgd is paused" if self.paused else "this schedule is paused"
            skip(SkipReason.PAUSED, what + _count_note(missed_total, occurrence, newest))
            return
        if not prow["enabled"]:
            skip(SkipReason.PROFILE_DISABLED, f"profile {prow['name']} is disabled")
            return
        reason = blocker(
            self.conditions,
            url=rrow["url"],
            repository=rrow["name"],
            skip_on_battery=bool(sched["skip_on_battery"]),
            skip_on_metered=bool(sched["skip_on_metered"]),
        )
        if reason is not None:
            if later:
                # Overtaken by its next occurrence: skip it, and let the newest one wait.
                self._settle(
                    intent,
                    sched,
                    JobStatus.SKIPPED,
                    now,
                    anchor=occurrence,
                    fields={
                        "skip_reason": reason.value,
                        "finished_at": now,
                        "blocked_by": "",
                        "message": f"blocked ({reason.value}) until overtaken"
                        + _count_note(missed_total, occurrence, newest),
                    },
                    next_occurrence=newest,
                )
            elif intent["blocked_by"] != reason.value:
                self.store.jobs.update_fields(intent["id"], blocked_by=reason.value)
                row = {**intent, "blocked_by": reason.value}
                self.events.job_changed(intent["id"], {"blocked_by": reason.value}, row)
                log.info("scheduler.blocked", job_id=intent["id"], reason=reason.value)
            return
        if any(
            j["schedule_id"] == sched["id"] and j["status"] in ("queued", "running")
            for j in self.store.jobs.live()
        ):
            skip(SkipReason.ALREADY_ACTIVE, "the previous run of this schedule is still active")
            return
        late = later > 0 or (
            now - intent["scheduled_for"] > LATE_AFTER_US and not intent["blocked_by"]
        )
        if not late:
            anchor = now if spec.kind == "interval" else occurrence
            self._queue(intent, sched, now, Trigger.SCHEDULE, anchor=anchor)
            return
        if not sched["catch_up"]:
            skip(
                SkipReason.MISSED_WINDOW,
                "missed, and catch-up is off" + _count_note(missed_total, occurrence, newest),
            )
            return
        window = int(sched["catch_up_window"])
        if window and now - newest > window:
            skip(
                SkipReason.MISSED_WINDOW,
                "missed by more than the catch-up window"
                + _count_note(missed_total, occurrence, newest),
            )
            return
        audit = []
        if missed_total > 1:
            audit.append(
                {
                    **self._intent_values(sched, occurrence, now),
                    "status": JobStatus.SKIPPED.value,
                    "scheduled_for": occurrence,
                    "skip_reason": SkipReason.COALESCED.value,
                    "finished_at": now,
                    "message": f"{missed_total} missed occurrences from {_fmt(occurrence)} to "
                    f"{_fmt(newest)} replaced by one catch-up run (job {intent['id']})",
                }
            )
        anchor = now if spec.kind == "interval" else newest
        self._queue(intent, sched, now, Trigger.CATCH_UP, anchor=anchor, audit=audit)

    def _queue(
        self,
        intent: JobRow,
        sched: Mapping[str, Any],
        now: int,
        trigger: Trigger,
        *,
        anchor: int,
        audit: list[dict[str, Any]] | None = None,
    ) -> None:
        self._settle(
            intent,
            sched,
            JobStatus.QUEUED,
            now,
            anchor=anchor,
            fields={"trigger": trigger.value, "queued_at": now, "blocked_by": ""},
            audit=audit or [],
        )
        log.info("scheduler.queued", job_id=intent["id"], trigger=trigger.value)
        self.wake_executor()

    def _settle(
        self,
        intent: JobRow,
        sched: Mapping[str, Any],
        dst: JobStatus,
        now: int,
        *,
        anchor: int,
        fields: dict[str, Any],
        audit: list[dict[str, Any]] | None = None,
        next_occurrence: int | None = None,
    ) -> None:
        if next_occurrence is None:
            next_occurrence = self._next_occurrence(
                sched, max(anchor, now) if dst is JobStatus.SKIPPED else anchor
            )
        nxt = self._intent_values(sched, next_occurrence, now) if next_occurrence else None
        settled, created = self.intents.settle(
            schedule_id=sched["id"],
            anchor=anchor,
            intent_id=intent["id"],
            dst=dst,
            fields=fields,
            audit=audit or [],
            next_intent=nxt,
        )
        assert settled is not None
        self.events.job_changed(intent["id"], {"status": dst.value, **fields}, settled)
        for row in created:
            self.events.job_added(row)

    # -- sleep and resume ---------------------------------------------------

    async def before_sleep(self) -> None:
        """Everything is in the store already; make sure the WAL is on disk."""
        with self.store.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def after_resume(self) -> None:
        self.poke()


def _occurrence(intent: Mapping[str, Any]) -> int:
    opts = intent.get("options") or {}
    return int(opts.get("occurrence") or intent["scheduled_for"])


def _count_note(count: int, first: int, last: int) -> str:
    if count <= 1:
        return ""
    return f" ({count} occurrences from {_fmt(first)} to {_fmt(last)})"


__all__ = ["Scheduler", "datetime"]
