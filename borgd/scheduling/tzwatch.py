"""Follow changes of the system's time zone announced by systemd-timedated.

``timedatectl set-timezone`` (and desktop settings panels) go through
``org.freedesktop.timedate1``, which rewrites ``/etc/localtime`` and then
emits ``PropertiesChanged`` for ``Timezone``.  :class:`TimezoneWatcher`
listens for that signal on the system bus and calls ``on_change`` (the
scheduler re-reads the zone and re-plans the schedules that use it).

timedated is started on demand and exits when idle, so the watcher never
calls it (that would start it): it only listens, and picks the service up
whenever it appears.  A zone changed behind timedated's back (an edited
``/etc/localtime``) is noticed by the scheduler itself at its next wakeup,
which re-reads the zone every time — the stdlib has no inotify.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from dbus_fast import Variant
from dbus_fast.aio import MessageBus

from borgd.system.freedesktop import PROPERTIES_IFACE, PROPERTIES_NODE
from borgd.system.power import SystemServiceWatcher

TIMEDATE_NAME = "org.freedesktop.timedate1"
TIMEDATE_PATH = "/org/freedesktop/timedate1"


def _log() -> Any:
    return structlog.get_logger(__name__)


class TimezoneWatcher(SystemServiceWatcher):
    service = TIMEDATE_NAME
    label = "timedated"

    def __init__(self, on_change: Callable[[], None], bus_address: str | None = None) -> None:
        super().__init__(bus_address)
        self.on_change = on_change
        self.changes = 0

    def _attach(self, bus: MessageBus) -> None:
        props = bus.get_proxy_object(TIMEDATE_NAME, TIMEDATE_PATH, PROPERTIES_NODE)
        iface = props.get_interface(PROPERTIES_IFACE)
        iface.on_properties_changed(self._properties_changed)  # type: ignore[attr-defined]

    def _properties_changed(
        self, interface: str, changed: dict[str, Variant], invalidated: list[str]
    ) -> None:
        if interface == TIMEDATE_NAME and ("Timezone" in changed or "Timezone" in invalidated):
            zone = changed["Timezone"].value if "Timezone" in changed else None
            self._post("timezone", zone)

    async def _appear(self) -> None:
        """Nothing to read: listening is enough (and calling would start timedated)."""

    def _set_unavailable(self, why: str) -> None:
        _log().debug("timezone_watcher_idle", reason=why)

    async def _handle(self, kind: str, value: Any) -> None:
        if kind != "timezone":
            return
        self.changes += 1
        _log().info("timezone_changed", zone=value)
        try:
            self.on_change()
        except Exception:
            _log().exception("timezone_on_change_failed")
