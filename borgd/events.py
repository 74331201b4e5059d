"""Fan-out of state changes from the engine to adapters (D-Bus, notifications).

The engine calls these synchronously right after a store write; listeners
must not block (D-Bus emission is a non-blocking send).
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from borgd.core.records import Job

log = structlog.get_logger(__name__)


class Listener(Protocol):
    def job_added(self, job: Job) -> None: ...
    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None: ...
    def job_removed(self, job_id: int) -> None: ...
    def profile_changed(self, name: str, changed: dict[str, Any]) -> None: ...
    def manager_changed(self, changed: dict[str, Any]) -> None: ...


class IgnoresEvents:
    """A listener's default: every event ignored.  A listener overrides the ones it
    reacts to (each must not block, see the module docstring)."""

    def job_added(self, job: Job) -> None:
        pass

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        pass

    def job_removed(self, job_id: int) -> None:
        pass

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        pass

    def manager_changed(self, changed: dict[str, Any]) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _each(self, method: str, *args: Any) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, method)(*args)
            except Exception:
                log.exception("events.listener_failed", method=method)

    def job_added(self, job: Job) -> None:
        self._each("job_added", job)

    def job_changed(self, job_id: int, changed: dict[str, Any], job: Job) -> None:
        self._each("job_changed", job_id, changed, job)

    def job_removed(self, job_id: int) -> None:
        self._each("job_removed", job_id)

    def profile_changed(self, name: str, changed: dict[str, Any]) -> None:
        self._each("profile_changed", name, changed)

    def manager_changed(self, changed: dict[str, Any]) -> None:
        self._each("manager_changed", changed)
