"""borg's command line, environment and archive names, as data.

"Functional code builds, imperative code executes": everything here maps
frozen values to a tuple of arguments (or a dict, or a string); the runner
executes it.  Supported borg: 1.2 and 1.4 (the commands and options used here
are spelled the same in both; borg 2 renamed most of them and is refused).

Rules kept by `build_argv`, for every job type:

* ``--log-json --progress`` always follow the sub-command; ``create`` adds ``--json``.
* An option with a value is one argument, ``--name=value``: a value that starts
  with ``-`` cannot be taken for an option.  Positional arguments follow ``--``
  for the same reason (a source or restore path named ``-x``).
* No option appears twice, except ``--exclude``.
* borg expands ``{placeholders}`` in ``REPO::ARCHIVE`` and in
  ``--glob-archives`` itself.  borgd renders archive names on its own (to know
  the name and avoid collisions), so literal braces are doubled in those
  arguments and borg's expansion is the identity.
* No secret is ever in the argv: the passphrase reaches borg through
  ``BORG_PASSPHRASE_FD`` (added by the runner) or ``BORG_PASSCOMMAND``.

Prune scope (`archive_glob`): borg prunes every archive that matches the glob,
so a glob that also matches another profile's archives deletes them.  The
glob is the archive template turned into a pattern:

* the template must start with a *stable prefix* — literal text, ``{profile}``
  and the per-host placeholders ``{hostname}``, ``{fqdn}``, ``{reverse-fqdn}``,
  ``{user}`` — that contains ``{profile}`` (without a format spec) and ends in a
  literal delimiter (a printable non-alphanumeric character such as ``-``,
  ``_``, ``.``): ``{profile}-…`` or ``{hostname}-{profile}-…``;
* literal text and the profile name are escaped; the per-host placeholders are
  left as placeholders for borg to fill in (so they must be rendered with the
  values borg uses: ``$BORG_HOSTNAME`` or the short host name, the FQDN, the
  login name);
* time placeholders become their digit shape (``{now:%Y-%m-%d}`` →
  ``[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]``), ``{unixtime}`` → ``[0-9]*``,
  ``{uuid4}`` → the UUID shape, anything of free width → ``*``;
* a final ``*`` admits the ``.2`` collision suffix and borg's ``.checkpoint``.

So with the default template profile ``web`` prunes ``web-[0-9]…*``, which
matches ``web-2024-05-01T10:00:00`` and ``web-2024-05-01T10:00:00.2`` but not
``web-vm-2024-05-01T10:00:00`` — the delimiter alone (``web-*``) would.  Changing
a template's shape later means its older archives are no longer pruned
(never that other archives are).
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from string import Formatter

from borgd.core.config import JobSpec, ProfileConfig, RepoConfig, local_path
from borgd.core.jobs import JobType

__all__ = [
    "DEFAULT_TIME_FORMAT",
    "ENCRYPTION_MODES",
    "MAX_ARCHIVE_NAME_LENGTH",
    "SUPPORTED_VERSIONS",
    "archive_glob",
    "borg_env",
    "build_argv",
    "checkpoint_base",
    "contents_argv",
    "diff_argv",
    "extract_cwd",
    "is_checkpoint",
    "render_archive_name",
    "validate_archive_name",
    "validate_archive_template",
]

SUPPORTED_VERSIONS = ((1, 2, 0), (2, 0, 0))  # [min, max)
DEFAULT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # what borg prints for a bare {now}
MAX_ARCHIVE_NAME_LENGTH = 200  # leaves room for ".checkpoint" and ".N" within 255 bytes
MAX_COLLISION_SUFFIX = 10_000
ENCRYPTION_MODES = frozenset(
    {
        "none",
        "authenticated",
        "authenticated-blake2",
        "repokey",
        "keyfile",
        "repokey-blake2",
        "keyfile-blake2",
    }
)
_NEEDS_PASSPHRASE = ENCRYPTION_MODES - {"none"}

# --- archive templates ---------------------------------------------------------

_PER_HOST = frozenset({"hostname", "fqdn", "reverse-fqdn", "user"})
_VARYING = frozenset({"now", "utcnow", "unixtime", "uuid4"})
_PLACEHOLDERS = _PER_HOST | _VARYING | {"profile"}
_GLOB_META = "*?["
_NOT_DELIMITER = "*?[]{}/\\"
_CHECKPOINT = re.compile(r"\.checkpoint(\.\d+)?\Z")


@dataclass(frozen=True)
class _Field:
    name: str
    spec: str


_Token = str | _Field


@lru_cache(maxsize=256)
def _parse_template(template: str) -> tuple[_Token, ...]:
    if not template:
        raise ValueError("the archive template is empty")
    tokens: list[_Token] = []
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"archive template {template!r} is malformed: {e}") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            tokens.append(literal)
        if name is None:
            continue
        if name == "pid":
            raise ValueError(
                "the {pid} placeholder is not supported: borg's process id is not known "
                "before it starts and says nothing useful; names are made unique with a "
                '".2", ".3" … suffix instead'
            )
        if name not in _PLACEHOLDERS:
            shown = name or ""
            raise ValueError(
                f"unknown placeholder {{{shown}}} in archive template {template!r} "
                f"(known: {', '.join('{' + p + '}' for p in sorted(_PLACEHOLDERS))})"
            )
        if conversion:
            raise ValueError(f"placeholder {{{name}!{conversion}}} is not supported")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"nested braces in the format of {{{name}}} are not supported")
        tokens.append(_Field(name, spec or ""))
    return tuple(tokens)


def is_checkpoint(name: str) -> bool:
    """borg names a checkpoint ``NAME.checkpoint`` (``.checkpoint.N`` when one exists)."""
    return _CHECKPOINT.search(name) is not None


def checkpoint_base(name: str) -> str:
    """The archive a checkpoint stands in for: ``web-1.checkpoint.2`` → ``web-1``."""
    return _CHECKPOINT.sub("", name)


def validate_archive_name(name: str) -> None:
    """Raise ValueError unless `name` is a valid name for a new archive."""
    if not name:
        raise ValueError("the archive name is empty")
    if "/" in name:
        raise ValueError(f"archive name {name!r} contains '/'")
    if "::" in name:
        raise ValueError(f"archive name {name!r} contains '::'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"archive name {name!r} contains control characters")
    if name != name.strip():
        raise ValueError(f"archive name {name!r} starts or ends with white space")
    if len(name) > MAX_ARCHIVE_NAME_LENGTH:
        raise ValueError(
            f"archive name is {len(name)} characters long (at most {MAX_ARCHIVE_NAME_LENGTH})"
        )
    if is_checkpoint(name):
        raise ValueError(f"archive name {name!r} looks like a borg checkpoint archive")


def render_archive_name(
    template: str,
    *,
    profile: str,
    hostname: str,
    fqdn: str,
    user: str,
    now: datetime,
    uuid4: str,
    taken: Container[str],
) -> str:
    """Expand an archive template the way borg would, then make the name unique.

    `now` must be timezone-aware: ``{now}`` is formatted in its zone, ``{utcnow}``
    in UTC, ``{unixtime}`` is its POSIX time.  A bare ``{now}``/``{utcnow}`` uses
    borg's format, ``%Y-%m-%dT%H:%M:%S``.  ``{{`` and ``}}`` are literal braces.
    When the result is in `taken` (the repository's archive names), ``.2``,
    ``.3``… is appended: ``{now}`` has one-second resolution.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("render_archive_name needs a timezone-aware datetime")
    parts: list[str] = []
    for token in _parse_template(template):
        if isinstance(token, str):
            parts.append(token)
            continue
        name, spec = token.name, token.spec
        try:
            if name == "now":
                parts.append(now.strftime(spec or DEFAULT_TIME_FORMAT))
            elif name == "utcnow":
                parts.append(now.astimezone(UTC).strftime(spec or DEFAULT_TIME_FORMAT))
            elif name == "unixtime":
                parts.append(format(int(now.timestamp()), spec))
            else:
                value = {
                    "profile": profile,
                    "hostname": hostname,
                    "fqdn": fqdn,
                    "reverse-fqdn": ".".join(reversed(fqdn.split("."))),
                    "user": user,
                    "uuid4": uuid4,
                }[name]
                parts.append(format(value, spec))
        except ValueError as e:
            raise ValueError(f"cannot format placeholder {{{name}:{spec}}}: {e}") from None
    base = "".join(parts)
    validate_archive_name(base)
    name = base
    n = 1
    while name in taken:
        n += 1
        if n > MAX_COLLISION_SUFFIX:
            raise ValueError(f"too many archives named {base!r}")
        name = f"{base}.{n}"
    if len(name) > MAX_ARCHIVE_NAME_LENGTH:
        validate_archive_name(name)
    return name


def _glob_escape(text: str) -> str:
    """Literal text for borg's ``--glob-archives`` (shell pattern, then str.format)."""
    out = []
    for c in text:
        if c in _GLOB_META:
            out.append(f"[{c}]")
        elif c == "{":
            out.append("{{")
        elif c == "}":
            out.append("}}")
        else:
            out.append(c)
    return "".join(out)


_DIGITS = "[0-9]"
_STRFTIME_WIDTH = {
    "Y": 4,
    "G": 4,
    "y": 2,
    "C": 2,
    "g": 2,
    "m": 2,
    "d": 2,
    "H": 2,
    "I": 2,
    "M": 2,
    "S": 2,
    "U": 2,
    "W": 2,
    "V": 2,
    "j": 3,
    "f": 6,
    "u": 1,
    "w": 1,
}
_STRFTIME_COMPOSITE = {"F": "%Y-%m-%d", "T": "%H:%M:%S", "R": "%H:%M"}


def _strftime_glob(fmt: str) -> str:
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        i += 1
        if c != "%":
            out.append(_glob_escape(c))
            continue
        if i >= n:
            out.append("%")
            break
        d = fmt[i]
        i += 1
        if d == "%":
            out.append("%")
        elif d in _STRFTIME_WIDTH:
            out.append(_DIGITS * _STRFTIME_WIDTH[d])
        elif d in _STRFTIME_COMPOSITE:
            out.append(_strftime_glob(_STRFTIME_COMPOSITE[d]))
        elif d in "ekl":  # space-padded day / hours
            out.append("[ 0-9]" + _DIGITS)
        else:
            # names, zones, glibc flags (%-d, %Ey …): width unknown
            if d in "-_0^#EO" and i < n:
                i += 1
            out.append("*")
    return "".join(out)


_UUID_GLOB = "-".join("[0-9a-f]" * k for k in (8, 4, 4, 4, 12))


def _field_glob(field: _Field, profile: str) -> str:
    name, spec = field.name, field.spec
    if name == "profile":
        return _glob_escape(format(profile, spec))
    if name in _PER_HOST:
        return "{" + name + (":" + spec if spec else "") + "}"
    if name in ("now", "utcnow"):
        return _strftime_glob(spec or DEFAULT_TIME_FORMAT)
    if name == "unixtime":
        return _DIGITS + "*"
    if name == "uuid4" and not spec:
        return _UUID_GLOB
    return "*"


def _check_prune_prefix(template: str, tokens: tuple[_Token, ...]) -> None:
    has_profile = False
    delimited = False  # the stable prefix so far ends in a literal delimiter after {profile}
    for token in tokens:
        if isinstance(token, str):
            c = token[-1]
            delimited = (
                has_profile and not c.isalnum() and c.isprintable() and c not in _NOT_DELIMITER
            )
            continue
        if token.name in _VARYING:
            break
        if token.name == "profile":
            if token.spec:
                raise ValueError(
                    "{profile} must not have a format spec: prune scoping needs the full name"
                )
            has_profile = True
        delimited = False
    if not delimited:
        raise ValueError(
            f"archive template {template!r} cannot be pruned safely: it must start with "
            "{profile} (optionally after literal text, {hostname}, {fqdn} or {user}) "
            "followed by a delimiter such as '-', before any time or uuid placeholder, "
            "e.g. '{profile}-{now}'"
        )


_STARS = re.compile(r"\*{2,}")


def archive_glob(template: str, profile: str) -> str:
    """The ``--glob-archives`` pattern that matches exactly this profile's archives.

    Raises ValueError when the template has no stable prefix that contains
    ``{profile}`` and ends in a literal delimiter (see the module docstring).
    """
    if not profile:
        raise ValueError("the profile name is empty")
    tokens = _parse_template(template)
    _check_prune_prefix(template, tokens)
    glob = "".join(
        _glob_escape(t) if isinstance(t, str) else _field_glob(t, profile) for t in tokens
    )
    return _STARS.sub("*", glob + "*")


def validate_archive_template(template: str) -> None:
    """Raise ValueError unless `template` can be rendered and pruned (for AddProfile)."""
    archive_glob(template, "profile")
    render_archive_name(
        template,
        profile="profile",
        hostname="host",
        fqdn="host.example.org",
        user="user",
        now=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        uuid4="00000000-0000-4000-8000-000000000000",
        taken=(),
    )


# --- environment ----------------------------------------------------------------

# What no child of borgd inherits: secrets (they would override a repository's own),
# and systemd's variables (a child must not talk to our service manager).
SECRET_PREFIXES = ("BORG_PASS", "BORG_NEW_PASS")
SERVICE_MANAGER_ENV = frozenset(
    {
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    }
)
# borg's own runs also lose these: another repository's, another ssh, another borg's modules.
_BORG_ONLY_REMOVED = frozenset({"BORG_REPO", "BORG_RSH", "PYTHONPATH", "PYTHONHOME"})
DEFAULT_RSH = "ssh -o BatchMode=yes"


def child_env(
    base: Mapping[str, str],
    *,
    drop: frozenset[str] = frozenset(),
    drop_prefixes: tuple[str, ...] = (),
) -> dict[str, str]:
    """A copy of the daemon's environment for a child (borg, a hook): without secrets,
    without systemd's variables, without `drop` and what starts with `drop_prefixes`."""
    prefixes = SECRET_PREFIXES + drop_prefixes
    return {
        k: v
        for k, v in base.items()
        if not k.startswith(prefixes) and k not in SERVICE_MANAGER_ENV and k not in drop
    }


def borg_env(
    repo: RepoConfig, base: Mapping[str, str], *, trust_repository: bool = False
) -> dict[str, str]:
    """The environment for one borg run on `repo`: a copy of `base`, made safe for a daemon.

    * Removed: every inherited ``BORG_PASSPHRASE*``, ``BORG_NEW_PASSPHRASE`` and
      ``BORG_PASSCOMMAND`` (they would override the repository's own secret),
      ``BORG_REPO``, ``BORG_RSH``, systemd's ``NOTIFY_SOCKET``/``WATCHDOG_*``/
      ``LISTEN_*`` (borg must not talk to our service manager), and
      ``PYTHONPATH``/``PYTHONHOME`` (they would load another borg's modules).
    * ``LANG=LC_ALL=C.UTF-8``, ``BORG_EXIT_CODES=modern`` (1.2 ignores it).
    * ``BORG_RSH``: the repository's ssh_command, else ``ssh -o BatchMode=yes``
      (ssh must fail rather than ask for a password or host key, or pop up an askpass
      window for a scheduled job).
    * ``BORG_PASSCOMMAND`` from the repository; ``BORG_PASSPHRASE_FD`` is the runner's.
    * Questions are answered by the environment, never by a person: relocated and
      unknown unencrypted repositories are refused (``no``; exit 62 / 60) unless
      `trust_repository` (an explicit user action) says ``yes``; dangerous commands
      are never confirmed; a passphrase is never displayed.
    """
    env = child_env(base, drop=_BORG_ONLY_REMOVED)
    answer = "yes" if trust_repository else "no"
    env.update(
        {
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "BORG_EXIT_CODES": "modern",
            "BORG_RSH": repo.ssh_command or DEFAULT_RSH,
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": answer,
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": answer,
            "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "NO",
            "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "NO",
            "BORG_DISPLAY_PASSPHRASE": "no",
        }
    )
    if repo.passcommand:
        env["BORG_PASSCOMMAND"] = repo.passcommand
    return env


# --- argv --------------------------------------------------------------------------


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _repo_arg(repo: RepoConfig) -> str:
    if not repo.url:
        raise ValueError(f"repository {repo.name!r} has no URL")
    if "::" in repo.url:
        raise ValueError(f"repository URL {repo.url!r} must not contain '::'")
    return _braces(repo.url)


def _archive_arg(repo: RepoConfig, archive: str) -> str:
    if not archive or "/" in archive or "::" in archive:
        raise ValueError(f"invalid archive name {archive!r}")
    return f"{_repo_arg(repo)}::{_braces(archive)}"


def _common(command: str, repo: RepoConfig) -> list[str]:
    args = [command, "--log-json", "--progress"]
    if repo.lock_wait is not None:
        if repo.lock_wait < 0:
            raise ValueError(f"lock_wait must be >= 0 seconds, not {repo.lock_wait}")
        args.append(f"--lock-wait={repo.lock_wait}")
    return args


def _need_profile(spec: JobSpec) -> None:
    if spec.profile is None:
        raise ValueError(f"a {spec.type} job needs a profile")


def _backup(spec: JobSpec) -> list[str]:
    _need_profile(spec)
    assert spec.profile is not None
    profile = spec.profile
    if spec.archive_name is None:
        raise ValueError("a backup needs its archive name (render_archive_name)")
    validate_archive_name(spec.archive_name)
    if not profile.sources:
        raise ValueError(f"profile {profile.name!r} has no source folders")
    if any(not s for s in profile.sources):
        raise ValueError(f"profile {profile.name!r} has an empty source path")
    args = _common("create", spec.repo)
    args.append("--json")
    if profile.compression:
        args.append(f"--compression={profile.compression}")
    for pattern in profile.excludes:
        if not pattern:
            raise ValueError(f"profile {profile.name!r} has an empty exclude pattern")
        args.append(f"--exclude={pattern}")
    if profile.one_file_system:
        args.append("--one-file-system")
    args += ["--", _archive_arg(spec.repo, spec.archive_name), *profile.sources]
    return args


_KEEP_WITHIN = re.compile(r"[1-9][0-9]*[Hdwmy]\Z")


def _prune(spec: JobSpec) -> list[str]:
    _need_profile(spec)
    assert spec.profile is not None
    profile = spec.profile
    r = profile.retention
    if r.is_empty:
        raise ValueError(
            f"profile {profile.name!r} has no retention rule (keep_within, keep_daily …): "
            "nothing to prune by"
        )
    args = _common("prune", spec.repo)
    args.append("--list")
    if r.keep_within:
        if not _KEEP_WITHIN.match(r.keep_within):
            raise ValueError(
                f"keep_within {r.keep_within!r} must be a number and a unit among "
                "H (hours), d, w, m (months), y, e.g. '7d'"
            )
        args.append(f"--keep-within={r.keep_within}")
    for flag, n in (
        ("--keep-hourly", r.keep_hourly),
        ("--keep-daily", r.keep_daily),
        ("--keep-weekly", r.keep_weekly),
        ("--keep-monthly", r.keep_monthly),
        ("--keep-yearly", r.keep_yearly),
    ):
        if n < 0:
            raise ValueError(f"{flag[2:]} must be >= 0, not {n}")
        if n:
            args.append(f"{flag}={n}")
    # borg 1.1–1.4 spell it --glob-archives (-a); --match-archives is borg 2.
    args.append(f"--glob-archives={archive_glob(profile.archive_template, profile.name)}")
    args += ["--", _repo_arg(spec.repo)]
    return args


def _compact(spec: JobSpec) -> list[str]:
    return [*_common("compact", spec.repo), "--", _repo_arg(spec.repo)]


# The keys `list --json` adds to each archive (the form of --format is ignored with --json).
LIST_FORMAT = "{comment}{end}"


def _list(spec: JobSpec) -> list[str]:
    """The archive set, fast: `info` would read every archive's metadata.  With an
    archive named, that one archive's figures (`info`: an archive borgd did not make)."""
    if spec.options.archive:
        return [
            *_common("info", spec.repo),
            "--json",
            "--",
            _archive_arg(spec.repo, spec.options.archive),
        ]
    return [
        *_common("list", spec.repo),
        "--json",
        f"--format={LIST_FORMAT}",
        "--",
        _repo_arg(spec.repo),
    ]


def _delete(spec: JobSpec) -> list[str]:
    """One archive, never the repository: without an archive name this refuses."""
    archive = spec.options.archive
    if not archive:
        raise ValueError("a delete job needs the archive to delete")
    return [*_common("delete", spec.repo), "--", _archive_arg(spec.repo, archive)]


def _mount(spec: JobSpec) -> list[str]:
    """In the foreground: the job runs while mounted, and unmounting ends it."""
    mountpoint = spec.options.destination
    if not mountpoint or not mountpoint.startswith("/"):
        raise ValueError("a mount needs an absolute mount point")
    archive = spec.options.archive
    location = _archive_arg(spec.repo, archive) if archive else _repo_arg(spec.repo)
    return [*_common("mount", spec.repo), "--foreground", "--", location, mountpoint]


def _check(spec: JobSpec) -> list[str]:
    o = spec.options
    if o.repository_only and o.archives_only:
        raise ValueError("repository_only and archives_only together would check nothing")
    if o.repository_only and o.verify_data:
        raise ValueError("verify_data reads archives: it cannot be combined with repository_only")
    if o.max_duration < 0:
        raise ValueError("max_duration must be >= 0")
    if o.max_duration and not o.repository_only:
        raise ValueError("max_duration (a partial check) requires repository_only")
    args = _common("check", spec.repo)
    if o.repository_only:
        args.append("--repository-only")
    if o.archives_only:
        args.append("--archives-only")
    if o.max_duration:
        seconds = max(1, math.ceil(o.max_duration / 1_000_000))
        args.append(f"--max-duration={seconds}")
    if o.verify_data:
        args.append("--verify-data")
    args += ["--", _repo_arg(spec.repo)]
    return args


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _norm(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")


def extract_cwd(spec: JobSpec) -> str:
    """The folder a restore runs in (borg extracts into its working directory).

    Refuses ``/`` (it would overwrite the live system with the archive's
    absolute paths), a folder equal to or inside one of the profile's sources
    (the restored copy would overwrite live data and be backed up again), and
    the repository itself.  The path is normalised lexically; the runner should
    resolve symlinks before building the spec.
    """
    dest = spec.options.destination
    if not dest:
        raise ValueError("a restore needs a destination folder")
    if "\0" in dest:
        raise ValueError("the restore destination contains a NUL character")
    if not dest.startswith("/"):
        raise ValueError(f"the restore destination must be an absolute path, not {dest!r}")
    norm = _norm(dest)
    if norm == "/":
        raise ValueError(
            "refusing to restore into '/': it would overwrite the live system; "
            "choose an empty folder"
        )
    if spec.profile is not None:
        for source in spec.profile.sources:
            if source and _inside(norm, _norm(source)):
                raise ValueError(
                    f"refusing to restore into {norm!r}: it is inside the backed-up folder "
                    f"{source!r} and would overwrite live files; choose a folder outside "
                    "the profile's sources"
                )
    repo_path = local_path(spec.repo.url)
    if repo_path and repo_path.startswith("/") and _inside(norm, _norm(repo_path)):
        raise ValueError(f"refusing to restore into the repository folder {repo_path!r}")
    return norm


def _restore(spec: JobSpec) -> list[str]:
    archive = spec.options.archive or spec.archive_name
    if not archive:
        raise ValueError("a restore needs an archive name")
    extract_cwd(spec)
    return [
        *_common("extract", spec.repo),
        "--",
        _archive_arg(spec.repo, archive),
        *(arg for p in spec.options.paths for arg in _restore_args(p)),
    ]


def _restore_args(path: str) -> list[str]:
    """A restore path as borg's extract takes it.

    borg lists a name that is not UTF-8 with ``?`` for each undecodable byte, so
    a path taken from ListArchiveContents may not match as written.  Such a path
    becomes one regular expression in which ``?`` matches that one byte, for the
    path and anything below it (a folder); a sibling whose name has the same
    shape at that place matches too.
    """
    stripped = _archive_path(path)
    if "?" not in stripped:
        return [stripped]
    shape = "[^/]".join(re.escape(part) for part in stripped.split("?"))
    return [f"re:^{shape}(/.*)?$"]


def _archive_path(path: str) -> str:
    """A restore path as borg stores it: archives hold ``home/u/x`` for ``/home/u/x``.

    Users name what they backed up (``/home/u/x``); borg would report that such a
    pattern "never matched" and restore nothing, so the leading slashes go.
    """
    if not path:
        raise ValueError("a restore path is empty")
    stripped = path.lstrip("/")
    if not stripped:
        raise ValueError("restore path '/' is the whole archive: give no paths instead")
    return stripped


def _init(spec: JobSpec) -> list[str]:
    repo = spec.repo
    if repo.encryption not in ENCRYPTION_MODES:
        raise ValueError(
            f"unknown encryption mode {repo.encryption!r} "
            f"(one of: {', '.join(sorted(ENCRYPTION_MODES))})"
        )
    if repo.encryption in _NEEDS_PASSPHRASE and not (repo.has_passphrase or repo.passcommand):
        raise ValueError(
            f"encryption {repo.encryption!r} needs a passphrase or a passcommand for "
            f"repository {repo.name!r}"
        )
    return [
        *_common("init", repo),
        f"--encryption={repo.encryption}",
        "--",
        _repo_arg(repo),
    ]


_BUILDERS: dict[JobType, Callable[[JobSpec], list[str]]] = {
    JobType.BACKUP: _backup,
    JobType.PRUNE: _prune,
    JobType.COMPACT: _compact,
    JobType.CHECK: _check,
    JobType.RESTORE: _restore,
    JobType.INIT: _init,
    JobType.LIST: _list,
    JobType.DELETE: _delete,
    JobType.MOUNT: _mount,
}


def _check_version(version: tuple[int, int, int]) -> None:
    low, high = SUPPORTED_VERSIONS
    if not low <= tuple(version) < high:
        shown = ".".join(map(str, version))
        raise ValueError(f"borg {shown} is not supported (borgd needs borg 1.2 to 1.4)")


def build_argv(
    spec: JobSpec, *, borg: str = "borg", version: tuple[int, int, int] = (1, 4, 0)
) -> tuple[str, ...]:
    """The full argv for one job: ``borg`` first, or the `nice`/`ionice` that run it;
    ValueError with a human message if invalid."""
    _check_version(version)
    args = _BUILDERS[spec.type](spec)
    if spec.repo.upload_ratelimit:
        # borg's common option, right after the command: renamed in 1.4
        flag = "--upload-ratelimit" if version >= (1, 4, 0) else "--remote-ratelimit"
        args.insert(1, f"{flag}={spec.repo.upload_ratelimit}")
    return (*priority_prefix(spec.profile), borg, *args)


_IONICE_CLASSES = {"idle": "3", "best-effort": "2"}


def priority_prefix(profile: ProfileConfig | None) -> tuple[str, ...]:
    """`nice -n N` and `ionice -c C` before borg, for a profile that asks to go easy on
    the machine (they set the priority, then exec borg: the same process)."""
    if profile is None:
        return ()
    out: list[str] = []
    if profile.nice:
        if not 0 < profile.nice <= 19:
            raise ValueError(f"nice must be 0 to 19, not {profile.nice}")
        out += ["nice", "-n", str(profile.nice)]
    if profile.ionice:
        if profile.ionice not in _IONICE_CLASSES:
            raise ValueError(f"ionice must be idle or best-effort, not {profile.ionice!r}")
        out += ["ionice", "-c", _IONICE_CLASSES[profile.ionice]]
    return tuple(out)


def contents_argv(
    repo: RepoConfig, archive: str, *, borg: str, version: tuple[int, int, int]
) -> tuple[str, ...]:
    """Every item of one archive, one JSON object per line (ListArchiveContents)."""
    _check_version(version)
    return (borg, "list", "--json-lines", "--", _archive_arg(repo, archive))


def diff_argv(
    repo: RepoConfig,
    archive1: str,
    archive2: str,
    path: str,
    *,
    borg: str,
    version: tuple[int, int, int],
) -> tuple[str, ...]:
    """What changed from `archive1` to `archive2`, below `path` if given (DiffArchives)."""
    _check_version(version)
    if not archive2 or "/" in archive2 or "::" in archive2:
        raise ValueError(f"invalid archive name {archive2!r}")
    # ARCHIVE2 is a bare name: borg expands no placeholders in it.
    argv = [borg, "diff", "--json-lines", "--", _archive_arg(repo, archive1), archive2]
    if path:
        argv.append(_archive_path(path))
    return tuple(argv)
