"""D-Bus signatures of every dictionary key we publish, and conversions to variants."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dbus_fast import Variant
from dbus_fast.signature import SignatureTree, get_signature_tree

JOB_KEYS: dict[str, str] = {
    "id": "t",
    "type": "s",
    "status": "s",
    "trigger": "s",
    "profile": "s",
    "repository": "s",
    "schedule_id": "t",
    "parent_id": "t",
    "requeued_from": "t",
    "scheduled_for": "t",
    "created_at": "t",
    "queued_at": "t",
    "started_at": "t",
    "finished_at": "t",
    "skip_reason": "s",
    "blocked_by": "s",
    "message": "s",
    "exit_code": "i",
    "archive": "s",
    "progress": "d",
    "progress_message": "s",
    "current_file": "s",
    "nfiles": "t",
    "original_size": "t",
    "compressed_size": "t",
    "deduplicated_size": "t",
    "rate": "d",
    "eta": "t",
    "duration": "d",
}

REPOSITORY_KEYS: dict[str, str] = {
    "id": "t",
    "name": "s",
    "url": "s",
    "encryption": "s",
    "ssh_command": "s",
    "lock_wait": "u",
    "upload_ratelimit": "u",
    "device": "s",
    "automount": "b",
    "eject_after": "b",
    "has_passphrase": "b",
    "has_passcommand": "b",
    "remote": "b",
    "archives": "u",
    "size": "t",
    "last_backup": "t",
    "last_prune": "t",
    "last_compact": "t",
    "last_check": "t",
}

PROFILE_KEYS: dict[str, str] = {
    "id": "t",
    "name": "s",
    "repository": "s",
    "sources": "as",
    "excludes": "as",
    "compression": "s",
    "archive_template": "s",
    "keep_within": "s",
    "keep_hourly": "u",
    "keep_daily": "u",
    "keep_weekly": "u",
    "keep_monthly": "u",
    "keep_yearly": "u",
    "prune_after": "b",
    "compact_after": "b",
    "check_every": "u",
    "pre_command": "s",
    "post_command": "s",
    "enabled": "b",
    "max_age": "t",
    "inhibit_sleep": "b",
    "one_file_system": "b",
    "nice": "i",
    "ionice": "s",
    "blackout": "as",
    "last_success": "t",
    "overdue": "b",
}

SCHEDULE_KEYS: dict[str, str] = {
    "id": "t",
    "profile": "s",
    "action": "s",
    "spec": "s",
    "normalized": "s",
    "timezone": "s",
    "catch_up": "b",
    "catch_up_window": "t",
    "randomized_delay": "t",
    "skip_on_battery": "b",
    "skip_on_metered": "b",
    "enabled": "b",
    "paused": "b",
    "paused_until": "t",
    "next_run": "t",
    "retries": "u",
    "retry_delay": "t",
    "min_interval": "t",
}

ARCHIVE_KEYS: dict[str, str] = {
    "name": "s",
    "id": "s",
    "repository": "s",
    "profile": "s",
    "start": "t",
    "end": "t",
    "nfiles": "t",
    "original_size": "t",
    "compressed_size": "t",
    "deduplicated_size": "t",
    "comment": "s",
    "job_id": "t",
    "checkpoint": "b",
}

ENTRY_KEYS: dict[str, str] = {
    "path": "s",
    "type": "s",
    "size": "t",
    "mtime": "t",
    "mode": "u",
    "user": "s",
    "group": "s",
    "target": "s",
}

DIFF_KEYS: dict[str, str] = {"path": "s", "changes": "as", "size_delta": "x"}

STATS_KEYS: dict[str, str] = {
    "finished_at": "t",
    "archive": "s",
    "profile": "s",
    "nfiles": "t",
    "original_size": "t",
    "deduplicated_size": "t",
    "duration": "d",
    "repository_size": "t",
}

NOTIFIER_KEYS: dict[str, str] = {
    "id": "t",
    "name": "s",
    "kind": "s",
    "events": "as",
    "profiles": "as",
    "enabled": "b",
    "host": "s",
}

DELIVERY_KEYS: dict[str, str] = {
    "id": "t",
    "notifier": "s",
    "event": "s",
    "job_id": "t",
    "status": "s",
    "attempts": "u",
    "last_error": "s",
    "created_at": "t",
    "sent_at": "t",
}

UPCOMING_KEYS: dict[str, str] = {
    "schedule_id": "t",
    "profile": "s",
    "action": "s",
    "scheduled_for": "t",
    "deferred_to": "t",
    "blocked_by": "s",
}


def _unsigned(bits: int) -> Callable[[Any], int]:
    top: int = 2**bits - 1  # (int ** int is Any to mypy)

    def convert(value: Any) -> int:
        if type(value) is int and 0 <= value <= top:
            return value
        return min(top, max(0, int(value or 0)))

    return convert


def _signed(bits: int) -> Callable[[Any], int]:
    top: int = 2 ** (bits - 1) - 1
    low = -top - 1

    def convert(value: Any) -> int:
        if type(value) is int and low <= value <= top:
            return value
        return min(top, max(low, int(value or 0)))

    return convert


def _string(value: Any) -> str:
    return value if type(value) is str else "" if value is None else str(value)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value or ()]


def _float(value: Any) -> float:
    return float(value or 0.0)


# Each signature's conversion: a value of the right type passes untouched (the common
# case, and the cheap one); None is the type's zero; integers are held to the type's
# range, so a reply never fails to marshal.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "s": _string,
    "t": _unsigned(64),
    "u": _unsigned(32),
    "x": _signed(64),
    "i": _signed(32),
    "d": _float,
    "b": bool,
    "as": _strings,
}

_Plan = tuple[tuple[str, SignatureTree, Callable[[Any], Any]], ...]
_PLANS: dict[int, tuple[Mapping[str, str], _Plan]] = {}


def _plan(keys: Mapping[str, str]) -> _Plan:
    """Each key with its parsed signature and conversion, worked out once per key table
    (a list of 1,000 archives has 13,000 variants)."""
    known = _PLANS.get(id(keys))
    if known is not None and known[0] is keys:
        return known[1]
    plan = tuple((k, get_signature_tree(sig), _CONVERT[sig]) for k, sig in keys.items())
    _PLANS[id(keys)] = (keys, plan)
    return plan


def to_variants(
    data: Mapping[str, Any], keys: Mapping[str, str], only: Iterable[str] | None = None
) -> dict[str, Variant]:
    """Only the known keys, each as a variant of its fixed signature."""
    plan = _plan(keys)
    if only is not None:
        wanted = set(only)
        plan = tuple(p for p in plan if p[0] in wanted)
    # Converted values always fit their signature: no need for dbus-fast to check again.
    return {k: Variant(tree, convert(data[k]), False) for k, tree, convert in plan if k in data}


class RowsOnce:
    """The a{sv} rows of a result the application hands out again unchanged, built once.

    The archive cache answers the same question with the same tuple until it changes;
    a widget asking for 1,000 archives then costs the bus, not 13,000 new variants.
    Entries are found by the result's identity and hold the result, so an id is never
    reused while it is remembered.
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._rows: dict[tuple[int, Any], tuple[object, list[dict[str, Variant]]]] = {}

    def get(
        self, result: object, context: Any, build: Callable[[], list[dict[str, Variant]]]
    ) -> list[dict[str, Variant]]:
        key = (id(result), context)
        known = self._rows.get(key)
        if known is not None and known[0] is result:
            return known[1]
        rows = build()
        if len(self._rows) >= self._size:
            self._rows.pop(next(iter(self._rows)))  # the oldest
        self._rows[key] = (result, rows)
        return rows


def from_variants(options: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """An incoming a{sv} as {key: (signature, value)} for the validators."""
    out: dict[str, tuple[str, Any]] = {}
    for key, var in options.items():
        if isinstance(var, Variant):
            out[str(key)] = (var.signature, var.value)
        else:  # pragma: no cover - dbus-fast always hands variants
            out[str(key)] = ("?", var)
    return out
