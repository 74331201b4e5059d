"""The wall-clock timer: timerfd (CLOCK_REALTIME, absolute, cancel-on-set) and the
sleep-loop fallback.

The host's clock is never set here.  That a clock set cancels the timer is the
kernel's part (checked through /proc/self/fdinfo: how the timerfd is armed);
that a cancelled read becomes WakeReason.CLOCK_CHANGED is borgd's part (checked
with the timer module's `os.read` replaced).  Wake precision is measured by
bench/bench_wake.py, not asserted here.
"""

from __future__ import annotations

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


def timerfds() -> dict[int, dict[str, str]]:
    """The timerfds this process holds now, with the kernel's view of each (fdinfo)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target == "anon_inode:[timerfd]":
            with open(f"/proc/self/fdinfo/{name}") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            found[int(name)] = {k.strip(): v.strip() for k, v in fields.items()}
    return found


async def wait_for_timerfd(timeout: float = 10) -> tuple[int, dict[str, str]]:
    """The one timerfd a sleeper task armed, once it exists (polled, not assumed)."""
    with anyio.fail_after(timeout):
        while not (found := timerfds()):
            await anyio.sleep(0.005)
    ((fd, info),) = found.items()
    return fd, info


def test_timerfd_is_available_here() -> None:
    """borgd's precise timer needs timerfd (Linux >= 2.6.25): its absence is a failure,
    not a reason to skip the tests below."""
    assert timer_mod.timerfd_available()
    assert isinstance(make_timer(), TimerfdTimer)


async def test_armed_on_the_wall_clock_absolute_and_cancelled_when_it_is_set() -> None:
    """What makes a clock set wake the timer is the kernel's: a CLOCK_REALTIME timerfd
    armed with TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET.  /proc/self/fdinfo shows how
    the timer is armed, without touching the host's clock."""
    timer = TimerfdTimer()
    deadline = time.time() + 60 * 86400
    async with anyio.create_task_group() as tg:
        tg.start_soon(timer.sleep_until, deadline)
        _fd, info = await wait_for_timerfd()
        tg.cancel_scope.cancel()
    assert info["clockid"] == "0"  # CLOCK_REALTIME
    flags = int(info["settime flags"], 8)
    assert flags == timer_mod.TFD_TIMER_ABSTIME | timer_mod.TFD_TIMER_CANCEL_ON_SET, info
    sec, nsec = (int(x) for x in info["it_value"].strip("()").split(","))
    # fdinfo shows the time remaining: the full 60 days (not clamped to a day or 24.8 days),
    # within the seconds this test may have taken on a loaded machine.
    assert abs(sec + nsec / 1e9 - (deadline - time.time())) < 30, (info, deadline)


async def test_deadline_60_days_ahead_arms_then_cancels_cleanly() -> None:
    timer = TimerfdTimer()
    before = open_fds()
    # A lower bound: after 0.2 s the sleeper still waits (no clamp, no early fire).
    with anyio.move_on_after(0.2) as scope:
        await timer.sleep_until(time.time() + 60 * 86400)
    assert scope.cancelled_caught
    assert open_fds() == before
    assert timer.wakeups == 0


async def test_wakes_at_a_200ms_deadline_never_before() -> None:
    """Never early, and on the deadline's own wakeup.  How late it wakes is a precision
    figure measured by bench/bench_wake.py; here the bound only says it did not wait for
    some other event (the sleep is armed for 200 ms; 10 s is far beyond any scheduling
    delay of a loaded machine)."""
    timer = TimerfdTimer()
    deadline = time.time() + 0.2
    with anyio.fail_after(10):
        reason = await timer.sleep_until(deadline)
    assert time.time() >= deadline
    assert reason is WakeReason.DEADLINE
    assert timer.wakeups == 1


async def test_past_deadline_returns_without_arming_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timer = TimerfdTimer()

    def no_timerfd() -> int:
        raise AssertionError("a deadline in the past must not arm a timerfd")

    monkeypatch.setattr(timer._tfd, "create", no_timerfd)
    assert await timer.sleep_until(time.time() - 3600) is WakeReason.DEADLINE
    assert timer.wakeups == 1


async def test_cancel_scope_closes_the_fd() -> None:
    timer = TimerfdTimer()
    before = open_fds()

    async with anyio.create_task_group() as tg:
        tg.start_soon(timer.sleep_until, time.time() + 3600)
        await wait_for_timerfd()  # the timerfd exists while sleeping …
        assert open_fds() == before + 1
        tg.cancel_scope.cancel()
    assert open_fds() == before  # … and is gone after the cancellation
    assert timerfds() == {}


class ReadRaises:
    """The timer module's `os`, except that `read` of the timerfd fails with `errno`:
    what the kernel does to a cancel-on-set timerfd when the wall clock is set
    (timerfd_create(2)), without setting the host's clock."""

    def __init__(self, errno_: int) -> None:
        self.errno = errno_
        self.reads: list[int] = []

    def read(self, fd: int, n: int) -> bytes:
        self.reads.append(fd)
        raise OSError(self.errno, os.strerror(self.errno))

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


async def test_read_failing_with_ecanceled_is_reported_as_clock_changed() -> None:
    fake_os = ReadRaises(errno.ECANCELED)
    timer = TimerfdTimer(read=fake_os.read)
    before = open_fds()
    # The timerfd is real and becomes readable at its deadline; its read says ECANCELED.
    with anyio.fail_after(10):
        reason = await timer.sleep_until(time.time() + 0.05)
    assert reason is WakeReason.CLOCK_CHANGED
    assert len(fake_os.reads) == 1
    assert open_fds() == before, "the cancelled timerfd is closed"


async def test_other_read_errors_are_not_mistaken_for_a_clock_change() -> None:
    timer = TimerfdTimer(read=ReadRaises(errno.EIO).read)
    before = open_fds()
    with anyio.fail_after(10), pytest.raises(OSError) as raised:
        await timer.sleep_until(time.time() + 0.05)
    assert raised.value.errno == errno.EIO
    assert open_fds() == before


async def test_sleep_timer_meets_a_deadline() -> None:
    timer = SleepTimer(chunk=0.05)
    deadline = time.time() + 0.15
    # 10 s: far beyond a loaded machine's scheduling delay, far below "missed the deadline
    # and waited for something else"; the lateness itself is not this test's business.
    with anyio.fail_after(10):
        assert await timer.sleep_until(deadline) is WakeReason.DEADLINE
    assert time.time() >= deadline
    assert timer.wakeups >= 3  # chunked: woke at least once per 50 ms chunk


async def test_sleep_timer_reports_a_wall_clock_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    real_time = time.time
    offset = [0.0]
    monkeypatch.setattr(timer_mod.time, "time", lambda: real_time() + offset[0])
    timer = SleepTimer(chunk=0.05)
    result: list[WakeReason] = []

    async def sleeper() -> None:
        result.append(await timer.sleep_until(real_time() + 3600))

    with anyio.fail_after(10):  # a hang, not a precision bound
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            while timer.wakeups < 1:  # the sleeper is past its first chunk
                await anyio.sleep(0.01)
            offset[0] = 600.0  # someone set the clock ten minutes ahead
    assert result == [WakeReason.CLOCK_CHANGED]


async def test_sleep_timer_chunks_are_at_most_60_seconds() -> None:
    assert SleepTimer().chunk == 60.0
