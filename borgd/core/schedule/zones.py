"""Time zone lookup for schedule specs.

The only place of the package that looks at the environment: the system's
local zone is read from ``$TZ`` or ``/etc/localtime`` each time it is asked
for (so a changed ``/etc/localtime`` is honoured by the next parse), falling
back to UTC when neither names a usable zone.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo

from borgd.core.schedule.errors import SpecError

__all__ = ["is_utc_zone", "local_zone", "resolve_zone", "zone_from_suffix", "zone_name"]

_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")
_LOCALTIME = "/etc/localtime"


def zone_from_suffix(word: str) -> ZoneInfo | None:
    """``ZoneInfo(word)`` if ``word`` names an IANA zone, else None (never raises)."""
    if not _ZONE_NAME.fullmatch(word):
        return None
    try:
        return ZoneInfo(word)
    except Exception:  # ZoneInfoNotFoundError, ValueError, OSError, IsADirectoryError …
        return None


def local_zone() -> ZoneInfo | timezone:
    """The system's local zone: ``$TZ``, else ``/etc/localtime``, else UTC."""
    env = os.environ.get("TZ")
    if env:
        zone = zone_from_suffix(env.removeprefix(":"))
        if zone is not None:
            return zone
        if env.removeprefix(":") in ("UTC", "UTC0", "GMT", "GMT0"):
            return UTC
    try:
        target = os.path.realpath(_LOCALTIME)
    except OSError:
        return UTC
    marker = "zoneinfo/"
    idx = target.rfind(marker)
    if idx >= 0:
        zone = zone_from_suffix(target[idx + len(marker) :].removeprefix("posix/"))
        if zone is not None:
            return zone
    try:
        with open(_LOCALTIME, "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return UTC


def resolve_zone(name: str | None) -> ZoneInfo | timezone:
    """A zone by IANA name (``UTC`` gives :data:`datetime.timezone.utc`); None: local zone."""
    if name is None:
        return local_zone()
    if name.upper() == "UTC":
        return UTC
    zone = zone_from_suffix(name)
    if zone is None:
        raise SpecError(f"unknown time zone {name!r}")
    return zone


def zone_name(tz: ZoneInfo | timezone) -> str:
    """A printable name: the IANA key, or ``UTC``."""
    if isinstance(tz, ZoneInfo):
        return str(tz.key)
    return str(tz.tzname(None))


def is_utc_zone(tz: ZoneInfo | timezone) -> bool:
    """True for zones that are UTC all year (no offset, no DST)."""
    for month in (1, 7):
        probe = datetime(2024, month, 1, tzinfo=tz)
        if probe.utcoffset() or probe.dst():
            return False
    return True
