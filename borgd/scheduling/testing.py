"""A fake wall clock and a timer that follows it, for tests of the timer loops.

Like trio's ``MockClock``: the scheduling code takes a clock callable and a
:class:`~borgd.scheduling.timer.Timer`; tests give it these and move time
themselves, so hours pass in milliseconds and nothing sleeps for real.

* :meth:`FakeClock.advance` moves time forward: timers whose deadline is
  reached return :attr:`WakeReason.DEADLINE`.
* :meth:`FakeClock.set` sets the clock (forward or back), as
  ``clock_settime`` would: every armed timer returns
  :attr:`WakeReason.CLOCK_CHANGED`, like a timerfd armed with
  ``TFD_TIMER_CANCEL_ON_SET``.
"""

from __future__ import annotations

import anyio

from borgd.scheduling.timer import WakeReason

__all__ = ["FakeClock", "FakeTimer"]


class FakeClock:
    """Wall-clock microseconds since the epoch, moved only by the test."""

    def __init__(self, now_us: int) -> None:
        self.now = now_us
        self.sets = 0
        self._event: anyio.Event | None = None

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000)
        self._changed()

    def advance_to(self, us: int) -> None:
        if us > self.now:
            self.now = us
            self._changed()

    def set(self, us: int) -> None:
        """Set the clock to ``us`` (a jump; armed timers see CLOCK_CHANGED)."""
        self.now = us
        self.sets += 1
        self._changed()

    def _changed(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def changed(self) -> None:
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


class FakeTimer:
    """A :class:`~borgd.scheduling.timer.Timer` on a :class:`FakeClock`.

    ``armed`` holds the deadlines (µs) of the sleeps in progress, so a test can
    check what the loop is waiting for; ``wakeups`` counts returns.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.wakeups = 0
        self.armed: list[int] = []

    async def sleep_until(self, deadline: float) -> WakeReason:
        deadline_us = round(deadline * 1_000_000)
        sets = self.clock.sets
        self.armed.append(deadline_us)
        try:
            while self.clock.now < deadline_us:
                await self.clock.changed()
                if self.clock.sets != sets:
                    self.wakeups += 1
                    return WakeReason.CLOCK_CHANGED
            self.wakeups += 1
            return WakeReason.DEADLINE
        finally:
            self.armed.remove(deadline_us)
