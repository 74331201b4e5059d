"""The errors clients see, one per `org.borgd1.Error.*` name.

The application layer raises these; the D-Bus adapter maps each to its
error name, and anything else to a logged internal error.
"""

from __future__ import annotations

from borgd.core.validation import InvalidArgument


class BorgdError(Exception):
    dbus_name = "org.borgd1.Error.Failed"


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
