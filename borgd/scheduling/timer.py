"""The daemon's one timer: sleep until an absolute wall-clock deadline.

:class:`TimerfdTimer` arms a ``timerfd`` on ``CLOCK_REALTIME`` with
``TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET``: it fires on time across
suspend (asyncio's monotonic clock stops while the machine sleeps), has no
24.8-day or 86400-s limit, and its ``read`` fails with ``ECANCELED`` when the
wall clock is set, which is reported as :attr:`WakeReason.CLOCK_CHANGED` so
the caller can re-plan.  ``os.timerfd_*`` is used where Python has it (3.13+),
ctypes on libc otherwise.  :class:`SleepTimer` is the fallback: a chunked
``anyio.sleep`` that re-reads the wall clock at least once a minute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import errno
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio

__all__ = ["SleepTimer", "Timer", "TimerfdTimer", "WakeReason", "make_timer"]

CLOCK_REALTIME = 0
TFD_TIMER_ABSTIME = 1 << 0
TFD_TIMER_CANCEL_ON_SET = 1 << 1
TFD_CLOEXEC = os.O_CLOEXEC
TFD_NONBLOCK = os.O_NONBLOCK


class WakeReason(enum.Enum):
    DEADLINE = "deadline"
    CLOCK_CHANGED = "clock-changed"


class Timer(Protocol):
    wakeups: int

    async def sleep_until(self, deadline: float) -> WakeReason:
        """Sleep until ``deadline`` (epoch seconds, :func:`time.time` scale)."""
        ...


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _LibcTimerfd:
    """timerfd_create / timerfd_settime through ctypes (Python < 3.13)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._create: Any = libc.timerfd_create
        self._create.argtypes = (ctypes.c_int, ctypes.c_int)
        self._create.restype = ctypes.c_int
        self._settime: Any = libc.timerfd_settime
        self._settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        )
        self._settime.restype = ctypes.c_int

    def create(self) -> int:
        fd = int(self._create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    def arm_absolute(self, fd: int, deadline: float) -> None:
        sec = int(deadline)
        nsec = round((deadline - sec) * 1e9)
        if nsec >= 1_000_000_000:
            sec, nsec = sec + 1, nsec - 1_000_000_000
        if sec == 0 and nsec == 0:
            nsec = 1  # an all-zero it_value would disarm the timer
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, nsec))
        flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
        if self._settime(fd, flags, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class _OsTimerfd:
    """The same through the ``os`` module (Python >= 3.13)."""

    def create(self) -> int:
        create: Any = getattr(os, "timerfd_create")  # noqa: B009 - absent on 3.11 stubs
        return int(create(CLOCK_REALTIME, flags=TFD_CLOEXEC | TFD_NONBLOCK))

    def arm_absolute(self, fd: int, deadline: float) -> None:
        settime: Any = getattr(os, "timerfd_settime")  # noqa: B009
        settime(
            fd,
            flags=TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
            initial=max(deadline, 1e-9),
            interval=0,
        )


def _backend() -> _LibcTimerfd | _OsTimerfd:
    if hasattr(os, "timerfd_create"):
        return _OsTimerfd()
    return _LibcTimerfd()


class TimerfdTimer:
    """Absolute wall-clock sleeps on a timerfd; one fd per sleep, closed on any exit."""

    def __init__(self, read: Callable[[int, int], bytes] = os.read) -> None:
        """`read`: how the expiry is read (tests give one that fails like a clock set)."""
        self._tfd = _backend()
        self._read = read
        self.wakeups = 0

    async def sleep_until(self, deadline: float) -> WakeReason:
        if deadline <= time.time():
            self.wakeups += 1
            return WakeReason.DEADLINE
        fd = self._tfd.create()
        try:
            self._tfd.arm_absolute(fd, deadline)
            while True:
                await anyio.wait_readable(fd)
                self.wakeups += 1
                try:
                    self._read(fd, 8)
                except BlockingIOError:
                    continue  # spurious readiness
                except OSError as exc:
                    if exc.errno == errno.ECANCELED:
                        return WakeReason.CLOCK_CHANGED
                    raise
                return WakeReason.DEADLINE
        finally:
            anyio.notify_closing(fd)
            os.close(fd)


class SleepTimer:
    """Fallback: ``anyio.sleep`` in chunks of at most ``chunk`` seconds.

    Re-reads :func:`time.time` after every chunk, so a deadline is met within a
    chunk even when the monotonic clock stopped during suspend, and reports
    :attr:`WakeReason.CLOCK_CHANGED` when the wall clock moved more than
    ``tolerance`` seconds differently from the monotonic clock between checks
    (a clock set, or a resume from suspend).
    """

    def __init__(self, chunk: float = 60.0, tolerance: float = 2.0) -> None:
        self.chunk = chunk
        self.tolerance = tolerance
        self.wakeups = 0

    async def sleep_until(self, deadline: float) -> WakeReason:
        while True:
            wall = time.time()
            if wall >= deadline:
                self.wakeups += 1
                return WakeReason.DEADLINE
            mono = time.monotonic()
            await anyio.sleep(min(self.chunk, deadline - wall))
            self.wakeups += 1
            drift = (time.time() - wall) - (time.monotonic() - mono)
            if abs(drift) > self.tolerance:
                return WakeReason.CLOCK_CHANGED


def timerfd_available() -> bool:
    """True if a CLOCK_REALTIME timerfd can be created here."""
    try:
        fd = _backend().create()
    except (OSError, AttributeError):
        return False
    os.close(fd)
    return True


def make_timer() -> Timer:
    """A :class:`TimerfdTimer` where timerfd works, else a :class:`SleepTimer`."""
    if timerfd_available():
        return TimerfdTimer()
    return SleepTimer()
