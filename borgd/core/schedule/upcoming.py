"""Merge the occurrences of many schedules over a time range, in time order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from borgd.core.schedule._wall import ONE_US
from borgd.core.schedule.spec import Spec

__all__ = ["upcoming"]

K = TypeVar("K")


def upcoming(
    entries: Iterable[tuple[K, Spec, datetime | None]],
    start: datetime,
    end: datetime,
    limit: int = 10_000,
) -> tuple[list[tuple[datetime, K]], bool]:
    """All instants in ``[start, end)`` of every ``(key, spec, anchor)`` entry, merged.

    Sorted by time, ties in entry order.  At most ``limit`` instants are
    produced; the flag says whether more existed (lazy: a ``*:*:*`` spec over
    a year costs ``limit`` steps, not 31 million).  An interval entry without
    an anchor is anchored at ``start``.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    start = start.astimezone(UTC)  # compare instants, never wall clocks
    end = end.astimezone(UTC)
    heap: list[tuple[datetime, int]] = []
    state: list[tuple[K, Spec, datetime]] = []
    for index, (key, spec, anchor) in enumerate(entries):
        base = anchor if anchor is not None else start
        state.append((key, spec, base))
        first = spec.next_after(start - ONE_US, base)
        if first is not None and first < end:
            heap.append((first, index))
    heapq.heapify(heap)
    out: list[tuple[datetime, K]] = []
    while heap:
        when, index = heap[0]
        if len(out) >= limit:
            return out, True
        key, spec, base = state[index]
        out.append((when, key))
        nxt = spec.next_after(when, base)
        if nxt is not None and nxt < end:
            heapq.heapreplace(heap, (nxt, index))
        else:
            heapq.heappop(heap)
    return out, False
