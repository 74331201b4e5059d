"""The view's keys and signals against the borgd stand-in (tests/ui/fake.py): which call
each key makes, that borgd's errors become a note line, and that signals apply in bus
order.  The real daemon is in test_jobs_view.py; here the answers are the fake's."""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from typing import Any

import pytest

from borgd.ui.app import BorgdApp
from borgd.ui.base import LivePane
from borgd.ui.source import Owner, Reply, Signal
from tests.conftest import ROOT
from tests.ui.conftest import quiet, screen_text, settle, wait_for
from tests.ui.fake import FakeSource, at, clock, job

pytestmark = pytest.mark.anyio


def calls(source: FakeSource, member: str) -> list[Any]:
    return [args for name, args in source.calls if name == member]


def note(app: BorgdApp) -> str:
    return screen_text(app).splitlines()[-2].strip()


async def test_errors_from_borgd_are_a_note_line_and_the_view_goes_on():
    source = FakeSource()
    async with BorgdApp(source, clock=clock).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await settle(pilot)
        for _ in range(5):  # down to job 6, succeeded
            await pilot.press("down")
        await pilot.press("c")
        await wait_for(pilot, lambda: note(app) == "InvalidState: job 6 is succeeded", "note")
        assert calls(source, "CancelJob") == [[6]]
        await pilot.press("u")
        await wait_for(pilot, lambda: calls(source, "RequeueJob") == [[6]], "the requeue call")
        assert app.is_running
        # A filter that means nothing says why, and changes nothing.
        await pilot.press("slash", *"status:nope", "enter")
        await wait_for(pilot, lambda: note(app).startswith("unknown status 'nope'"), "note")
        assert app.query_one("#filter-input").display
        await pilot.press("escape")
        assert not app.query_one("#filter-input").display


async def test_run_pause_and_resume():
    source = FakeSource()
    async with BorgdApp(source, clock=clock).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await settle(pilot)
        await pilot.press("r")  # job 3 is media's
        await wait_for(pilot, lambda: note(app) == "backup of media queued: job 101", "r")
        assert calls(source, "StartJob") == [["media", "backup", {}]]
        await pilot.press("3", "down", "down", "r")  # Profiles: work
        await wait_for(pilot, lambda: len(calls(source, "StartJob")) == 2, "r on a profile")
        assert calls(source, "StartJob")[1] == ["work", "backup", {}]

        await pilot.press("p")
        await wait_for(pilot, lambda: calls(source, "Pause") == [[0]], "pause")
        source.emit(Signal("PropertiesChanged", "", {"Paused": True, "PausedUntil": 0}))
        await wait_for(pilot, lambda: "PAUSED" in screen_text(app).splitlines()[0], "paused")
        await pilot.press("p")
        await wait_for(pilot, lambda: calls(source, "Resume") == [[]], "resume")


async def test_signals_apply_in_bus_order_and_borgd_coming_back_reloads():
    source = FakeSource()
    async with BorgdApp(source, clock=clock).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await settle(pilot)
        # A fresh list, then a change made after it: the change wins.
        source.emit(Reply("live", [job(20, status="queued")]))
        source.emit(Signal("JobChanged", 20, {"status": "running", "progress": 0.5}))
        await wait_for(
            pilot, lambda: app.jobs.get(20) and app.jobs.get(20)["status"] == "running", ""
        )  # type: ignore[index]
        assert app.jobs.get(6) is None  # "live" replaced the jobs; "merge" would add
        # A change of a job this view never saw: it asks borgd for it.
        source.jobs.append(job(30, status="failed", finished_at=at(minutes=-1)))
        source.emit(Signal("JobChanged", 30, {"status": "failed"}))
        await wait_for(pilot, lambda: 30 in app.jobs, "GetJob of job 30")
        assert calls(source, "GetJob") == [[30]]

        source.emit(Owner(False))
        await wait_for(pilot, lambda: "not running" in screen_text(app).splitlines()[0], "gone")
        before = len(calls(source, "ListJobs"))
        source.emit(Owner(True))
        await wait_for(pilot, lambda: len(calls(source, "ListJobs")) == before + 2, "reload")
        await wait_for(pilot, lambda: quiet(app) and 6 in app.jobs, "the jobs again")
        assert "borgd 0.1.0" in screen_text(app).splitlines()[0]


async def test_archives_browse_restore_mount_and_diff():
    source = FakeSource()
    async with BorgdApp(source, clock=clock).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await settle(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: calls(source, "ListArchives"), "the archives")
        await pilot.press("enter")  # from the repositories to their archives
        await pilot.press("m")
        await wait_for(pilot, lambda: calls(source, "MountArchive"), "mount")
        newest = "home-2026-12-01T08:00:00"
        assert calls(source, "MountArchive") == [["local", newest, "", {}]]
        # While its mount job runs, m unmounts it.
        source.emit(
            Signal(
                "JobAdded",
                102,
                {**job(102, type="mount", status="running", profile="", archive=newest)},
            )
        )
        await wait_for(pilot, lambda: 102 in app.jobs, "the mount job")
        await pilot.press("m")
        await wait_for(pilot, lambda: calls(source, "UnmountArchive") == [[102]], "unmount")

        await pilot.press("space", "down", "d")  # mark the newest, diff with the one before
        await wait_for(pilot, lambda: calls(source, "DiffArchives"), "diff")
        assert calls(source, "DiffArchives")[0][:3] == [
            "local",
            "home-2026-11-30T08:00:00",
            newest,
        ]
        await wait_for(pilot, lambda: "home/me/old.txt" in screen_text(app), "the diff")
        await pilot.press("escape", "up", "enter")
        for _ in range(2):  # the archive's top → home/ → me/
            await wait_for(pilot, lambda: quiet(app), "the folder")
            await pilot.press("enter")
        await wait_for(pilot, lambda: "notes.txt" in screen_text(app), "home/me")
        await pilot.press("down", "space", "R")
        await wait_for(pilot, lambda: "Restore home/me/notes.txt" in screen_text(app), "ask")
        await pilot.press("ctrl+u", *"/tmp/back", "enter")  # ctrl+u: clear the input
        await wait_for(pilot, lambda: calls(source, "StartJob"), "the restore")
        assert calls(source, "StartJob") == [
            [
                "home",
                "restore",
                {"archive": newest, "destination": "/tmp/back", "paths": ["home/me/notes.txt"]},
            ]
        ]
        await wait_for(pilot, lambda: note(app) == "restore queued: job 101 → /tmp/back", "")


def test_other_commands_do_not_import_textual_and_ui_needs_a_terminal():
    code = (
        "import sys, borgd.cli.main as m\n"
        "m.main(['calendar', 'daily'])\n"
        "sys.exit('textual' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done
    done = subprocess.run(
        [sys.executable, "-m", "borgd.cli.main", "ui"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "borgctl: ui needs a terminal (for a listing use: borgctl jobs)\n"


async def test_loads_cancelled_before_they_start_leave_no_coroutine_behind():
    """Loads asked for in a burst cancel each other (an exclusive worker group), and
    a cancelled one may never start.  Its coroutine must not have been made already:
    Python then warns "coroutine … was never awaited" (a CI run of the snapshots
    showed it)."""
    source = FakeSource()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        async with BorgdApp(source, clock=clock).run_test(size=(80, 24)) as pilot:
            app: BorgdApp = pilot.app  # type: ignore[assignment]
            await settle(pilot)
            for pane in app.query(LivePane):
                for _ in range(5):
                    pane._start()
            await settle(pilot)
            assert app.is_running
        gc.collect()
    never = [str(w.message) for w in seen if "never awaited" in str(w.message)]
    assert never == []
    assert len(calls(source, "ListJobs")) >= 2  # the loads that did start, ran
