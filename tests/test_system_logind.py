"""SleepMonitor against python-dbusmock's logind template on a private system bus."""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import dbus
import pytest
import structlog.testing
from dbusmock import MOCK_IFACE, SpawnedMock
from dbusmock.testcase import BusType, PrivateDBus

from borgd.system.logind import DELAY_WHY, SleepMonitor
from borgd.system.power import STATE_STARTING
from tests.mock_buses import module_bus

MANAGER_IFACE = "org.freedesktop.login1.Manager"
ADDRESS_VAR = "DBUS_SYSTEM_BUS_ADDRESS"


system_bus = module_bus(BusType.SYSTEM)


@pytest.fixture
def conn(system_bus: PrivateDBus) -> Iterator[dbus.bus.BusConnection]:
    connection = dbus.bus.BusConnection(system_bus.address)
    try:
        yield connection
    finally:
        connection.close()


def spawn_logind() -> SpawnedMock:
    return SpawnedMock.spawn_with_template(
        "logind", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_mock(mock: SpawnedMock, conn: dbus.bus.BusConnection) -> None:
    mock.terminate()
    for _ in range(100):  # the next test may spawn the same name again
        if not conn.name_has_owner("org.freedesktop.login1"):
            return
        time.sleep(0.02)


@pytest.fixture
def logind(conn: dbus.bus.BusConnection) -> Iterator[SpawnedMock]:
    mock = spawn_logind()
    try:
        yield mock
    finally:
        stop_mock(mock, conn)


def inhibitors(conn: dbus.bus.BusConnection, mode: str) -> list[tuple[Any, ...]]:
    """borgd's locks of one mode, as logind's ListInhibitors reports them."""
    obj = conn.get_object("org.freedesktop.login1", "/org/freedesktop/login1")
    rows = obj.ListInhibitors(dbus_interface=MANAGER_IFACE)
    return [tuple(str(x) for x in row[:4]) for row in rows if row[1] == "borgd" and row[3] == mode]


def emit_prepare_for_sleep(mock: SpawnedMock, start: bool) -> None:
    mock.obj.EmitSignal(MANAGER_IFACE, "PrepareForSleep", "b", [start], dbus_interface=MOCK_IFACE)


async def until(predicate: Callable[[], bool], step: float = 0.02) -> None:
    while not predicate():
        await anyio.sleep(step)


async def noop() -> None:
    return None


def monitor(address: str, states: list[str] | None = None, **kwargs: Any) -> SleepMonitor:
    kwargs.setdefault("on_before_sleep", noop)
    kwargs.setdefault("on_resume", noop)
    return SleepMonitor(
        on_state=(states.append if states is not None else lambda _s: None),
        bus_address=address,
        **kwargs,
    )


@pytest.mark.anyio
async def test_sleep_persists_before_releasing_and_retakes_on_resume(
    system_bus: PrivateDBus, conn: dbus.bus.BusConnection, logind: SpawnedMock
) -> None:
    events: list[tuple[str, int]] = []
    resumed = anyio.Event()

    async def before_sleep() -> None:
        events.append(("before-start", len(inhibitors(conn, "delay"))))
        await anyio.sleep(0.3)  # the daemon persisting its state
        events.append(("before-done", len(inhibitors(conn, "delay"))))

    async def on_resume() -> None:
        events.append(("resume", len(inhibitors(conn, "delay"))))
        resumed.set()

    states: list[str] = []
    mon = monitor(system_bus.address, states, on_before_sleep=before_sleep, on_resume=on_resume)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: mon.state == "active")
            assert inhibitors(conn, "delay") == [("sleep", "borgd", DELAY_WHY, "delay")]

            emit_prepare_for_sleep(logind, True)
            # Watch the mock's lock list: at the moment the lock disappears,
            # the persisting callback must already have finished.
            await until(lambda: not inhibitors(conn, "delay"), step=0.01)
            assert events == [("before-start", 1), ("before-done", 1)]
            assert mon.state == "active"

            emit_prepare_for_sleep(logind, False)
            await resumed.wait()
            # A new delay lock existed by the time on_resume ran.
            assert events[-1] == ("resume", 1)
            assert inhibitors(conn, "delay") == [("sleep", "borgd", DELAY_WHY, "delay")]
            tg.cancel_scope.cancel()
    assert states[-1] == "active"


@pytest.mark.anyio
async def test_unavailable_without_logind_then_active_when_it_appears(
    system_bus: PrivateDBus, conn: dbus.bus.BusConnection
) -> None:
    states: list[str] = []
    mon = monitor(system_bus.address, states)
    mock: SpawnedMock | None = None
    try:
        with anyio.fail_after(20), structlog.testing.capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                tg.start_soon(mon.run)
                await until(lambda: mon.state != STATE_STARTING)
                assert mon.state == (
                    "unavailable: logind (org.freedesktop.login1) is not on the system bus"
                )
                warnings = [e for e in logs if e["log_level"] == "warning"]
                assert [e["event"] for e in warnings] == ["sleep_monitor_unavailable"]
                assert "not on the system bus" in warnings[0]["reason"]

                # logind shows up later: picked up from NameOwnerChanged.
                mock = await anyio.to_thread.run_sync(spawn_logind)
                await until(lambda: mon.state == "active")
                assert len(inhibitors(conn, "delay")) == 1
                tg.cancel_scope.cancel()
        assert states[0].startswith("unavailable: ")
        assert states[-1] == "active"
        # One warning for the whole episode, however many retries it took.
        assert len([e for e in logs if e["log_level"] == "warning"]) == 1
    finally:
        if mock is not None:
            stop_mock(mock, conn)


@pytest.mark.anyio
async def test_logind_leaving_the_bus_is_reported(
    system_bus: PrivateDBus, conn: dbus.bus.BusConnection
) -> None:
    mock = spawn_logind()
    mon = monitor(system_bus.address)
    try:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(mon.run)
                await until(lambda: mon.state == "active")
                await anyio.to_thread.run_sync(functools.partial(stop_mock, mock, conn))
                await until(lambda: mon.state != "active")
                assert mon.state == (
                    "unavailable: logind (org.freedesktop.login1) left the system bus"
                )
                tg.cancel_scope.cancel()
    finally:
        stop_mock(mock, conn)


@pytest.mark.anyio
async def test_block_sleep_holds_a_block_lock_while_inside(
    system_bus: PrivateDBus, conn: dbus.bus.BusConnection, logind: SpawnedMock
) -> None:
    mon = monitor(system_bus.address)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: mon.state == "active")
            async with mon.block_sleep("Backup of profile home") as held:
                assert held is True
                assert inhibitors(conn, "block") == [
                    ("sleep", "borgd", "Backup of profile home", "block")
                ]
            await until(lambda: not inhibitors(conn, "block"))
            # The delay lock is untouched by it.
            assert len(inhibitors(conn, "delay")) == 1
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_refused_block_lock_is_logged_once_and_not_fatal(
    system_bus: PrivateDBus,
) -> None:
    mon = monitor(system_bus.address)
    with anyio.fail_after(15), structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: mon.state.startswith("unavailable: logind"))
            for job in ("first", "second", "third"):
                async with mon.block_sleep(f"Backup {job}") as held:
                    assert held is False
            tg.cancel_scope.cancel()
    refusals = [e for e in logs if e["event"] == "sleep_block_refused"]
    assert [e["log_level"] for e in refusals] == ["warning", "debug", "debug"]


@pytest.mark.anyio
async def test_missing_system_bus_is_reported(tmp_path: Any) -> None:
    states: list[str] = []
    mon = monitor(f"unix:path={tmp_path}/no-such-socket", states)
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: bool(states))
            tg.cancel_scope.cancel()
    assert mon.state.startswith("unavailable: cannot connect to the system bus (")
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "sleep_monitor_unavailable"
    ]
    async with mon.block_sleep("Backup") as held:
        assert held is False


@pytest.mark.anyio
async def test_lost_system_bus_is_reported() -> None:
    saved = os.environ.get(ADDRESS_VAR)
    private = PrivateDBus(BusType.SYSTEM)
    private.start()
    try:
        states: list[str] = []
        mon = monitor(private.address, states)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(mon.run)
                await until(lambda: mon.state.startswith("unavailable: logind"))
                private.stop()
                await until(
                    lambda: mon.state == "unavailable: lost the connection to the system bus"
                )
                tg.cancel_scope.cancel()
        # What a client of SleepMonitor saw: logind missing first, then the bus gone.
        lost = states.index("unavailable: lost the connection to the system bus")
        assert any(s.startswith("unavailable: logind") for s in states[:lost]), states
    finally:
        private.stop()
        if saved is None:
            os.environ.pop(ADDRESS_VAR, None)
        else:
            os.environ[ADDRESS_VAR] = saved
