"""Argument validation for every public entry point: pure, table driven.

D-Bus hands us `a{sv}` dictionaries; the adapter turns each variant into a
`(signature, value)` pair and this module checks keys, types and ranges
before anything changes.  Errors carry a message a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from borgd.core.blackout import BlackoutError, parse_windows
from borgd.core.jobs import JobStatus, JobType
from borgd.errors import InvalidArgument as InvalidArgument

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_INT_SIGS = frozenset("ynqiuxt")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_STRING = 4096
MAX_LIST = 1000
U32 = 2**32 - 1
U64 = 2**63 - 1  # SQLite integers are signed 64-bit: the store's limit
ENCRYPTIONS = (
    "none",
    "authenticated",
    "authenticated-blake2",
    "repokey",
    "repokey-blake2",
    "keyfile",
    "keyfile-blake2",
)
SCHEDULE_ACTIONS = ("backup", "prune", "compact", "check")
MAX_RETRIES = 10
Variant = tuple[str, Any]


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid {kind} name {str(name)[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_text(what: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    if not value and not allow_empty:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_STRING:
        raise InvalidArgument(f"{what} is longer than {MAX_STRING} characters")
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character")
    return value


def check_absolute_path(what: str, value: object) -> str:
    path = check_text(what, value)
    if _CONTROL.search(path):
        raise InvalidArgument(f"{what} {path[:80]!r} contains control characters")
    if not path.startswith("/"):
        raise InvalidArgument(f"{what} {path[:80]!r} is not an absolute path")
    return path


_SSH_URL = re.compile(r"ssh://(?:[^@/\s]+@)?[A-Za-z0-9.\-_\[\]:]+(?::\d+)?/.+")
_SCP_URL = re.compile(r"(?:[^@/\s:]+@)?[A-Za-z0-9.\-_]+:(?!//).+")


def check_url(value: object) -> str:
    url = check_text("repository URL", value)
    if _CONTROL.search(url) or url != url.strip():
        raise InvalidArgument(
            f"repository URL {url[:80]!r} contains control characters or surrounding spaces"
        )
    if url.startswith("/") or (url.startswith("file:///")):
        return url.rstrip("/") or "/"
    if "://" in url and not url.startswith("ssh://"):
        pass  # another scheme: borg speaks only local paths and ssh
    elif _SSH_URL.fullmatch(url) or _SCP_URL.fullmatch(url):
        return url
    raise InvalidArgument(
        f"repository URL {url[:80]!r} is not an absolute path, file:///path, "
        "ssh://[user@]host[:port]/path or [user@]host:path"
    )


# -- option tables ---------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    label: str
    check: Callable[[str, str, Any], Any]


def _str(key: str, sig: str, value: Any) -> str:
    if sig != "s":
        raise InvalidArgument(f"option {key!r} must be a string (s), got {sig!r}")
    return check_text(f"option {key!r}", value, allow_empty=True)


def _bool(key: str, sig: str, value: Any) -> bool:
    if sig != "b":
        raise InvalidArgument(f"option {key!r} must be a boolean (b), got {sig!r}")
    return bool(value)


def _int_range(limit: int) -> Callable[[str, str, Any], int]:
    def check(key: str, sig: str, value: Any) -> int:
        if sig not in _INT_SIGS or not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"option {key!r} must be an integer, got {sig!r}")
        if value < 0 or value > limit:
            raise InvalidArgument(f"option {key!r} must be between 0 and {limit}, got {value}")
        return value

    return check


def _str_list(key: str, sig: str, value: Any) -> list[str]:
    if sig != "as":
        raise InvalidArgument(f"option {key!r} must be a list of strings (as), got {sig!r}")
    if len(value) > MAX_LIST:
        raise InvalidArgument(f"option {key!r} has more than {MAX_LIST} entries")
    return [check_text(f"an entry of {key!r}", v) for v in value]


def _str_or_list(key: str, sig: str, value: Any) -> list[str]:
    if sig == "s":
        return [check_text(f"option {key!r}", value)]
    return _str_list(key, sig, value)


def _abs_path(key: str, sig: str, value: Any) -> str:
    return check_absolute_path(f"option {key!r}", _str(key, sig, value))


def _abs_paths(key: str, sig: str, value: Any) -> list[str]:
    return [check_absolute_path(f"an entry of {key!r}", v) for v in _str_list(key, sig, value)]


def _choice(*choices: str) -> Callable[[str, str, Any], str]:
    def check(key: str, sig: str, value: Any) -> str:
        text = _str(key, sig, value)
        if text not in choices:
            shown = ", ".join(c or "'' (none)" for c in choices)
            raise InvalidArgument(f"option {key!r} must be one of {shown}")
        return text

    return check


def _blackout(key: str, sig: str, value: Any) -> list[str]:
    windows = _str_list(key, sig, value)
    try:
        parse_windows(windows)
    except BlackoutError as exc:
        raise InvalidArgument(str(exc)) from None
    return [w.strip() for w in windows]


STR = Kind("s", _str)
BOOL = Kind("b", _bool)
U32_ = Kind("u", _int_range(U32))
U64_ = Kind("t", _int_range(U64))
STR_LIST = Kind("as", _str_list)
STR_OR_LIST = Kind("s or as", _str_or_list)
ABS_PATH = Kind("s", _abs_path)
ABS_PATHS = Kind("as", _abs_paths)
ENCRYPTION = Kind("s", _choice(*ENCRYPTIONS))

REPOSITORY_OPTIONS: Mapping[str, Kind] = {
    "passphrase": STR,
    "passcommand": STR,
    "encryption": ENCRYPTION,
    "init": BOOL,
    "ssh_command": STR,
    "lock_wait": U32_,
    "upload_ratelimit": U32_,  # KiB/s, 0 = none
    "device": STR,  # a filesystem UUID ('' = none)
    "automount": BOOL,
    "eject_after": BOOL,
}
PROFILE_OPTIONS: Mapping[str, Kind] = {
    "excludes": STR_LIST,
    "compression": STR,
    "archive_template": STR,
    "keep_within": STR,
    "keep_hourly": U32_,
    "keep_daily": U32_,
    "keep_weekly": U32_,
    "keep_monthly": U32_,
    "keep_yearly": U32_,
    "prune_after": BOOL,
    "compact_after": BOOL,
    "check_every": U32_,
    "pre_command": STR,
    "post_command": STR,
    "enabled": BOOL,
    "max_age": U64_,
    "inhibit_sleep": BOOL,
    "one_file_system": BOOL,
    "nice": Kind("i", _int_range(19)),
    "ionice": Kind("s", _choice("", "idle", "best-effort")),
    "blackout": Kind("as", _blackout),
}
# UpdateProfile may also change the repository and the sources.
PROFILE_UPDATE_OPTIONS: Mapping[str, Kind] = {
    **PROFILE_OPTIONS,
    "repository": STR,
    "sources": ABS_PATHS,
}
SCHEDULE_OPTIONS: Mapping[str, Kind] = {
    "timezone": STR,
    "catch_up": BOOL,
    "catch_up_window": U64_,
    "randomized_delay": U64_,
    "skip_on_battery": BOOL,
    "skip_on_metered": BOOL,
    "enabled": BOOL,
    "retries": Kind("u", _int_range(MAX_RETRIES)),
    "retry_delay": U64_,
    "min_interval": U64_,
}
DELETE_OPTIONS: Mapping[str, Kind] = {"force": BOOL}
MOUNT_OPTIONS: Mapping[str, Kind] = {}
CONTENTS_OPTIONS: Mapping[str, Kind] = {
    "recursive": BOOL,
    "pattern": STR,
    "offset": U32_,
    "limit": U32_,
}
DIFF_OPTIONS: Mapping[str, Kind] = {"path": STR, "offset": U32_, "limit": U32_}
ARCHIVE_FILTER: Mapping[str, Kind] = {"profile": STR, "checkpoints": BOOL, "limit": U32_}
SCHEDULE_UPDATE_OPTIONS: Mapping[str, Kind] = {**SCHEDULE_OPTIONS, "spec": STR, "action": STR}
START_OPTIONS: Mapping[str, Kind] = {
    "archive": STR,
    "destination": ABS_PATH,
    "paths": STR_LIST,
    "repository_only": BOOL,
    "archives_only": BOOL,
    "max_duration": U64_,
    "verify_data": BOOL,
}
LIST_FILTER: Mapping[str, Kind] = {
    "profile": STR_OR_LIST,
    "repository": STR_OR_LIST,
    "type": STR_OR_LIST,
    "status": STR_OR_LIST,
    "since": U64_,
    "until": U64_,
    "limit": U32_,
    "offset": U32_,
}


def check_options(
    where: str, table: Mapping[str, Kind], options: Mapping[str, Variant]
) -> dict[str, Any]:
    """Validate an `a{sv}` given as {key: (signature, value)}; returns {key: value}."""
    out: dict[str, Any] = {}
    for key, (sig, value) in options.items():
        kind = table.get(key)
        if kind is None:
            allowed = ", ".join(sorted(table))
            raise InvalidArgument(f"unknown {where} option {key!r}; allowed: {allowed}")
        out[key] = kind.check(key, sig, value)
    return out


def check_blackout(windows: object) -> list[str]:
    """SetBlackout's windows: each 'SPEC DURATION', as the profile option."""
    return _blackout("windows", "as", windows)


def check_job_type(value: object) -> JobType:
    try:
        return JobType(str(value))
    except ValueError:
        raise InvalidArgument(
            f"unknown job type {str(value)[:40]!r}; one of {', '.join(t.value for t in JobType)}"
        ) from None


def check_statuses(values: list[str]) -> list[str]:
    known = {s.value for s in JobStatus}
    for v in values:
        if v not in known:
            raise InvalidArgument(f"unknown status {v[:40]!r}; one of {', '.join(sorted(known))}")
    return values


def check_types(values: list[str]) -> list[str]:
    for v in values:
        check_job_type(v)
    return values


def check_schedule_action(value: object) -> str:
    if value not in SCHEDULE_ACTIONS:
        raise InvalidArgument(
            f"unknown schedule action {str(value)[:40]!r}; one of {', '.join(SCHEDULE_ACTIONS)}"
        )
    return str(value)


def check_id(what: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value > U64:
        raise InvalidArgument(f"{what} must be between 1 and {U64}")
    return value


# The latest instant borgd computes with (datetime's range ends in year 9999).
MAX_TIME_US = 253_370_764_800_000_000  # 9999-01-01T00:00:00Z


def check_time(what: str, value: object, *, clamp: bool = False) -> int:
    """A D-Bus timestamp (µs since the epoch): in range, or clamped for range queries."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{what} must be a timestamp in microseconds")
    if value > MAX_TIME_US:
        if clamp:
            return MAX_TIME_US
        raise InvalidArgument(f"{what} is after the year 9999")
    return value
