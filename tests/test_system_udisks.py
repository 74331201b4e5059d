"""DiskMonitor against a python-dbusmock UDisks2: it follows objects, odd ones break nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import dbus
import pytest
from dbusmock import MOCK_IFACE
from dbusmock.testcase import BusType, PrivateDBus

from borgd.core.disks import DiskActionFailed, Filesystem
from borgd.system.udisks import DiskMonitor
from tests.mock_buses import module_bus
from tests.test_system_power import Mocks, until

TEMPLATE = str(Path(__file__).parent / "e2e" / "udisks2_template.py")
UDISKS = "org.freedesktop.UDisks2"
ROOT = "/org/freedesktop/UDisks2"
OM = "org.freedesktop.DBus.ObjectManager"
FS = "org.freedesktop.UDisks2.Filesystem"
BLOCK = "org.freedesktop.UDisks2.Block"

system_bus = module_bus(BusType.SYSTEM)


@pytest.fixture
def mocks(system_bus: PrivateDBus) -> Iterator[Mocks]:
    conn = dbus.bus.BusConnection(system_bus.address)
    m = Mocks(conn)
    try:
        yield m
    finally:
        m.stop_all()
        conn.close()


def ay(path: str) -> dbus.ByteArray:
    return dbus.ByteArray(path.encode() + b"\0")


@pytest.mark.anyio
async def test_follows_udisks2_through_odd_objects_and_restarts(
    system_bus: PrivateDBus, mocks: Mocks
) -> None:
    changes: list[object] = []
    states: list[str] = []
    mon = DiskMonitor(
        on_change=lambda: changes.append(mon.inventory),
        on_state=states.append,
        bus_address=system_bus.address,
    )
    mon.retry_max = 0.2
    async with anyio.create_task_group() as tg:
        tg.start_soon(mon.run)
        with anyio.fail_after(10):
            await mon.settled.wait()
            assert (
                mon.state
                == "unavailable: UDisks2 (org.freedesktop.UDisks2) is not on the system bus"
            )
            assert mon.inventory is None

            udisks = mocks.spawn(TEMPLATE, UDISKS)
            await until(lambda: mon.state == "active")
            assert mon.inventory is not None and mon.inventory.filesystems == ()

            udisks.obj.AddDisk(
                "sdb", "u-1", "Stick", "/nonexistent", "/nonexistent", dbus_interface=MOCK_IFACE
            )
            await until(lambda: mon.inventory is not None and len(mon.inventory.filesystems) == 1)
            (fs,) = mon.inventory.filesystems
            assert (fs.uuid, fs.label, fs.mounted) == ("u-1", "Stick", False)
            assert mon.inventory.removable(fs)

            # MountPoints changed by someone else (a desktop automounter).
            system = dbus.bus.BusConnection(system_bus.address)
            block = system.get_object(UDISKS, f"{ROOT}/block_devices/sdb1")
            block.UpdateProperties(
                FS,
                {"MountPoints": dbus.Array([ay("/media/Stick")], signature="ay")},
                dbus_interface=MOCK_IFACE,
            )
            await until(lambda: mon.inventory is not None and mon.inventory.filesystems[0].mounted)
            assert (
                mon.inventory.device_for_path("/media/Stick/repo") == mon.inventory.filesystems[0]
            )

            # Odd things on the bus: a block with a numeric UUID, signals of the wrong
            # shape, a PropertiesChanged with junk.  Nothing breaks, nothing changes.
            root = system.get_object(UDISKS, ROOT)
            root.AddObject(
                f"{ROOT}/block_devices/odd",
                BLOCK,
                {"IdUUID": dbus.Int32(7)},
                [],
                dbus_interface=MOCK_IFACE,
            )
            odd = system.get_object(UDISKS, f"{ROOT}/block_devices/odd")
            odd.AddProperties(FS, {"MountPoints": dbus.String("/x")}, dbus_interface=MOCK_IFACE)
            root.EmitSignal(
                OM,
                "InterfacesAdded",
                "oa{sa{sv}}",
                [
                    dbus.ObjectPath(f"{ROOT}/block_devices/odd"),
                    dbus.Dictionary(
                        {
                            BLOCK: dbus.Dictionary({"IdUUID": dbus.Int32(7)}, signature="sv"),
                            FS: dbus.Dictionary(
                                {"MountPoints": dbus.String("/x")}, signature="sv"
                            ),
                        },
                        signature="sa{sv}",
                    ),
                ],
                dbus_interface=MOCK_IFACE,
            )
            root.EmitSignal(
                OM,
                "InterfacesAdded",
                "s",
                ["not an object path and dict"],
                dbus_interface=MOCK_IFACE,
            )
            root.EmitSignal(OM, "InterfacesRemoved", "i", [3], dbus_interface=MOCK_IFACE)
            odd.EmitSignal(
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                "sa{sv}as",
                [
                    FS,
                    dbus.Dictionary({"MountPoints": dbus.Int32(1)}, signature="sv"),
                    dbus.Array([], signature="s"),
                ],
                dbus_interface=MOCK_IFACE,
            )
            # A barrier: this change arrives after all of the above.
            udisks.obj.AddDisk(
                "sdc", "u-2", "", "/nonexistent", "/nonexistent", dbus_interface=MOCK_IFACE
            )
            await until(lambda: mon.inventory is not None and len(mon.inventory.filesystems) == 2)
            assert mon.state == "active"
            assert [f.uuid for f in mon.inventory.filesystems] == ["u-1", "u-2"]

            # A refused action is an error to log, not a crash.
            with pytest.raises(DiskActionFailed, match="Unmount"):
                await mon.unmount(mon.inventory.filesystems[0])  # the mock cannot umount it
            with pytest.raises(DiskActionFailed, match="Mount"):
                await mon.mount(Filesystem(f"{ROOT}/block_devices/gone", "u-3", "", (), "/"))

            # Removed, then UDisks2 leaves and comes back: followed throughout.
            udisks.obj.RemoveDisk("sdc", dbus_interface=MOCK_IFACE)
            await until(lambda: mon.inventory is not None and len(mon.inventory.filesystems) == 1)
            mocks.stop_all()
            await until(lambda: mon.inventory is None)
            assert (
                mon.state == "unavailable: UDisks2 (org.freedesktop.UDisks2) left the system bus"
            )
            udisks = mocks.spawn(TEMPLATE, UDISKS)
            await until(lambda: mon.state == "active")
            assert mon.inventory is not None and mon.inventory.filesystems == ()
            system.close()
        tg.cancel_scope.cancel()
    assert states[-2:] == [
        "unavailable: UDisks2 (org.freedesktop.UDisks2) left the system bus",
        "active",
    ]
    assert changes  # told of every change
