"""Removable disks through UDisks2 (system bus): what is plugged in, mount, unmount, power off.

:class:`DiskMonitor` reads UDisks2's objects once (``GetManagedObjects`` on
``/org/freedesktop/UDisks2``) and then follows ``InterfacesAdded``,
``InterfacesRemoved`` and ``PropertiesChanged`` (a filesystem's
``MountPoints``), so :attr:`DiskMonitor.inventory` always says which
filesystems exist, where they are mounted and whether their drive is
removable.  It only reports (``on_change``, ``on_state``); what to do about a
disk is decided by the use cases (``borgd.app.disks``).

Without UDisks2 it says so (``state`` = ``unavailable: …``, one warning, as
:class:`~borgd.system.logind.SleepMonitor` does) and keeps watching the bus for
it; the mount-table watcher still notices mounts meanwhile.  Nothing UDisks2
sends (errors, odd objects, a restart) can end the daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import structlog
from dbus_fast import DBusError, Message, MessageType, Variant, unpack_variants
from dbus_fast.aio import MessageBus

from borgd.core.disks import (
    BLOCK_IFACE,
    DRIVE_IFACE,
    FILESYSTEM_IFACE,
    DiskActionFailed,
    Filesystem,
    Inventory,
    inventory_from_objects,
)
from borgd.system.freedesktop import DBUS_NAME, DBUS_PATH, PROPERTIES_IFACE
from borgd.system.power import (
    STATE_ACTIVE,
    ServiceAbsent,
    StatefulWatcher,
    absent_or_raise,
    describe,
)

UDISKS_NAME = "org.freedesktop.UDisks2"
UDISKS_PATH = "/org/freedesktop/UDisks2"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
WATCHED = frozenset({BLOCK_IFACE, FILESYSTEM_IFACE, DRIVE_IFACE})

MATCH_RULES = (
    f"type='signal',sender='{UDISKS_NAME}',interface='{OM_IFACE}',path='{UDISKS_PATH}'",
    f"type='signal',sender='{UDISKS_NAME}',interface='{PROPERTIES_IFACE}',"
    f"member='PropertiesChanged',path_namespace='{UDISKS_PATH}'",
)


def _log() -> Any:
    return structlog.get_logger(__name__)


class DiskMonitor(StatefulWatcher):
    """UDisks2's filesystems and drives, followed on the system bus.

    ``inventory`` is None while UDisks2 is not reachable.  ``on_change`` is
    called whenever the inventory (or its availability) changes, ``on_state``
    with each new ``state`` (``active`` or ``unavailable: <why>``).
    """

    service = UDISKS_NAME
    label = "UDisks2"
    event = "disk_monitor"
    # Mounting checks the file system first; unmounting flushes a slow stick.
    action_timeout = 120.0

    def __init__(
        self,
        *,
        on_change: Callable[[], None],
        on_state: Callable[[str], None],
        bus_address: str | None = None,
    ) -> None:
        super().__init__(on_state, bus_address)
        self._on_change = on_change
        self._objects: dict[str, dict[str, dict[str, Any]]] = {}
        self._inventory: Inventory | None = None
        self._matched = False

    @property
    def inventory(self) -> Inventory | None:
        return self._inventory

    # -- state ---------------------------------------------------------------

    def _publish(self) -> None:
        """Recompute the inventory from the objects; tell ``on_change`` if it changed."""
        before = self._inventory
        self._inventory = inventory_from_objects(self._objects) if self._available else None
        if self._inventory != before:
            try:
                self._on_change()
            except Exception:
                _log().exception("disk_monitor_on_change_failed")

    @property
    def _available(self) -> bool:
        return self._state == STATE_ACTIVE

    def _set_unavailable(self, why: str) -> None:
        self._warn_unavailable(
            "disk_monitor_unavailable",
            why,
            consequence="removable disks are noticed through the mount table only; "
            "no automount, on-connect runs, eject or reminders",
        )
        self._objects = {}
        self._set_state(f"unavailable: {why}")
        self._publish()

    # -- watcher hooks -------------------------------------------------------

    def _attach(self, bus: MessageBus) -> None:
        self._matched = False
        bus.add_message_handler(self._on_message)

    def _detached(self) -> None:
        self._matched = False

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        try:
            if msg.interface == OM_IFACE and msg.path == UDISKS_PATH:
                if msg.member == "InterfacesAdded":
                    path, ifaces = msg.body
                    self._post("added", (str(path), unpack_variants(ifaces)))
                elif msg.member == "InterfacesRemoved":
                    path, names = msg.body
                    self._post("removed", (str(path), [str(n) for n in names]))
            elif (
                msg.interface == PROPERTIES_IFACE
                and msg.member == "PropertiesChanged"
                and (msg.path or "").startswith(UDISKS_PATH + "/")
            ):
                iface, changed, invalidated = msg.body
                if iface in WATCHED:
                    value = (msg.path, iface, unpack_variants(changed), list(invalidated))
                    self._post("changed", value)
        except (ValueError, TypeError) as exc:  # a signal of another shape: not ours to read
            _log().debug("disk_monitor_odd_signal", member=msg.member, error=str(exc))

    async def _call(self, msg: Message, timeout: float) -> list[Any]:
        bus = self._bus
        if bus is None:
            raise ServiceAbsent("not connected to the system bus")
        with anyio.fail_after(timeout):
            reply = await bus.call(msg)
        if reply.message_type is MessageType.ERROR:
            raise DBusError(reply.error_name or "unknown", reply.body[0] if reply.body else "")
        return list(reply.body)

    async def _subscribe(self) -> None:
        for rule in MATCH_RULES:
            await self._call(
                Message(
                    destination=DBUS_NAME,
                    path=DBUS_PATH,
                    interface=DBUS_NAME,
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                ),
                self.call_timeout,
            )
        self._matched = True

    async def _appear(self) -> None:
        if not self._matched:
            # Awaited: once answered, no signal sent after the read below is missed.
            await self._subscribe()
        try:
            (objects,) = await self._call(
                Message(
                    destination=UDISKS_NAME,
                    path=UDISKS_PATH,
                    interface=OM_IFACE,
                    member="GetManagedObjects",
                ),
                self.call_timeout,
            )
        except DBusError as exc:
            absent_or_raise(exc)
            raise
        self._objects = {
            str(path): {str(i): dict(p) for i, p in unpack_variants(ifaces).items()}
            for path, ifaces in objects.items()
        }
        self._note_available("disk_monitor_active")
        self._set_state(STATE_ACTIVE)
        self._publish()

    async def _handle(self, kind: str, value: Any) -> None:
        if not self._available:
            return  # the next full read covers it
        try:
            self._apply(kind, value)
        except (ValueError, TypeError, AttributeError) as exc:
            _log().debug("disk_monitor_odd_signal", kind=kind, error=str(exc))
            self._schedule_retry(now=True)  # read everything again
            return
        self._publish()

    def _apply(self, kind: str, value: Any) -> None:
        if kind == "added":
            path, ifaces = value
            obj = self._objects.setdefault(path, {})
            for name, props in ifaces.items():
                obj[str(name)] = dict(props)
        elif kind == "removed":
            path, names = value
            obj = self._objects.get(path, {})
            for name in names:
                obj.pop(name, None)
            if not obj:
                self._objects.pop(path, None)
        elif kind == "changed":
            path, iface, changed, invalidated = value
            props = self._objects.setdefault(path, {}).setdefault(iface, {})
            props.update(changed)
            if invalidated:
                for name in invalidated:
                    props.pop(name, None)
                self._schedule_retry(now=True)  # values we need were not sent: read them

    # -- actions (called by the use cases) ------------------------------------

    async def _act(self, path: str, iface: str, member: str) -> list[Any]:
        try:
            return await self._call(
                Message(
                    destination=UDISKS_NAME,
                    path=path,
                    interface=iface,
                    member=member,
                    signature="a{sv}",
                    body=[{"auth.no_user_interaction": Variant("b", True)}],
                ),
                self.action_timeout,
            )
        except Exception as exc:  # every failure is the caller's to log, never to crash on
            raise DiskActionFailed(f"{member} of {path}: {describe(exc)}") from exc

    async def mount(self, fs: Filesystem) -> str:
        """Mount through UDisks2 (no root needed); returns where."""
        body = await self._act(fs.path, FILESYSTEM_IFACE, "Mount")
        return str(body[0]) if body else ""

    async def unmount(self, fs: Filesystem) -> None:
        await self._act(fs.path, FILESYSTEM_IFACE, "Unmount")

    async def power_off(self, drive: str) -> None:
        await self._act(drive, DRIVE_IFACE, "PowerOff")
