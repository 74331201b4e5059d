"""Archives as borg reports them, turned into borgd's rows (no I/O).

borg speaks three shapes here: ``borg info --json`` (every archive with its
figures), ``borg list --json-lines ARCHIVE`` (one entry per line) and ``borg
diff --json-lines`` (one changed path per line, spelt differently by 1.2 and
1.4).  These functions read them into records with the D-Bus contract's
units: times are microseconds since the epoch, sizes bytes, a mode the
``st_mode`` number.  borg prints times as local, naive ISO text, so the zone
is a parameter.

An archive belongs to the profile whose template it matches: the profile's
prune glob (`borg_argv.archive_glob`) with this host's values filled in,
which by construction matches no other profile's names.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from fnmatch import fnmatchcase
from typing import Any

from borgd.core.borg_argv import archive_glob, is_checkpoint
from borgd.core.borg_output import ArchiveResult

__all__ = [
    "ArchiveEntry",
    "ArchiveInfo",
    "DiffEntry",
    "HostValues",
    "is_checkpoint",
    "made_archive",
    "mode_from_text",
    "parse_archive_info",
    "parse_contents_line",
    "parse_diff_line",
    "profile_globs",
    "profile_of",
]


class BadOutput(ValueError):
    """borg printed something that is not the JSON this module reads."""


def _micros(text: Any, zone: tzinfo) -> int:
    if not isinstance(text, str) or not text:
        return 0
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return round(moment.timestamp() * 1_000_000)


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --- the archive set -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """One archive of a repository, as the cache keeps it."""

    name: str
    id: str
    start: int
    end: int
    nfiles: int
    original_size: int
    compressed_size: int
    deduplicated_size: int
    comment: str
    checkpoint: bool


def parse_archive_info(text: str, zone: tzinfo) -> list[ArchiveInfo]:
    """Every archive in ``borg info --json`` output (1.2 and 1.4), oldest first.

    ``borg list --json --format '{comment}{end}'`` has the same shape without
    the figures (they read 0): it is the fast way to learn the archive set,
    ``info`` reads every archive's metadata.
    """
    try:
        document = json.loads(text)
        archives = document["archives"]
    except (ValueError, KeyError, TypeError) as e:
        raise BadOutput(f"borg printed no archive list as JSON ({e})") from None
    if not isinstance(archives, list):
        raise BadOutput("borg's archive list: 'archives' is not a list")
    rows = []
    for item in archives:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadOutput(f"borg's archive list: an archive without a name: {item!r:.200}")
        found = item.get("stats")
        stats: dict[str, Any] = found if isinstance(found, dict) else {}
        rows.append(
            ArchiveInfo(
                name=item["name"],
                id=_text(item.get("id")),
                start=_micros(item.get("start"), zone),
                end=_micros(item.get("end"), zone),
                nfiles=_size(stats.get("nfiles")),
                original_size=_size(stats.get("original_size")),
                compressed_size=_size(stats.get("compressed_size")),
                deduplicated_size=_size(stats.get("deduplicated_size")),
                comment=_text(item.get("comment")),
                checkpoint=is_checkpoint(item["name"]),
            )
        )
    rows.sort(key=lambda a: a.start)  # stable: borg's own order where starts tie
    return rows


def made_archive(result: ArchiveResult, zone: tzinfo) -> ArchiveInfo:
    """The archive a `create` reported on stdout, as the cache keeps it."""
    return ArchiveInfo(
        name=result.name,
        id=result.id,
        start=_micros(result.start, zone),
        end=_micros(result.end, zone),
        nfiles=result.nfiles,
        original_size=result.original_size,
        compressed_size=result.compressed_size,
        deduplicated_size=result.deduplicated_size,
        comment="",
        checkpoint=False,
    )


@dataclass(frozen=True, slots=True)
class HostValues:
    """What borg fills in for the per-host placeholders on this machine."""

    hostname: str
    fqdn: str
    user: str


def profile_globs(templates: Mapping[str, str], host: HostValues) -> dict[str, str]:
    """Each profile's archive pattern with this host's values in (profile → glob).

    A profile whose template cannot be turned into a glob (older, unscoped
    templates) is left out: its archives are shown without a profile rather
    than guessed.
    """
    values = {
        "hostname": host.hostname,
        "fqdn": host.fqdn,
        "reverse-fqdn": ".".join(reversed(host.fqdn.split("."))),
        "user": host.user,
    }
    globs = {}
    for profile, template in templates.items():
        try:
            globs[profile] = archive_glob(template, profile).format_map(values)
        except (ValueError, KeyError, IndexError):
            continue
    return globs


def profile_of(name: str, globs: Mapping[str, str]) -> str:
    """The profile an archive name belongs to, '' when none (or, by a fault of the
    templates, more than one with equally specific patterns) matches it."""
    matches = sorted(
        ((len(glob), profile) for profile, glob in globs.items() if fnmatchcase(name, glob)),
        reverse=True,
    )
    if not matches or (len(matches) > 1 and matches[0][0] == matches[1][0]):
        return ""
    return matches[0][1]


# --- contents ---------------------------------------------------------------

_TYPE_BITS = {
    "-": stat.S_IFREG,
    "d": stat.S_IFDIR,
    "l": stat.S_IFLNK,
    "c": stat.S_IFCHR,
    "b": stat.S_IFBLK,
    "p": stat.S_IFIFO,
    "s": stat.S_IFSOCK,
}
_PERMISSION_BITS = (
    (stat.S_IRUSR, stat.S_IWUSR, stat.S_IXUSR, stat.S_ISUID),
    (stat.S_IRGRP, stat.S_IWGRP, stat.S_IXGRP, stat.S_ISGID),
    (stat.S_IROTH, stat.S_IWOTH, stat.S_IXOTH, stat.S_ISVTX),
)


def mode_from_text(text: str) -> int:
    """``st_mode`` from the ``drwxr-xr-x`` form (`stat.filemode`'s inverse); 0 if malformed."""
    if len(text) != 10 or text[0] not in _TYPE_BITS:
        return 0
    mode = _TYPE_BITS[text[0]]
    for i, (read, write, execute, special) in enumerate(_PERMISSION_BITS):
        triad = text[1 + 3 * i : 4 + 3 * i]
        r, w, x = triad[0], triad[1], triad[2]
        if r == "r":
            mode |= read
        if w == "w":
            mode |= write
        if x in "xst":
            mode |= execute
        if x in "sStT":
            mode |= special
    return mode


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One item of an archive, keyed as ListArchiveContents answers."""

    path: str
    type: str
    size: int
    mtime: int
    mode: int
    user: str
    group: str
    target: str


def _item(line: str) -> dict[str, Any] | None:
    """A JSON line that names a path, as borg's `--json-lines` commands print them."""
    try:
        item = json.loads(line)
    except ValueError:
        return None
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        return None
    return item


def parse_contents_line(line: str, zone: tzinfo) -> ArchiveEntry | None:
    """One line of ``borg list --json-lines ARCHIVE``; None for a line that is not an item."""
    item = _item(line)
    if item is None:
        return None
    mode_text = _text(item.get("mode"))
    return ArchiveEntry(
        path=item["path"],
        type=_text(item.get("type")) or (mode_text[:1] if mode_text else "?"),
        size=_size(item.get("size")),
        mtime=_micros(item.get("mtime"), zone),
        mode=mode_from_text(mode_text),
        user=_text(item.get("user")),
        group=_text(item.get("group")),
        target=_text(item.get("linktarget")) or _text(item.get("source")),
    )


# --- differences -----------------------------------------------------------

# borg's change types, named as DiffArchives names them.
_CHANGE_NAMES = {
    "added": "added",
    "removed": "removed",
    "added directory": "added",
    "removed directory": "removed",
    "added link": "added",
    "removed link": "removed",
    "changed link": "link",
    "modified": "modified",
    "mode": "mode",
    "owner": "owner",
    "ctime": "ctime",
    "mtime": "mtime",
}


@dataclass(frozen=True, slots=True)
class DiffEntry:
    path: str
    changes: tuple[str, ...]
    size_delta: int


def _size_delta(change: Mapping[str, Any]) -> int:
    kind = change.get("type")
    if kind == "added":
        return _size(change.get("size"))
    if kind == "removed":
        return -_size(change.get("size"))
    if kind == "modified":
        return _size(change.get("added")) - _size(change.get("removed"))
    return 0


def parse_diff_line(line: str) -> DiffEntry | None:
    """One line of ``borg diff --json-lines`` (1.2 and 1.4); None for any other line."""
    item = _item(line)
    if item is None:
        return None
    raw = item.get("changes")
    changes: Iterable[Any] = raw if isinstance(raw, list) else ()
    names: list[str] = []
    delta = 0
    for change in changes:
        if not isinstance(change, dict):
            continue
        kind = _text(change.get("type"))
        name = _CHANGE_NAMES.get(kind, kind)
        if name and name not in names:
            names.append(name)
        delta += _size_delta(change)
    return DiffEntry(path=item["path"], changes=tuple(names), size_delta=delta)
