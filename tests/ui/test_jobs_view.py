"""`borgctl ui` driven headless (Textual's Pilot, 80x24) against a real borgd and real borg.

Each test starts borgd on its own private session bus and gives the view that bus's
address; what the view shows is read from the screen (its characters) and checked
against what borgd itself says (busctl).  Nothing is asserted from fixed answers.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from borgd.cli.format import readable_log_line
from borgd.ui.app import BorgdApp
from borgd.ui.archives import ContentsScreen
from borgd.ui.base import selected_key
from borgd.ui.jobs import JobScreen
from borgd.ui.source import DBusSource
from tests.conftest import make_tree
from tests.e2e.jobs_helpers import (
    add_profile,
    add_repo,
    init_repo,
    job,
    marked_tree,
    start,
    wait_running,
    wait_status,
)
from tests.ui.conftest import quiet, screen_text, wait_for

pytestmark = pytest.mark.anyio


def view(session_env: Any) -> BorgdApp:
    return BorgdApp(DBusSource(session_env.vars["DBUS_SESSION_BUS_ADDRESS"]))


def row(app: BorgdApp, job_id: int) -> str:
    """The job's line on the Jobs tab as the screen shows it ('' when not shown)."""
    for line in screen_text(app).splitlines():
        if line.split()[:1] == [str(job_id)]:
            return line
    return ""


def shows(app: BorgdApp, job_id: int, *words: str) -> bool:
    line = row(app, job_id)
    return bool(line) and all(w in line.split() for w in words)


async def select(pilot: Pilot[Any], app: BorgdApp, job_id: int) -> None:
    """Move the cursor to the job's row with the arrow keys, as a person would."""
    table = app.query_one("#jobs-table", DataTable)
    target = table.get_row_index(str(job_id))
    while table.cursor_row != target:
        await pilot.press("down" if table.cursor_row < target else "up")
        target = table.get_row_index(str(job_id))


async def test_live_progress_cancel_queued_and_follow_the_log(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    # 4 GiB of chunks all new to borg: seconds of reading; the test cancels it.
    add_profile(busctl, "big", "r", [marked_tree(tmp_path / "data", 32, 128)])
    async with view(session_env).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        backup = start(busctl, "big")
        waiting = start(busctl, "big")  # the same repository: it waits in the lane
        wait_running(busctl, backup)

        # The progress column of the running backup changes on screen, signal by signal.
        seen: list[str] = []

        def progressed() -> bool:
            line = row(app, backup)
            if "running" in line.split() and "/s" in line and (not seen or seen[-1] != line):
                seen.append(line)
            return len(seen) >= 3

        await wait_for(pilot, progressed, "three different progress figures", timeout=60)
        assert all(re.search(r"\d+(\.\d+)? [kMG]?B/s", line) for line in seen), seen
        await wait_for(pilot, lambda: shows(app, waiting, "queued"), "the second backup queued")

        # c on the queued job cancels it at once; borgd agrees.
        await select(pilot, app, waiting)
        await pilot.press("c")
        await wait_for(pilot, lambda: shows(app, waiting, "cancelled"), "the queued job cancelled")
        assert job(busctl, waiting)["status"] == "cancelled"
        assert job(busctl, backup)["status"] == "running"

        # Enter opens the running backup; c there cancels it, and the log follows on:
        # borg's last words (the SIGINT it got) arrive after the screen was opened.
        await select(pilot, app, backup)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen), "the job's screen")
        head = f"job {backup}: backup of big — running"
        await wait_for(pilot, lambda: head in screen_text(app), "the job's head")
        await wait_for(pilot, lambda: "borgd: running" in screen_text(app), "its log")
        assert "SIGINT" not in screen_text(app)
        await pilot.press("c")
        await wait_for(
            pilot,
            lambda: f"job {backup}: backup of big — cancelled" in screen_text(app),
            "the cancel on the job's screen",
            timeout=30,
        )
        await wait_for(pilot, lambda: "SIGINT" in screen_text(app), "the log's last lines")
        assert wait_status(busctl, backup)["status"] == "cancelled"
        await pilot.press("escape")
        await wait_for(pilot, lambda: shows(app, backup, "cancelled"), "the Jobs tab again")


async def test_filter_failed_requeue_and_read_the_log(start_borgd, busctl, session_env, tmp_path):
    start_borgd()
    init = init_repo(busctl, "good", tmp_path / "repo")
    add_repo(busctl, "gone", tmp_path / "no-such-repo", encryption="none")
    add_profile(busctl, "broken", "gone", [make_tree(tmp_path / "src", 3)])
    failed_id = start(busctl, "broken")
    failed = wait_status(busctl, failed_id)
    assert failed["status"] == "failed", failed

    async with view(session_env).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await wait_for(pilot, lambda: shows(app, failed_id, "failed"), "the failed backup")
        assert shows(app, init, "succeeded", "init")

        # / status:failed Enter: only failed jobs are left.
        await pilot.press("slash", *"status:failed", "enter")
        await wait_for(pilot, lambda: not row(app, init), "the filter to apply")
        table = app.query_one("#jobs-table", DataTable)
        shown = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert shown and set(shown) == {"failed"}, shown
        assert shows(app, failed_id, "failed", "backup", "broken")
        assert "filter status:failed" in screen_text(app)

        # u requeues it: borgd has a new job made from it, and says so on screen.
        await select(pilot, app, failed_id)
        await pilot.press("u")
        requeued = await wait_for(
            pilot,
            lambda: [
                j
                for j in busctl("ListJobs", "a{sv}", 0)
                if j["requeued_from"] == failed_id and j["trigger"] == "requeue"
            ],
            "the requeued job",
        )
        new_id = requeued[0]["id"]
        await wait_for(
            pilot, lambda: f"requeued as job {new_id}" in screen_text(app), "the note line"
        )
        # It fails too (the repository is still missing) and joins the filtered list.
        assert wait_status(busctl, new_id)["status"] == "failed"
        await wait_for(pilot, lambda: shows(app, new_id, "failed"), "the requeued job failed")

        # Enter shows the job and its log (borg's messages, as GetJobLog has them).
        await select(pilot, app, failed_id)
        await pilot.press("enter")
        expected = [
            t for t in map(readable_log_line, busctl("GetJobLog", "tu", failed_id, 0)) if t
        ]
        assert expected
        await wait_for(
            pilot,
            lambda: all(t[:60] in screen_text(app) for t in expected[:3]),
            "the log on the job's screen",
        )
        assert f"job {failed_id}: backup of broken — failed" in screen_text(app)
        assert failed["message"][:60] in screen_text(app)


async def test_waits_while_borgd_is_away_and_reconnects(
    start_borgd, busctl, session_env, tmp_path
):
    daemon = start_borgd()
    init = init_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "p", "r", [make_tree(tmp_path / "src", 3)])
    async with view(session_env).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await wait_for(pilot, lambda: shows(app, init, "succeeded"), "the init job")
        assert daemon.stop() == 0
        await wait_for(
            pilot,
            lambda: "borgd is not running — waiting" in screen_text(app),
            "the view to say borgd is gone",
        )
        await pilot.press("p")  # an action meanwhile: a note line, never a crash
        await wait_for(
            pilot, lambda: "not running" in screen_text(app).splitlines()[-2], "the note line"
        )

        start_borgd()
        await wait_for(
            pilot,
            lambda: re.match(r" borgd \S+ · ", screen_text(app)),
            "the view to find borgd again",
        )
        # Live again: a job made now appears through its signals, and runs to the end.
        backup = start(busctl, "p")
        await wait_for(pilot, lambda: row(app, backup), "the new job")
        assert wait_status(busctl, backup)["status"] == "succeeded"
        await wait_for(pilot, lambda: shows(app, backup, "succeeded"), "its end")
        assert shows(app, init, "succeeded")


async def test_browse_an_archive_and_restore_a_selection(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    source = make_tree(tmp_path / "src", 8)
    add_profile(busctl, "docs", "r", [source])
    made = wait_status(busctl, start(busctl, "docs"))
    assert made["status"] == "succeeded", made
    inside = str(source).lstrip("/")  # the archive's paths: the source's, without the '/'
    wanted = sorted(p.relative_to(source).as_posix() for p in (source / "d1").iterdir())[:2]

    async with view(session_env).run_test(size=(80, 24)) as pilot:
        app: BorgdApp = pilot.app  # type: ignore[assignment]
        await wait_for(pilot, lambda: row(app, made["id"]), "the backup")
        await pilot.press("4")
        await wait_for(pilot, lambda: made["archive"] in screen_text(app), "the archive listed")
        await pilot.press("enter", "enter")  # the repository's archives, then the archive
        screen = await wait_for(
            pilot, lambda: isinstance(app.screen, ContentsScreen) and app.screen, "its files"
        )
        # Down the folders to the source, as a person would: Enter on the one folder shown.
        while screen.path != inside:
            assert inside.startswith(screen.path), (screen.path, inside)
            here = screen.path
            await wait_for(pilot, lambda: screen.entries and quiet(app), f"/{here}")
            await pilot.press("enter")
            await wait_for(pilot, lambda here=here: screen.path != here, "the next folder")
        await wait_for(pilot, lambda: "d1/" in screen_text(app), "the source's folders")
        table = screen.query_one("#contents-table", DataTable)
        while selected_key(table) != f"{inside}/d1":
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.path == f"{inside}/d1" and quiet(app), "d1")
        await pilot.press("space", "space", "R")
        await wait_for(pilot, lambda: "Restore " in screen_text(app), "the restore dialog")
        destination = tmp_path / "restored"
        app.screen.query_one("#restore-to", Input).value = str(destination)  # typed, in effect
        await pilot.press("enter")
        note = await wait_for(
            pilot,
            lambda: re.search(r"restore queued: job (\d+)", screen_text(app)),
            "the restore job",
        )
        done = wait_status(busctl, int(note.group(1)))
        assert (done["type"], done["status"]) == ("restore", "succeeded"), done
        restored = destination / inside
        got = sorted(
            p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file()
        )
        assert got == wanted, (got, wanted)  # the first two files of d1, in path order
        for name in got:
            assert (restored / name).read_bytes() == (source / name).read_bytes()
