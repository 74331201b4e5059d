"""Parse borg's ``--log-json`` stderr line by line, and the ``--json`` stdout of ``create``.

Every stderr line becomes exactly one event; nothing here raises on bad input.
Lines that are not JSON, or JSON of a type this module does not know, are kept
as `PlainLine` so the job log loses nothing (argparse errors, tracebacks,
``Remote: `` text from an old server, a passphrase prompt...).

Two real-world wrinkles are handled:

* a passphrase prompt is written without a newline, so the next JSON object is
  glued to it on one line (``Enter passphrase for key /r: {"type": ...}``);
* a remote borg's lines may arrive as ``Remote: {...}``.

In both cases the JSON part still parses; `parse_line_parts` also returns the
text before it.

Speed matters: ``compact`` and ``check`` print one progress line per segment,
unthrottled.  The hot path is one ``startswith``, the C JSON scanner and one
dataclass construction (see ``bench/bench_parser.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "ArchiveProgress",
    "ArchiveResult",
    "Event",
    "FileStatus",
    "LogMessage",
    "PlainLine",
    "ProgressMessage",
    "ProgressPercent",
    "Question",
    "parse_create_stdout",
    "parse_line",
    "parse_line_parts",
]


@dataclass(frozen=True)
class ArchiveProgress:
    """``archive_progress`` (create).  The final one (finished=True) carries no figures: 0."""

    original_size: int
    compressed_size: int
    deduplicated_size: int
    nfiles: int
    path: str
    time: float
    finished: bool


@dataclass(frozen=True)
class ProgressPercent:
    """``progress_percent``: prune, compact, check (per segment), extract (bytes)."""

    current: int
    total: int
    info: tuple[str, ...]
    message: str
    msgid: str
    operation: int
    finished: bool


@dataclass(frozen=True)
class ProgressMessage:
    """``progress_message``: a phase without a measurable amount (cache transactions...)."""

    message: str
    msgid: str
    operation: int
    finished: bool


@dataclass(frozen=True)
class LogMessage:
    """``log_message``; `msgid` is "" when borg gave none (errors and warnings have one)."""

    levelname: str
    name: str
    message: str
    msgid: str
    time: float


@dataclass(frozen=True)
class FileStatus:
    """``file_status`` (create --list): status letter and path."""

    status: str
    path: str


@dataclass(frozen=True)
class Question:
    """``question_*``: borg asked (or answered from the environment) a yes/no question."""

    type: str
    message: str
    msgid: str


@dataclass(frozen=True)
class PlainLine:
    """Anything else, kept verbatim (minus the line end)."""

    text: str


Event: TypeAlias = (
    ArchiveProgress
    | ProgressPercent
    | ProgressMessage
    | LogMessage
    | FileStatus
    | Question
    | PlainLine
)

# The C scanner of the stdlib decoder: no whitespace regex, no wrapper calls.
# It clears its memo after every call, so sharing it is safe.
# (scan_once is set in JSONDecoder.__init__ and missing from the type stubs.)
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_JSONError = (ValueError, StopIteration, RecursionError)


# --- tolerant field readers (borg's own lines never need the slow branches) ---


def _int(v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, bool) or v is None:
        return int(bool(v))
    if isinstance(v, int | float):
        return int(v)
    raise TypeError("not a number")


def _float(v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if v is None:
        return 0.0
    raise TypeError("not a number")


def _str(v: Any) -> str:
    if type(v) is str:
        return v
    return "" if v is None else str(v)


def _info(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if type(v) is list:
        return tuple(x if type(x) is str else str(x) for x in v)
    return (str(v),)


# --- one builder per JSON "type" ---


# These two run once per progress line: the type checks are inlined, and the
# frozen instance gets its __dict__ in one step instead of one
# object.__setattr__ per field in the generated __init__ (half the cost of a line).
# tests/unit/test_borg_output.py checks they equal normally built instances.
_new = object.__new__
_setattr = object.__setattr__


def _archive_progress(d: dict[str, Any]) -> Event:
    g = d.get
    osize = g("original_size", 0)
    csize = g("compressed_size", 0)
    dsize = g("deduplicated_size", 0)
    nfiles = g("nfiles", 0)
    path = g("path", "")
    t = g("time", 0.0)
    if type(osize) is not int:
        osize = _int(osize)
    if type(csize) is not int:
        csize = _int(csize)
    if type(dsize) is not int:
        dsize = _int(dsize)
    if type(nfiles) is not int:
        nfiles = _int(nfiles)
    if type(path) is not str:
        path = _str(path)
    if type(t) is not float:
        t = _float(t)
    ev = _new(ArchiveProgress)
    _setattr(
        ev,
        "__dict__",
        {
            "original_size": osize,
            "compressed_size": csize,
            "deduplicated_size": dsize,
            "nfiles": nfiles,
            "path": path,
            "time": t,
            "finished": g("finished") is True,
        },
    )
    return ev


def _progress_percent(d: dict[str, Any]) -> Event:
    g = d.get
    current = g("current", 0)
    total = g("total", 0)
    info = g("info")
    message = g("message", "")
    msgid = g("msgid", "")
    operation = g("operation", 0)
    if type(current) is not int:
        current = _int(current)
    if type(total) is not int:
        total = _int(total)
    info = () if info is None else _info(info)
    if type(message) is not str:
        message = _str(message)
    if type(msgid) is not str:
        msgid = _str(msgid)
    if type(operation) is not int:
        operation = _int(operation)
    return ProgressPercent(current, total, info, message, msgid, operation, g("finished") is True)


def _progress_message(d: dict[str, Any]) -> Event:
    g = d.get
    return ProgressMessage(
        _str(g("message")), _str(g("msgid")), _int(g("operation", 0)), g("finished") is True
    )


def _log_message(d: dict[str, Any]) -> Event:
    g = d.get
    return LogMessage(
        _str(g("levelname")),
        _str(g("name")),
        _str(g("message")),
        _str(g("msgid")),
        _float(g("time")),
    )


def _file_status(d: dict[str, Any]) -> Event:
    return FileStatus(_str(d.get("status")), _str(d.get("path")))


def _question(d: dict[str, Any]) -> Event:
    return Question(_str(d["type"]), _str(d.get("message")), _str(d.get("msgid")))


_BUILDERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "archive_progress": _archive_progress,
    "progress_percent": _progress_percent,
    "progress_message": _progress_message,
    "log_message": _log_message,
    "file_status": _file_status,
    "question_prompt": _question,
    "question_prompt_retry": _question,
    "question_invalid_answer": _question,
    "question_accepted_default": _question,
    "question_accepted_true": _question,
    "question_accepted_false": _question,
    "question_env_answer": _question,
}


def _from_json(text: str) -> Event | None:
    """The event for a line that starts with ``{``; None when it is not a known JSON event."""
    try:
        obj, end = _scan(text, 0)
    except _JSONError:
        return None
    if end != len(text) or type(obj) is not dict:
        return None
    kind = obj.get("type")
    build = _BUILDERS.get(kind) if type(kind) is str else None
    if build is None:
        if type(kind) is str and kind.startswith("question_"):
            build = _question
        else:
            return None
    try:
        return build(obj)
    except (TypeError, ValueError, OverflowError):
        return None


def _strip_end(line: str) -> str:
    # Line ends only; keep leading spaces of plain text (tracebacks are indented).
    if line.endswith("\n") or line.endswith("\r"):
        return line.rstrip("\r\n")
    return line


def parse_line_parts(line: str) -> tuple[Event, ...]:
    """Like `parse_line`, but a prompt glued before a JSON object is returned too.

    ``'Enter passphrase for key /r: {"type": "log_message", ...}'`` gives
    ``(PlainLine("Enter passphrase for key /r:"), LogMessage(...))``.
    A ``Remote: `` prefix in front of JSON is dropped (the message inside says
    ``Remote:`` already when it matters).
    """
    text = _strip_end(line)
    if text.startswith("{"):
        ev = _from_json(text)
        return (ev,) if ev is not None else (PlainLine(text),)
    i = text.find('{"')
    if i > 0:
        tail = text[i:].rstrip()
        ev = _from_json(tail)
        if ev is not None:
            head = text[:i].rstrip()
            if head in ("", "Remote:"):
                return (ev,)
            return PlainLine(head), ev
    return (PlainLine(text),)


def parse_line(line: str) -> Event:
    """One stderr line (with or without its line end) → one event.  Never raises.

    When a prompt is glued before a JSON object, the JSON event is returned
    (use `parse_line_parts` to keep the prompt text as well).
    """
    if line.startswith("{"):
        # The hot path, `_from_json` inlined.
        text = line.rstrip("\r\n")
        try:
            obj, end = _scan(text, 0)
            if end == len(text) and type(obj) is dict:
                build = _BUILDERS.get(obj.get("type"))  # type: ignore[arg-type]
                if build is not None:
                    return build(obj)
        except (ValueError, StopIteration, RecursionError, TypeError, OverflowError):
            return PlainLine(text)
        ev = _from_json(text)  # question types borg may add later, or not an event
        return ev if ev is not None else PlainLine(text)
    return parse_line_parts(line)[-1]


# --- create --json (stdout) ---


@dataclass(frozen=True)
class ArchiveResult:
    """borg's final figures for one archive (``create --json`` stdout)."""

    name: str
    original_size: int
    compressed_size: int
    deduplicated_size: int
    nfiles: int
    duration: float  # seconds
    id: str = ""  # borg's archive id (hex)
    start: str = ""  # borg's local, naive ISO time
    end: str = ""
    repository_size: int = 0  # borg's unique_csize after it: the repository's size


def _repository_size(obj: Any) -> int:
    try:
        return _int(obj["cache"]["stats"]["unique_csize"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return 0


def parse_create_stdout(text: str) -> ArchiveResult | None:
    """The ``archive`` part of ``borg create --json`` output; None for empty or invalid text."""
    text = text.strip()
    if not text:
        return None
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text, start)
    except _JSONError:
        return None
    try:
        archive = obj["archive"]
        stats = archive["stats"]
        name = archive["name"]
        if type(name) is not str or not name:
            return None
        return ArchiveResult(
            name=name,
            original_size=_int(stats["original_size"]),
            compressed_size=_int(stats["compressed_size"]),
            deduplicated_size=_int(stats["deduplicated_size"]),
            nfiles=_int(stats["nfiles"]),
            duration=_float(archive.get("duration", 0.0)),
            id=_str(archive.get("id", "")),
            start=_str(archive.get("start", "")),
            end=_str(archive.get("end", "")),
            repository_size=_repository_size(obj),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return None
