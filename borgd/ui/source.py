"""Where the Jobs view gets its data: borgd over the session bus, or a stand-in in tests.

The view reads through a `Source`: calls answer like borgctl's client (plain
Python values; `CallFailed` for org.borgd1.Error.*, `Unreachable` when no borgd
owns the name), and everything that happens on the bus arrives through one
`sink`, in the order the bus delivered it.

That order matters for a live view: an answer to ListJobs and the JobChanged
signals around it must be applied in the order borgd sent them, or a signal sent
after the answer was made could be overwritten by it.  So a call made with a
`tag` also hands its answer to the sink (as a `Reply`) at its place among the
signals, before the call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from borgd.cli.client import BUS_NAME, MANAGER, PATH, CallFailed, Unreachable, plain

PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"
GONE = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Disconnected",
)


@dataclass(frozen=True)
class Owner:
    """borgd took (True) or left (False) its bus name."""

    present: bool


@dataclass(frozen=True)
class Signal:
    """JobAdded(id, job), JobChanged(id, changed), ProfileChanged(name, changed), or
    PropertiesChanged of the Manager (subject '')."""

    member: str
    subject: Any
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """The answer to a tagged call, at its place among the signals."""

    tag: str
    value: Any


Event = Owner | Signal | Reply
Sink = Callable[[Event], None]


class Source(Protocol):
    async def open(self, sink: Sink) -> None:
        """Connect and subscribe; events go to `sink` from then on.  Unreachable if no bus."""

    async def call(
        self, member: str, signature: str = "", *args: Any, interface: str = MANAGER, tag: str = ""
    ) -> Any:
        """Call borgd; with `tag`, the answer also goes to the sink, in bus order."""

    async def closed(self) -> None:
        """Return when the connection to the bus is lost."""

    def close(self) -> None: ...


class DBusSource:
    """borgd on the session bus (or the bus at `address`)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._bus: MessageBus | None = None
        self._sink: Sink | None = None
        self._tags: dict[int, str] = {}

    async def open(self, sink: Sink) -> None:
        self.close()
        try:
            if self.address:
                bus = await MessageBus(bus_address=self.address).connect()
            else:
                bus = await MessageBus(bus_type=BusType.SESSION).connect()
        except Exception as exc:  # no address, a refused socket, a failed auth: all "no bus"
            raise Unreachable(f"cannot connect to the session bus: {exc}") from exc
        self._bus = bus
        self._sink = sink
        self._tags = {}
        bus.add_message_handler(self._on_message)
        for rule in (
            f"type='signal',sender='{BUS_NAME}',interface='{MANAGER}',path='{PATH}'",
            f"type='signal',sender='{BUS_NAME}',interface='{PROPERTIES}',"
            f"member='PropertiesChanged',path='{PATH}',arg0='{MANAGER}'",
            f"type='signal',sender='{DBUS}',interface='{DBUS}',"
            f"member='NameOwnerChanged',arg0='{BUS_NAME}'",
        ):
            # Awaited: a signal is only certain to arrive once its match is in place.
            await self._call_raw(DBUS, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule])

    def _on_message(self, msg: Message) -> None:
        sink = self._sink
        if sink is None:
            return
        if msg.message_type in (MessageType.METHOD_RETURN, MessageType.ERROR):
            tag = self._tags.pop(msg.reply_serial, None)
            if tag is not None and msg.message_type is MessageType.METHOD_RETURN:
                sink(Reply(tag, _body(msg)))
            return
        if msg.message_type is not MessageType.SIGNAL:
            return
        if msg.interface == MANAGER and msg.member in ("JobAdded", "JobChanged"):
            sink(Signal(msg.member, int(msg.body[0]), plain(msg.body[1])))
        elif msg.interface == MANAGER and msg.member == "ProfileChanged":
            sink(Signal(msg.member, str(msg.body[0]), plain(msg.body[1])))
        elif msg.interface == PROPERTIES and msg.member == "PropertiesChanged":
            if msg.path == PATH and msg.body[0] == MANAGER:
                sink(Signal("PropertiesChanged", "", plain(msg.body[1])))
        elif (
            msg.interface == DBUS
            and msg.member == "NameOwnerChanged"
            and msg.sender == DBUS
            and msg.body[0] == BUS_NAME
        ):
            sink(Owner(bool(msg.body[2])))

    async def _send(self, msg: Message, tag: str = "") -> Message:
        """Send one call and wait for its reply (an error reply too); with `tag`, the
        reply is also handed to the sink as it arrives."""
        bus = self._bus
        if bus is None or not bus.connected:
            raise Unreachable("not connected to the session bus")
        if tag:
            msg.serial = bus.next_serial()
            self._tags[msg.serial] = tag
        try:
            reply = await bus.call(msg)
        except Exception as exc:  # the connection went away under the call
            raise Unreachable(f"the session bus connection was lost: {exc}") from exc
        finally:
            self._tags.pop(msg.serial, None)
        assert reply is not None
        return reply

    async def _call_raw(
        self,
        dest: str,
        path: str,
        interface: str,
        member: str,
        sig: str,
        body: list[Any],
        tag: str = "",
    ) -> Message:
        msg = Message(
            destination=dest,
            path=path,
            interface=interface,
            member=member,
            signature=sig,
            body=body,
        )
        return await self._send(msg, tag)

    async def call(
        self, member: str, signature: str = "", *args: Any, interface: str = MANAGER, tag: str = ""
    ) -> Any:
        reply = await self._call_raw(BUS_NAME, PATH, interface, member, signature, list(args), tag)
        if reply.message_type is MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else ""
            name = reply.error_name or "unknown"
            if name in GONE:
                raise Unreachable("borgd is not running")
            raise CallFailed(name, text)
        return _body(reply)

    async def closed(self) -> None:
        if self._bus is not None:
            await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self._bus is not None:
            self._sink = None
            self._bus.disconnect()
            self._bus = None


def _body(msg: Message) -> Any:
    if not msg.body:
        return None
    return plain(msg.body[0] if len(msg.body) == 1 else msg.body)
