"""What the tabs share: the app's face they talk to, the one-line widgets, loading."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from rich.text import Text
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.timer import Timer
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from borgd.cli.client import CallFailed, Unreachable
from borgd.ui.model import Job, Jobs, error_text
from borgd.ui.source import Source


class Host(Protocol):
    """The parts of the app a tab or a screen uses (borgd.ui.app.BorgdApp)."""

    source: Source
    jobs: Jobs
    props: dict[str, Any]

    def now(self) -> datetime: ...

    def note(self, text: str, *, error: bool = False) -> None: ...

    def show_lines(self) -> None:
        """Draw the status and note lines of every screen (a new one shows them too)."""

    def act(
        self, work: Callable[[], Awaitable[Any]], done: Callable[[Any], str] | None = None
    ) -> None: ...


def host(node: DOMNode) -> Host:
    return cast(Host, node.app)


class StatusLine(Static):
    """borgd's state in one line (version, pause, running jobs, next run), or that it is gone."""

    def on_mount(self) -> None:
        host(self).show_lines()


class Note(Static):
    """The last thing the view has to say: what an action did, or borgd's error."""

    def on_mount(self) -> None:
        host(self).show_lines()


Table = DataTable[Text]


def selected_key(table: Table) -> str | None:
    """The key of the row under the cursor, None for an empty table."""
    if not table.row_count:
        return None
    row = table.ordered_rows[min(table.cursor_row, table.row_count - 1)]
    return row.key.value


Cell = str | Text
Columns = Sequence[tuple[str, str]]  # (key, header)


def fill(
    table: Table, columns: Columns, rows: Sequence[tuple[str, Sequence[Cell]]], keep: str | None
) -> None:
    """Show `rows` (key, cells), the cursor back on the row `keep` where it still is.

    Column widths are set here, from the cells, before anything is drawn: DataTable's
    own automatic widths are measured later, when it is idle, and a row drawn in
    between kept its cut-off text.
    """
    widths = [
        max([len(header)] + [cell_width(cells[i]) for _, cells in rows])
        for i, (_, header) in enumerate(columns)
    ]
    index = table.cursor_row
    wanted = [(key, width) for (key, _), width in zip(columns, widths, strict=True)]
    if [(c.key.value, c.width) for c in table.ordered_columns] != wanted:
        table.clear(columns=True)
        for (key, header), width in zip(columns, widths, strict=True):
            table.add_column(header, key=key, width=width)
    else:
        table.clear()
    for key, cells in rows:
        table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells), key=key)
    keys = [k for k, _ in rows]
    if keep in keys:
        index = keys.index(keep)
    if rows:
        table.move_cursor(row=min(max(index, 0), len(rows) - 1), animate=False)


def cell_width(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len


def fits(table: Table, column: str, cell: Cell) -> bool:
    """Whether `cell` fits the column's width as it is."""
    found = table.columns.get(ColumnKey(column))
    return found is not None and cell_width(cell) <= found.width


class LivePane(Vertical):
    """A tab that asks borgd for its data when it is shown, and again when a signal says
    that data changed while it is shown (a short delay gathers a burst into one load)."""

    DELAY = 0.2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shown = False
        self.stale = True
        self._timer: Timer | None = None

    def request_load(self) -> None:
        self.stale = True
        if self.shown and self._timer is None:
            self._timer = self.set_timer(self.DELAY, self._start)

    def show_tab(self, shown: bool) -> None:
        self.shown = shown
        if shown and self.stale:
            self._start()

    def _start(self) -> None:
        self._timer = None
        self.stale = False
        start_worker(
            self, self._load, group=f"load-{self.id}", exclusive=True, exit_on_error=False
        )

    async def _load(self) -> None:
        try:
            await self.load()
        except Exception as exc:
            self.stale = True
            report(self, exc)

    async def load(self) -> None:
        raise NotImplementedError

    def selected_profile(self) -> str | None:
        return None

    def selected_job(self) -> Job | None:
        return None


def start_worker(node: DOMNode, work: Callable[[], Awaitable[None]], **options: Any) -> None:
    """`node.run_worker` given the coroutine function, not a coroutine: Textual makes
    the coroutine when the worker starts.  A coroutine made beforehand is dropped
    unawaited when its worker is cancelled first (an `exclusive` group, the app
    closing), and Python warns "coroutine … was never awaited"."""
    node.run_worker(work, **options)


def report(node: DOMNode, exc: BaseException) -> None:
    """An error as the note line says it: borgd's errors by name, never a traceback."""
    if isinstance(exc, CallFailed):
        host(node).note(error_text(exc.name, exc.text), error=True)
    elif isinstance(exc, Unreachable):
        host(node).note(str(exc), error=True)
    else:
        host(node).note(f"{type(exc).__name__}: {exc}", error=True)
