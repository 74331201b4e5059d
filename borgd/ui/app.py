"""`borgctl ui`: borgd's jobs, plans, profiles and archives in one full-screen view.

It speaks D-Bus only and polls nothing: one reload when borgd is (again) on the
bus, then its signals — JobAdded, JobChanged, ProfileChanged and the Manager's
PropertiesChanged — keep the view current.  NameOwnerChanged tells when borgd
stops and starts; meanwhile the view says it waits.  No D-Bus error ends it: each
shows in the note line above the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from dbus_fast import Variant
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from borgd.cli.client import MANAGER, CallFailed, Unreachable
from borgd.ui.archives import ArchivesPane
from borgd.ui.base import LivePane, Note, StatusLine, report, start_worker
from borgd.ui.jobs import JobScreen, JobsPane
from borgd.ui.model import ACTIVE, FINISHED, SCHEDULED, Job, Jobs, error_text, status_line
from borgd.ui.profiles import ProfilesPane
from borgd.ui.source import DBusSource, Event, Owner, Reply, Signal, Source
from borgd.ui.upcoming import UpcomingPane

FINISHED_LOADED = 500  # the newest finished jobs a reload brings; signals add the rest
RETRY_MAX = 10.0  # seconds between tries to reach the session bus again
RELOAD_AGAIN = 5.0  # seconds: borgd answered the reload with an error (e.g. its store)
HELP = """\
Keys
  1 2 3 4     the Jobs, Upcoming, Profiles and Archives tabs
  Tab         the next table of a tab;  ↑ ↓ PgUp PgDn move, ← → scroll
  Enter       Jobs: open the job and follow its log (Esc goes back)
              Archives: browse an archive: Enter opens a folder,
              Backspace goes up, space selects, R restores the selection
  r           back up now the profile of the selected job or profile
  c  u        cancel / requeue the selected job
  p           pause all scheduled runs, or resume them
  /           filter jobs: status:failed profile:home repository:usb
              type:backup; more values with commas: status:failed,warning;
              status:active, status:finished; Enter on nothing clears it
  m           Archives: mount the archive, or unmount it
  space  d    Archives: mark an archive, then diff it with another
  ?  q        this help;  quit (back, on a job's or an archive's screen)
"""


def local_now() -> datetime:
    return datetime.now(UTC).astimezone()


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Close"),
        Binding("q", "app.pop_screen", "Close", show=False),
        Binding("question_mark", "app.pop_screen", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(Text(HELP))


class BorgdApp(App[int]):
    """The view.  `source` is borgd (DBusSource) or a stand-in; `clock` gives 'now'."""

    CSS_PATH = Path(__file__).with_name("styles.tcss")
    TITLE = "borgd"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "run", "Run"),
        Binding("c", "cancel", "Cancel"),
        Binding("u", "requeue", "Requeue"),
        Binding("p", "pause", "Pause"),
        Binding("slash", "filter", "Filter"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("1", "tab('jobs')", "Jobs", show=False),
        Binding("2", "tab('upcoming')", "Upcoming", show=False),
        Binding("3", "tab('profiles')", "Profiles", show=False),
        Binding("4", "tab('archives')", "Archives", show=False),
    ]

    def __init__(
        self, source: Source | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        # NO_COLOR: Textual would grey the theme's colours out (still colour codes); with
        # the terminal's own ANSI colours it drops them all, leaving bold and reverse.
        super().__init__(ansi_color=True if "NO_COLOR" in os.environ else None)
        self.source: Source = source or DBusSource()
        self.clock = clock or local_now
        self.jobs = Jobs()
        self.props: dict[str, Any] = {}
        self.connected = False
        self.bus_problem = ""
        self._note = Text("")
        self._note_error = False

    def now(self) -> datetime:
        return self.clock()

    # -- layout --

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with TabbedContent(initial="jobs", id="tabs"):
            with TabPane("Jobs", id="jobs"):
                yield JobsPane()
            with TabPane("Upcoming", id="upcoming"):
                yield UpcomingPane()
            with TabPane("Profiles", id="profiles"):
                yield ProfilesPane()
            with TabPane("Archives", id="archives"):
                yield ArchivesPane()
        yield Note(id="note")
        yield Footer()

    def on_mount(self) -> None:
        self.show_lines()
        self.query_one(JobsPane).show_tab(True)
        self.query_one("#jobs-table").focus()
        start_worker(self, self._connection, group="bus", exit_on_error=False)
        # Relative times ("in 3 min") age: redraw them; this reads nothing from borgd.
        self.set_interval(30, self._clock_tick)

    @property
    def panes(self) -> list[LivePane]:
        return list(self.query(LivePane))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        active = event.pane.id
        for pane in self.panes:
            pane.show_tab(pane.parent is not None and pane.parent.id == active)
        for pane in self.panes:
            if pane.shown:
                pane.query("DataTable").first().focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel and requeue act on a job: offered on the Jobs tab and a job's screen."""
        if action in ("cancel", "requeue"):
            tabs = self.query_one_optional("#tabs", TabbedContent)
            return isinstance(self.screen, JobScreen) or (
                tabs is not None and tabs.active == "jobs"
            )
        return True

    def _clock_tick(self) -> None:
        self.show_lines()
        self.query_one(JobsPane).request_redraw()
        self.query_one(UpcomingPane).new_day(self.now().date())

    # -- lines --

    def note(self, text: str, *, error: bool = False) -> None:
        self._note = Text(text)
        self._note_error = error
        self.show_lines()

    def show_lines(self) -> None:
        status = self.bus_problem or status_line(self.props, self.connected, self.now())
        for screen in self.screen_stack:
            for line in screen.query(StatusLine):
                line.update(Text(status))
                line.set_class(not self.connected, "offline")
            for note in screen.query(Note):
                note.update(self._note)
                note.set_class(self._note_error, "error")

    def act(
        self, work: Callable[[], Awaitable[Any]], done: Callable[[Any], str] | None = None
    ) -> None:
        """Run a call; say what it did, or borgd's error — never raise."""

        async def run() -> None:
            try:
                result = await work()
            except Exception as exc:
                report(self, exc)
                return
            if done is not None:
                self.note(done(result))

        start_worker(self, run, group="actions", exit_on_error=False)

    # -- the connection --

    async def _connection(self) -> None:
        """Reach the bus (again and again, if it goes); each time, load everything."""
        delay = 0.5
        while True:
            try:
                await self.source.open(self._on_event)
            except Unreachable as exc:
                self.bus_problem = f"{exc} — trying again"
                self.connected = False
                self.show_lines()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.bus_problem = ""
            delay = 0.5
            await self.reload()
            with contextlib.suppress(Exception):  # how it ended does not matter: it did
                await self.source.closed()
            self.connected = False
            self.bus_problem = "lost the session bus — reconnecting"
            self.show_lines()

    async def reload(self) -> None:
        """Everything anew: properties, then the jobs.  Answers reach `_on_event` in bus
        order (tagged calls), so signals around them apply in the right order."""
        live = [SCHEDULED, *ACTIVE]
        try:
            await self.source.call(
                "GetAll", "s", MANAGER, interface="org.freedesktop.DBus.Properties", tag="props"
            )
            await self.source.call(
                "ListJobs", "a{sv}", {"status": Variant("as", live)}, tag="live"
            )
            await self.source.call(
                "ListJobs",
                "a{sv}",
                {"status": Variant("as", list(FINISHED)), "limit": Variant("u", FINISHED_LOADED)},
                tag="merge",
            )
        except Unreachable:
            self.connected = False  # borgd is not on the bus: NameOwnerChanged will say when
            self.show_lines()
            return
        except CallFailed as exc:  # borgd is there but cannot answer (its store, say)
            self.connected = True
            self.note(f"{error_text(exc.name, exc.text)} — trying again", error=True)
            self.set_timer(RELOAD_AGAIN, self._start_reload)
            return
        self.connected = True
        self.show_lines()
        for pane in self.panes:
            pane.request_load()

    def _start_reload(self) -> None:
        start_worker(self, self.reload, group="reload", exclusive=True, exit_on_error=False)

    def _on_event(self, event: Event) -> None:
        try:
            self._apply(event)
        except Exception as exc:  # a message we did not expect must not end the view
            self.note(f"ignored a strange message from borgd: {exc!r}", error=True)

    def _apply(self, event: Event) -> None:
        jobs_pane = self.query_one(JobsPane)
        if isinstance(event, Owner):
            if event.present:
                self._start_reload()
            else:
                self.connected = False
                self.show_lines()
            return
        if isinstance(event, Reply):
            if event.tag == "props":
                self.props = dict(event.value)
                self.show_lines()
            elif event.tag == "live":
                self.jobs.reset(event.value)
            elif event.tag == "merge":
                self.jobs.merge(event.value)
            jobs_pane.request_redraw()
            return
        if not isinstance(event, Signal):
            return
        if event.member == "JobAdded":
            self.jobs.added(event.subject, event.fields)
            jobs_pane.request_redraw()
            if event.fields.get("status") == SCHEDULED:
                self._stale(UpcomingPane, ProfilesPane)
        elif event.member == "JobChanged":
            if not self.jobs.changed(event.subject, event.fields):
                self._fetch(event.subject)
            jobs_pane.request_redraw()
            for screen in self.screen_stack:
                if isinstance(screen, JobScreen) and screen.job_id == event.subject:
                    screen.job_changed(event.fields)
            if event.fields.get("status") in FINISHED:
                self._stale(ProfilesPane, ArchivesPane)
        elif event.member == "ProfileChanged":
            self._stale(ProfilesPane)
        elif event.member == "PropertiesChanged":
            self.props.update(event.fields)
            self.show_lines()
            if {"Paused", "PausedUntil", "Blackout", "NextRun"} & set(event.fields):
                self._stale(UpcomingPane, ProfilesPane)

    def _stale(self, *kinds: type[LivePane]) -> None:
        for pane in self.panes:
            if isinstance(pane, kinds):
                pane.request_load()

    def _fetch(self, job_id: int) -> None:
        """A change of a job this view does not hold (older than what it loaded)."""

        async def get() -> None:
            try:
                job: Job = await self.source.call("GetJob", "t", job_id)
            except (CallFailed, Unreachable):
                return  # gone, or borgd went: the next reload has it
            self.jobs.merge([job])
            self.query_one(JobsPane).request_redraw()

        start_worker(self, get, group="fetch", exit_on_error=False)

    # -- what is selected --

    def _tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    def _active_pane(self) -> LivePane | None:
        return next((p for p in self.panes if p.shown), None)

    def selected_job(self) -> Job | None:
        if isinstance(self.screen, JobScreen):
            return self.jobs.get(self.screen.job_id)
        pane = self._active_pane()
        return pane.selected_job() if pane else None

    def selected_profile(self) -> str | None:
        job = self.selected_job()
        if isinstance(self.screen, JobScreen):
            return job["profile"] if job and job.get("profile") else None
        pane = self._active_pane()
        return pane.selected_profile() if pane else None

    # -- actions --

    def action_tab(self, name: str) -> None:
        self._tabs().active = name

    def action_run(self) -> None:
        profile = self.selected_profile()
        if not profile:
            self.note("select a job or a profile that has a profile to back up", error=True)
            return
        source = self.source
        self.act(
            lambda: source.call("StartJob", "ssa{sv}", profile, "backup", {}),
            lambda job_id: f"backup of {profile} queued: job {job_id}",
        )

    def action_cancel(self) -> None:
        job = self.selected_job()
        if job is None:
            self.note("select a job in the Jobs tab to cancel it", error=True)
            return
        job_id, source = job["id"], self.source
        self.act(
            lambda: source.call("CancelJob", "t", job_id), lambda _: f"cancelled job {job_id}"
        )

    def action_requeue(self) -> None:
        job = self.selected_job()
        if job is None:
            self.note("select a job in the Jobs tab to requeue it", error=True)
            return
        job_id, source = job["id"], self.source
        self.act(
            lambda: source.call("RequeueJob", "t", job_id),
            lambda new: f"job {job_id} requeued as job {new}",
        )

    def action_pause(self) -> None:
        source = self.source
        if self.props.get("Paused"):
            self.act(lambda: source.call("Resume"), lambda _: "resumed scheduled runs")
        else:
            self.act(
                lambda: source.call("Pause", "t", 0),
                lambda _: "paused scheduled runs until resumed (p resumes)",
            )

    def action_filter(self) -> None:
        if isinstance(self.screen, JobScreen):
            self.pop_screen()
        self._tabs().active = "jobs"
        self.query_one(JobsPane).open_filter()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.exit(0)

    def on_unmount(self) -> None:
        self.source.close()


def run(address: str | None = None) -> int:
    """`borgctl ui`: exit 0 on q, 2 without a terminal."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("borgctl: ui needs a terminal (for a listing use: borgctl jobs)", file=sys.stderr)
        return 2
    app = BorgdApp(DBusSource(address))
    app.run()
    return app.return_code or 0
