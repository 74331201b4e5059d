"""borgctl's client for the commands that only ask: dbus-python, blocking.

``status``, ``jobs``, ``show``, ``upcoming`` and the completion helper make a
call or two and print.  dbus-fast, borgctl's client for the commands that wait
for signals, pulls in asyncio on import (~100 ms before the first byte).
dbus-python is libdbus's binding: blocking calls, no event loop, and replies
decoded in C — 50 jobs (1,450 variants) in ~3 ms, where jeepney's pure Python
took 13 ms, the largest part of ``borgctl jobs`` (bench/bench_borgctl.py).
The commands' functions are coroutines that never suspend on this client, so
`client.run_sync` runs them without an event loop.
"""

from __future__ import annotations

import os

import dbus

from borgd.cli.client import BUS_NAME, MANAGER, PATH, PROPERTIES, Unreachable, failed

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import Any

NO_REPLY = "org.freedesktop.DBus.Error.NoReply"


class QuickClient:
    """borgd's Manager over a blocking connection, made at the first call."""

    def __init__(self) -> None:
        self._bus: Any = None
        self.timeout: float | None = None  # seconds a call may take; None: libdbus's 25 s

    def _ready(self) -> Any:
        if self._bus is None:
            if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not os.environ.get(
                "XDG_RUNTIME_DIR"
            ):
                raise Unreachable("cannot connect to the session bus: no session bus address")
            try:
                self._bus = dbus.SessionBus()
            except dbus.exceptions.DBusException as exc:
                raise Unreachable(f"cannot connect to the session bus: {exc}") from exc
        return self._bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()

    def _call(self, interface: str, member: str, signature: str, body: tuple[Any, ...]) -> Any:
        bus = self._ready()
        args = [_typed(str(s), a) for s, a in zip(dbus.Signature(signature), body, strict=True)]
        try:
            reply = bus.call_blocking(
                BUS_NAME,
                PATH,
                interface,
                member,
                signature,
                args,
                timeout=-1.0 if self.timeout is None else self.timeout,
            )
        except dbus.exceptions.DBusException as exc:
            name = exc.get_dbus_name() or "unknown"
            if name == NO_REPLY and self.timeout is not None:
                raise TimeoutError(f"{member} took more than {self.timeout} s") from exc
            raise failed(name, exc.get_dbus_message() or "") from exc
        return _plain(reply)

    async def call(self, member: str, signature: str = "", *body: Any) -> Any:
        """The reply: None, its one value, or a tuple of its values."""
        return self._call(MANAGER, member, signature, body)

    async def properties(self) -> dict[str, Any]:
        return dict(self._call(PROPERTIES, "GetAll", "s", (MANAGER,)))


def _typed(signature: str, value: Any) -> Any:
    """An argument as dbus-python marshals it: the commands give an a{sv} as
    ``{key: (signature, value)}``, and a variant's type is told by its value's class."""
    if signature == "v":
        inner, plain = value
        return _variant(inner, plain)
    if signature.startswith("a{") and signature.endswith("v}"):
        return dbus.Dictionary(
            {k: _typed("v", x) for k, x in value.items()}, signature=signature[2:-1]
        )
    return value  # the call's signature tells libdbus how to send it


_SCALARS = {
    "s": dbus.String,
    "b": dbus.Boolean,
    "u": dbus.UInt32,
    "t": dbus.UInt64,
    "i": dbus.Int32,
    "x": dbus.Int64,
    "d": dbus.Double,
}


def _variant(signature: str, value: Any) -> Any:
    if signature.startswith("a"):
        return dbus.Array([_variant(signature[1:], x) for x in value], signature=signature[1:])
    return _SCALARS[signature](value)


def _plain(value: Any) -> Any:
    """dbus-python's values (subclasses of str, int, list …) as plain ones; its
    Boolean is an int and would print as 1."""
    kind = _PLAIN.get(type(value))
    if kind is not None:
        return kind(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_plain(x) for x in value]
    if isinstance(value, tuple):
        return tuple(_plain(x) for x in value)
    return value


_PLAIN: dict[type, type] = {
    dbus.String: str,
    dbus.ObjectPath: str,
    dbus.Signature: str,
    dbus.Boolean: bool,
    dbus.Byte: int,
    dbus.Int16: int,
    dbus.UInt16: int,
    dbus.Int32: int,
    dbus.UInt32: int,
    dbus.Int64: int,
    dbus.UInt64: int,
    dbus.Double: float,
}
