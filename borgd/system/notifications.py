"""Desktop notifications (org.freedesktop.Notifications on the session bus).

One notification per *episode*: the caller names each episode with a key
``kind:subject`` (``failure:home``, ``overdue:home``, ``blocked:home``);
a second :meth:`Notifier.notify` with the same key is suppressed until
:meth:`Notifier.clear` says the episode ended. A session without a
notification service is normal (headless, lingering user): the call
returns False and logs at debug level.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import structlog
from dbus_fast import BusType, DBusError, Variant
from dbus_fast.aio import MessageBus, ProxyInterface
from dbus_fast.introspection import Node

from borgd.system.freedesktop import ABSENT_ERRORS

NOTIFY_NAME = "org.freedesktop.Notifications"
NOTIFY_PATH = "/org/freedesktop/Notifications"

KINDS = frozenset({"failure", "overdue", "blocked"})

APP_ICON = "drive-harddisk"
URGENCY_NORMAL = 1
URGENCY_CRITICAL = 2

NOTIFY_XML = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg name="app_name" direction="in" type="s"/>
      <arg name="replaces_id" direction="in" type="u"/>
      <arg name="app_icon" direction="in" type="s"/>
      <arg name="summary" direction="in" type="s"/>
      <arg name="body" direction="in" type="s"/>
      <arg name="actions" direction="in" type="as"/>
      <arg name="hints" direction="in" type="a{sv}"/>
      <arg name="expire_timeout" direction="in" type="i"/>
      <arg name="id" direction="out" type="u"/>
    </method>
    <method name="GetCapabilities">
      <arg name="capabilities" direction="out" type="as"/>
    </method>
  </interface>
</node>
"""
NOTIFY_NODE = Node.parse(NOTIFY_XML)


def _log() -> Any:
    return structlog.get_logger(__name__)


def _kinds(kinds: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(kinds)
    unknown = chosen - KINDS
    if unknown:
        raise ValueError(
            f"unknown notification kind(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KINDS))}"
        )
    return chosen


class Notifier:
    """Send desktop notifications once per episode.

    ``enabled`` is the set of kinds the user wants (default: all of
    ``failure``, ``overdue``, ``blocked``). ``bus`` is a connected session
    bus to use; without one, the notifier connects to the session bus
    (``bus_address`` or ``DBUS_SESSION_BUS_ADDRESS``) on first use.
    """

    call_timeout = 5.0

    def __init__(
        self,
        enabled: Iterable[str] = KINDS,
        *,
        bus: MessageBus | None = None,
        bus_address: str | None = None,
        app_name: str = "borgd",
    ) -> None:
        self._enabled = _kinds(enabled)
        self._bus = bus
        self._own_bus = bus is None
        self._bus_address = bus_address
        self._app_name = app_name
        self._episodes: set[str] = set()
        self._proxy: ProxyInterface | None = None
        self._markup: bool | None = None
        self._lock = anyio.Lock()

    @property
    def enabled(self) -> frozenset[str]:
        return self._enabled

    @enabled.setter
    def enabled(self, kinds: Iterable[str]) -> None:
        self._enabled = _kinds(kinds)

    @property
    def active_episodes(self) -> frozenset[str]:
        """Keys notified and not cleared yet."""
        return frozenset(self._episodes)

    def clear(self, key: str) -> None:
        """The episode ``key`` ended: the next notify() for it is sent again."""
        self._episodes.discard(key)

    async def aclose(self) -> None:
        """Disconnect the bus if the notifier opened it."""
        bus, self._bus = self._bus, None
        self._proxy = None
        if bus is not None and self._own_bus:
            bus.disconnect()

    async def notify(self, key: str, summary: str, body: str) -> bool:
        """Notify once for the episode ``key`` (``kind:subject``).

        Returns True when a notification was sent now; False when the kind
        is switched off, the episode was already notified, or there is no
        notification service.
        """
        kind, sep, subject = key.partition(":")
        if not sep or not subject:
            raise ValueError(f"notification key {key!r} is not of the form kind:subject")
        _kinds([kind])
        if kind not in self._enabled:
            _log().debug("notification_disabled", key=key)
            return False
        if key in self._episodes:
            return False
        self._episodes.add(key)  # claimed before awaiting: concurrent calls send once
        sent = False
        try:
            sent = await self._send(kind, summary, body)
        finally:
            if not sent:
                self._episodes.discard(key)
        if sent:
            _log().info("notification_sent", key=key)
        return sent

    async def _connect(self) -> ProxyInterface | None:
        async with self._lock:
            if self._bus is not None and not self._bus.connected:
                self._bus = None
                self._proxy = None
            if self._bus is None:
                if not self._own_bus:
                    return None
                try:
                    with anyio.fail_after(self.call_timeout):
                        self._bus = await MessageBus(
                            bus_address=self._bus_address, bus_type=BusType.SESSION
                        ).connect()
                except Exception as exc:  # no session bus: nothing to notify on
                    _log().debug("notification_no_session_bus", error=str(exc))
                    return None
                self._markup = None
            if self._proxy is None:
                obj = self._bus.get_proxy_object(NOTIFY_NAME, NOTIFY_PATH, NOTIFY_NODE)
                self._proxy = obj.get_interface(NOTIFY_NAME)
            return self._proxy

    async def _body_markup(self, proxy: ProxyInterface) -> bool:
        if self._markup is None:
            try:
                with anyio.fail_after(self.call_timeout):
                    caps = await proxy.call_get_capabilities()  # type: ignore[attr-defined]
                self._markup = "body-markup" in caps
            except (DBusError, TimeoutError):
                return False
        return self._markup

    async def _send(self, kind: str, summary: str, body: str) -> bool:
        proxy = await self._connect()
        if proxy is None:
            return False
        try:
            if await self._body_markup(proxy):
                import html  # here: its entity table (~0.35 MiB) is rarely needed

                # A server that understands markup would read "<" and "&" as markup.
                body = html.escape(body, quote=False)
            urgency = URGENCY_CRITICAL if kind == "failure" else URGENCY_NORMAL
            hints = {"urgency": Variant("y", urgency)}
            with anyio.fail_after(self.call_timeout):
                await proxy.call_notify(  # type: ignore[attr-defined]
                    self._app_name, 0, APP_ICON, summary, body, [], hints, -1
                )
        except DBusError as exc:
            if exc.type in ABSENT_ERRORS:
                _log().debug("notification_service_absent")
            else:
                _log().debug("notification_failed", error=f"{exc.type}: {exc.text}")
            return False
        except TimeoutError:
            _log().debug("notification_failed", error="no answer in time")
            return False
        return True
