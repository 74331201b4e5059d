"""Helpers of the `borgctl ui` tests: what the screen shows as text, and waiting for it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable

from borgd.ui.app import BorgdApp
from borgd.ui.base import LivePane
from borgd.ui.jobs import JobsPane


def screen_text(app: BorgdApp) -> str:
    """The terminal's characters, as a person would read them (no colours)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
    )
    # As App.export_screenshot does, but to text.
    console.print(
        app.screen._compositor.render_update(
            full=True, screen_stack=app._background_screens, simplify=True
        )
    )
    return console.export_text()


async def wait_for(
    pilot: Pilot[Any], predicate: Callable[[], Any], what: str, timeout: float = 20
) -> Any:
    """Let the app run until `predicate()` is true; fail with the screen when it never is."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = screen_text(pilot.app)  # type: ignore[arg-type]
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{shown}")
        await pilot.pause(0.05)


def quiet(app: BorgdApp) -> bool:
    """Nothing left to load or draw: no call under way (but the bus watch), no redraw due."""
    busy = [w for w in app.workers if w.group != "bus" and w.is_running]
    panes = list(app.query(LivePane))
    return (
        not busy and not app.query_one(JobsPane)._pending and all(p._timer is None for p in panes)
    )


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until the jobs are shown and nothing more is on its way."""
    app: BorgdApp = pilot.app  # type: ignore[assignment]
    table = app.query_one("#jobs-table", DataTable)
    await wait_for(pilot, lambda: table.row_count and quiet(app), "the view to load")
    await pilot.pause()
