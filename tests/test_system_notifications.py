"""Notifier against python-dbusmock's notification_daemon template on a private session bus."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import anyio
import dbus
import pytest
import structlog.testing
from dbusmock import MOCK_IFACE, SpawnedMock
from dbusmock.testcase import BusType, PrivateDBus

from borgd.system.notifications import Notifier
from tests.mock_buses import module_bus

NOTIFICATIONS = "org.freedesktop.Notifications"


session_bus = module_bus(BusType.SESSION)


def spawn_daemon() -> SpawnedMock:
    return SpawnedMock.spawn_with_template(
        "notification_daemon", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_daemon(mock: SpawnedMock, address: str) -> None:
    mock.terminate()
    conn = dbus.bus.BusConnection(address)
    try:
        deadline = time.monotonic() + 2
        while conn.name_has_owner(NOTIFICATIONS) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        conn.close()


@pytest.fixture
def daemon(session_bus: PrivateDBus) -> Iterator[SpawnedMock]:
    mock = spawn_daemon()
    try:
        yield mock
    finally:
        stop_daemon(mock, session_bus.address)


def notify_calls(mock: SpawnedMock) -> list[list[Any]]:
    return [
        list(args) for _ts, args in mock.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)
    ]


@pytest.mark.anyio
async def test_one_notification_per_episode(session_bus: PrivateDBus, daemon: SpawnedMock) -> None:
    notifier = Notifier(bus_address=session_bus.address)
    try:
        with anyio.fail_after(10):
            assert await notifier.notify("failure:home", "Backup failed", "home: lock timeout")
            assert not await notifier.notify("failure:home", "Backup failed", "home: again")
            calls = notify_calls(daemon)
            assert len(calls) == 1
            app_name, replaces_id, _icon, summary, body, _actions, hints, timeout = calls[0]
            assert (app_name, replaces_id, summary, body) == (
                "borgd",
                0,
                "Backup failed",
                "home: lock timeout",
            )
            assert int(hints["urgency"]) == 2
            assert timeout == -1

            # Another subject is its own episode.
            assert await notifier.notify("failure:work", "Backup failed", "work")
            assert len(notify_calls(daemon)) == 2

            # The episode ended: the next failure is news again.
            notifier.clear("failure:home")
            assert await notifier.notify("failure:home", "Backup failed", "home: again")
            assert len(notify_calls(daemon)) == 3
            assert notifier.active_episodes == {"failure:home", "failure:work"}
    finally:
        await notifier.aclose()


@pytest.mark.anyio
async def test_concurrent_calls_send_once(session_bus: PrivateDBus, daemon: SpawnedMock) -> None:
    notifier = Notifier(bus_address=session_bus.address)
    results: list[bool] = []

    async def call() -> None:
        results.append(await notifier.notify("overdue:home", "Backups overdue", "5 days"))

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(call)
        assert sorted(results) == [False] * 4 + [True]
        assert len(notify_calls(daemon)) == 1
    finally:
        await notifier.aclose()


@pytest.mark.anyio
async def test_disabled_kind_and_markup_escaping(
    session_bus: PrivateDBus, daemon: SpawnedMock
) -> None:
    notifier = Notifier({"failure", "blocked"}, bus_address=session_bus.address)
    try:
        with anyio.fail_after(10):
            assert not await notifier.notify("overdue:home", "Backups overdue", "5 days")
            assert notify_calls(daemon) == []
            # The mock announces body-markup: text must not be read as markup.
            assert await notifier.notify("blocked:home", "Backup waits", "on battery < 20% & AC")
            assert notify_calls(daemon)[0][4] == "on battery &lt; 20% &amp; AC"
            with pytest.raises(ValueError):
                await notifier.notify("nonsense:home", "x", "y")
            with pytest.raises(ValueError):
                Notifier({"failure", "typo"})
    finally:
        await notifier.aclose()


@pytest.mark.anyio
async def test_absent_service_returns_false_then_sends_when_present(
    session_bus: PrivateDBus,
) -> None:
    notifier = Notifier(bus_address=session_bus.address)
    mock: SpawnedMock | None = None
    try:
        with anyio.fail_after(15), structlog.testing.capture_logs() as logs:
            assert not await notifier.notify("failure:home", "Backup failed", "x")
            assert [(e["event"], e["log_level"]) for e in logs] == [
                ("notification_service_absent", "debug")
            ]
            # Not remembered as notified: once a service exists, it is sent.
            mock = await anyio.to_thread.run_sync(spawn_daemon)
            assert await notifier.notify("failure:home", "Backup failed", "x")
            assert len(notify_calls(mock)) == 1
    finally:
        await notifier.aclose()
        if mock is not None:
            stop_daemon(mock, session_bus.address)


@pytest.mark.anyio
async def test_no_session_bus_at_all(tmp_path: Any) -> None:
    notifier = Notifier(bus_address=f"unix:path={tmp_path}/missing")
    with anyio.fail_after(10):
        assert not await notifier.notify("failure:home", "Backup failed", "x")
