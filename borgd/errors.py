"""The errors clients see, one per `org.borgd1.Error.*` name.

The application layer raises these, and the store's own errors are
subclasses of them (a lost race is an `InvalidState`, a locked store is
`Unavailable`), so the D-Bus adapter maps each to its error name by class
alone, and anything else to a logged internal error.
"""

from __future__ import annotations


class BorgdError(Exception):
    dbus_name = "org.borgd1.Error.Failed"

    def public_message(self) -> str:
        """What a client is told (a subclass may add advice)."""
        return str(self)


class InvalidArgument(BorgdError, ValueError):
    """A caller's mistake: a bad name, key, type or value."""

    dbus_name = "org.borgd1.Error.InvalidArgument"


class NotFound(BorgdError):
    dbus_name = "org.borgd1.Error.NotFound"


class AlreadyExists(BorgdError):
    dbus_name = "org.borgd1.Error.AlreadyExists"


class InvalidState(BorgdError):
    dbus_name = "org.borgd1.Error.InvalidState"


class Unavailable(BorgdError):
    dbus_name = "org.borgd1.Error.Unavailable"


__all__ = [
    "AlreadyExists",
    "BorgdError",
    "InvalidArgument",
    "InvalidState",
    "NotFound",
    "Unavailable",
]
