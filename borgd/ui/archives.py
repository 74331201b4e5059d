"""The Archives tab: per repository its archives; browse one, mount it, diff two, restore."""

from __future__ import annotations

import functools
import os
from typing import Any, ClassVar

from dbus_fast import Variant
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from borgd.cli.format import human_size, human_time
from borgd.ui.base import (
    LivePane,
    Note,
    StatusLine,
    Table,
    fill,
    host,
    report,
    selected_key,
    start_worker,
)
from borgd.ui.model import (
    Job,
    archive_cells,
    default_mountpoint,
    diff_cells,
    entry_cells,
    parent_of,
)

PAGE = 1000
REPO_COLUMNS = (
    ("repository", "REPOSITORY"),
    ("archives", "ARCHIVES"),
    ("size", "SIZE"),
    ("last", "LAST BACKUP"),
    ("url", "URL"),
)
ARCHIVE_COLUMNS = (
    ("mark", ""),
    ("archive", "ARCHIVE"),
    ("made", "MADE"),
    ("profile", "PROFILE"),
    ("size", "SIZE"),
    ("new", "NEW"),
)
ENTRY_COLUMNS = (("mark", ""), ("name", "NAME"), ("size", "SIZE"), ("mtime", "MODIFIED"))
DIFF_COLUMNS = (("changes", "CHANGES"), ("size", "SIZE"), ("path", "PATH"))
MAX_ENTRIES = 10_000  # per folder shown; the rest is said, not loaded


class ArchivesPane(LivePane):
    """Repositories on top (ListRepositories), the highlighted one's archives below
    (ListArchives, from borgd's cache)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "mount", "Mount"),
        Binding("space", "mark", "Mark"),
        Binding("d", "diff", "Diff"),
    ]

    def __init__(self) -> None:
        super().__init__(id="archives-pane")
        self.repositories: dict[str, Job] = {}
        self.archives: dict[str, Job] = {}
        self.repository = ""
        self.marked = ""

    def compose(self) -> ComposeResult:
        repos: Table = DataTable(id="repos-table", cursor_type="row")
        yield repos
        archives: Table = DataTable(id="archives-table", cursor_type="row")
        yield archives

    def on_mount(self) -> None:
        fill(self.query_one("#repos-table", DataTable), REPO_COLUMNS, [], None)
        fill(self.query_one("#archives-table", DataTable), ARCHIVE_COLUMNS, [], None)

    async def load(self) -> None:
        now = host(self).now()
        repos = await host(self).source.call("ListRepositories")
        self.repositories = {r["name"]: r for r in repos}
        table = self.query_one("#repos-table", DataTable)
        fill(
            table,
            REPO_COLUMNS,
            [
                (
                    r["name"],
                    (
                        r["name"],
                        str(r.get("archives", 0)),
                        human_size(int(r["size"])) if r.get("size") else "-",
                        human_time(int(r.get("last_backup") or 0), now),
                        r.get("url", ""),
                    ),
                )
                for r in sorted(repos, key=lambda r: r["name"])
            ],
            self.repository or None,
        )
        self.repository = selected_key(table) or ""
        await self.load_archives()

    @on(DataTable.RowHighlighted, "#repos-table")
    def repository_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value or ""
        if name != self.repository:
            self.repository = name
            self.marked = ""
            start_worker(
                self, self._archives, group="archives", exclusive=True, exit_on_error=False
            )

    async def _archives(self) -> None:
        try:
            await self.load_archives()
        except Exception as exc:
            report(self, exc)

    async def load_archives(self) -> None:
        table = self.query_one("#archives-table", DataTable)
        if not self.repository:
            self.archives = {}
            table.clear()
            return
        found = await host(self).source.call("ListArchives", "sa{sv}", self.repository, {})
        self.archives = {a["name"]: a for a in found}
        self.show_archives(keep=selected_key(table))

    def show_archives(self, keep: str | None) -> None:
        now = host(self).now()
        fill(
            self.query_one("#archives-table", DataTable),
            ARCHIVE_COLUMNS,
            [
                (a["name"], ("*" if a["name"] == self.marked else "", *archive_cells(a, now)))
                for a in self.archives.values()
            ],
            keep,
        )

    def selected_archive(self) -> Job | None:
        key = selected_key(self.query_one("#archives-table", DataTable))
        return self.archives.get(key or "")

    def selected_profile(self) -> str | None:
        archive = self.selected_archive()
        return archive["profile"] if archive and archive.get("profile") else None

    # -- actions --

    @on(DataTable.RowSelected, "#repos-table")
    def repository_chosen(self, event: DataTable.RowSelected) -> None:
        self.query_one("#archives-table", DataTable).focus()

    @on(DataTable.RowSelected, "#archives-table")
    def browse(self, event: DataTable.RowSelected) -> None:
        archive = self.archives.get(event.row_key.value or "")
        if archive is not None:
            self.app.push_screen(ContentsScreen(self.repository, archive))

    def action_mark(self) -> None:
        archive = self.selected_archive()
        if archive:
            self.marked = "" if self.marked == archive["name"] else archive["name"]
            self.show_archives(keep=archive["name"])

    def action_diff(self) -> None:
        archive = self.selected_archive()
        if archive is None or not self.marked or self.marked == archive["name"]:
            host(self).note("mark one archive with space, then press d on another to diff them")
            return
        older, newer = sorted(
            (self.archives[self.marked], archive), key=lambda a: int(a.get("start") or 0)
        )
        self.app.push_screen(DiffScreen(self.repository, older["name"], newer["name"]))

    def action_mount(self) -> None:
        archive = self.selected_archive()
        if archive is None:
            return
        name, repo = archive["name"], self.repository
        mounts = [
            j
            for j in host(self).jobs.rows()
            if j["type"] == "mount"
            and j["status"] in ("queued", "running")
            and j["repository"] == repo
            and j.get("archive") == name
        ]
        source = host(self).source
        if mounts:
            job_id = mounts[0]["id"]
            host(self).act(
                lambda: source.call("UnmountArchive", "t", job_id),
                lambda _: f"unmounting {name} (job {job_id})",
            )
            return
        where = default_mountpoint(
            os.environ.get("XDG_RUNTIME_DIR", "$XDG_RUNTIME_DIR"), repo, name
        )
        host(self).act(
            lambda: source.call("MountArchive", "sssa{sv}", repo, name, "", {}),
            lambda job_id: f"mounting {name} at {where} (job {job_id}; m again unmounts)",
        )


class ContentsScreen(Screen[None]):
    """One archive's files, a folder at a time (ListArchiveContents); space selects, R
    restores the selection (or the whole folder) with a restore job."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("backspace", "up", "Up"),
        Binding("space", "select", "Select"),
        Binding("R", "restore", "Restore"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self, repository: str, archive: Job) -> None:
        super().__init__()
        self.repository = repository
        self.archive = archive
        self.path = ""
        self.entries: dict[str, Job] = {}
        self.selected: set[str] = set()
        self.more = False

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Vertical(id="contents-body"):
            yield Static(id="contents-head")
            table: Table = DataTable(id="contents-table", cursor_type="row")
            yield table
        yield Note(id="note")
        yield Footer()

    def on_mount(self) -> None:
        fill(self.query_one("#contents-table", DataTable), ENTRY_COLUMNS, [], None)
        self.open(self.path)

    def open(self, path: str, keep: str | None = None) -> None:
        start_worker(
            self,
            functools.partial(self._open, path, keep),
            group="contents",
            exclusive=True,
            exit_on_error=False,
        )

    async def _open(self, path: str, keep: str | None) -> None:
        source = host(self).source
        entries: list[Job] = []
        try:
            while len(entries) < MAX_ENTRIES:
                opts = {"offset": Variant("u", len(entries)), "limit": Variant("u", PAGE)}
                page = await source.call(
                    "ListArchiveContents",
                    "sssa{sv}",
                    self.repository,
                    self.archive["name"],
                    path,
                    opts,
                )
                entries += page
                if len(page) < PAGE:
                    break
        except Exception as exc:
            report(self, exc)
            return
        self.path = path
        self.entries = {e["path"]: e for e in entries}
        self.more = len(entries) >= MAX_ENTRIES
        self.show(keep)

    def show(self, keep: str | None) -> None:
        tz = host(self).now().tzinfo
        table = self.query_one("#contents-table", DataTable)
        fill(
            table,
            ENTRY_COLUMNS,
            [
                (p, entry_cells(e, self.path, tz, p in self.selected))
                for p, e in self.entries.items()
            ],
            keep or selected_key(table),
        )
        more = f" (first {MAX_ENTRIES} shown)" if self.more else ""
        self.query_one("#contents-head", Static).update(
            Text(
                f"{self.repository}::{self.archive['name']}  /{self.path}  "
                f"{len(self.entries)} entries{more} — {len(self.selected)} selected"
            )
        )

    @on(DataTable.RowSelected, "#contents-table")
    def enter(self, event: DataTable.RowSelected) -> None:
        entry = self.entries.get(event.row_key.value or "")
        if entry and entry.get("type") == "d":
            self.open(entry["path"])

    def action_up(self) -> None:
        if self.path:
            self.open(parent_of(self.path), keep=self.path)

    def action_select(self) -> None:
        key = selected_key(self.query_one("#contents-table", DataTable))
        if key:
            self.selected ^= {key}
            self.show(key)
            table = self.query_one("#contents-table", DataTable)
            if table.cursor_row + 1 < table.row_count:
                table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_restore(self) -> None:
        paths = sorted(self.selected) or ([self.path] if self.path else [])
        profile = self.archive.get("profile") or next(
            (
                j.get("profile")
                for j in host(self).jobs.rows()
                if j.get("repository") == self.repository and j.get("profile")
            ),
            "",
        )
        if not profile:
            host(self).note("this archive has no profile: restore it with borgctl", error=True)
            return
        self.app.push_screen(RestoreScreen(profile, self.archive["name"], paths))


class RestoreScreen(ModalScreen[None]):
    """Ask where to restore to; then StartJob(profile, restore, {archive, destination, paths})."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Cancel")]

    def __init__(self, profile: str, archive: str, paths: list[str]) -> None:
        super().__init__()
        self.profile = profile
        self.archive = archive
        self.paths = paths

    def compose(self) -> ComposeResult:
        what = ", ".join(self.paths) if self.paths else "the whole archive"
        with Vertical(id="restore-box"):
            yield Static(Text(f"Restore {what}\nfrom {self.archive} to (absolute folder):"))
            yield Input(
                value=os.path.join(os.path.expanduser("~"), f"restore-{self.archive}"),
                id="restore-to",
            )
            yield Static("Enter restores, Esc cancels")

    @on(Input.Submitted, "#restore-to")
    def submitted(self, event: Input.Submitted) -> None:
        destination = event.value.strip()
        opts: dict[str, Any] = {
            "archive": Variant("s", self.archive),
            "destination": Variant("s", destination),
        }
        if self.paths:
            opts["paths"] = Variant("as", self.paths)
        source = host(self).source
        profile = self.profile
        self.app.pop_screen()
        host(self).act(
            lambda: source.call("StartJob", "ssa{sv}", profile, "restore", opts),
            lambda job_id: f"restore queued: job {job_id} → {destination}",
        )


class DiffScreen(Screen[None]):
    """What changed from one archive to the next (DiffArchives)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self, repository: str, older: str, newer: str) -> None:
        super().__init__()
        self.repository = repository
        self.older = older
        self.newer = newer

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Vertical(id="diff-body"):
            yield Static(Text(f"{self.older} → {self.newer}"), id="diff-head")
            table: Table = DataTable(id="diff-table", cursor_type="row")
            yield table
        yield Note(id="note")
        yield Footer()

    def on_mount(self) -> None:
        fill(self.query_one("#diff-table", DataTable), DIFF_COLUMNS, [], None)
        start_worker(self, self._load, exit_on_error=False)

    async def _load(self) -> None:
        try:
            rows = await host(self).source.call(
                "DiffArchives", "sssa{sv}", self.repository, self.older, self.newer, {}
            )
        except Exception as exc:
            report(self, exc)
            return
        fill(
            self.query_one("#diff-table", DataTable),
            DIFF_COLUMNS,
            [(str(i), diff_cells(r)) for i, r in enumerate(rows)],
            None,
        )
        if not rows:
            host(self).note("no differences")
