"""Sleep until a wall-clock deadline or until poked: the wait of every timer loop.

The scheduler, the overdue watcher and the notification alerts each run one
loop of "work out what is due, sleep until the next deadline".  A
:class:`Waker` is that sleep: it arms the loop's :class:`Timer` (a timerfd in
the daemon, a fake in tests) for an absolute deadline in microseconds and
returns early when :meth:`Waker.poke` is called (a counted
:class:`~borgd.wakeups.Poke`: the loop reads :attr:`Waker.generation` before
it works and passes it to :meth:`wait`).
"""

from __future__ import annotations

import enum

import anyio

from borgd.scheduling.timer import Timer, WakeReason
from borgd.wakeups import Poke


class Woke(enum.Enum):
    DEADLINE = "deadline"
    CLOCK_CHANGED = "clock-changed"
    POKE = "poke"


class Waker:
    def __init__(self, timer: Timer) -> None:
        self.timer = timer
        self._poke = Poke()

    @property
    def generation(self) -> int:
        return self._poke.generation

    def poke(self) -> None:
        self._poke()

    async def wait(self, deadline_us: int | None, *, since: int) -> Woke:
        """Sleep until ``deadline_us`` (None: until poked), or return at once if poked
        after the loop read ``since`` from :attr:`generation`."""
        if self.generation != since:
            return Woke.POKE
        result = Woke.POKE
        async with anyio.create_task_group() as tg:

            async def on_timer(deadline: int) -> None:
                nonlocal result
                why = await self.timer.sleep_until(deadline / 1_000_000)
                result = Woke.CLOCK_CHANGED if why is WakeReason.CLOCK_CHANGED else Woke.DEADLINE
                tg.cancel_scope.cancel()

            async def on_poke() -> None:
                await self._poke.wait(since)
                tg.cancel_scope.cancel()

            if deadline_us is not None:
                tg.start_soon(on_timer, deadline_us)
            tg.start_soon(on_poke)
        return result
