"""borg exit codes → job outcome: one table (modern codes, legacy codes with msgids, signals)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from borgd.core.borg_output import LogMessage, parse_line
from borgd.core.exit_codes import ERRORS, WARNINGS, Outcome, cause_for_msgid, interpret_exit
from borgd.core.jobs import JobStatus, JobType

OK, WARN, FAIL = JobStatus.SUCCEEDED, JobStatus.WARNING, JobStatus.FAILED
B, P, C, K, R, INIT = (
    JobType.BACKUP,
    JobType.PRUNE,
    JobType.COMPACT,
    JobType.CHECK,
    JobType.RESTORE,
    JobType.INIT,
)

# (rc, msgids, last_error, job type, status, words the message must contain)
TABLE: list[tuple[int, tuple[str, ...], str | None, JobType, JobStatus, str]] = [
    # success
    (0, (), None, B, OK, "backup finished"),
    (0, (), None, K, OK, "check finished"),
    (0, ("FileChangedWarning",), None, B, OK, "finished"),
    # legacy warning (borg 1.2, or 1.4 without modern codes)
    (1, (), None, B, WARN, "backup finished with warnings"),
    (1, (), None, K, WARN, "check found problems"),
    (1, ("BackupFileNotFoundError",), "/x: stat: No such file", B, WARN,
     "some source paths do not exist; the archive was still created: /x: stat"),
    (1, ("BackupPermissionError",), None, B, WARN, "could not be read (permission denied)"),
    (1, ("BackupPermissionError",), None, R, WARN, "could not be restored (permission denied)"),
    (1, ("Repository.DoesNotExist", "FileChangedWarning"), None, B, WARN, "changed while"),
    # modern warnings 100–127
    (100, (), None, B, WARN, "some files changed while they were backed up"),
    (101, (), None, B, WARN, "include pattern never matched"),
    (102, (), None, B, WARN, "could not be read"),
    (103, (), None, B, WARN, "changed type"),
    (104, (), None, B, WARN, "(OS error)"),
    (105, (), "/etc/shadow: open: [Errno 13] Permission denied", B, WARN,
     "some files could not be read (permission denied); the archive was still created: "
     "/etc/shadow"),
    (105, (), None, R, WARN, "could not be restored (permission denied)"),
    (106, (), None, B, WARN, "(I/O error)"),
    (107, (), None, B, WARN, "some source paths do not exist; the archive was still created"),
    (108, (), None, R, WARN, "a parent folder is a symlink"),
    (109, (), None, R, WARN, '"../"'),
    (110, (), None, R, WARN, "unsafe hardlink"),
    (111, (), None, B, WARN, "backup finished with warnings (borg warning 111)"),
    (127, (), None, B, WARN, "borg warning 127"),
    # modern errors named in the design / field notes
    (52, ("PassphraseWrong",), None, B, FAIL, "wrong passphrase"),
    (50, (), None, B, FAIL, "no passphrase"),
    (51, (), "Passcommand supplied in BORG_PASSCOMMAND failed", B, FAIL, "passcommand failed"),
    (13, (), "Repository /r does not exist.", B, FAIL,
     "the repository does not exist: Repository /r does not exist."),
    (31, (), None, R, FAIL, "the archive does not exist"),
    (30, (), None, B, FAIL, "an archive with this name already exists"),
    (73, ("LockTimeout",), None, B, FAIL,
     "repository is locked by another process (lock timeout)"),
    (60, (), None, B, FAIL, "unknown unencrypted repository"),
    (62, (), None, B, FAIL, "relocated repository"),
    (80, (), None, B, FAIL, "connection to the repository host was closed"),
    (81, (), "Connection closed by remote host. Is borg working on the server?", B, FAIL,
     "ssh failed"),
    # every other modern error class
    (3, (), None, B, FAIL, "cancelled"),
    (4, (), None, B, FAIL, "rejected the command"),
    (5, (), None, B, FAIL, "placeholder"),
    (6, (), None, B, FAIL, "invalid placeholder"),
    (10, (), None, INIT, FAIL, "a repository already exists"),
    (11, (), None, B, FAIL, "Attic"),
    (12, (), None, B, FAIL, "run a repository check"),
    (14, (), None, B, FAIL, "free space"),
    (15, (), None, B, FAIL, "not a valid borg repository"),
    (16, (), None, B, FAIL, "configuration is invalid"),
    (17, (), None, B, FAIL, "missing in the repository"),
    (18, (), None, INIT, FAIL, "parent folder"),
    (19, (), None, INIT, FAIL, "already exists at the repository path"),
    (20, (), None, B, FAIL, "quota"),
    (21, (), None, B, FAIL, "permission denied on the repository"),
    (25, (), None, B, FAIL, "newer borg"),
    (26, (), None, B, FAIL, "no manifest"),
    (27, (), None, B, FAIL, "newer borg"),
    (32, (), None, B, FAIL, "locale"),
    (40, (), None, B, FAIL, "key file is invalid"),
    (41, (), None, B, FAIL, "another repository"),
    (42, (), None, B, FAIL, "key file for this repository was not found"),
    (43, (), None, B, FAIL, "not a borg key file"),
    (44, (), None, B, FAIL, "no key"),
    (45, (), None, B, FAIL, "another repository"),
    (46, (), None, B, FAIL, "unencrypted"),
    (47, (), None, B, FAIL, "unknown key type"),
    (48, (), None, B, FAIL, "payload"),
    (53, (), None, B, FAIL, "too many passphrase attempts"),
    (61, (), None, B, FAIL, "encryption method changed"),
    (63, (), None, B, FAIL, "same id"),
    (64, (), None, B, FAIL, "replay"),
    (70, (), None, B, FAIL, "lock"),
    (71, (), None, B, FAIL, "lock"),
    (72, (), None, B, FAIL, "could not create the repository lock"),
    (74, (), None, B, FAIL, "lock"),
    (75, (), None, B, FAIL, "another process"),
    (82, (), None, B, FAIL, "rejected a request"),
    (83, (), None, B, FAIL, "not allowed"),
    (84, (), None, B, FAIL, "too old"),
    (85, (), None, B, FAIL, "version mismatch"),
    (86, (), None, B, FAIL, "version mismatch"),
    (87, (), None, B, FAIL, "broke"),
    (90, (), None, K, FAIL, "integrity"),
    (91, (), None, K, FAIL, "integrity"),
    (92, (), None, K, FAIL, "decompression"),
    (95, (), None, B, FAIL, "archive authentication"),
    (96, (), None, B, FAIL, "unauthenticated"),
    (97, (), None, B, FAIL, "manifest authentication"),
    (98, (), None, B, FAIL, "unauthenticated"),
    (99, (), None, B, FAIL, "unsupported suite"),
    (7, (), None, P, FAIL, "prune failed (borg error 7)"),
    (99 + 29, (), None, B, FAIL, "borg error 128"),
    # legacy error 2: the cause comes from the msgids
    (2, ("PassphraseWrong",), None, B, FAIL, "wrong passphrase"),
    (2, ("NoPassphraseFailure",), None, B, FAIL, "no passphrase"),
    (2, ("PasscommandFailure",), None, B, FAIL, "passcommand failed"),
    (2, ("Repository.DoesNotExist",), None, B, FAIL, "the repository does not exist"),
    (2, ("Archive.DoesNotExist",), None, R, FAIL, "the archive does not exist"),
    (2, ("Archive.AlreadyExists",), None, B, FAIL, "archive with this name already exists"),
    (2, ("LockTimeout",), None, B, FAIL, "locked by another process (lock timeout)"),
    (2, ("ConnectionClosed",), None, B, FAIL, "connection to the repository host was closed"),
    (2, ("ConnectionClosedWithHint",), None, B, FAIL, "ssh failed"),
    (2, ("Cache.CacheInitAbortedError",), None, B, FAIL, "unknown unencrypted"),
    (2, ("Cache.RepositoryAccessAborted",), None, B, FAIL, "relocated"),
    (2, ("Repository.CheckNeeded",), None, B, FAIL, "run a repository check"),
    (2, ("Repository.InsufficientFreeSpaceError",), None, B, FAIL, "free space"),
    (2, ("RemoteRepository.RPCServerOutdated",), None, B, FAIL, "too old"),
    (2, ("IntegrityError",), None, K, FAIL, "integrity"),
    # a remote server's errors arrive with rc 2 and the bare class name
    (2, ("DoesNotExist",), None, B, FAIL, "the repository does not exist"),
    (2, ("AlreadyExists",), None, INIT, FAIL, "a repository already exists"),
    (2, ("PathNotAllowed",), None, B, FAIL, "not allowed"),
    (2, ("InsufficientFreeSpaceError",), None, B, FAIL, "free space"),
    # the last error msgid wins; warnings and unknown msgids are skipped
    (2, ("BackupFileNotFoundError", "LockTimeout", "Whatever"), None, B, FAIL, "lock timeout"),
    (2, ("Exception",), "Local Exception", B, FAIL, "internal error"),
    (2, ("Error",), "Error: Got Ctrl-C / SIGINT.", B, FAIL,
     "interrupted by SIGINT; borg saved a checkpoint archive"),
    (2, ("Error",), "Error: Got Ctrl-C / SIGINT.", R, FAIL, "interrupted by SIGINT"),
    (2, (), "borg: error: unrecognized arguments: --bogus", B, FAIL,
     "borg rejected the command line: borg: error"),
    (2, (), None, B, FAIL, "backup failed (borg error 2)"),
    (2, ("Error",), "Error: something", C, FAIL,
     "compact failed (borg error 2): Error: something"),
    # signals: 128+N and Python's -N
    (143, ("Signal.SIGTERM",), None, B, FAIL, "killed by signal 15 (SIGTERM)"),
    (130, (), None, B, FAIL, "killed by signal 2 (SIGINT)"),
    (137, (), None, C, FAIL, "killed by signal 9 (SIGKILL)"),
    (129, ("Signal.SIGHUP",), "Received SIGHUP.", B, FAIL,
     "killed by signal 1 (SIGHUP): Received SIGHUP."),
    (-9, (), None, B, FAIL, "killed by signal 9 (SIGKILL)"),
    (-15, (), None, K, FAIL, "killed by signal 15 (SIGTERM)"),
    (128 + 64, (), None, B, FAIL, "killed by signal 64"),
    (255, (), None, B, FAIL, "killed by signal 127"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rc", "msgids", "last_error", "job_type", "status", "words"),
    TABLE,
    ids=[f"{rc}-{jt}-{','.join(m)}" for rc, m, _, jt, _, _ in TABLE],
)
def test_interpret_exit(
    rc: int,
    msgids: tuple[str, ...],
    last_error: str | None,
    job_type: JobType,
    status: JobStatus,
    words: str,
) -> None:
    outcome = interpret_exit(rc, msgids=msgids, last_error=last_error, job_type=job_type)
    assert outcome.status is status
    assert words in outcome.message, outcome.message


def test_status_rule_for_every_code() -> None:
    """borgd(8), exit codes: 0 → succeeded; 1 and 100–127 → warning; everything else → failed."""
    for rc in range(-64, 256):
        status = interpret_exit(rc).status
        if rc == 0:
            assert status is OK
        elif rc == 1 or 100 <= rc <= 127:
            assert status is WARN
        else:
            assert status is FAIL, rc


def test_every_borg_class_is_covered_by_code_and_msgid() -> None:
    codes = [code for code, _, _ in ERRORS + WARNINGS]
    assert len(codes) == len(set(codes))
    assert set(codes) >= {3, 4, 5, 6, *range(10, 22), 25, 26, 27, 30, 31, 32}
    assert set(codes) >= {*range(40, 49), 50, 51, 52, 53, *range(60, 65), *range(70, 76)}
    assert set(codes) >= {*range(80, 88), 90, 91, 92, *range(95, 100), *range(100, 111)}
    for code, msgid, _ in ERRORS:
        by_code = interpret_exit(code).message
        by_msgid = interpret_exit(2, msgids=(msgid,)).message
        assert by_code == by_msgid, msgid
        assert cause_for_msgid(msgid) == by_code
    for code, msgid, _ in WARNINGS:
        assert interpret_exit(code, job_type=R) == interpret_exit(1, msgids=(msgid,), job_type=R)


def test_the_installed_borg_agrees_with_the_table() -> None:
    """Every borg error/warning class in the venv's borg has our code under its msgid."""
    import borg.archive
    import borg.cache
    import borg.crypto.file_integrity
    import borg.crypto.key
    import borg.crypto.keymanager
    import borg.helpers.errors
    import borg.helpers.manifest
    import borg.helpers.parseformat
    import borg.locking
    import borg.remote
    import borg.repository

    base_error = borg.helpers.errors.ErrorBase
    base_warning = borg.helpers.errors.BorgWarning
    seen: dict[str, int] = {}
    stack = [base_error, base_warning]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        code = cls.__dict__.get("exit_mcode")
        if code is not None and code not in (1, 2):
            seen[cls.__qualname__] = code
    assert seen, "no borg classes found"
    table = {msgid: code for code, msgid, _ in ERRORS + WARNINGS}
    assert seen == {k: v for k, v in table.items() if k in seen}
    assert set(seen) == set(table), set(seen) ^ set(table)


def test_real_error_lines_end_to_end() -> None:
    """msgids taken from real borg 1.4 output map to the right cause under legacy rc 2."""
    data = Path(__file__).parent.parent / "data" / "borg-1.4" / "errors.jsonl"
    expected = [
        "wrong passphrase",
        "the passcommand failed",
        "the repository does not exist",
        "an archive with this name already exists",
        "the archive does not exist",
        "repository is locked by another process (lock timeout)",
        None,  # the missing source path is a warning
        "interrupted by SIGINT",
    ]
    for line, words in zip(data.read_text().splitlines(), expected, strict=True):
        event = parse_line(line)
        assert isinstance(event, LogMessage)
        if words is None:
            outcome = interpret_exit(1, msgids=(event.msgid,), last_error=event.message)
            assert outcome.status is WARN
            assert "some source paths do not exist" in outcome.message
            continue
        outcome = interpret_exit(2, msgids=(event.msgid,), last_error=event.message)
        assert outcome == Outcome(FAIL, outcome.message)
        assert re.match(re.escape(words), outcome.message), outcome.message
        assert outcome.message.endswith(event.message)
