"""PowerMonitor and NetworkMonitor against the upower and networkmanager dbusmock templates."""

from __future__ import annotations

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

from borgd.system.power import NetworkMonitor, PowerMonitor
from tests.mock_buses import module_bus

UPOWER = "org.freedesktop.UPower"
NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"


system_bus = module_bus(BusType.SYSTEM)


@pytest.fixture
def conn(system_bus: PrivateDBus) -> Iterator[dbus.bus.BusConnection]:
    connection = dbus.bus.BusConnection(system_bus.address)
    try:
        yield connection
    finally:
        connection.close()


class Mocks:
    """Spawns templates; terminates them and waits for their names to be free."""

    def __init__(self, conn: dbus.bus.BusConnection) -> None:
        self.conn = conn
        self.spawned: list[tuple[str, SpawnedMock]] = []

    def spawn(self, template: str, name: str, parameters: dict[str, Any] | None = None) -> Any:
        mock = SpawnedMock.spawn_with_template(
            template, parameters, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.spawned.append((name, mock))
        return mock

    def stop_all(self) -> None:
        for name, mock in self.spawned:
            mock.terminate()
            deadline = time.monotonic() + 2
            while self.conn.name_has_owner(name) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.spawned.clear()


@pytest.fixture
def mocks(conn: dbus.bus.BusConnection) -> Iterator[Mocks]:
    m = Mocks(conn)
    try:
        yield m
    finally:
        m.stop_all()


async def until(predicate: Callable[[], bool], step: float = 0.02) -> None:
    while not predicate():
        await anyio.sleep(step)


@pytest.mark.anyio
async def test_upower_on_battery_follows_properties_changed(
    system_bus: PrivateDBus, mocks: Mocks
) -> None:
    upower = mocks.spawn("upower", UPOWER)
    changes: list[tuple[bool, bool]] = []
    mon = PowerMonitor(lambda: changes.append((mon.available, mon.on_battery)), system_bus.address)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: mon.available)
            assert mon.on_battery is False
            assert changes == [(True, False)]

            upower.obj.Set(UPOWER, "OnBattery", True, dbus_interface=dbus.PROPERTIES_IFACE)
            await until(lambda: len(changes) == 2)
            assert mon.on_battery is True
            assert changes[-1] == (True, True)

            upower.obj.Set(UPOWER, "OnBattery", False, dbus_interface=dbus.PROPERTIES_IFACE)
            await until(lambda: len(changes) == 3)
            assert mon.on_battery is False
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_upower_absent_then_appearing_on_battery(
    system_bus: PrivateDBus, mocks: Mocks
) -> None:
    calls: list[bool] = []
    mon = PowerMonitor(lambda: calls.append(mon.on_battery), system_bus.address)
    with anyio.fail_after(15), structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: any(e["event"] == "service_unavailable" for e in logs))
            assert (mon.available, mon.on_battery) == (False, False)
            assert calls == []

            await anyio.to_thread.run_sync(
                lambda: mocks.spawn("upower", UPOWER, {"OnBattery": True})
            )
            await until(lambda: mon.available)
            assert mon.on_battery is True
            assert calls == [True]
            tg.cancel_scope.cancel()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["service"]) for e in warnings] == [("service_unavailable", UPOWER)]


@pytest.mark.anyio
async def test_networkmanager_absent_means_online_and_unmetered(system_bus: PrivateDBus) -> None:
    mon = NetworkMonitor(lambda: None, system_bus.address)
    with anyio.fail_after(10), structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: any(e["event"] == "service_unavailable" for e in logs))
            tg.cancel_scope.cancel()
    assert (mon.available, mon.online, mon.metered) == (False, True, False)


@pytest.mark.anyio
async def test_networkmanager_metered_and_online(
    system_bus: PrivateDBus, conn: dbus.bus.BusConnection, mocks: Mocks
) -> None:
    nm_main = mocks.spawn("networkmanager", NM)
    manager = conn.get_object(NM, NM_PATH)
    # The template has no Metered: add it (NM_METERED_NO) before the monitor reads.
    manager.AddProperty(NM, "Metered", dbus.UInt32(2), dbus_interface=MOCK_IFACE)

    changes = 0

    def on_change() -> None:
        nonlocal changes
        changes += 1

    mon = NetworkMonitor(on_change, system_bus.address)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mon.run)
            await until(lambda: mon.available)
            assert (mon.metered, mon.online) == (False, True)
            seen = changes

            # Standard org.freedesktop.DBus.Properties.PropertiesChanged.
            manager.Set(NM, "Metered", dbus.UInt32(1), dbus_interface=dbus.PROPERTIES_IFACE)
            await until(lambda: mon.metered)
            assert changes == seen + 1

            # NetworkManager's own PropertiesChanged(a{sv}) (the template's SetProperty).
            nm_main.obj.SetProperty(
                NM_PATH, NM, "Metered", dbus.UInt32(4), dbus_interface=MOCK_IFACE
            )  # NM_METERED_GUESS_NO
            await until(lambda: not mon.metered)
            nm_main.obj.SetProperty(
                NM_PATH, NM, "Metered", dbus.UInt32(3), dbus_interface=MOCK_IFACE
            )  # NM_METERED_GUESS_YES
            await until(lambda: mon.metered)

            manager.Set(NM, "State", dbus.UInt32(20), dbus_interface=dbus.PROPERTIES_IFACE)
            await until(lambda: not mon.online)  # NM_STATE_DISCONNECTED
            manager.Set(NM, "State", dbus.UInt32(60), dbus_interface=dbus.PROPERTIES_IFACE)
            await until(lambda: mon.online)  # NM_STATE_CONNECTED_SITE
            assert changes == seen + 5
            tg.cancel_scope.cancel()
