"""The bus connection: ObjectManager signals from the manager path, typed errors for bad calls.

dbus-fast sends InterfacesAdded/Removed from the child's own path, which
GLib's ObjectManager client ignores; we send them from `/org/borgd1`.
A call to one of our methods with the wrong signature is answered with
`org.borgd1.Error.InvalidArgument` naming the expected one, instead of
the generic UnknownMethod.
"""

from __future__ import annotations

import socket
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface

MANAGER_PATH = "/org/borgd1"
OM = "org.freedesktop.DBus.ObjectManager"


class _EagainIsAShortWrite:
    """The bus socket as dbus-fast's writer sees it, with EAGAIN turned into "0 bytes sent".

    dbus-fast 5.2 treats BlockingIOError from send() as fatal and drops the
    connection, so a burst of signals to slow clients (a full socket buffer)
    would cut borgd off the bus.  A short write makes its writer wait for the
    socket to become writable instead, which it already does for partial sends.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BorgdBus(MessageBus):
    async def connect(self) -> BorgdBus:
        await super().connect()
        writer = getattr(self, "_writer", None)
        if writer is not None and isinstance(getattr(writer, "sock", None), socket.socket):
            writer.sock = _EagainIsAShortWrite(writer.sock)
        return self

    def _emit_interface_added(self, path: str, interface: ServiceInterface) -> None:
        if not path.startswith(MANAGER_PATH + "/"):
            return
        if self._disconnected:
            return

        def send(iface: ServiceInterface, result: Any, _user: Any, err: Exception | None) -> None:
            if err is not None or self._disconnected:
                return
            self.send(
                Message.new_signal(
                    MANAGER_PATH, OM, "InterfacesAdded", "oa{sa{sv}}", [path, {iface.name: result}]
                )
            )

        ServiceInterface._get_all_property_values(interface, send)

    def _emit_interface_removed(self, path: str, removed_interfaces: list[str]) -> None:
        if not path.startswith(MANAGER_PATH + "/") or self._disconnected:
            return
        self.send(
            Message.new_signal(
                MANAGER_PATH, OM, "InterfacesRemoved", "oas", [path, removed_interfaces]
            )
        )


def signature_guard(interfaces: dict[str, dict[str, str]]) -> Any:
    """A message handler answering known members called with a wrong signature.

    `interfaces` maps interface name -> {member: in-signature}.
    """

    def handler(msg: Message) -> Message | None:
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        members = interfaces.get(msg.interface or "")
        if not members or msg.member not in members:
            return None
        expected = members[msg.member]
        if msg.signature == expected:
            return None
        return Message.new_error(
            msg,
            "org.borgd1.Error.InvalidArgument",
            f"{msg.member} takes arguments of signature '{expected}', got '{msg.signature}'",
        )

    return handler


def in_signatures(interface: ServiceInterface) -> dict[str, str]:
    return {
        m.name: m.in_signature for m in ServiceInterface._get_methods(interface) if not m.disabled
    }
