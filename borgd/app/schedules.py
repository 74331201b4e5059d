"""Use cases on schedules and the pause: add, change, remove, list, the calendar of
planned runs, pause and resume (globally or one schedule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from borgd import errors
from borgd.clock import Clock, from_datetime, to_datetime
from borgd.core.jobs import JobStatus, SkipReason, Trigger
from borgd.core.records import Schedule
from borgd.core.schedule import Spec, SpecError, parse_spec, upcoming
from borgd.core.validation import (
    SCHEDULE_OPTIONS,
    SCHEDULE_UPDATE_OPTIONS,
    InvalidArgument,
    Variant,
    check_blackout,
    check_id,
    check_name,
    check_options,
    check_schedule_action,
    check_text,
)
from borgd.scheduling.scheduler import Scheduler
from borgd.store import Store
from borgd.store.catalog import NotFound

log = structlog.get_logger(__name__)

UPCOMING_LIMIT = 10_000
# Changing one of these plans the schedule's next occurrence afresh.
TIMING_OPTIONS = frozenset({"spec", "timezone", "action", "enabled", "randomized_delay"})


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


def _check_until(until: int, now: int) -> None:
    if until and until <= now:
        raise InvalidArgument("'until' is in the past; use 0 to pause until resumed")


class Schedules:
    def __init__(self, *, store: Store, clock: Clock, scheduler: Scheduler) -> None:
        self.store = store
        self.clock = clock
        self.scheduler = scheduler

    @property
    def paused(self) -> bool:
        return self.scheduler.paused

    @property
    def paused_until(self) -> int:
        return self.scheduler.paused_until

    @property
    def next_run(self) -> int:
        return self.scheduler.next_run

    def _schedule(self, schedule_id: int) -> Schedule:
        check_id("schedule id", schedule_id)
        try:
            return self.store.catalog.schedule(schedule_id)
        except NotFound as exc:
            raise errors.NotFound(f"no schedule with id {schedule_id}") from exc

    def add_schedule(
        self, profile: str, action: str, spec: str, options: Mapping[str, Variant]
    ) -> int:
        check_name("profile", profile)
        check_schedule_action(action)
        opts = check_options("schedule", SCHEDULE_OPTIONS, options)
        check_spec(spec, opts.get("timezone"))
        try:
            prow = self.store.catalog.profile(profile)
        except NotFound as exc:
            raise errors.NotFound(f"no profile named {profile!r}") from exc
        values = {
            "profile_id": prow.id,
            "action": action,
            "spec": spec,
            "timezone": opts.pop("timezone", None) or None,
            "created_at": self.clock(),
            **opts,
        }
        schedule_id = self.store.catalog.add_schedule(values)
        log.info("schedule.added", schedule_id=schedule_id, profile=profile, spec=spec)
        self.scheduler.reconcile_soon(fresh=[schedule_id])
        return schedule_id

    def update_schedule(self, schedule_id: int, options: Mapping[str, Variant]) -> None:
        sched = self._schedule(schedule_id)
        opts = check_options("schedule", SCHEDULE_UPDATE_OPTIONS, options)
        if "action" in opts:
            check_schedule_action(opts["action"])
        tz = opts.get("timezone", sched.timezone) or None
        check_spec(opts.get("spec", sched.spec), tz)
        if "timezone" in opts:
            opts["timezone"] = tz
        self.store.catalog.update_schedule(schedule_id, opts)
        fresh: list[int] = []
        if TIMING_OPTIONS & set(opts):
            self.scheduler.drop_intent(
                schedule_id, "the schedule was changed", SkipReason.SCHEDULE_REMOVED
            )
            fresh.append(schedule_id)
        log.info("schedule.updated", schedule_id=schedule_id, changed=sorted(opts))
        self.scheduler.reconcile_soon(fresh=fresh)

    def remove_schedule(self, schedule_id: int) -> None:
        self._schedule(schedule_id)
        self.scheduler.drop_intent(
            schedule_id, "the schedule was removed", SkipReason.SCHEDULE_REMOVED
        )
        self.store.catalog.remove_schedule(schedule_id)
        self.scheduler.forget_spec(schedule_id)
        log.info("schedule.removed", schedule_id=schedule_id)
        self.scheduler.reconcile_soon()

    def list_schedules(self) -> list[dict[str, Any]]:
        profiles = {p.id: p.name for p in self.store.catalog.profiles()}
        intents = {
            j.schedule_id: j
            for j in self.store.jobs.with_status(JobStatus.SCHEDULED)
            if j.trigger != Trigger.RETRY
        }
        out = []
        for s in self.store.catalog.schedules():
            intent = intents.get(s.id)
            out.append(
                {
                    **s.as_dict(),
                    "profile": profiles.get(s.profile_id, ""),
                    "timezone": s.timezone or "",
                    "normalized": self.scheduler.spec_for(s).normalized,
                    "next_run": intent.scheduled_for if intent else 0,
                }
            )
        return out

    def upcoming(self, start: int, end: int) -> list[dict[str, Any]]:
        if end <= start:
            raise InvalidArgument("'to' must be after 'from'")
        profiles = {p.id: p for p in self.store.catalog.profiles()}
        by_name = {p.name: p for p in profiles.values()}
        entries = []
        for s in self.store.catalog.schedules(enabled=True):
            profile = profiles.get(s.profile_id)
            if profile is None or not profile.enabled:
                continue
            anchor = to_datetime(s.anchor or s.created_at)
            key = (s.id, profile.name, s.action)
            entries.append((key, self.scheduler.spec_for(s), anchor))
        instants, truncated = upcoming(
            entries, to_datetime(start), to_datetime(end), limit=UPCOMING_LIMIT
        )
        if truncated:
            log.info("upcoming.truncated", limit=UPCOMING_LIMIT)
        out = []
        for when, key in instants:
            at = from_datetime(when)
            # A start inside a blackout window waits for its end: say when it will run.
            end = self.scheduler.blackout_end(by_name.get(key[1]), at) or 0
            entry: dict[str, Any] = {
                "schedule_id": key[0],
                "profile": key[1],
                "action": key[2],
                "scheduled_for": at,
                "deferred_to": end,
                "blocked_by": "blackout" if end else "",
            }
            out.append(entry)
        return out

    @property
    def blackout(self) -> list[str]:
        return list(self.scheduler.blackout)

    def set_blackout(self, windows: list[str]) -> None:
        """The global blackout windows; an empty list removes them."""
        self.scheduler.set_blackout(check_blackout(windows))

    def pause(self, until: int) -> None:
        _check_until(until, self.clock())
        self.scheduler.set_pause(True, until)

    def resume(self) -> None:
        self.scheduler.set_pause(False, 0)

    def pause_schedule(self, schedule_id: int, until: int) -> None:
        self._schedule(schedule_id)
        _check_until(until, self.clock())
        self.store.catalog.update_schedule(schedule_id, {"paused": True, "paused_until": until})
        log.info("schedule.paused", schedule_id=schedule_id, until=until)
        self.scheduler.poke()

    def resume_schedule(self, schedule_id: int) -> None:
        self._schedule(schedule_id)
        self.store.catalog.update_schedule(schedule_id, {"paused": False, "paused_until": 0})
        log.info("schedule.resumed", schedule_id=schedule_id)
        self.scheduler.poke()
