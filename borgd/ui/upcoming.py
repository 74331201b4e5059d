"""The Upcoming tab: the next 30 days as a calendar, and the planned runs of one day."""

from __future__ import annotations

from datetime import date, timedelta

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from borgd.ui.base import LivePane, Table, fill, host, selected_key
from borgd.ui.model import (
    Day,
    Job,
    calendar_days,
    calendar_weeks,
    day_cell,
    day_rows,
)

DAYS = 30
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
RUN_COLUMNS = (("time", "TIME"), ("profile", "PROFILE"), ("action", "ACTION"), ("note", "NOTE"))


class UpcomingPane(LivePane):
    """Upcoming(now, now + 30 days), drawn as weeks; the highlighted day's runs below it,
    with the ones a blackout window defers and until when."""

    def __init__(self) -> None:
        super().__init__(id="upcoming-pane")
        self.days: list[Day] = []
        self.grid: list[list[Day | None]] = []
        self.chosen: date | None = None
        self.runs: dict[str, Job] = {}
        self.loaded_for: date | None = None

    def compose(self) -> ComposeResult:
        calendar: Table = DataTable(id="calendar", cursor_type="cell")
        yield calendar
        yield Static("", id="day-title")
        runs: Table = DataTable(id="day-runs", cursor_type="row")
        yield runs

    def on_mount(self) -> None:
        calendar = self.query_one("#calendar", DataTable)
        for name in WEEKDAYS:
            calendar.add_column(name, key=name, width=9)
        fill(self.query_one("#day-runs", DataTable), RUN_COLUMNS, [], None)

    async def load(self) -> None:
        now = host(self).now()
        start = int(now.timestamp() * 1_000_000)
        end = int((now + timedelta(days=DAYS)).timestamp() * 1_000_000)
        runs = await host(self).source.call("Upcoming", "tt", start, end)
        self.days = calendar_days(runs, now, DAYS)
        self.grid = calendar_weeks(self.days)
        today = now.date()
        self.loaded_for = today
        if self.chosen is None or not any(d.day == self.chosen for d in self.days):
            self.chosen = today
        calendar = self.query_one("#calendar", DataTable)
        calendar.clear()
        for i, week in enumerate(self.grid):
            calendar.add_row(*(Text(day_cell(d, today)) for d in week), key=f"w{i}")
        for r, week in enumerate(self.grid):
            for c, day in enumerate(week):
                if day is not None and day.day == self.chosen:
                    calendar.move_cursor(row=r, column=c, animate=False)
        self.show_day()

    def new_day(self, today: date) -> None:
        """The 30 days move on at midnight."""
        if self.loaded_for is not None and today != self.loaded_for:
            self.request_load()

    @on(DataTable.CellHighlighted, "#calendar")
    def day_highlighted(self, event: DataTable.CellHighlighted) -> None:
        row, column = event.coordinate
        if row < len(self.grid) and column < 7 and (day := self.grid[row][column]):
            self.chosen = day.day
            self.show_day()

    def show_day(self) -> None:
        day = next((d for d in self.days if d.day == self.chosen), None)
        title = self.query_one("#day-title", Static)
        table = self.query_one("#day-runs", DataTable)
        if day is None:
            title.update("")
            table.clear()
            return
        count = len(day.runs)
        title.update(Text(f"{day.day:%a %Y-%m-%d}: {count} planned run{'s' * (count != 1)}"))
        tz = host(self).now().tzinfo
        rows = day_rows(day, tz)
        self.runs = {}
        keyed = []
        for i, row in enumerate(rows):
            key = f"r{i}"
            self.runs[key] = {"profile": row[1], "action": row[2]}
            keyed.append((key, row))
        fill(table, RUN_COLUMNS, keyed, None)

    def selected_profile(self) -> str | None:
        key = selected_key(self.query_one("#day-runs", DataTable))
        return self.runs[key]["profile"] if key in self.runs else None
