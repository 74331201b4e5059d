"""Watchers of system services: UPower (on battery) and NetworkManager (metered, online).

Both are optional. When a service is missing the watcher reports the
defaults (on AC power, not metered, online), says so in the log once, and
keeps watching the bus so that a service that appears later is picked up.

This module also holds :class:`SystemServiceWatcher`, the reconnecting
event loop that :class:`borgd.system.logind.SleepMonitor` shares.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import anyio
import structlog
from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus, ProxyInterface
from dbus_fast.introspection import Node

from borgd.system.freedesktop import (
    ABSENT_ERRORS,
    DBUS_NAME,
    DBUS_NODE,
    DBUS_PATH,
    PROPERTIES_IFACE,
    PROPERTIES_NODE,
)
from borgd.wakeups import Latch


def _log() -> Any:
    # Looked up at each use: a logger cached at import time would ignore a
    # later structlog.configure() (and structlog.testing.capture_logs).
    return structlog.get_logger(__name__)


class ServiceAbsent(Exception):
    """The watched service is not on the bus (and cannot be activated)."""


class ServiceNotReady(Exception):
    """The service answered, but not (yet) with what we need: try again later."""


def describe(exc: BaseException) -> str:
    """A short, human description of a failure, for state strings and logs."""
    if isinstance(exc, DBusError):
        return f"{exc.type}: {exc.text}" if exc.text else exc.type
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def absent_or_raise(exc: DBusError) -> None:
    """Raise ServiceAbsent for the errors that say the name has no owner."""
    if exc.type in ABSENT_ERRORS:
        raise ServiceAbsent(exc.text or exc.type) from exc


class SystemServiceWatcher:
    """Keep a connection to the system bus and follow one service on it.

    The loop connects (with backoff while the bus is missing), subscribes to
    the service's signals and to NameOwnerChanged, then calls :meth:`_appear`
    at once, whenever the name gets an owner, and again with backoff after a
    failure other than "absent". Signals are queued by :meth:`_post` and
    handled one at a time, in order, by :meth:`_handle`.

    Subclasses set ``service`` and ``label`` and implement the hooks.
    """

    service: ClassVar[str]
    label: ClassVar[str]

    # Backoff (seconds). Class attributes so that tests may shorten them.
    retry_initial: ClassVar[float] = 0.1
    retry_max: ClassVar[float] = 30.0
    reconnect_initial: ClassVar[float] = 1.0
    reconnect_max: ClassVar[float] = 60.0
    call_timeout: ClassVar[float] = 10.0

    def __init__(self, bus_address: str | None = None) -> None:
        self._bus_address = bus_address
        self._bus: MessageBus | None = None
        self._queue: deque[tuple[str, Any]] = deque()
        self._wakeup: anyio.Event | None = None
        self._retry_at: float | None = None
        self._retry_delay = self.retry_initial
        # Set once the first attempt ended, either way: borgd says READY=1 after it.
        self.settled = Latch()
        self._warned = False  # this episode of unavailability was warned about

    # -- episodes: one warning while the service is away, one line when it is back --

    def _warn_unavailable(self, event: str, why: str, **context: Any) -> None:
        """A warning at the first failure of an episode; later ones at debug level."""
        if self._warned:
            _log().debug(event, reason=why, service=self.service)
            return
        self._warned = True
        _log().warning(event, reason=why, service=self.service, **context)

    def _note_available(self, event: str) -> None:
        """The episode is over: say so if it was warned about."""
        if self._warned:
            _log().info(event, service=self.service)
        self._warned = False

    # -- hooks -------------------------------------------------------------

    def _attach(self, bus: MessageBus) -> None:
        """Create proxies and subscribe to the service's signals (no I/O wait)."""
        raise NotImplementedError

    async def _appear(self) -> None:
        """Set up against the service; raise ServiceAbsent, or anything to retry."""
        raise NotImplementedError

    def _set_unavailable(self, why: str) -> None:
        """The service cannot be used (absent, failing, or no bus)."""
        raise NotImplementedError

    def _detached(self) -> None:
        """The bus connection is gone: drop proxies and resources (synchronous)."""

    async def _handle(self, kind: str, value: Any) -> None:
        """Handle one event posted by a signal callback."""

    def _failure_text(self, exc: BaseException) -> str:
        return f"{self.label} did not answer usefully ({describe(exc)})"

    # -- machinery ---------------------------------------------------------

    def _post(self, kind: str, value: Any = None) -> None:
        """Queue an event from a signal callback (runs in the event loop's thread)."""
        self._queue.append((kind, value))
        if self._wakeup is not None:
            self._wakeup.set()

    def _schedule_retry(self, *, now: bool = False) -> None:
        if now:
            self._retry_delay = self.retry_initial
            self._retry_at = anyio.current_time()
        else:
            self._retry_at = anyio.current_time() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.retry_max)

    async def _attempt(self) -> bool:
        """Run :meth:`_appear`, turning failures into state and a retry plan."""
        self._retry_at = None
        try:
            return await self._appear_once()
        finally:
            self.settled.set()

    async def _appear_once(self) -> bool:
        try:
            await self._appear()
        except ServiceAbsent:
            self._retry_delay = self.retry_initial
            self._set_unavailable(f"{self.label} ({self.service}) is not on the system bus")
            return False
        except Exception as exc:  # an error, a timeout, a half-started service: retry
            self._set_unavailable(self._failure_text(exc))
            self._schedule_retry()
            return False
        self._retry_delay = self.retry_initial
        return True

    async def _connect(self) -> MessageBus:
        with anyio.fail_after(self.call_timeout):
            bus = MessageBus(
                bus_address=self._bus_address,
                bus_type=BusType.SYSTEM,
                negotiate_unix_fd=True,
            )
            return await bus.connect()

    async def run(self) -> None:
        """Watch the service until cancelled."""
        delay = self.reconnect_initial
        while True:
            try:
                bus = await self._connect()
            except Exception as exc:  # any failure to reach the bus: retry later
                self._set_unavailable(f"cannot connect to the system bus ({describe(exc)})")
                self.settled.set()
                await anyio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            delay = self.reconnect_initial
            try:
                await self._serve(bus)
            finally:
                self._bus = None
                self._wakeup = None
                self._queue.clear()
                self._detached()
                with contextlib.suppress(Exception):  # already gone
                    bus.disconnect()
            self._set_unavailable("lost the connection to the system bus")
            await anyio.sleep(delay)

    async def _watch_disconnect(self, bus: MessageBus, scope: anyio.CancelScope) -> None:
        try:
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        except Exception as exc:  # the reason is only informative
            _log().debug("system_bus_disconnected", service=self.service, error=describe(exc))
        scope.cancel()

    async def _serve(self, bus: MessageBus) -> None:
        """Follow the service on one connection; returns when the connection drops."""
        self._bus = bus
        self._queue.clear()
        self._wakeup = anyio.Event()
        self._retry_at = None
        self._retry_delay = self.retry_initial

        dbus = bus.get_proxy_object(DBUS_NAME, DBUS_PATH, DBUS_NODE).get_interface(DBUS_NAME)

        def owner_changed(name: str, old: str, new: str) -> None:
            if name == self.service:
                self._post("owner", (bool(old), bool(new)))

        dbus.on_name_owner_changed(owner_changed)  # type: ignore[attr-defined]
        self._attach(bus)

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_disconnect, bus, tg.cancel_scope)
            # The match rules were sent before this call: once it is answered
            # they are in place, so nothing the service does later is missed.
            await self._attempt()
            await self._loop()

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                assert self._wakeup is not None
                timeout = (
                    None
                    if self._retry_at is None
                    else max(0.0, self._retry_at - anyio.current_time())
                )
                with anyio.move_on_after(timeout):
                    await self._wakeup.wait()
                self._wakeup = anyio.Event()
            if not self._queue:
                if self._retry_at is not None and anyio.current_time() >= self._retry_at:
                    await self._attempt()
                continue
            kind, value = self._queue.popleft()
            if kind == "owner":
                had_owner, has_owner = value
                if had_owner:  # gone, or replaced: what we held belonged to the old one
                    self._retry_at = None
                    self._set_unavailable(f"{self.label} ({self.service}) left the system bus")
                if has_owner:
                    # The name may be owned before its objects are exported:
                    # try at once, then back off.
                    self._schedule_retry(now=True)
            else:
                await self._handle(kind, value)


def _props_proxy(bus: MessageBus, name: str, path: str) -> ProxyInterface:
    obj = bus.get_proxy_object(name, path, PROPERTIES_NODE)
    return obj.get_interface(PROPERTIES_IFACE)


def _unvariant(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Variant) else v for k, v in values.items()}


STATE_ACTIVE = "active"
STATE_STARTING = "starting"  # until the first attempt to reach the service ended


class StatefulWatcher(SystemServiceWatcher):
    """A watcher whose state is a borgd property (SleepMonitor, DiskMonitor):
    ``starting``, ``active`` or ``unavailable: <why>``, told to ``on_state`` when
    it changes."""

    event: ClassVar[str]  # the prefix of its log events, e.g. "sleep_monitor"

    def __init__(self, on_state: Callable[[str], None], bus_address: str | None = None) -> None:
        super().__init__(bus_address)
        self._on_state = on_state
        self._state = STATE_STARTING

    @property
    def state(self) -> str:
        return self._state

    def _set_state(self, state: str) -> None:
        if state == self._state:
            return
        self._state = state
        try:
            self._on_state(state)
        except Exception:
            _log().exception(f"{self.event}_on_state_failed")


class _PropertyWatcher(SystemServiceWatcher):
    """Follow a few properties of one object of a service."""

    path: ClassVar[str]
    interface: ClassVar[str]
    required: ClassVar[tuple[str, ...]]
    watched: ClassVar[frozenset[str]]

    def __init__(self, on_change: Callable[[], None], bus_address: str | None = None) -> None:
        super().__init__(bus_address)
        self._on_change = on_change
        self._props: ProxyInterface | None = None
        self._values: dict[str, Any] = {}
        self._available = False

    @property
    def available(self) -> bool:
        """Whether the service is on the bus and answering."""
        return self._available

    def _snapshot(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def _update(self, values: dict[str, Any] | None, *, available: bool) -> None:
        before = (self._available, self._snapshot())
        if values is None:
            self._values = {}
        else:
            self._values.update({k: v for k, v in values.items() if k in self.watched})
        self._available = available
        if (self._available, self._snapshot()) != before:
            try:
                self._on_change()
            except Exception:
                _log().exception("on_change_failed", service=self.service)

    def _attach(self, bus: MessageBus) -> None:
        self._props = _props_proxy(bus, self.service, self.path)
        self._props.on_properties_changed(self._properties_changed)  # type: ignore[attr-defined]

    def _properties_changed(
        self, interface: str, changed: dict[str, Variant], invalidated: list[str]
    ) -> None:
        if interface != self.interface:
            return
        self._post("changed", _unvariant(changed))
        if self.watched.intersection(invalidated):
            self._post("refresh")

    async def _appear(self) -> None:
        props = self._props
        if props is None:
            raise ServiceAbsent("no bus")
        try:
            with anyio.fail_after(self.call_timeout):
                values = await props.call_get_all(self.interface)  # type: ignore[attr-defined]
        except DBusError as exc:
            absent_or_raise(exc)
            raise
        values = _unvariant(values)
        missing = [name for name in self.required if name not in values]
        if missing:
            raise ServiceNotReady(f"missing properties {', '.join(missing)}")
        self._update(values, available=True)
        self._note_available("service_available")

    def _set_unavailable(self, why: str) -> None:
        self._warn_unavailable("service_unavailable", why)
        self._update(None, available=False)

    def _detached(self) -> None:
        self._props = None

    async def _handle(self, kind: str, value: Any) -> None:
        if kind == "changed":
            if self._available:
                self._update(value, available=True)
            else:
                # Changes from a service we have not read yet: read it all.
                self._schedule_retry(now=True)
        elif kind == "refresh":
            await self._attempt()


class PowerMonitor(_PropertyWatcher):
    """UPower's ``OnBattery``; on AC power (False) when UPower is missing."""

    service = "org.freedesktop.UPower"
    label = "UPower"
    path = "/org/freedesktop/UPower"
    interface = "org.freedesktop.UPower"
    required = ("OnBattery",)
    watched = frozenset({"OnBattery"})

    @property
    def on_battery(self) -> bool:
        return bool(self._values.get("OnBattery", False))

    def _snapshot(self) -> tuple[Any, ...]:
        return (self.on_battery,)


# NetworkManager enums (NMMetered, NMState, NMConnectivityState).
NM_METERED_YES = 1
NM_METERED_GUESS_YES = 3
NM_STATE_UNKNOWN = 0
NM_STATE_CONNECTED_LOCAL = 50
NM_CONNECTIVITY_NONE = 1

NM_XML = """
<node>
  <interface name="org.freedesktop.NetworkManager">
    <signal name="PropertiesChanged">
      <arg type="a{sv}"/>
    </signal>
  </interface>
</node>
"""
NM_NODE = Node.parse(NM_XML)


class NetworkMonitor(_PropertyWatcher):
    """NetworkManager's ``Metered``, ``State`` and ``Connectivity``.

    ``metered`` is True for NM_METERED_YES and NM_METERED_GUESS_YES.
    ``online`` is True from NM_STATE_CONNECTED_LOCAL up (a repository on the
    LAN is reachable without a default route); when NM does not know its
    state, it is True unless connectivity is NM_CONNECTIVITY_NONE. Without
    NetworkManager: not metered, online.
    """

    service = "org.freedesktop.NetworkManager"
    label = "NetworkManager"
    path = "/org/freedesktop/NetworkManager"
    interface = "org.freedesktop.NetworkManager"
    required = ("State",)
    watched = frozenset({"Metered", "State", "Connectivity"})

    @property
    def metered(self) -> bool:
        return self._values.get("Metered") in (NM_METERED_YES, NM_METERED_GUESS_YES)

    @property
    def online(self) -> bool:
        state = self._values.get("State")
        if state is None:
            return True
        if state == NM_STATE_UNKNOWN:
            return self._values.get("Connectivity") != NM_CONNECTIVITY_NONE
        return int(state) >= NM_STATE_CONNECTED_LOCAL

    def _snapshot(self) -> tuple[Any, ...]:
        return (self.metered, self.online)

    def _attach(self, bus: MessageBus) -> None:
        super()._attach(bus)
        # Older NetworkManager (and python-dbusmock's template) announce
        # changes with their own PropertiesChanged(a{sv}) signal.
        nm = bus.get_proxy_object(self.service, self.path, NM_NODE).get_interface(self.interface)
        nm.on_properties_changed(self._legacy_properties_changed)  # type: ignore[attr-defined]

    def _legacy_properties_changed(self, changed: dict[str, Variant]) -> None:
        self._post("changed", _unvariant(changed))
