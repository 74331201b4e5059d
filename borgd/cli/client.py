"""borgctl's D-Bus clients: calls, errors, and job signals.

Commands build their `a{sv}` arguments as ``{key: (signature, value)}`` and
get plain Python values back, whichever client carries the call:

* :class:`Client` (dbus-fast on asyncio) for commands that wait for signals
  (``run --wait``, ``logs -f``, ``watch``);
* :class:`QuickClient` (jeepney, blocking) for commands that only ask
  (``status``, ``jobs``, ``show``, ``upcoming``, completion): importing
  dbus-fast pulls in asyncio, ~120 ms before the first byte is sent, where
  jeepney's blocking I/O needs ~10 ms.  Their command functions are coroutines
  that never suspend on this client, so :func:`run_sync` runs them without an
  event loop.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any

BUS_NAME = "org.borgd1"
PATH = "/org/borgd1"
MANAGER = "org.borgd1.Manager"
PROPERTIES = "org.freedesktop.DBus.Properties"
# Errors meaning "no borgd here": the command cannot reach it.
UNREACHABLE_ERRORS = frozenset(
    {
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply",
    }
)

Arg = tuple[str, Any]  # a variant to send: (signature, value)


def v(signature: str, value: Any) -> Arg:
    return (signature, value)


class Unreachable(Exception):
    """No session bus, or no borgd on it."""


class UsageError(Exception):
    """The command line itself is wrong: one line, exit 2."""


class CallFailed(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})")
        self.name = name
        self.text = text


def _failed(name: str, text: str) -> Exception:
    if name in UNREACHABLE_ERRORS:
        return Unreachable(f"borgd is not running on the session bus ({text})")
    return CallFailed(name, text)


def plain(value: Any) -> Any:
    """dbus-fast's variants and containers of them as plain Python values."""
    from dbus_fast import Variant

    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(x) for k, x in value.items()}
    if isinstance(value, list):
        return [plain(x) for x in value]
    return value


Plain = Callable[[Any], Any]  # one of jeepney's values → a plain one


def _same(value: Any) -> Any:
    return value


@functools.cache
def _plain_of(signature: str) -> Plain:
    """The converter for values of one complete type, built once per signature: a
    job's ~30 variants have a few signatures, and walking the types anew for each
    value took half as long as jeepney's reading of the reply."""
    from jeepney.low_level import parse_signature

    return _converter(parse_signature(list(signature)))


def _converter(kind: Any) -> Plain:
    """jeepney's values as plain ones: it gives a variant as (signature, value)."""
    from jeepney.low_level import Array, DictEntry, Variant

    if isinstance(kind, Variant):
        return lambda value: _plain_of(value[0])(value[1])
    if isinstance(kind, Array) and isinstance(kind.elt_type, DictEntry):
        entry = _converter(kind.elt_type.fields[1])
        return lambda value: {k: entry(x) for k, x in value.items()}
    if isinstance(kind, Array):
        item = _converter(kind.elt_type)
        return _same if item is _same else lambda value: [item(x) for x in value]
    return _same


@functools.cache
def _reply_converters(signature: str) -> list[Plain]:
    """One converter for each complete type of a reply's signature."""
    from jeepney.low_level import parse_signature

    chars, out = list(signature), []
    while chars:
        out.append(_converter(parse_signature(chars)))  # consumes one complete type
    return out


class Client:
    """borgd's Manager through dbus-fast, connected at the first call: a command
    whose arguments are wrong fails with its usage error, not with "unreachable"."""

    def __init__(self, bus: Any = None) -> None:
        self._bus = bus
        self.timeout: float | None = None  # seconds a call may take; None: the bus's

    @classmethod
    async def connect(cls) -> Client:
        return cls()

    @property
    def bus(self) -> Any:
        assert self._bus is not None, "call `ready()` first"
        return self._bus

    async def ready(self) -> Any:
        if self._bus is None:
            from dbus_fast import BusType
            from dbus_fast.aio import MessageBus

            try:
                self._bus = await MessageBus(bus_type=BusType.SESSION).connect()
            except Exception as exc:
                raise Unreachable(f"cannot connect to the session bus: {exc}") from exc
        return self._bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()

    async def _call(self, interface: str, member: str, signature: str, body: list[Any]) -> Any:
        import anyio
        from dbus_fast import Message, MessageType, Variant

        def wire(arg: Any) -> Any:
            if isinstance(arg, dict):  # a{sv}: (signature, value) pairs become variants
                return {
                    k: Variant(*x) if isinstance(x, tuple) and len(x) == 2 else x
                    for k, x in arg.items()
                }
            return arg

        bus = await self.ready()
        message = Message(
            destination=BUS_NAME,
            path=PATH,
            interface=interface,
            member=member,
            signature=signature,
            body=[wire(b) for b in body],
        )
        with anyio.fail_after(self.timeout):
            reply = await bus.call(message)
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise _failed(reply.error_name or "unknown", reply.body[0] if reply.body else "")
        return reply.body

    async def call(self, member: str, signature: str = "", *body: Any) -> Any:
        out = await self._call(MANAGER, member, signature, list(body))
        if not out:
            return None
        return plain(out[0] if len(out) == 1 else out)

    async def properties(self) -> dict[str, Any]:
        out = await self._call(PROPERTIES, "GetAll", "s", [MANAGER])
        props: dict[str, Any] = plain(out[0])
        return props

    async def subscribe_jobs(self, handler: Callable[[str, int, dict[str, Any]], None]) -> None:
        """Call handler(member, job_id, fields) for JobAdded/JobChanged."""
        from dbus_fast import Message, MessageType

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


class QuickClient:
    """borgd's Manager through jeepney's blocking connection, for commands that only
    ask.  Its methods are coroutines for the commands' sake; none ever suspends."""

    def __init__(self) -> None:
        self._conn: Any = None
        self.timeout: float | None = None

    def _ready(self) -> Any:
        if self._conn is None:
            from jeepney.io.blocking import open_dbus_connection

            if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not os.environ.get(
                "XDG_RUNTIME_DIR"
            ):
                raise Unreachable("cannot connect to the session bus: no session bus address")
            try:
                self._conn = open_dbus_connection(bus="SESSION")
            except Exception as exc:
                raise Unreachable(f"cannot connect to the session bus: {exc}") from exc
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _call(self, interface: str, member: str, signature: str, body: tuple[Any, ...]) -> Any:
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call

        conn = self._ready()
        address = DBusAddress(PATH, bus_name=BUS_NAME, interface=interface)
        message = new_method_call(address, member, signature or None, body)
        try:
            reply = conn.send_and_get_reply(message, timeout=self.timeout)
        except TimeoutError:
            raise
        except OSError as exc:
            raise Unreachable(f"lost the session bus: {exc}") from exc
        fields = reply.header.fields
        if reply.header.message_type is MessageType.error:
            name = str(fields.get(HeaderFields.error_name, "unknown"))
            raise _failed(name, reply.body[0] if reply.body else "")
        converters = _reply_converters(str(fields.get(HeaderFields.signature, "")))
        return [plain(x) for x, plain in zip(reply.body, converters, strict=True)]

    async def call(self, member: str, signature: str = "", *body: Any) -> Any:
        out = self._call(MANAGER, member, signature, body)
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    async def properties(self) -> dict[str, Any]:
        (props,) = self._call(PROPERTIES, "GetAll", "s", (MANAGER,))
        return dict(props)


def run_sync(command: Coroutine[Any, Any, int]) -> int:
    """Run a command coroutine that never suspends (it uses :class:`QuickClient`)."""
    try:
        command.send(None)
    except StopIteration as done:
        return int(done.value)
    command.close()
    raise RuntimeError("a quick command waited for something: run it with Client")
