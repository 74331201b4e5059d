"""The Profiles tab: is each profile backed up (last success, overdue), when next, how big."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from borgd.ui.base import LivePane, Table, fill, host, selected_key
from borgd.ui.model import ProfileRow, bar_chart, profile_rows

STATS_DAYS = 90  # RepositoryStats since then: the "recent backups" of the chart
COLUMNS = (
    ("name", "PROFILE"),
    ("state", "STATE"),
    ("last", "LAST SUCCESS"),
    ("next", "NEXT RUN"),
    ("size", "REPO SIZE"),
    ("recent", "NEW DATA"),
)


class ProfilesPane(LivePane):
    """ListProfiles, ListSchedules, ListRepositories and RepositoryStats, one row per
    profile; below, the new (deduplicated) data of the highlighted profile's last backups."""

    def __init__(self) -> None:
        super().__init__(id="profiles-pane")
        self.rows: dict[str, ProfileRow] = {}

    def compose(self) -> ComposeResult:
        table: Table = DataTable(id="profiles-table", cursor_type="row")
        yield table
        yield Static("", id="profile-chart")

    def on_mount(self) -> None:
        fill(self.query_one("#profiles-table", DataTable), COLUMNS, [], None)

    async def load(self) -> None:
        source = host(self).source
        now = host(self).now()
        profiles = await source.call("ListProfiles")
        schedules = await source.call("ListSchedules")
        repositories = await source.call("ListRepositories")
        since = int((now - timedelta(days=STATS_DAYS)).timestamp() * 1_000_000)
        stats: dict[str, Any] = {}
        for name in sorted({p["repository"] for p in profiles}):
            stats[name] = await source.call("RepositoryStats", "st", name, since)
        rows = profile_rows(profiles, schedules, repositories, stats, now)
        self.rows = {r.name: r for r in rows}
        table = self.query_one("#profiles-table", DataTable)
        fill(
            table,
            COLUMNS,
            [
                (
                    r.name,
                    (
                        r.name,
                        r.state,
                        r.last_success,
                        r.next_run,
                        r.repository_size,
                        r.recent,
                    ),
                )
                for r in rows
            ],
            selected_key(table),
        )
        self.show_chart()

    @on(DataTable.RowHighlighted, "#profiles-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_chart()

    def show_chart(self) -> None:
        chart = self.query_one("#profile-chart", Static)
        name = self.selected_profile()
        row = self.rows.get(name or "")
        if row is None:
            chart.update("no profiles yet" if not self.rows else "")
            return
        lines = [f"{row.name} → {row.repository}: new data of its last backups (deduplicated)"]
        lines += bar_chart(row.stats, host(self).now(), width=40)
        chart.update(Text("\n".join(lines)))

    def selected_profile(self) -> str | None:
        return selected_key(self.query_one("#profiles-table", DataTable))
