"""A thin D-Bus client for borgctl: calls, errors, and job signals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

BUS_NAME = "org.borgd1"
PATH = "/org/borgd1"
MANAGER = "org.borgd1.Manager"


class Unreachable(Exception):
    """No session bus, or no borgd on it."""


class UsageError(Exception):
    """The command line itself is wrong: one line, exit 2."""


class CallFailed(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})")
        self.name = name
        self.text = text


def plain(value: Any) -> Any:
    """Variants and containers of them as plain Python values."""
    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Client:
    """borgd's Manager over the session bus, connected at the first call: a command
    whose arguments are wrong fails with its usage error, not with "unreachable"."""

    def __init__(self, bus: MessageBus | None = None) -> None:
        self._bus = bus

    @classmethod
    async def connect(cls) -> Client:
        return cls()

    @property
    def bus(self) -> MessageBus:
        assert self._bus is not None, "call `ready()` first"
        return self._bus

    async def ready(self) -> MessageBus:
        if self._bus is None:
            try:
                self._bus = await MessageBus(bus_type=BusType.SESSION).connect()
            except Exception as exc:
                raise Unreachable(f"cannot connect to the session bus: {exc}") from exc
        return self._bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()

    async def call(self, member: str, signature: str = "", *body: Any) -> Any:
        reply = await (await self.ready()).call(
            Message(
                destination=BUS_NAME,
                path=PATH,
                interface=MANAGER,
                member=member,
                signature=signature,
                body=list(body),
            )
        )
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body else ""
            name = reply.error_name or "unknown"
            if name in (
                "org.freedesktop.DBus.Error.ServiceUnknown",
                "org.freedesktop.DBus.Error.NameHasNoOwner",
                "org.freedesktop.DBus.Error.NoReply",
            ):
                raise Unreachable(f"borgd is not running on the session bus ({text})")
            raise CallFailed(name, text)
        if not reply.body:
            return None
        return plain(reply.body[0] if len(reply.body) == 1 else reply.body)

    async def properties(self) -> dict[str, Any]:
        reply = await (await self.ready()).call(
            Message(
                destination=BUS_NAME,
                path=PATH,
                interface="org.freedesktop.DBus.Properties",
                member="GetAll",
                signature="s",
                body=[MANAGER],
            )
        )
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise Unreachable(f"borgd is not running on the session bus ({reply.body[0]})")
        props: dict[str, Any] = plain(reply.body[0])
        return props

    async def subscribe_jobs(self, handler: Callable[[str, int, dict[str, Any]], None]) -> None:
        """Call handler(member, job_id, fields) for JobAdded/JobChanged."""

        def on_message(msg: Message) -> None:
            if (
                msg.message_type is MessageType.SIGNAL
                and msg.interface == MANAGER
                and msg.member in ("JobAdded", "JobChanged")
            ):
                handler(msg.member, int(msg.body[0]), plain(msg.body[1]))

        bus = await self.ready()
        bus.add_message_handler(on_message)
        await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[f"type='signal',sender='{BUS_NAME}',interface='{MANAGER}'"],
            )
        )
