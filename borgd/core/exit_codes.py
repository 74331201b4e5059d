"""borg's exit code (+ the msgids it logged) → job status and a message a person can act on.

Two numbering schemes exist (borg 1.4 ``helpers/errors.py``, ``constants.py``):

* legacy (borg 1.2, and 1.4 by default): 0 ok, 1 warning, 2 error, 128+N signal;
* modern (``BORG_EXIT_CODES=modern``, borg 1.4 only): errors 3–99 and warnings
  100–127, one code per error class.

borgd always asks for modern codes, but borg 1.2 ignores the request, and even
1.4 exits 2 for errors raised on a remote server (they arrive as an RPC error
whose msgid is the bare class name), for internal exceptions and for a
``create`` stopped by SIGINT.  So the msgids of ``log_message`` lines are used
as well: the table below is keyed by both code and msgid.

Status rule (DESIGN "Execution semantics"): 0 → succeeded; 1 and 100–127 →
warning; everything else → failed.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from borgd.core.jobs import JobStatus, JobType

__all__ = ["ERRORS", "WARNINGS", "Outcome", "cause_for_msgid", "interpret_exit", "passing_cause"]


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    message: str


# (modern exit code, msgid = borg's exception class __qualname__, cause)
ERRORS: tuple[tuple[int, str, str], ...] = (
    (3, "CancelledByUser", "cancelled by the user"),
    (4, "CommandError", "borg rejected the command"),
    (5, "PlaceholderError", "a placeholder in an argument could not be formatted"),
    (6, "InvalidPlaceholder", "an argument contains an invalid placeholder"),
    (10, "Repository.AlreadyExists", "a repository already exists at this location"),
    (11, "Repository.AtticRepository", "this is an Attic repository; it must be upgraded"),
    (12, "Repository.CheckNeeded", "the repository is inconsistent; run a repository check"),
    (13, "Repository.DoesNotExist", "the repository does not exist"),
    (14, "Repository.InsufficientFreeSpaceError", "not enough free space for the repository"),
    (15, "Repository.InvalidRepository", "this is not a valid borg repository"),
    (16, "Repository.InvalidRepositoryConfig", "the repository configuration is invalid"),
    (17, "Repository.ObjectNotFound", "an object is missing in the repository; run a check"),
    (18, "Repository.ParentPathDoesNotExist", "the parent folder of the repository is missing"),
    (19, "Repository.PathAlreadyExists", "something already exists at the repository path"),
    (20, "Repository.StorageQuotaExceeded", "the repository storage quota is exceeded"),
    (21, "Repository.PathPermissionDenied", "permission denied on the repository path"),
    (25, "MandatoryFeatureUnsupported", "the repository needs a newer borg version"),
    (26, "NoManifestError", "the repository has no manifest (not initialised, or damaged)"),
    (27, "UnsupportedManifestError", "the repository manifest needs a newer borg version"),
    (30, "Archive.AlreadyExists", "an archive with this name already exists"),
    (31, "Archive.DoesNotExist", "the archive does not exist"),
    (
        32,
        "Archive.IncompatibleFilesystemEncodingError",
        "a file name cannot be encoded in the file system encoding (check the locale)",
    ),
    (40, "KeyfileInvalidError", "the key file is invalid"),
    (41, "KeyfileMismatchError", "the key file belongs to another repository"),
    (42, "KeyfileNotFoundError", "the key file for this repository was not found"),
    (43, "NotABorgKeyFile", "this is not a borg key file"),
    (44, "RepoKeyNotFoundError", "the repository has no key in its config"),
    (45, "RepoIdMismatch", "the key backup belongs to another repository"),
    (46, "UnencryptedRepo", "key management is not available for unencrypted repositories"),
    (47, "UnknownKeyType", "unknown key type"),
    (48, "UnsupportedPayloadError", "unsupported payload type; a newer borg is needed"),
    (50, "NoPassphraseFailure", "no passphrase available for the repository"),
    (51, "PasscommandFailure", "the passcommand failed"),
    (52, "PassphraseWrong", "wrong passphrase"),
    (53, "PasswordRetriesExceeded", "too many passphrase attempts"),
    (
        60,
        "Cache.CacheInitAbortedError",
        "refused to access a previously unknown unencrypted repository",
    ),
    (
        61,
        "Cache.EncryptionMethodMismatch",
        "the repository encryption method changed since the last access; refusing to continue",
    ),
    (
        62,
        "Cache.RepositoryAccessAborted",
        "refused to access a relocated repository (its location changed since the last access)",
    ),
    (
        63,
        "Cache.RepositoryIDNotUnique",
        "the cache is newer than the repository (two repositories with the same id?)",
    ),
    (
        64,
        "Cache.RepositoryReplay",
        "the cache is newer than the repository (replay attack, or two repositories with "
        "the same id)",
    ),
    (70, "LockError", "could not acquire the repository lock"),
    (71, "LockErrorT", "could not acquire the repository lock"),
    (72, "LockFailed", "could not create the repository lock"),
    (73, "LockTimeout", "repository is locked by another process (lock timeout)"),
    (74, "NotLocked", "the repository lock was not held"),
    (75, "NotMyLock", "the repository lock is held by another process"),
    (80, "ConnectionClosed", "the connection to the repository host was closed"),
    (
        81,
        "ConnectionClosedWithHint",
        "the connection to the repository host failed (ssh failed, or borg is missing there)",
    ),
    (82, "InvalidRPCMethod", "the repository server rejected a request"),
    (83, "PathNotAllowed", "the repository path is not allowed by the server"),
    (84, "RemoteRepository.RPCServerOutdated", "borg on the repository host is too old"),
    (
        85,
        "UnexpectedRPCDataFormatFromClient",
        "the server got unexpected data (version mismatch?)",
    ),
    (
        86,
        "UnexpectedRPCDataFormatFromServer",
        "unexpected data from the server (version mismatch?)",
    ),
    (87, "ConnectionBrokenWithHint", "the connection to the repository host broke"),
    (90, "IntegrityError", "data integrity error"),
    (91, "FileIntegrityError", "a file failed its integrity check"),
    (92, "DecompressionError", "decompression error (corrupted data)"),
    (95, "ArchiveTAMInvalid", "archive authentication failed"),
    (96, "ArchiveTAMRequiredError", "the archive is unauthenticated"),
    (97, "TAMInvalid", "manifest authentication failed"),
    (98, "TAMRequiredError", "the manifest is unauthenticated"),
    (
        99,
        "TAMUnsupportedSuiteError",
        "the manifest uses an unsupported suite; a newer borg is needed",
    ),
)

# Warnings: borg reached the end of the operation.  "{did}" is filled per job type.
WARNINGS: tuple[tuple[int, str, str], ...] = (
    (100, "FileChangedWarning", "some files changed while they were backed up"),
    (101, "IncludePatternNeverMatchedWarning", "an include pattern never matched"),
    (102, "BackupError", "some files could not be {did}"),
    (
        103,
        "BackupRaceConditionError",
        "some files changed type while they were {did} and were skipped",
    ),
    (104, "BackupOSError", "some files could not be {did} (OS error)"),
    (105, "BackupPermissionError", "some files could not be {did} (permission denied)"),
    (106, "BackupIOError", "some files could not be {did} (I/O error)"),
    (107, "BackupFileNotFoundError", "some source paths do not exist"),
    (
        108,
        "BackupSymlinkParentError",
        "some files were not extracted: a parent folder is a symlink (corrupted archive?)",
    ),
    (
        109,
        "BackupPathTraversalError",
        'some files were not extracted: their path contains "../" (corrupted archive?)',
    ),
    (
        110,
        "BackupHardlinkSourceError",
        "some files were not extracted: unsafe hardlink source (corrupted archive?)",
    ),
)

_BY_CODE: dict[int, str] = {code: cause for code, _, cause in ERRORS + WARNINGS}
_BY_MSGID: dict[str, tuple[int, str]] = {}
for _code, _msgid, _cause in ERRORS + WARNINGS:
    _BY_MSGID[_msgid] = (_code, _cause)
# A remote server reports the bare class name (``DoesNotExist``, not
# ``Repository.DoesNotExist``).  Repository classes come first in the table, so
# an ambiguous bare name means the repository one, which is what a server raises.
for _code, _msgid, _cause in ERRORS + WARNINGS:
    _BY_MSGID.setdefault(_msgid.rsplit(".", 1)[-1], (_code, _cause))
# Exit-2 situations that have no class of their own.
_SPECIAL_MSGIDS: dict[str, str] = {
    "Exception": "borg crashed with an internal error (see the traceback in the log)",
    "Signal.SIGTERM": "borg was stopped by SIGTERM",
    "Signal.SIGHUP": "borg was stopped by SIGHUP (the terminal went away)",
}
_SIGINT_TEXT = "SIGINT"


def _did(job_type: JobType) -> str:
    return {
        JobType.BACKUP: "read",
        JobType.RESTORE: "restored",
    }.get(job_type, "processed")


def cause_for_msgid(msgid: str, job_type: JobType = JobType.BACKUP) -> str | None:
    """The human cause for one borg msgid, None for an unknown one."""
    found = _BY_MSGID.get(msgid)
    if found is not None:
        return found[1].replace("{did}", _did(job_type))
    return _SPECIAL_MSGIDS.get(msgid)


def _with_detail(cause: str, last_error: str | None) -> str:
    detail = (last_error or "").strip()
    if not detail or detail.lower() == cause.lower():
        return cause
    return f"{cause}: {detail}"


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _signal_outcome(num: int, last_error: str | None) -> Outcome:
    name = _signal_name(num)
    return Outcome(
        JobStatus.FAILED, _with_detail(f"borg was killed by signal {num} ({name})", last_error)
    )


def _first_known(
    msgids: Sequence[str], job_type: JobType, *, warnings: bool
) -> tuple[int, str] | None:
    """The most recent msgid of the wanted kind (warning or error) with a known cause."""
    for msgid in reversed(msgids):
        found = _BY_MSGID.get(msgid)
        if found is None:
            continue
        code, _ = found
        if (code >= 100) == warnings:
            cause = cause_for_msgid(msgid, job_type)
            assert cause is not None
            return code, cause
    return None


def _warning_suffix(code: int, job_type: JobType) -> str:
    if job_type is JobType.BACKUP and 100 <= code <= 107:
        return "; the archive was still created"
    return ""


def _warning(rc: int, msgids: Sequence[str], last_error: str | None, job_type: JobType) -> Outcome:
    if rc == 1:
        found = _first_known(msgids, job_type, warnings=True)
        if found is None:
            if job_type is JobType.CHECK:
                cause = "the check found problems (see the log)"
            else:
                cause = f"{job_type} finished with warnings (see the log)"
            return Outcome(JobStatus.WARNING, _with_detail(cause, last_error))
        code, cause = found
    else:
        code = rc
        known = _BY_CODE.get(rc)
        cause = (
            known.replace("{did}", _did(job_type))
            if known is not None
            else f"{job_type} finished with warnings (borg warning {rc})"
        )
    return Outcome(
        JobStatus.WARNING, _with_detail(cause + _warning_suffix(code, job_type), last_error)
    )


# Warnings that leave a backup incomplete in a way the user must fix: a source path
# that does not exist.  Such a backup is not the profile's "last success", or the
# overdue watcher would never say that backups of that source stopped.
INCOMPLETE_BACKUP_EXITS = frozenset({107})


def counts_as_success(status: JobStatus, exit_code: int | None) -> bool:
    """Whether a finished backup is its profile's newest successful backup."""
    if status is JobStatus.SUCCEEDED:
        return True
    return status is JobStatus.WARNING and exit_code not in INCOMPLETE_BACKUP_EXITS


def saved_checkpoint(last_error: str | None, job_type: JobType) -> bool:
    """A create stopped by SIGINT says so on its way out, after writing a checkpoint."""
    return job_type is JobType.BACKUP and _SIGINT_TEXT in (last_error or "")


def _generic_error(msgids: Sequence[str], last_error: str | None, job_type: JobType) -> str:
    """Exit code 2: borg 1.2, a remote error, a crash, or a signal turned into an error."""
    text = last_error or ""
    if _SIGINT_TEXT in text:
        if job_type is JobType.BACKUP:
            return _with_detail(
                "interrupted by SIGINT; borg saved a checkpoint archive", last_error
            )
        return _with_detail("interrupted by SIGINT", last_error)
    found = _first_known(msgids, job_type, warnings=False)
    if found is not None:
        return _with_detail(found[1], last_error)
    for msgid in reversed(msgids):
        special = _SPECIAL_MSGIDS.get(msgid)
        if special is not None:
            return _with_detail(special, last_error)
    if text.startswith(("usage:", "borg: error", "borg ")) and "error:" in text:
        return _with_detail("borg rejected the command line", last_error)
    return _with_detail(f"{job_type} failed (borg error 2)", last_error)


def interpret_exit(
    rc: int,
    *,
    msgids: Sequence[str] = (),
    last_error: str | None = None,
    job_type: JobType = JobType.BACKUP,
) -> Outcome:
    """Map borg's exit status to a job outcome.

    `rc` is the process exit status; a negative value (``-N``, as Python reports
    a process killed by signal N) counts like ``128+N``.  `msgids` are the
    msgids of borg's ``log_message`` lines in order; `last_error` is the text of
    its last error-level line, appended to the message as detail.
    """
    if rc == 0:
        return Outcome(JobStatus.SUCCEEDED, f"{job_type} finished")
    if rc < 0:
        return _signal_outcome(-rc, last_error)
    if rc == 1 or 100 <= rc <= 127:
        return _warning(rc, msgids, last_error, job_type)
    if rc == 2:
        return Outcome(JobStatus.FAILED, _generic_error(msgids, last_error, job_type))
    if rc > 128:
        return _signal_outcome(rc - 128, last_error)
    known = _BY_CODE.get(rc)
    if known is not None:
        return Outcome(JobStatus.FAILED, _with_detail(known, last_error))
    return Outcome(
        JobStatus.FAILED, _with_detail(f"{job_type} failed (borg error {rc})", last_error)
    )


# Failures that pass by themselves, so that trying again later may well succeed (DESIGN
# "Retries"): a lock held by another borg, a broken connection, the network or the disk
# gone for a while.  A wrong passphrase, a permission error, a bad configuration or a
# missing source are none of these: they never retry.
_PASSING_BY_CODE: dict[int, str] = {
    70: "lock",
    71: "lock",
    72: "lock",
    73: "lock",
    75: "lock",
    80: "connection",
    81: "connection",
    87: "connection",
}
_PASSING_TEXTS: tuple[tuple[str, str], ...] = (
    ("Failed to create/acquire the lock", "lock"),
    ("Input/output error", "io"),
    ("No such device", "disk-gone"),
    ("Transport endpoint is not connected", "disk-gone"),
    ("Stale file handle", "disk-gone"),
    ("Network is unreachable", "network"),
    ("Temporary failure in name resolution", "network"),
    ("Could not resolve hostname", "network"),
    ("Connection refused", "connection"),
    ("Connection timed out", "connection"),
    ("Connection reset by peer", "connection"),
    ("Connection closed by remote host", "connection"),
)


def passing_cause(
    rc: int, *, msgids: Sequence[str] = (), last_error: str | None = None
) -> str | None:
    """Why a failed borg run may succeed if tried later (``lock``, ``connection``,
    ``network``, ``io``, ``disk-gone``), or None when trying again cannot help."""
    codes = [rc] + [_BY_MSGID[m][0] for m in msgids if m in _BY_MSGID]
    for code in codes:
        if code in _PASSING_BY_CODE:
            return _PASSING_BY_CODE[code]
    if any(3 <= code <= 99 for code in codes):
        return None  # a known error of another kind: a passphrase, a path, the config
    text = last_error or ""
    for needle, cause in _PASSING_TEXTS:
        if needle in text:
            return cause
    return None
