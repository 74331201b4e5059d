"""The wall-clock timer: timerfd (CLOCK_REALTIME, absolute, cancel-on-set) and the
sleep-loop fallback."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import time

import anyio
import pytest

from borgd.scheduling import timer as timer_mod
from borgd.scheduling.timer import SleepTimer, TimerfdTimer, WakeReason, make_timer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_timerfd = pytest.mark.skipif(
    not timer_mod.timerfd_available(), reason="timerfd_create is not available here"
)


@needs_timerfd
async def test_make_timer_prefers_timerfd() -> None:
    assert isinstance(make_timer(), TimerfdTimer)


@needs_timerfd
async def test_deadline_60_days_ahead_arms_then_cancels_cleanly() -> None:
    timer = TimerfdTimer()
    before = open_fds()
    with anyio.move_on_after(0.2) as scope:
        await timer.sleep_until(time.time() + 60 * 86400)
    assert scope.cancelled_caught  # armed fine and still waiting (no clamp, no early fire)
    assert open_fds() == before
    assert timer.wakeups == 0


@needs_timerfd
async def test_wakes_within_20ms_of_a_200ms_deadline() -> None:
    timer = TimerfdTimer()
    deadline = time.time() + 0.2
    reason = await timer.sleep_until(deadline)
    late = time.time() - deadline
    assert reason is WakeReason.DEADLINE
    assert 0 <= late < 0.020, f"woke {late * 1000:.1f} ms after the deadline"
    assert timer.wakeups == 1


@needs_timerfd
async def test_past_deadline_returns_at_once() -> None:
    timer = TimerfdTimer()
    start = time.monotonic()
    assert await timer.sleep_until(time.time() - 3600) is WakeReason.DEADLINE
    assert time.monotonic() - start < 0.01


@needs_timerfd
async def test_cancel_scope_closes_the_fd() -> None:
    timer = TimerfdTimer()
    before = open_fds()
    during: list[int] = []

    async def sleeper() -> None:
        await timer.sleep_until(time.time() + 3600)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.sleep(0.05)
        during.append(open_fds())
        tg.cancel_scope.cancel()
    assert during == [before + 1]  # the timerfd existed while sleeping …
    assert open_fds() == before  # … and is gone after the cancellation


def _clock_settime_now() -> None:
    """Set CLOCK_REALTIME to its own current value (a no-op jump that still
    counts as a clock set); raise PermissionError without CAP_SYS_TIME."""

    class Timespec(ctypes.Structure):
        _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    ts = Timespec()
    if libc.clock_gettime(0, ctypes.byref(ts)) != 0:
        raise OSError(ctypes.get_errno(), "clock_gettime")
    if libc.clock_settime(0, ctypes.byref(ts)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@needs_timerfd
async def test_wall_clock_set_is_reported_as_clock_changed() -> None:
    timer = TimerfdTimer()
    result: list[WakeReason] = []

    async def sleeper() -> None:
        result.append(await timer.sleep_until(time.time() + 30))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.sleep(0.1)
            try:
                _clock_settime_now()
            except OSError as exc:
                tg.cancel_scope.cancel()
                if exc.errno == errno.EPERM:
                    pytest.skip("clock_settime(CLOCK_REALTIME) needs CAP_SYS_TIME (EPERM)")
                raise
    assert result == [WakeReason.CLOCK_CHANGED]


async def test_sleep_timer_meets_a_deadline() -> None:
    timer = SleepTimer(chunk=0.05)
    deadline = time.time() + 0.15
    assert await timer.sleep_until(deadline) is WakeReason.DEADLINE
    assert 0 <= time.time() - deadline < 0.05
    assert timer.wakeups >= 3  # chunked: woke at least once per 50 ms chunk


async def test_sleep_timer_reports_a_wall_clock_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    real_time = time.time
    offset = [0.0]
    monkeypatch.setattr(timer_mod.time, "time", lambda: real_time() + offset[0])
    timer = SleepTimer(chunk=0.05)
    result: list[WakeReason] = []

    async def sleeper() -> None:
        result.append(await timer.sleep_until(real_time() + 3600))

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.sleep(0.07)
            offset[0] = 600.0  # someone set the clock ten minutes ahead
    assert result == [WakeReason.CLOCK_CHANGED]


async def test_sleep_timer_chunks_are_at_most_60_seconds() -> None:
    assert SleepTimer().chunk == 60.0
