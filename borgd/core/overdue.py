"""The overdue rule, in one place: pure arithmetic on microseconds."""

from __future__ import annotations


def overdue_after(max_age: int, last_success: int, created_at: int) -> int | None:
    """The instant after which a profile is overdue, or None when it has no max_age.

    The reference is the newest successful backup, or the profile's creation
    before the first one.
    """
    if not max_age:
        return None
    return (last_success or created_at) + max_age


def is_overdue(max_age: int, last_success: int, created_at: int, now: int) -> bool:
    due = overdue_after(max_age, last_success, created_at)
    return due is not None and now > due
