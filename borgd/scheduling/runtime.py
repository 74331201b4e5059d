"""The scheduling part assembled: the scheduler and everything that wakes it.

:class:`Scheduling` builds, from the store and the session bus, the
scheduler with its conditions and the watchers that feed them (UPower,
NetworkManager with the post-resume settle time, logind, the mount table,
the Secret Service, timedated, UDisks2), the overdue watcher and the desktop
notifications, wires them to each other, and runs them as one task.  The
daemon only hands it what it shares with the rest (store, events, clock,
bus, secrets, the executor's wake-up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import structlog
from dbus_fast.aio import MessageBus

from borgd.clock import Clock
from borgd.events import Events
from borgd.scheduling.alerts import DEFAULT_BLOCKED_AFTER_US, Alerts
from borgd.scheduling.conditions import Conditions, NetworkSettle
from borgd.scheduling.mounts import MountWatcher
from borgd.scheduling.overdue import OverdueWatcher
from borgd.scheduling.scheduler import Scheduler, SchedulerListener
from borgd.scheduling.secretwatch import SecretWatcher
from borgd.scheduling.timer import make_timer
from borgd.scheduling.tzwatch import TimezoneWatcher
from borgd.store import Store
from borgd.store.health import keep_running
from borgd.system.logind import SleepMonitor
from borgd.system.notifications import KINDS, Notifier
from borgd.system.power import NetworkMonitor, PowerMonitor
from borgd.system.secrets import SecretStore
from borgd.system.udisks import DiskMonitor

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SchedulingSettings:
    notify: frozenset[str] = KINDS
    blocked_after_us: int = DEFAULT_BLOCKED_AFTER_US
    network_settle_s: float = 10.0


def parse_notify_kinds(text: str) -> frozenset[str]:
    """``failure,overdue,blocked`` (any subset), ``all`` or ``none``."""
    words = {w.strip() for w in text.split(",") if w.strip()}
    if words == {"none"}:
        return frozenset()
    if words == {"all"}:
        return KINDS
    unknown = words - KINDS
    if unknown or not words:
        raise ValueError(
            f"unknown notification kind(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"use a comma-separated list of {', '.join(sorted(KINDS))}, or all, or none"
        )
    return frozenset(words)


class Scheduling:
    def __init__(
        self,
        *,
        store: Store,
        events: Events,
        clock: Clock,
        bus: MessageBus,
        secrets: SecretStore,
        wake_executor: Callable[[], None],
        settings: SchedulingSettings = SchedulingSettings(),
    ) -> None:
        self.events = events
        self.store = store
        self.conditions = conditions = Conditions()
        self.scheduler = scheduler = Scheduler(
            store=store,
            events=events,
            clock=clock,
            timer=make_timer(),
            conditions=conditions,
            wake_executor=wake_executor,
            refresh_conditions=self._refresh_conditions,
        )
        self.power = PowerMonitor(self._conditions_changed)
        self.network = NetworkMonitor(self._conditions_changed)
        self.settle = NetworkSettle(conditions, scheduler.poke, settings.network_settle_s)
        self.sleep_monitor = SleepMonitor(
            on_before_sleep=self._before_sleep,
            on_resume=self._after_resume,
            on_state=self._sleep_state,
        )
        self.mounts = MountWatcher(scheduler.poke)
        # Removable disks through UDisks2; the disk use cases subscribe to `on_disks`.
        self.disk_monitor = DiskMonitor(on_change=self._disks_changed, on_state=self._disk_state)
        self.on_disks: list[Callable[[], None]] = []
        self.secret_watcher = SecretWatcher(
            conditions=conditions,
            store=store,
            is_locked=secrets.is_locked,
            on_change=scheduler.poke,
            bus=bus,
        )
        self.timezone = TimezoneWatcher(scheduler.timezone_changed)
        self.notifier = Notifier(settings.notify, bus=bus)
        self.alerts = Alerts(
            notifier=self.notifier,
            store=store,
            clock=clock,
            timer=make_timer(),
            blocked_after=settings.blocked_after_us,
            on_blocked=self._blocked,
        )
        self.overdue = OverdueWatcher(
            store=store,
            events=events,
            clock=clock,
            timer=make_timer(),
            on_overdue=self.alerts.overdue,
        )
        for listener in (SchedulerListener(scheduler), self.overdue, self.alerts):
            events.subscribe(listener)
        # Called when the network may be back or the machine resumed (the outbox).
        self.on_wake: list[Callable[[], None]] = []
        # Called for each episode of a backup held back too long (the outbox).
        self.on_blocked: list[Callable[[str, int, str], None]] = []
        log.info("notifications.kinds", enabled=sorted(settings.notify))

    # -- hooks for the rest of the daemon --------------------------------------------

    def profiles_changed(self) -> None:
        """A profile was added, changed or removed (its schedules may be gone)."""
        self.scheduler.reconcile_soon()
        self.overdue.poke()

    def block_sleep(self, why: str) -> AbstractAsyncContextManager[bool]:
        """A ``block`` sleep inhibitor for a running backup (``inhibit_sleep``)."""
        return self.sleep_monitor.block_sleep(why)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            for task in self._tasks():
                tg.start_soon(keep_running, task.__qualname__, task, self.store.health)
            task_status.started()

    async def wait_settled(self, timeout: float) -> None:
        """Until the watchers have subscribed (or given up), at most ``timeout`` s: READY=1
        then means that a PrepareForSleep finds the delay lock taken.  Watchers still
        busy after that keep saying ``starting``."""
        with anyio.move_on_after(timeout):
            for latch in (
                self.sleep_monitor.settled,
                self.power.settled,
                self.network.settled,
                self.secret_watcher.settled,
                self.disk_monitor.settled,
            ):
                await latch.wait()

    def _tasks(self) -> Iterable[Callable[[], Any]]:
        return (
            self.scheduler.run,
            self.power.run,
            self.network.run,
            self.settle.run,
            self.sleep_monitor.run,
            self.mounts.run,
            self.disk_monitor.run,
            self.secret_watcher.run,
            self.timezone.run,
            self.overdue.run,
            self.alerts.run,
        )

    # -- wiring between the parts ----------------------------------------------------

    async def _refresh_conditions(self) -> None:
        await self.secret_watcher.refresh()

    def _conditions_changed(self) -> None:
        conditions, changed = self.conditions, {}
        if self.power.on_battery != conditions.on_battery:
            conditions.on_battery = self.power.on_battery
            changed["OnBattery"] = conditions.on_battery
        if self.network.metered != conditions.metered:
            conditions.metered = self.network.metered
            changed["Metered"] = conditions.metered
        came_back = self.network.online and not conditions.online
        conditions.online = self.network.online
        if came_back:
            self._wake()
        if changed:
            self.events.manager_changed(changed)
        self.settle.network_changed()
        self.scheduler.poke()

    def _sleep_state(self, state: str) -> None:
        if state != self.conditions.sleep_monitor:
            self.conditions.sleep_monitor = state
            self.events.manager_changed({"SleepMonitor": state})

    def _disk_state(self, state: str) -> None:
        if state != self.conditions.disk_monitor:
            self.conditions.disk_monitor = state
            self.events.manager_changed({"DiskMonitor": state})

    def _disks_changed(self) -> None:
        for hook in self.on_disks:
            hook()

    async def _before_sleep(self) -> None:
        # Remote repositories wait for the network after the resume.
        self.settle.suspending()
        await self.scheduler.before_sleep()

    async def _after_resume(self) -> None:
        self.settle.resumed()
        await self.scheduler.after_resume()
        self.overdue.poke()
        self.alerts.poke()
        self._wake()

    def _wake(self) -> None:
        for hook in self.on_wake:
            hook()

    def _blocked(self, profile: str, since: int, reason: str) -> None:
        for hook in self.on_blocked:
            hook(profile, since, reason)
