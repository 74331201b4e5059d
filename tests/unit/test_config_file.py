"""borgd.toml: parse, plan (the diff), render — pure, no daemon."""

from __future__ import annotations

import pytest

from borgd.cli.config_file import ConfigError, format_duration, parse, plan, render

FILE = """
[repositories.main]
url = "/backup/main"
encryption = "none"
init = true

[profiles.home]
repository = "main"
sources = ["/home/me"]
excludes = ["*.tmp"]
keep_daily = 7
prune_after = true
max_age = "2d"

[[schedules]]
profile = "home"
spec = "daily"
skip_on_battery = true
catch_up_window = "12h"
"""


def test_parse_reads_every_section_with_durations():
    d = parse(FILE)
    assert d.repositories["main"] == {"url": "/backup/main", "encryption": "none", "init": True}
    assert d.profiles["home"]["max_age"] == 2 * 86400 * 10**6
    assert d.schedules == [
        {
            "profile": "home",
            "action": "backup",
            "spec": "daily",
            "skip_on_battery": True,
            "catch_up_window": 12 * 3600 * 10**6,
        }
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[repositories.x]\nurl = 1", "url is required"),
        ("[profiles.p]\nrepository = 'r'\nsources = ['/x']\ncolour = 'red'", "colour"),
        ("[profiles.p]\nrepository = 'r'\nsources = ['/x']\nkeep_daily = 'seven'", "whole number"),
        ("[[schedules]]\nprofile = 'p'\nspec = 'daily'\ncatch_up_window = 'soon'", "duration"),
        ("[nonsense]", "unknown key"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_files_say_where(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_plan_on_empty_adds_in_order_then_nothing_once_applied():
    d = parse(FILE)
    actions = plan(d, [], [], [])
    assert [a.member for a in actions] == ["AddRepository", "AddProfile", "AddSchedule"]
    repos = [
        {
            "id": 1,
            "name": "main",
            "url": "/backup/main",
            "encryption": "none",
            "ssh_command": "",
            "lock_wait": 0,
            "has_passphrase": False,
            "has_passcommand": False,
        }
    ]
    profiles = [
        {
            "id": 1,
            "name": "home",
            "repository": "main",
            "sources": ["/home/me"],
            "excludes": ["*.tmp"],
            "compression": "",
            "archive_template": "{profile}-{now:%Y-%m-%dT%H:%M:%S}",
            "keep_within": "",
            "keep_hourly": 0,
            "keep_daily": 7,
            "keep_weekly": 0,
            "keep_monthly": 0,
            "keep_yearly": 0,
            "prune_after": True,
            "compact_after": False,
            "check_every": 0,
            "pre_command": "",
            "post_command": "",
            "enabled": True,
            "max_age": 2 * 86400 * 10**6,
            "inhibit_sleep": True,
            "one_file_system": False,
        }
    ]
    schedules = [
        {
            "id": 4,
            "profile": "home",
            "action": "backup",
            "spec": "daily",
            "timezone": "",
            "catch_up": True,
            "catch_up_window": 12 * 3600 * 10**6,
            "randomized_delay": 0,
            "skip_on_battery": True,
            "skip_on_metered": False,
            "enabled": True,
        }
    ]
    assert plan(d, repos, profiles, schedules) == []
    profiles[0]["keep_daily"] = 3
    schedules[0]["skip_on_battery"] = False
    changed = plan(d, repos, profiles, schedules)
    assert [(a.member, a.args[0]) for a in changed] == [
        ("UpdateProfile", "home"),
        ("UpdateSchedule", 4),
    ]
    assert changed[0].args[1] == {"keep_daily": ("u", 7)}
    # --prune removes what the file does not name, schedules before profiles before repositories.
    extra = [*schedules, {**schedules[0], "id": 9, "spec": "weekly"}]
    pruned = plan(parse(""), repos, profiles, extra, prune=True)
    assert [a.member for a in pruned] == [
        "RemoveSchedule",
        "RemoveSchedule",
        "RemoveProfile",
        "RemoveRepository",
    ]


def test_a_repository_url_cannot_change():
    repos = [{"name": "main", "url": "/elsewhere"}]
    with pytest.raises(ConfigError, match="cannot change"):
        plan(parse(FILE), repos, [], [])


def test_render_then_parse_round_trips():
    repos = [
        {
            "name": "main",
            "url": "/backup/main",
            "encryption": "none",
            "ssh_command": "",
            "lock_wait": 0,
            "has_passphrase": False,
            "has_passcommand": False,
        }
    ]
    profiles = [
        {
            "name": "home",
            "repository": "main",
            "sources": ['/home/me "x"'],
            "excludes": [],
            "keep_daily": 7,
            "max_age": 90 * 60 * 10**6,
            "enabled": False,
        }
    ]
    schedules = [
        {
            "profile": "home",
            "action": "check",
            "spec": "Mon *-*-* 03:00",
            "timezone": "Europe/Berlin",
            "randomized_delay": 1,
        }
    ]
    d = parse(render(repos, profiles, schedules))
    assert d.repositories == {"main": {"url": "/backup/main", "encryption": "none"}}
    assert d.profiles["home"] == {
        "repository": "main",
        "sources": ['/home/me "x"'],
        "keep_daily": 7,
        "max_age": 90 * 60 * 10**6,
        "enabled": False,
    }
    assert (
        d.schedules[0]["timezone"] == "Europe/Berlin" and d.schedules[0]["randomized_delay"] == 1
    )


def test_durations_are_written_in_the_largest_exact_unit():
    assert format_duration(86400 * 10**6) == "1d"
    assert format_duration(90 * 60 * 10**6) == "90m"
    assert format_duration(7 * 10**6) == "7s"
    assert format_duration(1500) == 1500
