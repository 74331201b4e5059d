"""Parsing borg's stderr: real borg 1.4 lines (tests/data/borg-1.4) and hostile ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from borgd.core.borg_output import (
    ArchiveProgress,
    ArchiveResult,
    Event,
    FileStatus,
    LogMessage,
    PlainLine,
    ProgressMessage,
    ProgressPercent,
    Question,
    parse_create_stdout,
    parse_line,
    parse_line_parts,
)

DATA = Path(__file__).parent.parent / "data" / "borg-1.4"
JSONL = sorted(DATA.glob("*.jsonl"))


def lines(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines(keepends=True)


def events(name: str) -> list[Event]:
    return [parse_line(line) for line in lines(name)]


@pytest.mark.parametrize("path", JSONL, ids=[p.name for p in JSONL])
def test_every_real_json_line_is_a_known_event(path: Path) -> None:
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        event = parse_line(line)
        assert not isinstance(event, PlainLine), line
        # with or without the line end, and with \r\n
        assert parse_line(line.rstrip("\n")) == event
        assert parse_line(line.rstrip("\n") + "\r\n") == event


def test_create() -> None:
    evs = events("create.jsonl")
    assert evs[0] == ProgressMessage(
        message="Initializing cache transaction: Reading config",
        msgid="cache.begin_transaction",
        operation=1,
        finished=False,
    )
    assert evs[2] == FileStatus(status="A", path="src/sub/f1")
    progress = [e for e in evs if isinstance(e, ArchiveProgress)]
    assert progress[1] == ArchiveProgress(
        original_size=69000000,
        compressed_size=69000129,
        deduplicated_size=69000129,
        nfiles=22,
        path="src/big/b23",
        time=1795346353.1784153,
        finished=False,
    )
    # the last one has no figures
    assert progress[-1] == ArchiveProgress(0, 0, 0, 0, "", 1795346353.3212204, True)
    assert evs[-1] == ProgressMessage("", "cache.commit", 2, True)


def test_percent_lines_of_compact_check_extract_prune() -> None:
    compact = events("compact.jsonl")
    assert compact[0] == ProgressPercent(
        current=1,
        total=18,
        info=(),
        message="Compacting segments   0%",
        msgid="repository.compact_segments",
        operation=1,
        finished=False,
    )
    assert compact[-1] == ProgressPercent(0, 0, (), "", "repository.compact_segments", 1, True)
    msgids = {e.msgid for e in events("check.jsonl") if isinstance(e, ProgressPercent)}
    assert msgids == {"repository.check", "check.rebuild_refcounts", "check.verify_data"}
    extract = events("extract.jsonl")
    assert extract[1] == ProgressPercent(
        796201, 133734816, ("src/big/b1",), "  0.0% Extracting: src/big/b1", "extract", 1, False
    )
    prune = events("prune.jsonl")
    listed = [e for e in prune if isinstance(e, LogMessage) and e.name == "borg.output.list"]
    assert [e.message.split(":")[0] for e in listed] == [
        "Keeping archive (rule",
        "Pruning archive (1/1)",
    ]
    assert isinstance(prune[1], ProgressPercent) and prune[1].msgid == "prune"


def test_errors_carry_msgids() -> None:
    evs = events("errors.jsonl")
    assert all(isinstance(e, LogMessage) for e in evs)
    assert [e.msgid for e in evs if isinstance(e, LogMessage)] == [
        "PassphraseWrong",
        "PasscommandFailure",
        "Repository.DoesNotExist",
        "Archive.AlreadyExists",
        "Archive.DoesNotExist",
        "LockTimeout",
        "BackupFileNotFoundError",
        "Error",
    ]
    assert evs[5] == LogMessage(
        levelname="ERROR",
        name="borg.archiver",
        message="Failed to create/acquire the lock /tmp/bx/repo/lock.exclusive (timeout).",
        msgid="LockTimeout",
        time=1795346396.4924257,
    )


def test_questions() -> None:
    evs = events("questions.jsonl")
    assert evs[0] == Question(
        type="question_prompt",
        message="Warning: Attempting to access a previously unknown unencrypted repository!\n"
        "Do you want to continue? [yN] ",
        msgid="BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK",
    )
    assert evs[1] == Question(
        "question_accepted_false", "Aborting.", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"
    )
    types = [e.type for e in evs if isinstance(e, Question)]
    assert "question_env_answer" in types
    # a question type borg may add later is still a question
    assert parse_line('{"type": "question_new_kind", "msgid": "X", "message": "m"}') == Question(
        "question_new_kind", "m", "X"
    )


def test_remote_lines() -> None:
    evs = events("remote.jsonl")
    assert isinstance(evs[0], ProgressPercent)
    assert evs[0].message == "Remote: Compacting segments   0%"
    assert evs[-2] == LogMessage(
        "WARNING",
        "root",
        "Remote: ssh: connect to host fake port 22: Connection refused",
        "",
        1795346817.370142,
    )
    assert isinstance(evs[-1], LogMessage) and evs[-1].msgid == "ConnectionClosedWithHint"


def test_prompt_glued_to_json() -> None:
    raw = lines("prompt-glued.txt")
    assert isinstance(parse_line(raw[0]), LogMessage)
    assert parse_line(raw[1]) == PlainLine("Warning: Password input may be echoed.")
    glued = raw[2]
    assert glued.startswith("Enter passphrase for key /tmp/bx/erepo: {")
    event = parse_line(glued)
    assert isinstance(event, LogMessage)
    assert event.msgid == "NoPassphraseFailure"
    assert parse_line_parts(glued) == (PlainLine("Enter passphrase for key /tmp/bx/erepo:"), event)


def test_argparse_error_is_plain_text() -> None:
    evs = events("argparse-error.txt")
    assert all(isinstance(e, PlainLine) for e in evs)
    assert evs[-1] == PlainLine("borg: error: unrecognized arguments: --bogus")


GOOD = '{"type": "log_message", "time": 1.5, "message": "m", "levelname": "INFO", "name": "n"}'
HOSTILE: list[tuple[str, Event | type]] = [
    ("", PlainLine("")),
    ("\n", PlainLine("")),
    ("plain text\n", PlainLine("plain text")),
    ("  File \"x.py\", line 3, in f\n", PlainLine('  File "x.py", line 3, in f')),
    ("Traceback (most recent call last):", PlainLine("Traceback (most recent call last):")),
    ("{", PlainLine("{")),
    ('{"type": "progress_percent", "current": 1, "tot', PlainLine(
        '{"type": "progress_percent", "current": 1, "tot')),
    ("{not json}", PlainLine("{not json}")),
    ("[1, 2]", PlainLine("[1, 2]")),
    ('{"no": "type"}', PlainLine('{"no": "type"}')),
    ('{"type": "mystery", "x": 1}', PlainLine('{"type": "mystery", "x": 1}')),
    ('{"type": 5}', PlainLine('{"type": 5}')),
    ('{"type": ["log_message"]}', PlainLine('{"type": ["log_message"]}')),
    (GOOD + " trailing", PlainLine(GOOD + " trailing")),
    (GOOD + GOOD, PlainLine(GOOD + GOOD)),
    ('{"type": "progress_percent", "current": "x"}', PlainLine(
        '{"type": "progress_percent", "current": "x"}')),
    ('{"type": "progress_percent", "current": NaN}', PlainLine(
        '{"type": "progress_percent", "current": NaN}')),
    ("[" * 100_000, PlainLine("[" * 100_000)),
    ("{" * 100_000, PlainLine("{" * 100_000)),
    ("\x00\x01\ufffd\ufffd{\ufffd", PlainLine("\x00\x01\ufffd\ufffd{\ufffd")),
    ("Remote: some old server text\n", PlainLine("Remote: some old server text")),
    ("Remote: " + GOOD, LogMessage("INFO", "n", "m", "", 1.5)),
    ("Enter passphrase for key /r: " + GOOD + "\n", LogMessage("INFO", "n", "m", "", 1.5)),
    ("Enter passphrase: " + '{"oops"', PlainLine('Enter passphrase: {"oops"')),
    ("  " + GOOD, LogMessage("INFO", "n", "m", "", 1.5)),
    # tolerated oddities: floats for ints, null info, missing fields
    ('{"type": "progress_percent", "current": 2.0, "total": 4, "info": null}',
     ProgressPercent(2, 4, (), "", "", 0, False)),
    ('{"type": "progress_percent", "info": ["a", 3]}',
     ProgressPercent(0, 0, ("a", "3"), "", "", 0, False)),
    ('{"type": "archive_progress", "original_size": null, "time": 3}',
     ArchiveProgress(0, 0, 0, 0, "", 3.0, False)),
    ('{"type": "log_message", "message": null, "msgid": 7}',
     LogMessage("", "", "", "7", 0.0)),
    ('{"type": "file_status"}', FileStatus("", "")),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), HOSTILE)
def test_hostile_lines(line: str, expected: Event) -> None:
    assert parse_line(line) == expected


def test_binary_garbage_never_raises() -> None:
    garbage = bytes(range(256)) * 8 + b'{"type": "log_message"' + bytes(range(255, -1, -1))
    text = garbage.decode("utf-8", errors="replace")
    for chunk in text.split("\n"):
        assert isinstance(parse_line(chunk), PlainLine)
        assert all(isinstance(e, PlainLine) for e in parse_line_parts(chunk))


def test_fast_built_events_behave_like_dataclasses() -> None:
    """ArchiveProgress/ProgressPercent are built without __init__: same value semantics."""
    ev = parse_line(lines("compact.jsonl")[0])
    same = ProgressPercent(
        1, 18, (), "Compacting segments   0%", "repository.compact_segments", 1, False
    )
    assert ev == same and hash(ev) == hash(same) and repr(ev) == repr(same)
    with pytest.raises(AttributeError):
        ev.current = 5  # type: ignore[misc]
    ap = parse_line(lines("create.jsonl")[6])
    assert isinstance(ap, ArchiveProgress)
    assert ap == ArchiveProgress(
        **{f: getattr(ap, f) for f in ArchiveProgress.__dataclass_fields__}
    )


# --- create --json stdout ---


def test_parse_create_stdout_real() -> None:
    text = (DATA / "create-stdout.json").read_text(encoding="utf-8")
    assert parse_create_stdout(text) == ArchiveResult(
        name="web-1",
        original_size=13734816,
        compressed_size=13735716,
        deduplicated_size=13735716,
        nfiles=301,
        duration=0.084903,
        id="d51be34f41806437bca2ef87ffac33166733bd78f451e9fbd9ba437a5fcdefda",
        start="2026-11-22T11:19:10.000000",
        end="2026-11-22T11:19:10.000000",
        repository_size=13756052,
    )


def _stdout(**archive: object) -> str:
    base: dict[str, object] = {
        "name": "a",
        "duration": 1.5,
        "stats": {"original_size": 1, "compressed_size": 2, "deduplicated_size": 3, "nfiles": 4},
    }
    base.update(archive)
    return json.dumps({"archive": base})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("   \n", None),
        ("not json", None),
        ('{"archive": {"name": "x"', None),
        ("[]", None),
        ('{"archive": 3}', None),
        ('{"repository": {}}', None),
        (_stdout(name=""), None),
        (_stdout(name=None), None),
        (_stdout(stats={"nfiles": 1}), None),
        (_stdout(stats={"original_size": "x", "compressed_size": 2, "deduplicated_size": 3,
                        "nfiles": 4}), None),
        (_stdout(), ArchiveResult("a", 1, 2, 3, 4, 1.5)),
        (_stdout(duration=None), ArchiveResult("a", 1, 2, 3, 4, 0.0)),
        ("Warning: stray line\n" + _stdout(), ArchiveResult("a", 1, 2, 3, 4, 1.5)),
    ],
)  # fmt: skip
def test_parse_create_stdout(text: str, expected: ArchiveResult | None) -> None:
    assert parse_create_stdout(text) == expected
