"""borg argv, environment and archive names: tables and invariants, no mocks."""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from borg.shellpattern import translate  # borg's own glob semantics, as the oracle

from borgd.core.borg_argv import (
    MAX_ARCHIVE_NAME_LENGTH,
    archive_glob,
    borg_env,
    build_argv,
    checkpoint_base,
    extract_cwd,
    render_archive_name,
    validate_archive_name,
    validate_archive_template,
)
from borgd.core.config import JobOptions, JobSpec, ProfileConfig, RepoConfig, Retention
from borgd.core.jobs import JobType

REPO = RepoConfig(name="main", url="/srv/borg/main")
REMOTE = RepoConfig(
    name="off",
    url="ssh://u@host:22/./borg",
    lock_wait=30,
    ssh_command="ssh -i /k -o BatchMode=yes",
    passcommand="secret-tool lookup borg off",
    has_passphrase=True,
)
WEB = ProfileConfig(
    name="web",
    repository="main",
    sources=("/srv/www", "/etc/nginx"),
    retention=Retention(keep_daily=7, keep_weekly=4),
)
ARCHIVE = "web-2024-05-01T10:00:00"
DEFAULT_GLOB = "web-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"


def spec(
    type_: JobType,
    *,
    repo: RepoConfig = REPO,
    profile: ProfileConfig | None = WEB,
    archive_name: str | None = None,
    **options: object,
) -> JobSpec:
    return JobSpec(
        type=type_,
        repo=repo,
        profile=profile,
        options=JobOptions(**options),  # type: ignore[arg-type]
        archive_name=archive_name,
    )


ARGV_TABLE: list[tuple[str, JobSpec, tuple[str, ...]]] = [
    (
        "backup, plain",
        spec(JobType.BACKUP, archive_name=ARCHIVE),
        ("borg", "create", "--log-json", "--progress", "--json", "--",
         f"/srv/borg/main::{ARCHIVE}", "/srv/www", "/etc/nginx"),
    ),
    (
        "backup, all options",
        spec(
            JobType.BACKUP,
            repo=REMOTE,
            profile=replace(
                WEB,
                compression="zstd,3",
                excludes=("*.tmp", "/srv/www/cache", "-odd"),
                one_file_system=True,
            ),
            archive_name=ARCHIVE,
        ),
        ("borg", "create", "--log-json", "--progress", "--lock-wait=30", "--json",
         "--compression=zstd,3", "--exclude=*.tmp", "--exclude=/srv/www/cache",
         "--exclude=-odd", "--one-file-system", "--",
         f"ssh://u@host:22/./borg::{ARCHIVE}", "/srv/www", "/etc/nginx"),
    ),
    (
        "backup, braces in the name are escaped for borg's placeholder expansion",
        spec(JobType.BACKUP, archive_name="web-{x}-1"),
        ("borg", "create", "--log-json", "--progress", "--json", "--",
         "/srv/borg/main::web-{{x}}-1", "/srv/www", "/etc/nginx"),
    ),
    (
        "prune",
        spec(JobType.PRUNE),
        ("borg", "prune", "--log-json", "--progress", "--list", "--keep-daily=7",
         "--keep-weekly=4", f"--glob-archives={DEFAULT_GLOB}", "--", "/srv/borg/main"),
    ),
    (
        "prune, every rule, lock wait",
        spec(
            JobType.PRUNE,
            repo=REMOTE,
            profile=replace(
                WEB,
                archive_template="{profile}_{now:%Y%m%d}",
                retention=Retention("48H", 24, 7, 4, 12, 2),
            ),
        ),
        ("borg", "prune", "--log-json", "--progress", "--lock-wait=30", "--list",
         "--keep-within=48H", "--keep-hourly=24", "--keep-daily=7", "--keep-weekly=4",
         "--keep-monthly=12", "--keep-yearly=2",
         "--glob-archives=web_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]*",
         "--", "ssh://u@host:22/./borg"),
    ),
    (
        "compact",
        spec(JobType.COMPACT, profile=None),
        ("borg", "compact", "--log-json", "--progress", "--", "/srv/borg/main"),
    ),
    (
        "list: the archive set, with the keys the cache keeps",
        spec(JobType.LIST, profile=None),
        ("borg", "list", "--log-json", "--progress", "--json", "--format={comment}{end}",
         "--", "/srv/borg/main"),
    ),
    (
        "list with an archive: that archive's figures (borg info)",
        spec(JobType.LIST, profile=None, archive="by hand {x}"),
        ("borg", "info", "--log-json", "--progress", "--json", "--",
         "/srv/borg/main::by hand {{x}}"),
    ),
    (
        "delete: one archive, after --",
        spec(JobType.DELETE, profile=None, archive="web-{1}"),
        ("borg", "delete", "--log-json", "--progress", "--", "/srv/borg/main::web-{{1}}"),
    ),
    (
        "mount: one archive, in the foreground",
        spec(JobType.MOUNT, profile=None, archive="web-1", destination="/run/u/mnt/r"),
        ("borg", "mount", "--log-json", "--progress", "--foreground", "--",
         "/srv/borg/main::web-1", "/run/u/mnt/r"),
    ),
    (
        "mount: every archive",
        spec(JobType.MOUNT, profile=None, destination="/run/u/mnt/r"),
        ("borg", "mount", "--log-json", "--progress", "--foreground", "--",
         "/srv/borg/main", "/run/u/mnt/r"),
    ),
    (
        "check, full",
        spec(JobType.CHECK, profile=None),
        ("borg", "check", "--log-json", "--progress", "--", "/srv/borg/main"),
    ),
    (
        "check, repository only, bounded (µs → s, rounded up)",
        spec(JobType.CHECK, repository_only=True, max_duration=90_000_001),
        ("borg", "check", "--log-json", "--progress", "--repository-only",
         "--max-duration=91", "--", "/srv/borg/main"),
    ),
    (
        "check, archives only, verify data",
        spec(JobType.CHECK, repo=REMOTE, archives_only=True, verify_data=True),
        ("borg", "check", "--log-json", "--progress", "--lock-wait=30", "--archives-only",
         "--verify-data", "--", "ssh://u@host:22/./borg"),
    ),
    (
        "restore, whole archive",
        spec(JobType.RESTORE, archive=ARCHIVE, destination="/home/u/restore"),
        ("borg", "extract", "--log-json", "--progress", "--",
         f"/srv/borg/main::{ARCHIVE}"),
    ),
    (
        "restore, some paths (a leading dash cannot become an option)",
        spec(
            JobType.RESTORE,
            archive=ARCHIVE,
            destination="/tmp/r",
            paths=("srv/www/index.html", "-weird"),
        ),
        ("borg", "extract", "--log-json", "--progress", "--",
         f"/srv/borg/main::{ARCHIVE}", "srv/www/index.html", "-weird"),
    ),
    (
        "restore, archive resolved by the caller into archive_name",
        spec(JobType.RESTORE, archive_name=ARCHIVE, destination="/tmp/r"),
        ("borg", "extract", "--log-json", "--progress", "--",
         f"/srv/borg/main::{ARCHIVE}"),
    ),
    (
        "init, unencrypted",
        spec(JobType.INIT, repo=replace(REPO, encryption="none"), profile=None),
        ("borg", "init", "--log-json", "--progress", "--encryption=none", "--",
         "/srv/borg/main"),
    ),
    (
        "init, encrypted, passcommand",
        spec(JobType.INIT, repo=REMOTE, profile=None),
        ("borg", "init", "--log-json", "--progress", "--lock-wait=30",
         "--encryption=repokey-blake2", "--", "ssh://u@host:22/./borg"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("job", "expected"), [(s, e) for _, s, e in ARGV_TABLE], ids=[n for n, _, _ in ARGV_TABLE]
)
def test_argv_table(job: JobSpec, expected: tuple[str, ...]) -> None:
    assert build_argv(job) == expected


@pytest.mark.parametrize("version", [(1, 2, 4), (1, 4, 0), (1, 4, 5)])
def test_1_2_and_1_4_spell_everything_the_same(version: tuple[int, int, int]) -> None:
    for _, job, expected in ARGV_TABLE:
        assert build_argv(job, version=version, borg="/usr/bin/borg") == (
            "/usr/bin/borg",
            *expected[1:],
        )


@pytest.mark.parametrize("version", [(1, 1, 18), (2, 0, 0), (2, 0, 1)])
def test_unsupported_versions_refused(version: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="not supported"):
        build_argv(ARGV_TABLE[0][1], version=version)


# --- invariants over every table entry -------------------------------------------


@pytest.mark.parametrize(("job", "_expected"), [(s, e) for _, s, e in ARGV_TABLE])
def test_invariants(job: JobSpec, _expected: tuple[str, ...]) -> None:
    argv = build_argv(job)
    assert argv[2:4] == ("--log-json", "--progress")
    assert "--" in argv
    options = argv[1 : argv.index("--")]
    names = [a.split("=", 1)[0] for a in options if a.startswith("--")]
    repeated = {n for n in names if names.count(n) > 1}
    assert repeated <= {"--exclude"}, f"flags given twice: {repeated}"
    # every option before "--" is an option: no stray positional
    assert all(a.startswith("--") for a in options[1:])
    if job.type is JobType.BACKUP:
        assert "--json" in options


def test_no_secret_in_argv_env_carries_passcommand_only() -> None:
    secret = "correct horse battery staple"
    base = {"BORG_PASSPHRASE": secret, "HOME": "/home/u"}
    for _, job, _ in ARGV_TABLE:
        argv = build_argv(job)
        assert not any(secret in a for a in argv)
        assert not any("PASSPHRASE" in a or "passcommand" in a.lower() for a in argv)
        env = borg_env(job.repo, base)
        assert secret not in env.values()


def test_prune_glob_never_matches_other_profile() -> None:
    argv = build_argv(spec(JobType.PRUNE))
    glob = next(a for a in argv if a.startswith("--glob-archives="))[len("--glob-archives=") :]
    rx = re.compile(translate(glob))
    assert rx.match("web-2024-05-01T10:00:00")
    assert rx.match("web-2024-05-01T10:00:00.2")
    assert rx.match("web-2024-05-01T10:00:00.checkpoint")
    assert not rx.match("web-vm-2024-05-01T10:00:00")
    assert not rx.match("webshop-2024-05-01T10:00:00")
    assert not rx.match("web-2fa-2024-05-01T10:00:00")


# --- validation -----------------------------------------------------------------

INVALID: list[tuple[str, JobSpec, str]] = [
    ("backup without archive name", spec(JobType.BACKUP), "archive name"),
    ("backup without profile", spec(JobType.BACKUP, profile=None, archive_name="x"), "profile"),
    (
        "backup without sources",
        spec(JobType.BACKUP, profile=replace(WEB, sources=()), archive_name="x"),
        "no source",
    ),
    ("backup, bad archive name", spec(JobType.BACKUP, archive_name="a/b"), "'/'"),
    ("backup, checkpoint name", spec(JobType.BACKUP, archive_name="a.checkpoint"), "checkpoint"),
    (
        "backup, empty exclude",
        spec(JobType.BACKUP, profile=replace(WEB, excludes=("",)), archive_name="x"),
        "exclude",
    ),
    (
        "repository URL with ::",
        spec(JobType.COMPACT, repo=replace(REPO, url="/r::x")),
        "::",
    ),
    ("negative lock wait", spec(JobType.COMPACT, repo=replace(REPO, lock_wait=-1)), "lock_wait"),
    ("prune without retention", spec(JobType.PRUNE, profile=replace(WEB, retention=Retention())),
     "retention"),
    (
        "prune, bad keep_within",
        spec(JobType.PRUNE, profile=replace(WEB, retention=Retention(keep_within="7 days"))),
        "keep_within",
    ),
    (
        "prune, negative keep",
        spec(JobType.PRUNE, profile=replace(WEB, retention=Retention(keep_daily=-1))),
        "keep-daily",
    ),
    (
        "prune, template without profile",
        spec(JobType.PRUNE, profile=replace(WEB, archive_template="{hostname}-{now}")),
        "pruned safely",
    ),
    ("prune without profile", spec(JobType.PRUNE, profile=None), "profile"),
    ("check, max_duration alone", spec(JobType.CHECK, max_duration=60_000_000),
     "requires repository_only"),
    ("check, both 'only's", spec(JobType.CHECK, repository_only=True, archives_only=True),
     "nothing"),
    ("check, repository_only + verify_data",
     spec(JobType.CHECK, repository_only=True, verify_data=True), "verify_data"),
    ("check, negative max_duration", spec(JobType.CHECK, repository_only=True, max_duration=-1),
     "max_duration"),
    ("restore without archive", spec(JobType.RESTORE, destination="/tmp/r"), "archive name"),
    ("restore without destination", spec(JobType.RESTORE, archive="a"), "destination"),
    ("restore into /", spec(JobType.RESTORE, archive="a", destination="/"), "'/'"),
    ("restore into / (spelled oddly)", spec(JobType.RESTORE, archive="a", destination="//./"),
     "'/'"),
    ("restore into a source", spec(JobType.RESTORE, archive="a", destination="/srv/www"),
     "inside the backed-up folder"),
    ("restore inside a source", spec(JobType.RESTORE, archive="a", destination="/etc/nginx/x/"),
     "inside the backed-up folder"),
    ("restore inside a source via ..",
     spec(JobType.RESTORE, archive="a", destination="/tmp/../srv/www/y"),
     "inside the backed-up folder"),
    ("restore, relative destination", spec(JobType.RESTORE, archive="a", destination="r"),
     "absolute"),
    ("restore into the repository",
     spec(JobType.RESTORE, archive="a", destination="/srv/borg/main/data"), "repository"),
    ("restore, empty path", spec(JobType.RESTORE, archive="a", destination="/tmp/r", paths=("",)),
     "empty"),
    ("init, unknown encryption", spec(JobType.INIT, repo=replace(REPO, encryption="rot13")),
     "unknown encryption"),
    ("init, encrypted without passphrase", spec(JobType.INIT, repo=REPO), "passphrase"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("job", "message"), [(s, m) for _, s, m in INVALID], ids=[n for n, _, _ in INVALID]
)
def test_invalid_specs_raise_a_human_message(job: JobSpec, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_argv(job)


def test_restore_next_to_a_source_is_fine() -> None:
    job = spec(JobType.RESTORE, archive="a", destination="/srv/www-restore/")
    assert extract_cwd(job) == "/srv/www-restore"
    assert extract_cwd(replace(job, profile=None)) == "/srv/www-restore"
    # the parent of a source is allowed: archive paths are absolute, so borg writes
    # /srv/srv/www/…, never /srv/www/…
    assert extract_cwd(spec(JobType.RESTORE, archive="a", destination="/srv")) == "/srv"


def test_remote_repository_is_not_a_local_folder() -> None:
    job = spec(JobType.RESTORE, repo=REMOTE, archive="a", destination="/borg")
    assert extract_cwd(job) == "/borg"


# --- environment ----------------------------------------------------------------


def test_borg_env() -> None:
    base = {
        "HOME": "/home/u",
        "PATH": "/usr/bin",
        "LANG": "de_DE.ISO-8859-1",
        "LC_ALL": "de_DE",
        "BORG_PASSPHRASE": "leak",
        "BORG_PASSPHRASE_FD": "7",
        "BORG_NEW_PASSPHRASE": "leak2",
        "BORG_PASSCOMMAND": "cat /other",
        "BORG_REPO": "/other",
        "BORG_RSH": "ssh -i other",
        "BORG_BASE_DIR": "/home/u/.borgbase",
        "NOTIFY_SOCKET": "/run/user/1000/systemd/notify",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": "42",
        "LISTEN_FDS": "1",
    }
    env = borg_env(REMOTE, base)
    assert env == {
        "HOME": "/home/u",
        "PATH": "/usr/bin",
        "BORG_BASE_DIR": "/home/u/.borgbase",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "BORG_EXIT_CODES": "modern",
        "BORG_RSH": "ssh -i /k -o BatchMode=yes",
        "BORG_PASSCOMMAND": "secret-tool lookup borg off",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "no",
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "no",
        "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "NO",
        "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "NO",
        "BORG_DISPLAY_PASSPHRASE": "no",
    }
    assert base["BORG_PASSPHRASE"] == "leak"  # the input is not modified


def test_borg_env_defaults_and_trust() -> None:
    env = borg_env(REPO, {})
    assert env["BORG_RSH"] == "ssh -o BatchMode=yes"
    assert "BORG_PASSCOMMAND" not in env
    trusted = borg_env(REPO, {}, trust_repository=True)
    assert trusted["BORG_RELOCATED_REPO_ACCESS_IS_OK"] == "yes"
    assert trusted["BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"] == "yes"


# --- archive names ----------------------------------------------------------------

CEST = timezone(timedelta(hours=2))
NOW = datetime(2024, 5, 1, 10, 0, 7, tzinfo=CEST)
UUID = "0b5c3f5e-2d5c-4e1b-9f3a-7d1e2c3b4a59"


def render(
    template: str, taken: Container[str] = (), *, profile: str = "web", now: datetime = NOW
) -> str:
    return render_archive_name(
        template,
        profile=profile,
        hostname="laptop",
        fqdn="laptop.example.org",
        user="anna",
        now=now,
        uuid4=UUID,
        taken=taken,
    )


RENDER_TABLE: list[tuple[str, str]] = [
    ("{profile}-{now:%Y-%m-%dT%H:%M:%S}", "web-2024-05-01T10:00:07"),
    ("{profile}-{now}", "web-2024-05-01T10:00:07"),
    ("{profile}-{utcnow}", "web-2024-05-01T08:00:07"),
    ("{profile}-{utcnow:%Y%m%d-%H%M}", "web-20240501-0800"),
    ("{profile}.{unixtime}", "web.1714550407"),
    ("{hostname}-{profile}-{now:%F}", "laptop-web-2024-05-01"),
    ("{fqdn}_{user}_{profile}_{now:%H}", "laptop.example.org_anna_web_10"),
    ("{profile}-{reverse-fqdn}", "web-org.example.laptop"),
    ("{profile}-{uuid4}", f"web-{UUID}"),
    ("{{literal}}-{profile}", "{literal}-web"),
    ("{profile:_>5}-{now:%Y}", "__web-2024"),
    ("{hostname:.3}-{profile}-x", "lap-web-x"),
]


@pytest.mark.parametrize(("template", "expected"), RENDER_TABLE)
def test_render_archive_name(template: str, expected: str) -> None:
    assert render(template) == expected


def test_two_backups_in_one_second_do_not_collide() -> None:
    taken: set[str] = set()
    names = []
    for _ in range(4):
        name = render("{profile}-{now}", taken)
        taken.add(name)
        names.append(name)
    base = "web-2024-05-01T10:00:07"
    assert names == [base, f"{base}.2", f"{base}.3", f"{base}.4"]
    # the suffixed names are still inside the profile's prune scope
    rx = re.compile(translate(archive_glob("{profile}-{now}", "web")))
    assert all(rx.match(n) for n in names)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{profile}-{pid}", "{pid}"),
        ("{profile}-{nope}", "{nope}"),
        ("{profile}-{}", "{}"),
        ("{profile}-{0}", "{0}"),
        ("{profile}-{now.year}", "{now.year}"),
        ("{profile}-{borgversion}", "{borgversion}"),
        ("{profile}-{now!r}", "not supported"),
        ("{profile}-{now:{x}}", "nested"),
        ("{profile}-{now", "malformed"),
        ("{profile}}-x", "malformed"),
        ("", "empty"),
        ("{profile}/{now}", "'/'"),
        ("{profile}-{now:%D}", "'/'"),
        ("{profile}::{now}", "'::'"),
        ("{profile}-{now:%n}", "control"),
        ("{profile:>5}-{now}", "white space"),
        ("{profile}.checkpoint", "checkpoint"),
        ("{profile}" + "x" * MAX_ARCHIVE_NAME_LENGTH, "characters long"),
        ("{unixtime:q}-{profile}", "cannot format"),
    ],
)
def test_render_refuses(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render(template)


def test_render_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render("{profile}-{now}", now=datetime(2024, 1, 1))
    assert render("{profile}-{now}", now=NOW.astimezone(UTC)) == "web-2024-05-01T08:00:07"


def test_validate_archive_name() -> None:
    validate_archive_name("web-2024-05-01T10:00:07.2")
    validate_archive_name("x" * MAX_ARCHIVE_NAME_LENGTH)
    for bad in ("", "a/b", "a::b", "a\nb", " a", "a.checkpoint", "a.checkpoint.3"):
        with pytest.raises(ValueError):
            validate_archive_name(bad)


# --- prune glob ---------------------------------------------------------------------

GLOB_TABLE: list[tuple[str, str, str]] = [
    ("{profile}-{now:%Y-%m-%dT%H:%M:%S}", "web", DEFAULT_GLOB),
    ("{profile}-{now}", "web", DEFAULT_GLOB),
    ("{profile}_{utcnow:%Y%m%d}", "web", "web_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]*"),
    ("{profile}.{unixtime}", "web", "web.[0-9]*"),
    ("{hostname}-{profile}-{now:%F}", "web",
     "{hostname}-web-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"),
    ("backup-{profile}-{now:%a}", "web", "backup-web-*"),
    ("{profile}-{uuid4}", "w",
     "w-" + "-".join("[0-9a-f]" * k for k in (8, 4, 4, 4, 12)) + "*"),
    ("{profile}-{now:%-d}", "web", "web-*"),
    ("{profile}-{now:%%%j}", "web", "web-%[0-9][0-9][0-9]*"),
    # glob metacharacters and braces in the profile name are literal
    ("{profile}-{now:%Y}", "a*b?[c]{d}", "a[*]b[?][[]c]{{d}}-[0-9][0-9][0-9][0-9]*"),
    ("{{x}}{profile}-{now:%Y}", "web", "{{x}}web-[0-9][0-9][0-9][0-9]*"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "profile", "expected"), GLOB_TABLE)
def test_archive_glob(template: str, profile: str, expected: str) -> None:
    assert archive_glob(template, profile) == expected


def _borg_glob_regex(glob: str, **placeholders: str) -> re.Pattern[str]:
    """What borg does with --glob-archives: str.format with its placeholders, then translate."""
    return re.compile(translate(glob.format_map(placeholders)))


@pytest.mark.parametrize(
    "template",
    [
        "{profile}-{now}",
        "{profile}-{now:%Y-%m-%d_%H%M%S}",
        "{profile}_{utcnow:%Y%m%dT%H%M%SZ}",
        "{hostname}-{profile}-{now}",
        "{profile}.{unixtime}",
        "{profile}-{uuid4}",
        "{profile}-{user}-{now:%j-%H}",
        "{{braces}}-{profile}-{now}",
        "{profile} {now:%A %d %B %Y}",
    ],
)
def test_glob_matches_own_names_and_not_the_neighbours(template: str) -> None:
    """Oracle: borg's own shellpattern.translate.  `web` must not prune `web-vm`'s archives."""
    host = {"hostname": "laptop", "fqdn": "laptop.example.org", "user": "anna"}
    rx_web = _borg_glob_regex(archive_glob(template, "web"), **host)
    taken: set[str] = set()
    own: list[str] = []
    other: list[str] = []
    for profile, seconds in [
        ("web", 0),
        ("web", 0),  # same second: gets ".2"
        ("web", 1),
        ("web-vm", 0),
        ("web-2fa", 0),
        ("webx", 0),
    ]:
        name = render(template, taken, profile=profile, now=NOW + timedelta(seconds=seconds))
        taken.add(name)
        (own if profile == "web" else other).append(name)
    assert all(rx_web.match(n) for n in own), own
    assert all(rx_web.match(n + ".checkpoint") for n in own)
    assert not any(rx_web.match(n) for n in other), other


@pytest.mark.parametrize(
    "template",
    [
        "{now}-{profile}",
        "{profile}{now}",
        "{hostname}-{now}",
        "backup-{now}",
        "{profile}-",  # fine: ends in a delimiter
        "{profile}-{hostname}{now}",
        "{profile:.3}-{now}",
        "{profile}*{now}",
        "{profile}-daily",
    ],
)
def test_unsafe_prune_templates_are_refused(template: str) -> None:
    if template == "{profile}-":
        assert archive_glob(template, "web") == "web-*"
        return
    with pytest.raises(ValueError, match=r"pruned safely|format spec"):
        archive_glob(template, "web")
    with pytest.raises(ValueError):
        validate_archive_template(template)


def test_validate_archive_template_accepts_the_default() -> None:
    validate_archive_template(ProfileConfig("p", "r", ("/a",)).archive_template)
    validate_archive_template("{hostname}-{profile}-{now:%Y-%m-%d}")
    with pytest.raises(ValueError, match="empty"):
        archive_glob("{profile}-{now}", "")


def test_checkpoint_base_is_the_archive_a_checkpoint_stands_in_for() -> None:
    assert checkpoint_base("web-1.checkpoint") == "web-1"
    assert checkpoint_base("web-1.checkpoint.2") == "web-1"
    assert checkpoint_base("web-1.2") == "web-1.2"


def test_a_listed_path_with_undecodable_bytes_restores_through_a_pattern() -> None:
    argv = build_argv(
        spec(JobType.RESTORE, archive="a", destination="/tmp/out", paths=("/s/raw-?.bin", "s/ok"))
    )
    assert argv[-2:] == (r"re:^s/raw\-[^/]\.bin(/.*)?$", "s/ok")


def test_upload_ratelimit_is_borgs_own_flag_for_the_version_in_use() -> None:
    from dataclasses import replace

    limited = replace(REMOTE, upload_ratelimit=500)
    job = spec(JobType.BACKUP, repo=limited, archive_name=ARCHIVE)
    new = build_argv(job, version=(1, 4, 0))
    old = build_argv(job, version=(1, 2, 8))
    assert new[:3] == ("borg", "create", "--upload-ratelimit=500")
    assert old[:3] == ("borg", "create", "--remote-ratelimit=500")
    assert new[3:] == old[3:]
    prune = build_argv(spec(JobType.PRUNE, repo=limited), version=(1, 4, 1))
    assert prune[2] == "--upload-ratelimit=500"  # every command that talks to the repository
    assert "--upload-ratelimit" not in " ".join(build_argv(spec(JobType.PRUNE, repo=REMOTE)))


def test_nice_and_ionice_run_borg_in_the_same_process() -> None:
    from dataclasses import replace

    easy = replace(WEB, nice=10, ionice="idle")
    argv = build_argv(spec(JobType.BACKUP, profile=easy, archive_name=ARCHIVE))
    assert argv[:7] == ("nice", "-n", "10", "ionice", "-c", "3", "borg")
    assert build_argv(spec(JobType.BACKUP, profile=replace(WEB, ionice="best-effort"),
                           archive_name=ARCHIVE))[:4] == ("ionice", "-c", "2", "borg")  # fmt: skip
    assert build_argv(spec(JobType.BACKUP, archive_name=ARCHIVE))[0] == "borg"
    assert build_argv(spec(JobType.COMPACT, profile=None))[0] == "borg"
    with pytest.raises(ValueError, match="nice"):
        build_argv(spec(JobType.BACKUP, profile=replace(WEB, nice=25), archive_name=ARCHIVE))
