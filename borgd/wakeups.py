"""Wake-ups shared by every loop: counted pokes, and a one-way latch.

Each loop of borgd (the scheduler, the overdue watcher, the alerts, the
keyring watcher, the network settle timer, retention) does its work, then
sleeps until something changed.  :class:`Poke` is that "something changed":
pokes are counted, so one that arrives while the loop is busy is never lost;
the loop reads :attr:`Poke.generation` before it works and passes it to
:meth:`Poke.wait`.  :class:`Latch` is "this has happened at least once".

Events are made lazily: loops are built before the event loop runs in tests.
"""

from __future__ import annotations

import anyio


class Poke:
    def __init__(self) -> None:
        self.generation = 0
        self._event: anyio.Event | None = None

    def __call__(self) -> None:
        self.generation += 1
        if self._event is not None:
            self._event.set()

    async def wait(self, since: int, timeout: float | None = None) -> bool:
        """True once poked after ``since`` (at once if that happened already); False
        when ``timeout`` seconds passed first."""
        if self.generation != since:
            return True
        self._event = event = anyio.Event()
        try:
            with anyio.move_on_after(timeout):
                await event.wait()
                return True
            return False
        finally:
            self._event = None


class Latch:
    """Set once, never cleared; :meth:`wait` returns at once after that."""

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
