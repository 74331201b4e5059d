"""Each tab of `borgctl ui` at 80x24, drawn from a fixed store and a fixed clock.

The store is tests/ui/fake.py (no bus, no daemon), the clock stands at
2026-12-01 10:00 UTC: the pictures change only when the view does.  They are
SVG files under tests/ui/__snapshots__/; after a deliberate change, regenerate
them with `pytest tests/ui/test_snapshots.py --snapshot-update` and look at them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from borgd.ui.app import BorgdApp
from tests.ui.conftest import quiet, settle, wait_for
from tests.ui.fake import FakeSource, clock


def keys(*pressed: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Load, press the keys, and wait until what they asked for is drawn."""

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await wait_for(pilot, lambda: quiet(pilot.app), f"the view after {key}")  # type: ignore[arg-type]
        await pilot.pause()

    return run


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> BorgdApp:
    monkeypatch.delenv("NO_COLOR", raising=False)
    return BorgdApp(FakeSource(), clock=clock)


def test_jobs_tab(snap_compare, app):
    """Scheduled (the one held back by on-battery first: it is due), running with progress,
    rate and ETA, queued, then finished newest first with their messages."""
    assert snap_compare(app, run_before=keys())


def test_upcoming_tab(snap_compare, app):
    """The 30 days from Tuesday Dec 1 as weeks; weekend days marked '!' (a blackout defers
    the media backup); today's runs below."""
    assert snap_compare(app, run_before=keys("2"))


def test_upcoming_weekend_day(snap_compare, app):
    """Saturday Dec 5: work's frequent runs are absent, media's waits for 08:00."""
    assert snap_compare(app, run_before=keys("2", "right", "right", "right", "right"))


def test_profiles_tab(snap_compare, app):
    """home ok with its chart, media OVERDUE, work with the size from its last backup."""
    assert snap_compare(app, run_before=keys("3"))


def test_archives_tab(snap_compare, app):
    """The repositories, and the archives of the first one."""
    assert snap_compare(app, run_before=keys("4"))


def test_archive_contents(snap_compare, app):
    """Browsing an archive down to home/me, one file selected for a restore."""
    assert snap_compare(
        app, run_before=keys("4", "enter", "enter", "enter", "enter", "down", "space")
    )


def test_job_screen(snap_compare, app):
    """The running job opened: its facts, then its log as messages (no progress lines)."""
    assert snap_compare(app, run_before=keys("down", "down", "down", "enter"))


def test_filter(snap_compare, app):
    """/ status:failed,warning Enter: two jobs are left, and the filter line says so."""
    pressed = ["slash", *"status:failed,warning", "enter"]
    assert snap_compare(app, run_before=keys(*pressed))


def test_help(snap_compare, app):
    """? lists every key in a box that fits 80 columns."""
    assert snap_compare(app, run_before=keys("question_mark"))


def test_jobs_tab_without_colour(snap_compare, monkeypatch):
    """NO_COLOR: no colours at all; the cursor row and the active tab are reversed."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = BorgdApp(FakeSource(), clock=clock)
    assert snap_compare(app, run_before=keys("down"))
