"""The Jobs view's pure model: row order, the filter language, and the text of cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from borgd.ui import model as m
from tests.ui.fake import NOW, at, job

# -- order and the job set --------------------------------------------------------------


def test_rows_scheduled_by_due_then_active_then_finished_newest_first():
    jobs = m.Jobs()
    jobs.reset(
        [
            job(1, status="succeeded", finished_at=at(hours=-5)),
            job(2, status="scheduled", scheduled_for=at(hours=3)),
            job(3, status="queued"),
            job(4, status="failed", finished_at=at(hours=-1)),
            job(5, status="scheduled", scheduled_for=at(hours=1)),
            job(6, status="running"),
            job(7, status="skipped", finished_at=at(hours=-1)),  # same time as 4: newer id first
            job(8, status="queued"),
        ]
    )
    assert [j["id"] for j in jobs.rows()] == [5, 2, 6, 3, 8, 7, 4, 1]


def test_signals_apply_to_known_jobs_and_unknown_ones_are_said():
    jobs = m.Jobs()
    jobs.reset([job(1, status="queued")])
    assert jobs.changed(1, {"status": "running", "progress": 0.5})
    assert jobs.get(1) is not None and jobs.get(1)["status"] == "running"  # type: ignore[index]
    assert not jobs.changed(99, {"status": "failed"})
    assert 99 not in jobs
    jobs.added(2, {k: v for k, v in job(2, status="scheduled").items() if k != "id"})
    assert jobs.get(2) is not None and jobs.get(2)["id"] == 2  # type: ignore[index]
    jobs.reset([job(3)])
    assert [j["id"] for j in jobs.rows()] == [3]


def test_only_the_newest_finished_jobs_are_kept():
    jobs = m.Jobs(keep_finished=2)
    jobs.merge([job(i, status="succeeded", finished_at=at(hours=-10 + i)) for i in range(1, 5)])
    jobs.added(9, job(9, status="queued"))
    assert [j["id"] for j in jobs.rows()] == [9, 4, 3]


# -- the filter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", m.Filter()),
        ("status:failed", m.Filter(status=frozenset({"failed"}))),
        ("STATUS:Failed,warning", m.Filter(status=frozenset({"failed", "warning"}))),
        ("status:failed status:cancelled", m.Filter(status=frozenset({"failed", "cancelled"}))),
        ("status:active", m.Filter(status=frozenset({"queued", "running"}))),
        (
            "profile:home repo:usb",
            m.Filter(profile=frozenset({"home"}), repository=frozenset({"usb"})),
        ),
        (
            "repository:usb type:check",
            m.Filter(repository=frozenset({"usb"}), type=frozenset({"check"})),
        ),
        ("'no such' home", m.Filter(words=("no such", "home"))),
    ],
)
def test_filter_parses(text, expected):
    parsed = m.parse_filter(text)
    assert parsed == expected
    assert m.parse_filter(str(parsed)) == parsed  # what the filter line shows reads back


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("colour:red", "unknown filter key 'colour'"),
        ("status:faild", "unknown status 'faild'"),
        ("type:tar", "unknown type 'tar'"),
        ("status:", "status: needs a value"),
        ("profile:'home", "filter:"),
    ],
)
def test_filter_mistakes_say_what_would_do(text, says):
    with pytest.raises(m.FilterError, match=says):
        m.parse_filter(text)


def test_filter_matches_all_keys_and_words():
    flt = m.parse_filter("status:failed,warning profile:home disk")
    assert flt.matches(job(1, status="failed", message="Disk full"))
    assert not flt.matches(job(2, status="failed", message="lock timeout"))
    assert not flt.matches(job(3, status="succeeded", message="disk"))
    assert not flt.matches(job(4, status="failed", profile="work", message="disk"))
    assert flt.list_jobs_filter() == {"profile": ["home"], "status": ["failed", "warning"]}
    assert not m.Filter()
    assert m.Filter().matches(job(5))


# -- cells ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {"status": "running", "progress": 0.427, "rate": 12.5e6, "eta": 35_000_000},
            "42% 12.5 MB/s 0:35",
        ),
        (
            {"status": "running", "progress": -1.0, "original_size": 2_100_000_000, "rate": 3e8},
            "2.1 GB 300.0 MB/s",
        ),
        ({"status": "running", "progress": 1.0, "eta": 3_725_000_000}, "100% 1:02:05"),
        ({"status": "running", "progress": -1.0}, "…"),
        ({"status": "succeeded", "progress": 1.0, "rate": 5.0}, ""),
    ],
)
def test_progress_with_rate_and_eta(fields, text):
    assert m.progress_text(job(1, **fields)) == text


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"status": "scheduled", "blocked_by": "on-battery"}, "waits: on-battery"),
        (
            {"status": "queued", "blocked_by": "archives-mounted", "message": "job 3 mounts"},
            "waits: archives-mounted — job 3 mounts",
        ),
        (
            {"status": "skipped", "skip_reason": "paused", "message": "borgd was paused"},
            "paused — borgd was paused",
        ),
        (
            {"status": "running", "progress": 0.5, "progress_message": "Backing up files"},
            "50% Backing up files",
        ),
        ({"status": "succeeded", "archive": "home-1"}, "home-1"),
        # A failed job names its cause, never an archive it did not make.
        (
            {"status": "failed", "archive": "home-2", "message": "lock timeout (exit 73)"},
            "lock timeout (exit 73)",
        ),
        (
            {"status": "warning", "archive": "w-1", "message": "source /x missing"},
            "source /x missing",
        ),
        ({"status": "failed", "message": "x" * 60}, "x" * 47 + "…"),
    ],
)
def test_detail_says_why(fields, text):
    assert m.detail_text(job(1, **fields)) == text


def test_when_is_due_queued_started_or_ended_and_never_future_for_the_past():
    assert m.when_text(job(1, status="scheduled", scheduled_for=at(hours=2)), NOW) == "in 2 h"
    assert m.when_text(job(1, status="queued", queued_at=at(minutes=-3)), NOW) == "3 min ago"
    assert m.when_text(job(1, status="running", started_at=at(minutes=-10)), NOW) == "10 min ago"
    assert m.when_text(job(1, status="failed", finished_at=at(hours=-1.5)), NOW) == "1.5 h ago"
    # A skipped intent keeps its (future) due time; the row shows when it was recorded.
    skipped = job(1, status="skipped", scheduled_for=at(hours=5), finished_at=at(hours=1))
    assert m.when_text(skipped, NOW) == "now"


def test_job_cells_have_every_column():
    cells = m.job_cells(job(7, status="failed", profile="", message="boom"), NOW)
    assert list(cells) == [key for key, _ in m.JOB_COLUMNS]
    assert (cells["id"], cells["profile"], cells["detail"]) == ("7", "-", "boom")


def test_describe_lists_the_facts():
    lines = m.describe(
        job(
            4,
            status="running",
            trigger="requeue",
            requeued_from=2,
            started_at=at(minutes=-1),
            progress=0.5,
            progress_message="Backing up files",
        ),
        NOW,
    )
    assert lines[0] == "job 4: backup of home — running"
    assert "requeued from job 2" in lines[1]
    assert "progress 50%  Backing up files" in lines


def test_status_line():
    props = {
        "Version": "0.1.0",
        "Paused": True,
        "PausedUntil": at(hours=1),
        "ActiveJobs": 2,
        "NextRun": at(hours=3),
        "OnBattery": True,
        "StoreHealth": "unavailable: disk full",
    }
    assert m.status_line(props, True, NOW) == (
        "borgd 0.1.0 · PAUSED until in 1 h · 2 running · next run in 3 h · on battery"
        " · store unavailable: disk full"
    )
    assert m.status_line({"Version": "1"}, True, NOW) == "borgd 1 · idle"
    assert m.status_line(props, False, NOW) == "borgd is not running — waiting"


def test_error_text():
    assert m.error_text("org.borgd1.Error.InvalidState", "job 3 is succeeded") == (
        "InvalidState: job 3 is succeeded"
    )
    assert m.error_text("", "") == "error"


def test_ellipsize():
    assert m.ellipsize("a\nb   c", 10) == "a b c"
    assert m.ellipsize("abcdef", 4) == "abc…"


# -- Upcoming ---------------------------------------------------------------------------------


def run(when: datetime, sid: int = 1, **fields) -> dict:
    return {
        "schedule_id": sid,
        "profile": "home",
        "action": "backup",
        "scheduled_for": int(when.timestamp() * 1e6),
        "deferred_to": 0,
        "blocked_by": "",
        **fields,
    }


def test_calendar_days_from_today_in_the_views_zone():
    plus_one = timezone(timedelta(hours=1))
    now = NOW.astimezone(plus_one)
    runs = [
        run(datetime(2026, 12, 1, 23, 30, tzinfo=UTC)),  # Dec 2, 00:30 at +1
        run(datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
        run(datetime(2027, 2, 1, 12, 0, tzinfo=UTC)),  # beyond the 30 days
    ]
    days = m.calendar_days(runs, now, 30)
    assert len(days) == 30
    assert days[0].day.isoformat() == "2026-12-01" and days[-1].day.isoformat() == "2026-12-30"
    assert [len(d.runs) for d in days[:3]] == [1, 1, 0]
    weeks = m.calendar_weeks(days)
    assert weeks[0][:1] == [None]  # Dec 1, 2026 is a Tuesday: Monday is empty
    assert all(len(w) == 7 for w in weeks)
    assert [d.day.day for w in weeks for d in w if d][:3] == [1, 2, 3]
    assert m.calendar_weeks([]) == []


def test_day_cells_fit_nine_columns_and_mark_held_runs():
    today = NOW.date()
    held = m.Day(today, (run(NOW, deferred_to=at(hours=5), blocked_by="blackout"),))
    assert m.day_cell(held, today) == "Dec 1  1!"
    assert m.day_cell(m.Day(today + timedelta(days=1)), today) == "2      · "
    assert (
        m.day_cell(m.Day(datetime(2027, 1, 1).date(), tuple(run(NOW) for _ in range(12))), today)
        == "Jan 1 12 "
    )
    assert m.day_cell(None, today) == ""


def test_day_rows_collapse_frequent_schedules_and_say_when_held_runs_start():
    day0 = NOW.replace(hour=0)
    runs = [run(day0 + timedelta(hours=h), sid=3, profile="work") for h in range(0, 24, 3)]
    runs.append(
        run(
            day0.replace(hour=2),
            sid=4,
            profile="media",
            deferred_to=int(day0.replace(hour=8).timestamp() * 1e6),
            blocked_by="blackout",
        )
    )
    runs.append(run(day0.replace(hour=12), sid=1))
    day = m.calendar_days(runs, NOW, 1)[0]
    assert m.day_rows(day, UTC) == [
        ("00:00–21:00", "work", "backup", "8 runs"),
        ("02:00", "media", "backup", "waits for Tue 08:00 (blackout)"),
        ("12:00", "home", "backup", ""),
    ]


# -- Profiles -----------------------------------------------------------------------------------


def test_sparkline_and_bar_chart():
    assert m.sparkline([]) == ""
    assert m.sparkline([0, 0]) == "▁▁"
    assert m.sparkline([1, 2, 4, 8]) == "▂▃▅█"
    stats = [
        {"finished_at": at(days=-1), "deduplicated_size": 1000},
        {"finished_at": at(hours=-1), "deduplicated_size": 250},
    ]
    assert m.bar_chart(stats, NOW, width=8) == [
        "11-30 10:00 ████████ 1.0 kB",
        "12-01 09:00 ██       250 B",
    ]
    assert m.bar_chart([], NOW) == ["no backups yet"]


def test_profile_rows():
    profiles = [
        {
            "name": "work",
            "repository": "usb",
            "enabled": True,
            "overdue": False,
            "last_success": at(hours=-28),
        },
        {
            "name": "home",
            "repository": "local",
            "enabled": True,
            "overdue": True,
            "last_success": at(days=-10),
        },
        {
            "name": "new",
            "repository": "local",
            "enabled": True,
            "overdue": False,
            "last_success": 0,
        },
        {
            "name": "off",
            "repository": "local",
            "enabled": False,
            "overdue": True,
            "last_success": 0,
        },
    ]
    schedules = [
        {"profile": "home", "enabled": True, "next_run": at(hours=5)},
        {"profile": "home", "enabled": True, "next_run": at(hours=2)},
        {"profile": "home", "enabled": False, "next_run": at(hours=1)},
    ]
    repositories = [{"name": "local", "size": 1_234_000_000}, {"name": "usb", "size": 0}]
    stats = {
        "usb": [
            {"profile": "work", "deduplicated_size": 5, "repository_size": 456_000_000},
            {"profile": "work", "deduplicated_size": 10, "repository_size": 0},
        ]
    }
    rows = {r.name: r for r in m.profile_rows(profiles, schedules, repositories, stats, NOW)}
    assert [r for r in rows] == ["home", "new", "off", "work"]
    assert (rows["home"].state, rows["home"].next_run, rows["home"].repository_size) == (
        "OVERDUE",
        "in 2 h",
        "1.2 GB",
    )
    assert (rows["new"].state, rows["new"].last_success) == ("never", "-")
    assert rows["off"].state == "disabled"
    assert (rows["work"].repository_size, rows["work"].recent, rows["work"].next_run) == (
        "456.0 MB",
        "▅█",
        "-",
    )


# -- Archives ----------------------------------------------------------------------------------


def test_archive_and_entry_cells():
    archive = {
        "name": "a",
        "start": at(hours=-2),
        "profile": "",
        "original_size": 2000,
        "deduplicated_size": 10,
        "checkpoint": True,
    }
    assert m.archive_cells(archive, NOW) == ("a (checkpoint)", "2 h ago", "-", "2.0 kB", "10 B")
    entry = {"path": "home/me/notes.txt", "type": "-", "size": 2048, "mtime": at(days=-1)}
    assert m.entry_cells(entry, "home/me", UTC, True) == (
        "[x]",
        "notes.txt",
        "2.0 kB",
        "2026-11-30 10:00",
    )
    folder = {"path": "home", "type": "d", "size": 0, "mtime": 0}
    assert m.entry_cells(folder, "", UTC, False) == ("[ ]", "home/", "", "")
    link = {"path": "l", "type": "l", "target": "/etc", "size": 4, "mtime": 0}
    assert m.entry_cells(link, "", UTC, False)[1] == "l -> /etc"
    assert (m.parent_of("a/b/c"), m.parent_of("a")) == ("a/b", "")
    assert m.diff_cells({"path": "p", "changes": ["modified", "mode"], "size_delta": -4000}) == (
        "modified, mode",
        "-4.0 kB",
        "p",
    )
    assert m.default_mountpoint("/run/user/1000/", "r", "") == "/run/user/1000/borgd/mnt/r"
    assert m.default_mountpoint("/run/u", "r", "a") == "/run/u/borgd/mnt/r/a"
