"""D-Bus signatures of every dictionary key we publish, and conversions to variants."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
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

UPCOMING_KEYS: dict[str, str] = {
    "schedule_id": "t",
    "profile": "s",
    "action": "s",
    "scheduled_for": "t",
}

_DEFAULTS = {"s": "", "t": 0, "u": 0, "i": 0, "x": 0, "d": 0.0, "b": False, "as": []}


def _coerce(sig: str, value: Any) -> Any:
    if value is None:
        return _DEFAULTS[sig]
    if sig in ("t", "u"):
        return max(0, int(value))
    if sig in ("i", "x"):
        return int(value)
    if sig == "d":
        return float(value)
    if sig == "b":
        return bool(value)
    if sig == "as":
        return [str(v) for v in value]
    return str(value)


@functools.cache
def _tree(signature: str) -> SignatureTree:
    """Parsed once: a Variant given a tree skips parsing its signature (a list of 1,000
    archives has 13,000 variants)."""
    return get_signature_tree(signature)


def to_variants(
    data: Mapping[str, Any], keys: Mapping[str, str], only: Iterable[str] | None = None
) -> dict[str, Variant]:
    """Only the known keys, each as a variant of its fixed signature."""
    names = keys.keys() if only is None else [k for k in only if k in keys]
    return {k: Variant(_tree(keys[k]), _coerce(keys[k], data.get(k))) for k in names if k in data}


def from_variants(options: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """An incoming a{sv} as {key: (signature, value)} for the validators."""
    out: dict[str, tuple[str, Any]] = {}
    for key, var in options.items():
        if isinstance(var, Variant):
            out[str(key)] = (var.signature, var.value)
        else:  # pragma: no cover - dbus-fast always hands variants
            out[str(key)] = ("?", var)
    return out
