"""borgctl's D-Bus clients: calls, errors, and job signals.

Commands build their `a{sv}` arguments as ``{key: (signature, value)}`` and
get plain Python values back, whichever client carries the call:

* :class:`Client` (dbus-fast on asyncio) for commands that wait for signals
  (``run --wait``, ``logs -f``, ``watch``) and the commands that change things;
* `quick_client.QuickClient` (dbus-python, blocking) for commands that only
  ask (``status``, ``jobs``, ``show``, ``upcoming``, completion), run by
  :func:`run_sync` without an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Arg: TypeAlias = tuple[str, Any]  # a variant to send: (signature, value)

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
        "org.freedesktop.DBus.Error.Disconnected",
    }
)


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


def failed(name: str, text: str) -> Exception:
    """The exception for a D-Bus error reply named `name`."""
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
            raise failed(reply.error_name or "unknown", reply.body[0] if reply.body else "")
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


def run_sync(command: Coroutine[Any, Any, int]) -> int:
    """Run a command coroutine that never suspends (it uses `quick_client.QuickClient`)."""
    try:
        command.send(None)
    except StopIteration as done:
        return int(done.value)
    command.close()
    raise RuntimeError("a quick command waited for something: run it with Client")
