"""Who hears what, the pings' URLs, tokens kept out of text, retries spaced (pure)."""

from __future__ import annotations

import pytest

from borgd.core import notifications as n
from borgd.core.jobs import JobStatus, JobType, SkipReason
from borgd.errors import InvalidArgument

HOUR = 3_600_000_000


def wants(**kw) -> bool:
    base = dict(
        kind="apprise",
        events=["job-failed"],
        profiles=[],
        enabled=True,
        event="job-failed",
        profile="web",
        job_type=JobType.BACKUP,
    )
    return n.wants(**{**base, **kw})


def test_only_the_events_and_profiles_asked_for() -> None:
    assert wants()
    assert not wants(event="job-succeeded")
    assert not wants(enabled=False)
    assert wants(profiles=["web", "home"])
    assert not wants(profiles=["home"])
    assert wants(job_type=JobType.PRUNE)  # people hear of any job's failure


def test_a_ping_monitor_hears_backups_and_a_warning_as_success() -> None:
    hc = dict(kind="healthchecks", events=["job-started", "job-succeeded", "job-failed"])
    assert wants(**hc, event="job-started")
    assert not wants(**hc, event="job-started", job_type=JobType.PRUNE)
    assert wants(**hc, event="job-warning")  # pinged as the success it is
    assert not wants(kind="healthchecks", events=["job-failed"], event="job-warning")
    base = "https://hc-ping.com/abc-123"
    assert n.ping_url(base, "job-started", "R", warning_fails=False) == f"{base}/start?rid=R"
    assert n.ping_url(base + "/", "job-succeeded", "R", warning_fails=False) == f"{base}?rid=R"
    assert n.ping_url(base, "job-failed", "R", warning_fails=False) == f"{base}/fail?rid=R"
    assert n.ping_url(base, "job-warning", "R", warning_fails=False) == f"{base}?rid=R"
    assert n.ping_url(base, "job-warning", "R", warning_fails=True) == f"{base}/fail?rid=R"
    assert n.ping_url("http://h/p?create=1", "job-failed", "R", warning_fails=False) == (
        "http://h/p/fail?create=1&rid=R"
    )


def test_job_statuses_are_events_and_the_run_id_is_the_jobs() -> None:
    assert n.job_events(JobStatus.RUNNING) == ["job-started"]
    assert n.job_events(JobStatus.FAILED) == ["job-failed"]
    assert n.job_events(JobStatus.QUEUED) == []
    assert n.job_events(JobStatus.CANCELLED) == []
    assert n.job_events(JobStatus.SKIPPED, SkipReason.PAUSED) == ["job-skipped"]
    assert n.job_events(JobStatus.SKIPPED, SkipReason.MISSED_WINDOW) == [
        "job-skipped",
        "missed-window",
    ]
    assert n.run_id("host", 7) == n.run_id("host", 7) != n.run_id("host", 8)
    assert n.delivery_key(3, "job-failed", "7") != n.delivery_key(3, "job-failed", "8")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://hc-ping.com/TOKEN", "https://hc-ping.com"),
        ("ntfy://user:pass@ntfy.example:8080/topic?priority=5", "ntfy://ntfy.example:8080"),
        ("mailto://me:secret@gmail.com", "mailto://gmail.com"),
        ("json://127.0.0.1:9/x", "json://127.0.0.1:9"),
    ],
)
def test_only_scheme_and_host_are_shown(url: str, host: str) -> None:
    assert n.public_host(url) == host


def test_no_piece_of_the_url_survives_in_an_error() -> None:
    url = "https://user:p%40ss@hooks.example/services/T0K3N/B1GSECRET?token=q9q9q9"
    text = (
        f"Client error '404' for url '{url}'; path /services/T0K3N/B1GSECRET, user user, "
        "password p@ss, token q9q9q9"
    )
    clean = n.scrub(text, url)
    for piece in ("T0K3N", "B1GSECRET", "q9q9q9", "p@ss", "p%40ss"):
        assert piece not in clean
    assert "404" in clean


def test_retries_double_up_to_an_hour_and_stop_after_a_day() -> None:
    delays = []
    now = created = 0
    attempts = 0
    while (due := n.next_attempt(created, attempts + 1, now)) is not None:
        delays.append(due - now)
        now, attempts = due, attempts + 1
    assert delays[:3] == [30_000_000, 60_000_000, 120_000_000]
    assert max(delays) == HOUR
    assert 23 * HOUR < now <= 24 * HOUR


def test_settings_default_by_kind_and_are_checked() -> None:
    hc = n.settings_from({"kind": "healthchecks"}, None)
    assert hc.events == ("job-started", "job-succeeded", "job-failed")
    assert n.settings_from({}, None).events == n.DEFAULT_EVENTS["apprise"]
    changed = n.settings_from({"profiles": ["web"]}, hc)
    assert (changed.kind, changed.events, changed.profiles) == (
        "healthchecks",
        hc.events,
        ("web",),
    )
    with pytest.raises(InvalidArgument, match="unknown event"):
        n.settings_from({"events": ["job-exploded"]}, None)
    with pytest.raises(InvalidArgument, match="unknown notifier kind"):
        n.settings_from({"kind": "pager"}, None)
    with pytest.raises(InvalidArgument, match="http"):
        n.check_url("webhook", "ntfy://topic")
    with pytest.raises(InvalidArgument, match="line breaks"):
        n.check_url("apprise", "ntfy://topic\nx")
