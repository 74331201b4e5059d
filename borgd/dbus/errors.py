"""Every handler's exceptions become `org.borgd1.Error.*`; nothing else reaches a client."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from dbus_fast import DBusError

from borgd import errors

log = structlog.get_logger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def to_dbus_error(exc: BaseException) -> DBusError:
    if isinstance(exc, DBusError):
        return exc
    if isinstance(exc, errors.BorgdError):  # the store's errors too (a locked store …)
        return DBusError(exc.dbus_name, exc.public_message())
    log.exception("dbus.internal_error", exc_info=exc)
    return DBusError(
        errors.Unavailable.dbus_name,
        f"borgd hit an internal error ({type(exc).__name__}); the log has the details",
    )


def guarded(fn: F) -> F:
    """Wrap a handler (sync or async) so every exception becomes a typed D-Bus error."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                raise to_dbus_error(exc) from None

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise to_dbus_error(exc) from None

    return wrapper  # type: ignore[return-value]
