"""The Jobs tab (every job in one table, filtered) and a job's own screen with its log."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from dbus_fast import Variant
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Log, Static

from borgd.cli.format import readable_log_line
from borgd.ui.base import (
    LivePane,
    Note,
    StatusLine,
    Table,
    fill,
    fits,
    host,
    report,
    selected_key,
    start_worker,
)
from borgd.ui.model import (
    JOB_COLUMNS,
    Filter,
    FilterError,
    Job,
    describe,
    job_cells,
    parse_filter,
)

STATUS_STYLE = {
    "failed": "bold red",
    "interrupted": "bold red",
    "warning": "yellow",
    "succeeded": "green",
    "running": "bold cyan",
    "queued": "cyan",
    "cancelled": "magenta",
    "skipped": "dim",
}
# NO_COLOR: Textual greys colours out (dark red becomes dark grey on black), so the
# statuses that need attention are bold instead and the others plain.
STATUS_STYLE_NO_COLOR = {"failed": "bold", "interrupted": "bold", "warning": "bold"}
MERGE_LIMIT = 500  # older jobs that match a new filter, fetched once


def cell(column: str, value: str, no_color: bool = False) -> Text:
    styles = STATUS_STYLE_NO_COLOR if no_color else STATUS_STYLE
    return Text(value, style=styles.get(value, "") if column == "status" else "")


class JobsPane(LivePane):
    """Scheduled, active, then finished jobs; redrawn from the app's `Jobs` on each signal."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close_filter", "Close filter", show=False)
    ]

    def __init__(self) -> None:
        super().__init__(id="jobs-pane")
        self.filter = Filter()
        self._keys: list[str] = []
        self._cells: dict[str, dict[str, str]] = {}
        self._pending = False

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="status:failed profile:home … (Enter applies, empty clears, Esc closes)",
            id="filter-input",
        )
        yield Static("", id="filter-line")
        table: Table = DataTable(id="jobs-table", cursor_type="row")
        yield table

    def on_mount(self) -> None:
        fill(self.table, JOB_COLUMNS, [], None)
        self.query_one("#filter-input").display = False
        self.query_one("#filter-line").display = False

    async def load(self) -> None:
        """The jobs come with the app's reload and signals: nothing to ask here."""
        self.show_jobs()

    def request_redraw(self) -> None:
        if not self._pending:
            self._pending = True
            self.set_timer(0.05, self.show_jobs)

    @property
    def table(self) -> Table:
        return self.query_one("#jobs-table", DataTable)

    def show_jobs(self) -> None:
        self._pending = False
        jobs = host(self).jobs
        now = host(self).now()
        rows = jobs.rows(self.filter)
        cells = {str(j["id"]): job_cells(j, now) for j in rows}
        keys = list(cells)
        table = self.table
        no_color = self.app.no_color
        changed = [
            (key, column, cell(column, value, no_color))
            for key, row in cells.items()
            for column, value in row.items()
            if self._cells.get(key, {}).get(column) != value
        ]
        if keys == self._keys and all(fits(table, column, c) for _, column, c in changed):
            for key, column, c in changed:
                table.update_cell(key, column, c)
        else:
            rows_shown = [
                (key, [cell(c, row[c], no_color) for c, _ in JOB_COLUMNS])
                for key, row in cells.items()
            ]
            fill(table, JOB_COLUMNS, rows_shown, selected_key(table))
        self._keys = keys
        self._cells = cells
        line = self.query_one("#filter-line", Static)
        line.display = bool(self.filter)
        if self.filter:
            line.update(
                Text(f"filter {self.filter} — {len(rows)} of {len(jobs)} jobs (/ changes it)")
            )

    def selected_job(self) -> Job | None:
        key = selected_key(self.table)
        return host(self).jobs.get(int(key)) if key else None

    def selected_profile(self) -> str | None:
        job = self.selected_job()
        return job["profile"] if job and job.get("profile") else None

    # -- the filter --

    def open_filter(self) -> None:
        box = self.query_one("#filter-input", Input)
        box.display = True
        box.value = str(self.filter)
        box.cursor_position = len(box.value)
        box.focus()

    def action_close_filter(self) -> None:
        box = self.query_one("#filter-input", Input)
        if box.display:
            box.display = False
            self.table.focus()

    @on(Input.Submitted, "#filter-input")
    def apply_filter(self, event: Input.Submitted) -> None:
        try:
            flt = parse_filter(event.value)
        except FilterError as exc:
            host(self).note(str(exc), error=True)
            return
        self.filter = flt
        event.input.display = False
        self.table.focus()
        self.show_jobs()
        wanted = flt.list_jobs_filter()
        if wanted:
            # The view holds the newest finished jobs; older ones that match come too.
            flt_dbus = {k: Variant("as", v) for k, v in wanted.items()}
            flt_dbus["limit"] = Variant("u", MERGE_LIMIT)
            source = host(self).source
            host(self).act(lambda: source.call("ListJobs", "a{sv}", flt_dbus, tag="merge"))

    @on(DataTable.RowSelected, "#jobs-table")
    def open_job(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(JobScreen(int(event.row_key.value)))


LOG_END = 2**64 - 1  # ReadJobLog: an offset past the end answers where the next line starts
WHOLE_LOG = 2 << 20  # bytes: a longer log opens at its last TAIL lines
TAIL = 2000
PAGE = 1000


class JobScreen(Screen[None]):
    """One job: its facts, kept current by its JobChanged signals, and its log, followed
    (borg's JSON lines as their messages, as `borgctl logs` prints them).

    The log is read from where the last read ended (ReadJobLog's offsets) each time
    the job changes; borgd flushes a running job's log with its progress.  Hooks
    print without progress, so while the job runs a read also happens when a
    second passed without one (as `borgctl logs -f` does).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.log_offset = -1  # not read yet
        self._reading = False
        self._again = False
        self._last_read = 0.0

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Vertical(id="job-body"):
            yield Static(id="job-head")
            yield Log(id="job-log", max_lines=20_000)
        yield Note(id="note")
        yield Footer()

    def on_mount(self) -> None:
        self.show_head()
        self.follow()
        self.set_interval(1.0, self._tick)

    def show_head(self) -> None:
        job = host(self).jobs.get(self.job_id)
        head = describe(job, host(self).now()) if job else [f"job {self.job_id}"]
        self.query_one("#job-head", Static).update(Text("\n".join(head)))

    def job_changed(self, fields: dict[str, Any]) -> None:
        self.show_head()
        self.follow()

    def follow(self) -> None:
        if self._reading:
            self._again = True
            return
        self._reading = True
        start_worker(self, self._read, group="log", exit_on_error=False)

    def _tick(self) -> None:
        job = host(self).jobs.get(self.job_id)
        if job and job["status"] == "running" and time.monotonic() - self._last_read >= 1.0:
            self.follow()

    async def _read(self) -> None:
        source = host(self).source
        log = self.query_one("#job-log", Log)
        try:
            while True:
                self._again = False
                if self.log_offset < 0:
                    _, end = await source.call("ReadJobLog", "ttu", self.job_id, LOG_END, 1)
                    if end > WHOLE_LOG:
                        lines = await source.call("GetJobLog", "tu", self.job_id, TAIL)
                        log.write_line(f"(a log of {int(end) >> 20} MiB: its last {TAIL} lines)")
                        self._write(log, lines)
                        self.log_offset = int(end)
                    else:
                        self.log_offset = 0
                while True:
                    lines, offset = await source.call(
                        "ReadJobLog", "ttu", self.job_id, self.log_offset, PAGE
                    )
                    self.log_offset = int(offset)
                    if not lines:
                        break
                    self._write(log, lines)
                if not self._again:
                    break
        except Exception as exc:
            report(self, exc)
        finally:
            self._reading = False
            self._last_read = time.monotonic()

    @staticmethod
    def _write(log: Log, lines: list[str]) -> None:
        shown = [t for t in map(readable_log_line, lines) if t is not None]
        if shown:
            log.write_lines(shown)
