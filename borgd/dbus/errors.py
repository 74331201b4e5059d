"""Every handler's exceptions become `org.borgd1.Error.*`; nothing else reaches a client."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from dbus_fast import DBusError

from borgd import errors
from borgd.core.jobs import IllegalTransition
from borgd.store.catalog import Conflict, NotFound
from borgd.store.engine import StoreUnavailable
from borgd.store.jobs import NoSuchJob, StaleState

log = structlog.get_logger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

INVALID_ARGUMENT = "org.borgd1.Error.InvalidArgument"


def to_dbus_error(exc: BaseException) -> DBusError:
    if isinstance(exc, DBusError):
        return exc
    if isinstance(exc, errors.BorgdError):
        return DBusError(exc.dbus_name, str(exc))
    if isinstance(exc, errors.InvalidArgument):
        return DBusError(INVALID_ARGUMENT, str(exc))
    if isinstance(exc, (NoSuchJob, NotFound)):
        return DBusError(
            errors.NotFound.dbus_name, f"not found: {exc.args[0] if exc.args else exc}"
        )
    if isinstance(exc, Conflict):
        return DBusError(errors.AlreadyExists.dbus_name, str(exc))
    if isinstance(exc, (StaleState, IllegalTransition)):
        return DBusError(errors.InvalidState.dbus_name, str(exc))
    if isinstance(exc, StoreUnavailable):  # locked elsewhere, disk full: the health logs it
        return DBusError(
            errors.Unavailable.dbus_name,
            f"borgd's store cannot be used now ({exc.cause}); "
            "try again later (the StoreHealth property says when it is back)",
        )
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
