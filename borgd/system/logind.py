"""Sleep and resume through systemd-logind.

:class:`SleepMonitor` holds a ``delay`` inhibitor lock so that the daemon
can persist its state when logind announces ``PrepareForSleep(true)``; it
releases the lock only after that work is done, and takes it again on
``PrepareForSleep(false)`` before telling the daemon that the system
resumed. Without logind it says so (``state`` and one warning) and keeps
watching the bus for logind to appear.

While a backup runs the daemon may also hold a ``block`` lock through
:meth:`SleepMonitor.block_sleep`; a refusal (polkit, or no logind) is
logged once per monitor and never fatal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import structlog
from dbus_fast import DBusError
from dbus_fast.aio import MessageBus, ProxyInterface
from dbus_fast.introspection import Node

from borgd.system.power import (
    STATE_ACTIVE,
    ServiceAbsent,
    StatefulWatcher,
    absent_or_raise,
    describe,
)

LOGIND_NAME = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER_IFACE = "org.freedesktop.login1.Manager"

WHO = "borgd"
DELAY_WHY = "Persist backup state before sleep"

LOGIND_XML = """
<node>
  <interface name="org.freedesktop.login1.Manager">
    <method name="Inhibit">
      <arg name="what" direction="in" type="s"/>
      <arg name="who" direction="in" type="s"/>
      <arg name="why" direction="in" type="s"/>
      <arg name="mode" direction="in" type="s"/>
      <arg name="pipe_fd" direction="out" type="h"/>
    </method>
    <signal name="PrepareForSleep">
      <arg name="start" type="b"/>
    </signal>
  </interface>
</node>
"""
LOGIND_NODE = Node.parse(LOGIND_XML)


def _log() -> Any:
    # Looked up at each use so that structlog configuration made later
    # (including structlog.testing.capture_logs) applies.
    return structlog.get_logger(__name__)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class SleepMonitor(StatefulWatcher):
    """Follow logind's PrepareForSleep with a delay inhibitor lock.

    ``state`` is ``"active"`` while logind is reachable and the delay lock
    is held (or released for a sleep in progress), else
    ``"unavailable: <why>"``. ``on_state`` is called with every change.
    """

    service = LOGIND_NAME
    label = "logind"
    event = "sleep_monitor"

    def __init__(
        self,
        *,
        on_before_sleep: Callable[[], Awaitable[None]],
        on_resume: Callable[[], Awaitable[None]],
        on_state: Callable[[str], None],
        bus_address: str | None = None,
    ) -> None:
        super().__init__(on_state, bus_address)
        self._on_before_sleep = on_before_sleep
        self._on_resume = on_resume
        self._manager: ProxyInterface | None = None
        self._delay_fd: int | None = None
        self._block_refusal_logged = False

    # -- state ---------------------------------------------------------------

    def _set_unavailable(self, why: str) -> None:
        self._release_delay_lock()
        self._warn_unavailable(
            "sleep_monitor_unavailable",
            why,
            consequence="state is not persisted before sleep; catch-up after resume "
            "relies on the wall clock alone",
        )
        self._set_state(f"unavailable: {why}")

    def _failure_text(self, exc: BaseException) -> str:
        return f"logind refused a delay inhibitor lock ({describe(exc)})"

    # -- inhibitor locks -----------------------------------------------------

    async def _inhibit(self, mode: str, why: str) -> int:
        manager = self._manager
        if manager is None:
            raise ServiceAbsent("not connected to the system bus")
        try:
            with anyio.fail_after(self.call_timeout):
                fd = await manager.call_inhibit("sleep", WHO, why, mode)  # type: ignore[attr-defined]
        except DBusError as exc:
            absent_or_raise(exc)
            raise
        if not isinstance(fd, int) or fd < 0:
            raise OSError(f"logind returned no file descriptor for the {mode} lock")
        os.set_inheritable(fd, False)  # never leak the lock into borg
        return fd

    async def _take_delay_lock(self) -> None:
        if self._delay_fd is None:
            self._delay_fd = await self._inhibit("delay", DELAY_WHY)
            _log().info("sleep_delay_lock_taken")

    def _release_delay_lock(self) -> None:
        fd, self._delay_fd = self._delay_fd, None
        if fd is not None:
            _close(fd)

    @contextlib.asynccontextmanager
    async def block_sleep(self, why: str) -> AsyncIterator[bool]:
        """Hold a ``block`` inhibitor for sleep while the body runs.

        Yields True when the lock is held, False when it could not be taken
        (logged once per monitor, never raised).
        """
        fd: int | None = None
        try:
            fd = await self._inhibit("block", why)
        except Exception as exc:  # refused, absent, no bus: run the backup anyway
            if not self._block_refusal_logged:
                self._block_refusal_logged = True
                _log().warning(
                    "sleep_block_refused",
                    reason=describe(exc),
                    consequence="backups run without preventing sleep",
                )
            else:
                _log().debug("sleep_block_refused", reason=describe(exc))
        try:
            yield fd is not None
        finally:
            if fd is not None:
                _close(fd)

    # -- watcher hooks -------------------------------------------------------

    def _attach(self, bus: MessageBus) -> None:
        proxy = bus.get_proxy_object(LOGIND_NAME, LOGIND_PATH, LOGIND_NODE)
        self._manager = proxy.get_interface(MANAGER_IFACE)
        self._manager.on_prepare_for_sleep(self._prepare_for_sleep)  # type: ignore[attr-defined]

    def _prepare_for_sleep(self, start: bool) -> None:
        self._post("sleep", bool(start))

    async def _appear(self) -> None:
        await self._take_delay_lock()
        self._note_available("sleep_monitor_active")
        self._set_state(STATE_ACTIVE)

    def _detached(self) -> None:
        self._release_delay_lock()
        self._manager = None

    async def _handle(self, kind: str, value: Any) -> None:
        if kind != "sleep":
            return
        if value:
            _log().info("system_going_to_sleep")
            try:
                await self._on_before_sleep()
            except Exception:
                _log().exception("before_sleep_failed")
            finally:
                # Only now may the system sleep.
                self._release_delay_lock()
                _log().info("sleep_delay_lock_released")
        else:
            _log().info("system_resumed")
            if self._delay_fd is None:
                await self._attempt()
            try:
                await self._on_resume()
            except Exception:
                _log().exception("resume_handler_failed")
