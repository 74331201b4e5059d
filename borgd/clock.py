"""Wall-clock time in microseconds since the epoch (the D-Bus `t` convention)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], int]


def wall_us() -> int:
    return time.time_ns() // 1000


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def to_datetime(us: int) -> datetime:
    return EPOCH + us * ONE_US


def from_datetime(dt: datetime) -> int:
    return (dt - EPOCH) // ONE_US
