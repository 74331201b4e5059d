"""Whether the store can be written now, told once per outage.

borgd must outlive a store that another process holds locked, whose disk is
full or whose file went away.  The engine reports every failure here
(`failed`); the state then reads ``unavailable: CAUSE`` and every loop that
writes waits on :meth:`StoreHealth.wait_recovered` instead of retrying on
its own.  One task (:meth:`run`) probes the store with a real write, backing
off from ``FIRST_PROBE_S`` to ``MAX_PROBE_S``; the first probe that commits
ends the outage and wakes the waiters.  So there is one back-off policy, and
one log line per episode, not one per loop and attempt.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable

import anyio
import anyio.from_thread
import structlog

from borgd import errors

log = structlog.get_logger(__name__)

OK = "ok"
FIRST_PROBE_S = 0.5
MAX_PROBE_S = 10.0


class StoreUnavailable(errors.Unavailable):
    """The store cannot be used now (locked elsewhere, disk full, I/O error)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause

    def public_message(self) -> str:
        return (
            f"borgd's store cannot be used now ({self.cause}); "
            "try again later (the StoreHealth property says when it is back)"
        )


class StoreUnusable(StoreUnavailable):
    """The store cannot be opened at all (corrupt, from a newer borgd, unreadable)."""


class StoreHealth:
    """Built in the thread that runs the event loop; a failure seen in a worker thread
    (retention reads there) is handed to the loop, where listeners and waiters live."""

    def __init__(self) -> None:
        self.state = OK
        self.outages = 0
        self._listeners: list[Callable[[str], None]] = []
        self._changed: anyio.Event | None = None
        self._loop_thread = threading.get_ident()

    @property
    def ok(self) -> bool:
        return self.state == OK

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """``listener(state)`` after every change (the D-Bus property, STATUS=)."""
        self._listeners.append(listener)

    def failed(self, cause: str) -> None:
        if threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # not an anyio worker: the loop will see it
                anyio.from_thread.run_sync(self.failed, cause)
            return
        state = f"unavailable: {cause}"
        if state == self.state:
            return
        if self.ok:
            self.outages += 1
            log.error("store.unavailable", cause=cause)
        else:
            log.warning("store.still_unavailable", cause=cause)
        self._set(state)

    def recovered(self) -> None:
        if self.ok:
            return
        log.info("store.recovered", was=self.state)
        self._set(OK)

    def _set(self, state: str) -> None:
        self.state = state
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                log.exception("store.health_listener_failed")

    async def wait_changed(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    async def wait_recovered(self) -> None:
        """Return once the store takes writes again (at once when it does now)."""
        while not self.ok:
            await self.wait_changed()

    async def run(self, probe: Callable[[], None]) -> None:
        """While unavailable, try ``probe`` (a small write that raises on failure) with
        a bounded exponential back-off; the first success ends the outage."""
        while True:
            while self.ok:
                await self.wait_changed()
            delay = FIRST_PROBE_S
            while not self.ok:
                await anyio.sleep(delay)
                try:
                    probe()
                except Exception as exc:
                    log.debug("store.probe_failed", error=str(exc))
                    delay = min(delay * 2, MAX_PROBE_S)
                else:
                    self.recovered()


async def keep_running(
    name: str, loop: Callable[[], Awaitable[None]], health: StoreHealth
) -> None:
    """Run ``loop`` (a watcher that reads or writes the store); when a store outage
    ends it, start it again once the store is back.  Its state lives in the store,
    so a fresh start loses nothing."""
    while True:
        try:
            await loop()
            return
        except StoreUnavailable:
            log.debug("store.loop_waits", loop=name)
            await health.wait_recovered()
