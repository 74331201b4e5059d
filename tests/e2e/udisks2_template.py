"""A python-dbusmock template of UDisks2 whose filesystems really mount (tests run as root).

The root object ``/org/freedesktop/UDisks2`` is an ObjectManager.
``AddDisk(name, uuid, label, content, mount_point)`` adds a USB drive
(``drives/NAME``, ``Removable``) and a partition (``block_devices/NAME1``)
with a ``Block`` (``IdUUID``, ``IdLabel``, ``Drive``) and a ``Filesystem``
(``MountPoints``, empty), and announces both with ``InterfacesAdded``.
``Filesystem.Mount`` bind-mounts CONTENT on MOUNT_POINT (inside the mount
namespace that the template parameter ``enter`` names, e.g. an ``nsenter``
prefix), ``Unmount`` unmounts it; each updates ``MountPoints`` and emits
``PropertiesChanged``, as UDisks2 does.  ``Drive.PowerOff`` refuses a drive
still mounted, else removes the disk (``InterfacesRemoved``), like a real
power-off.  ``RemoveDisk(name)`` is pulling the stick (a lazy unmount first).
``Times()`` lists every Mount, Unmount and PowerOff with its wall-clock time
in microseconds (dbusmock's own call log has whole seconds only).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import dbus
from dbusmock import MOCK_IFACE, mockobject

BUS_NAME = "org.freedesktop.UDisks2"
MAIN_OBJ = "/org/freedesktop/UDisks2"
MAIN_IFACE = "org.freedesktop.UDisks2.Manager"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

OM_IFACE = "org.freedesktop.DBus.ObjectManager"
BLOCK_IFACE = "org.freedesktop.UDisks2.Block"
FS_IFACE = "org.freedesktop.UDisks2.Filesystem"
DRIVE_IFACE = "org.freedesktop.UDisks2.Drive"
ERROR = "org.freedesktop.UDisks2.Error"

_state: dict[str, Any] = {"enter": [], "times": [], "disks": {}}


def load(mock: Any, parameters: dict[str, Any]) -> None:
    mock.AddProperties(MAIN_IFACE, {"Version": dbus.String("2.9.4")})
    _state["enter"] = [str(a) for a in parameters.get("enter", [])]
    _state["root"] = mock


def _now_us() -> int:
    return time.time_ns() // 1000


def _run(*argv: str) -> None:
    done = subprocess.run(
        [*_state["enter"], *argv], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise dbus.exceptions.DBusException(
            f"{' '.join(argv)}: {done.stderr.strip()}", name=f"{ERROR}.Failed"
        )


def _mount_points(path: str | None) -> dbus.Array:
    items = [dbus.ByteArray(path.encode() + b"\0")] if path else []
    return dbus.Array(items, signature="ay")


def _mount(self: Any, options: Any) -> str:
    disk = _state["disks"][self.path]
    if self.props[FS_IFACE]["MountPoints"]:
        raise dbus.exceptions.DBusException("already mounted", name=f"{ERROR}.AlreadyMounted")
    _run("mount", "--bind", disk["content"], disk["mount_point"])
    _state["times"].append(("Mount", self.path, _now_us()))
    self.UpdateProperties(FS_IFACE, {"MountPoints": _mount_points(disk["mount_point"])})
    return str(disk["mount_point"])


def _unmount(self: Any, options: Any) -> None:
    disk = _state["disks"][self.path]
    if not self.props[FS_IFACE]["MountPoints"]:
        raise dbus.exceptions.DBusException("not mounted", name=f"{ERROR}.NotMounted")
    _run("umount", disk["mount_point"])
    _state["times"].append(("Unmount", self.path, _now_us()))
    self.UpdateProperties(FS_IFACE, {"MountPoints": _mount_points(None)})


def _power_off(self: Any, options: Any) -> None:
    name = self.path.rsplit("/", 1)[1]
    block = mockobject.objects[f"{MAIN_OBJ}/block_devices/{name}1"]
    if block.props[FS_IFACE]["MountPoints"]:
        raise dbus.exceptions.DBusException("a filesystem is mounted", name=f"{ERROR}.DeviceBusy")
    _state["times"].append(("PowerOff", self.path, _now_us()))
    _remove(name)


def _announce(path: str) -> None:
    obj = mockobject.objects[path]
    _state["root"].EmitSignal(
        OM_IFACE, "InterfacesAdded", "oa{sa{sv}}", [dbus.ObjectPath(path), obj.props]
    )


def _remove(name: str) -> None:
    for path in (f"{MAIN_OBJ}/block_devices/{name}1", f"{MAIN_OBJ}/drives/{name}"):
        obj = mockobject.objects[path]
        ifaces = dbus.Array(list(obj.props), signature="s")
        _state["root"].EmitSignal(
            OM_IFACE, "InterfacesRemoved", "oas", [dbus.ObjectPath(path), ifaces]
        )
        _state["root"].RemoveObject(path)
        _state["disks"].pop(path, None)


@dbus.service.method(MOCK_IFACE, in_signature="sssss", out_signature="")
def AddDisk(self: Any, name: str, uuid: str, label: str, content: str, mount_point: str) -> None:
    drive = f"{MAIN_OBJ}/drives/{name}"
    block = f"{MAIN_OBJ}/block_devices/{name}1"
    self.AddObject(
        drive,
        DRIVE_IFACE,
        {
            "Removable": dbus.Boolean(True),
            "MediaRemovable": dbus.Boolean(False),
            "ConnectionBus": dbus.String("usb"),
            "CanPowerOff": dbus.Boolean(True),
            "Id": dbus.String(name),
        },
        [],
    )
    mockobject.objects[drive].AddMethod(DRIVE_IFACE, "PowerOff", "a{sv}", "", _power_off)
    self.AddObject(
        block,
        BLOCK_IFACE,
        {
            "IdUUID": dbus.String(uuid),
            "IdLabel": dbus.String(label),
            "IdUsage": dbus.String("filesystem"),
            "Drive": dbus.ObjectPath(drive),
            "Device": dbus.ByteArray(f"/dev/{name}1".encode() + b"\0"),
        },
        [],
    )
    obj = mockobject.objects[block]
    obj.AddProperties(FS_IFACE, {"MountPoints": _mount_points(None)})
    obj.AddMethod(FS_IFACE, "Mount", "a{sv}", "s", _mount)
    obj.AddMethod(FS_IFACE, "Unmount", "a{sv}", "", _unmount)
    _state["disks"][block] = {"content": str(content), "mount_point": str(mount_point)}
    _announce(drive)
    _announce(block)


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="")
def RemoveDisk(self: Any, name: str) -> None:
    block = f"{MAIN_OBJ}/block_devices/{name}1"
    disk = _state["disks"].get(block)
    if disk is not None and mockobject.objects[block].props[FS_IFACE]["MountPoints"]:
        _run("umount", "-l", disk["mount_point"])  # the stick was pulled
    _remove(name)


@dbus.service.method(MOCK_IFACE, in_signature="", out_signature="a(sst)")
def Times(self: Any) -> list[tuple[str, str, int]]:
    return [(m, p, dbus.UInt64(t)) for m, p, t in _state["times"]]
