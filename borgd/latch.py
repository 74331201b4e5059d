"""A one-way flag that tasks can wait for: "this has happened at least once"."""

from __future__ import annotations

import anyio


class Latch:
    """Set once, never cleared; :meth:`wait` returns at once after that.

    The event is made lazily: watchers are built before the event loop runs in tests.
    """

    def __init__(self) -> None:
        self.is_set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self.is_set = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self.is_set:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()
