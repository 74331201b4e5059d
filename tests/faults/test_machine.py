"""Faults of the machine around borgd: each one is a clear error, never a crash loop.

* the state directory's disk is full (a small tmpfs as $XDG_STATE_HOME, mounted in a
  private mount namespace that borgd runs in: the host's mount table never changes);
* the store is locked by another process (SQLite ``BEGIN EXCLUSIVE``, and
  ``locking_mode=EXCLUSIVE`` which also shuts readers out);
* the store file is corrupt (started three times: the same one line each time);
* borg is not on PATH (and no BORGD_BORG), or BORGD_BORG names no file;
* the log directory cannot be written (a file in its place, a read-only mount).

A fault that concerns one job fails that job with a message naming the
cause while the daemon keeps serving; a fault that stops the daemon makes it
exit non-zero at once with one line naming the cause; no finished job record
is lost.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BusctlError, make_tree, wait_until
from tests.e2e.jobs_helpers import children
from tests.faults.invariants import store_health
from tests.mountns import MountNamespace, private_mounts
from tests.reliability.helpers import (
    FINISHED,
    add_profile,
    all_jobs,
    get_job,
    init_repo,
    start_job,
    wait_status,
)

START_LOCK_WAIT = 10.0  # how long borgd waits for a store locked at start (borgd/daemon.py)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


def serving(busctl) -> bool:
    busctl("ListRepositories")  # raises BusctlError when borgd does not answer
    return True


# -- the state directory's disk is full -------------------------------------------


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        small = b"\0" * 4096
        with contextlib.suppress(OSError):
            while True:
                f.write(small)
    return filler


DISK_FULL = re.compile(r"no space left|disk is full|disk full|out of space|ENOSPC", re.I)


@dataclass
class SmallState:
    ns: MountNamespace
    outside: Path  # the tmpfs, as the test reaches it from its own mount namespace


@pytest.fixture
def small_state(session_env) -> Iterator[SmallState]:
    """$XDG_STATE_HOME on a 24 MB tmpfs (the store and the job logs live there), mounted in
    a private mount namespace: borgd runs inside it (``start_borgd(wrap=ns.enter)``)."""
    state = Path(session_env.vars["XDG_STATE_HOME"])
    with private_mounts() as ns:
        ns.mount_tmpfs(state, "size=24m,mode=0700")
        yield SmallState(ns, ns.path(state))


def test_state_disk_full_when_a_job_is_asked_for(
    small_state, start_borgd, busctl, tmp_path, report
):
    daemon = start_borgd(wrap=small_state.ns.enter)
    init_repo(busctl, "r1", tmp_path / "r1")
    add_profile(busctl, "p", "r1", [make_tree(tmp_path / "src", 20)])
    first = wait_status(busctl, start_job(busctl, "p"))
    assert first["status"] == "succeeded", first
    before = {j["id"]: j for j in all_jobs(busctl)}

    filler = fill(small_state.outside)
    try:
        job_id = start_job(busctl, "p")
    except BusctlError as exc:
        outcome = f"StartJob refused: {exc.text}"
        assert DISK_FULL.search(exc.text), f"the refusal does not name the cause: {exc}"
    else:
        done = wait_status(busctl, job_id, timeout=60)
        outcome = f"job {done['status']}: {done['message']}"
        assert DISK_FULL.search(done["message"]), f"the job does not name the cause: {done}"
    finally:
        assert daemon.proc.poll() is None, daemon.log()
        listed = {j["id"] for j in all_jobs(busctl)}
        assert set(before) <= listed, "finished jobs vanished while the disk was full"
        filler.unlink()
    report(f"disk full, StartJob: {outcome[:200]}")
    assert daemon.stop() == 0, daemon.log()
    start_borgd(wrap=small_state.ns.enter)
    after = {j["id"]: j for j in all_jobs(busctl)}
    for job_id, job in before.items():
        assert (after[job_id]["status"], after[job_id]["finished_at"]) == (
            job["status"],
            job["finished_at"],
        )
    assert all(j["status"] in FINISHED for j in after.values()), after


def test_state_disk_full_while_a_job_runs(small_state, start_borgd, busctl, tmp_path, report):
    """The disk fills while a backup runs (its pre_command sleeps): the backup's outcome
    cannot be written at first.  Correct: the job still ends in a terminal state (its
    outcome, or a failure naming the full disk), at the latest once space is free again,
    and the repository's lane is not blocked by it."""
    daemon = start_borgd(wrap=small_state.ns.enter)
    init_repo(busctl, "r1", tmp_path / "r1")
    add_profile(busctl, "p", "r1", [make_tree(tmp_path / "src", 20)], pre_command="sleep 2")
    first = wait_status(busctl, start_job(busctl, "p"))
    assert first["status"] == "succeeded", first

    job_id = start_job(busctl, "p")
    wait_until(lambda: get_job(busctl, job_id)["status"] == "running", 20, "the backup to run")
    filler = fill(small_state.outside)
    try:
        wait_until(lambda: not children(daemon.proc.pid), 30, "the pre_command and borg to end")
        time.sleep(1)
    finally:
        filler.unlink()
    assert daemon.proc.poll() is None, daemon.log()
    try:
        done = wait_status(busctl, job_id, timeout=15)
    except AssertionError:
        pytest.fail(
            f"job {job_id} is still {get_job(busctl, job_id)['status']} 15 s after space was "
            f"freed (its outcome was never recorded)"
        )
    report(f"disk full while running: job {done['status']}: {done['message'][:160]}")
    if done["status"] != "succeeded":
        assert DISK_FULL.search(done["message"]), done
    nxt = wait_status(busctl, start_job(busctl, "p"), timeout=30)
    assert nxt["status"] == "succeeded", nxt
    assert daemon.stop() == 0, daemon.log()
    start_borgd(wrap=small_state.ns.enter)
    after = {j["id"]: j for j in all_jobs(busctl)}
    assert after[first["id"]]["status"] == "succeeded"
    assert after[job_id]["status"] == done["status"]


# -- the store locked by another process ------------------------------------------


def lock_store(path: Path, exclusive_mode: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    if exclusive_mode:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("CREATE TABLE IF NOT EXISTS reliability_probe (x)")  # holds the write lock
    return conn


@pytest.mark.parametrize("exclusive_mode", [False, True], ids=["begin-exclusive", "locking-mode"])
def test_store_locked_at_start_up(exclusive_mode, start_borgd, busctl, session_env, report):
    first = start_borgd()
    assert first.stop() == 0
    store = session_env.state_dir / "borgd.sqlite3"

    # Held for longer than the start-up wait: a clear line and a non-zero exit, or it
    # proceeds; either way within that wait and a margin.
    conn = lock_store(store, exclusive_mode)
    try:
        began = time.monotonic()
        daemon = start_borgd(ready=False)
        deadline = began + START_LOCK_WAIT + 15
        ready = False
        while time.monotonic() < deadline and daemon.proc.poll() is None and not ready:
            ready = daemon.notify.wait_for("READY=1", 0.1)
        took = time.monotonic() - began
        if not ready:
            assert daemon.proc.poll() is not None, f"neither ready nor gone:\n{daemon.log()}"
            line = one_line(daemon.log())
            assert daemon.proc.returncode != 0
            assert str(store) in line and re.search(r"locked|busy", line, re.I), line
            outcome = f"exit {daemon.proc.returncode} after {took:.1f}s: {line}"
        else:
            assert serving(busctl)
            daemon.stop()
            outcome = f"ready after {took:.1f}s"
        assert took < START_LOCK_WAIT + 15
    finally:
        conn.rollback()
        conn.close()

    # Released within the start-up wait: start-up waits for it and proceeds.
    conn = lock_store(store, exclusive_mode)
    releaser = threading.Timer(1.5, lambda: (conn.rollback(), conn.close()))
    releaser.start()
    try:
        start_borgd()  # waits for READY=1
        assert serving(busctl)
    finally:
        releaser.join()
    report(
        f"store locked at start-up ({'locking_mode' if exclusive_mode else 'BEGIN'}): {outcome}"
    )


def test_store_locked_while_it_writes(start_borgd, busctl, gdbus, session_env, tmp_path, report):
    daemon = start_borgd()
    store = session_env.state_dir / "borgd.sqlite3"
    gdbus("AddRepository", "r1", str(tmp_path / "r1"), "{'encryption': <'none'>}")

    # Locked by another process: the write is refused at once (store calls run on the
    # event loop and never wait long) with an error that says why, nothing is
    # half-written, StoreHealth says so, and the daemon serves on.
    conn = lock_store(store, exclusive_mode=False)
    try:
        began = time.monotonic()
        with pytest.raises(BusctlError) as refused:
            gdbus("AddRepository", "r2", str(tmp_path / "r2"), "{'encryption': <'none'>}")
        took = time.monotonic() - began
        health = store_health(busctl)
    finally:
        conn.rollback()
        conn.close()
    outcome = f"{refused.value.name}: {refused.value.text}"
    report(f"store locked while writing ({took:.2f}s): {outcome[:200]}; StoreHealth {health!r}")
    assert refused.value.name == "org.borgd1.Error.Unavailable", outcome
    assert re.search(r"locked", outcome, re.I), f"the error does not say why: {outcome}"
    # gdbus itself takes ~0.1 s to start; the call must not wait for the lock (5 s before).
    assert took < 2, took
    assert health == "unavailable: database is locked"
    assert daemon.proc.poll() is None, daemon.log()
    assert [r["name"] for r in busctl("ListRepositories")] == ["r1"]

    # Released: StoreHealth is back to ok once a probe commits (0.5 s, then 1 s …).
    wait_until(lambda: store_health(busctl) == "ok", 15, "StoreHealth ok")
    gdbus("AddRepository", "r2", str(tmp_path / "r2"), "{'encryption': <'none'>}")
    assert [r["name"] for r in busctl("ListRepositories")] == ["r1", "r2"]


# -- the store corrupted -------------------------------------------------------------


def corrupt(store: Path, how: str) -> None:
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{store}{suffix}").unlink()
    data = bytearray(store.read_bytes())
    if how == "header":
        data[:100] = b"this is not an SQLite database, it was overwritten".ljust(100, b"!")
    else:  # a page in the middle: the file opens, the integrity check fails
        page = 4096
        assert len(data) >= 3 * page, len(data)
        data[page : 2 * page] = bytes(range(256)) * (page // 256)
    store.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["header", "page"])
def test_corrupt_store_exits_at_once_with_one_line_every_time(
    how, start_borgd, busctl, session_env, tmp_path, report
):
    daemon = start_borgd()
    init_repo(busctl, "r1", tmp_path / "r1")
    for n in range(6):  # enough rows for several pages
        add_profile(
            busctl, f"p{n}", "r1", [tmp_path], excludes=[f"/x{n}-{k:03}" * 8 for k in range(40)]
        )
    assert daemon.stop() == 0
    store = session_env.state_dir / "borgd.sqlite3"
    corrupt(store, how)

    lines = []
    for _ in range(3):
        began = time.monotonic()
        attempt = start_borgd(ready=False)
        rc = attempt.proc.wait(15)
        took = time.monotonic() - began
        assert rc != 0, attempt.log()
        assert took < 10, took  # no wait: only a lock is waited for
        lines.append(one_line(attempt.log()))
    assert len(set(lines)) == 1, lines
    assert str(store) in lines[0], lines[0]
    report(f"corrupt store ({how}): exit {rc}: {lines[0][:200]}")


# -- borg missing --------------------------------------------------------------------

BORG_NOT_FOUND = re.compile(
    r"borg.*(not found|no such file|cannot be found|is not installed)", re.I
)


@pytest.mark.parametrize("how", ["not-on-path", "borgd-borg-nowhere"])
def test_borg_missing_fails_jobs_clearly(how, start_borgd, busctl, tmp_path, report):
    """The world is built, not assumed: PATH is one empty folder (a borg installed in
    /usr/bin, e.g. Debian's borgbackup, is out of reach), and BORGD_BORG is either unset
    or names a file that does not exist."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    nowhere = tmp_path / "nowhere" / "borg"
    borgd_borg = str(nowhere) if how == "borgd-borg-nowhere" else ""
    daemon = start_borgd(env={"PATH": str(empty), "BORGD_BORG": borgd_borg})
    done = init_repo_unchecked(busctl, "r1", tmp_path / "r1")
    assert done["status"] == "failed", done
    assert BORG_NOT_FOUND.search(done["message"]), done["message"]
    assert "internal error" not in done["message"], done["message"]
    if borgd_borg:
        assert str(nowhere) in done["message"], "the message names the missing program"

    add_profile(busctl, "p", "r1", [make_tree(tmp_path / "src", 3)])
    backup = wait_status(busctl, start_job(busctl, "p"))
    assert backup["status"] == "failed", backup
    assert BORG_NOT_FOUND.search(backup["message"]), backup["message"]
    assert daemon.proc.poll() is None and serving(busctl)
    report(f"borg missing ({how}): {backup['message'][:200]}")


# -- the log directory cannot be written ------------------------------------------

LOG_UNWRITABLE = re.compile(r"log could not be written|cannot write the (job )?log", re.I)


@pytest.mark.parametrize("how", ["file-in-the-way", "read-only-mount"])
def test_unwritable_log_directory(how, start_borgd, busctl, session_env, tmp_path, report):
    logs = session_env.state_dir / "logs"
    session_env.state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        wrap: Sequence[str] = ()
        if how == "file-in-the-way":
            logs.write_text("not a directory\n")
        else:
            ns = stack.enter_context(private_mounts())
            ns.mount_tmpfs(logs, "ro,size=1m")
            wrap = ns.enter
        start_borgd(wrap=wrap)
        init = init_repo_unchecked(busctl, "r1", tmp_path / "r1")
        add_profile(busctl, "p", "r1", [make_tree(tmp_path / "src", 5)])
        done = wait_status(busctl, start_job(busctl, "p"))
        try:
            log_lines = busctl("GetJobLog", "tu", done["id"], 0)
        except BusctlError as exc:
            log_lines = f"GetJobLog failed: {exc}"
    assert init["status"] == "succeeded", f"init {init['status']}: {init['message']}"
    assert done["status"] == "succeeded", f"backup {done['status']}: {done['message']}"
    assert LOG_UNWRITABLE.search(done["message"]), done["message"]
    assert LOG_UNWRITABLE.search(init["message"]), init["message"]
    assert not isinstance(log_lines, str), log_lines
    report(f"log dir unwritable ({how}): {done['status']}: {done['message'][:160]}")


def init_repo_unchecked(busctl, name: str, path: Path) -> dict:
    """AddRepository with init; returns the init job when it finished, whatever its status."""
    busctl(
        "AddRepository", "ssa{sv}", name, str(path), 2, "init", "b", "true",
        "encryption", "s", "none",
    )  # fmt: skip
    (init,) = [j for j in all_jobs(busctl, type="init") if j["repository"] == name]
    return wait_status(busctl, init["id"])


# -- the session bus goes away -----------------------------------------------------


def test_session_bus_lost_exits_non_zero(buses, start_borgd, report):
    """Without its bus connection borgd can neither be reached nor keep its name: it must
    say so and exit non-zero (systemd or D-Bus activation starts it again), never stay on
    headless.  The session bus's dbus-daemon is stopped under it."""
    daemon = start_borgd()
    session_bus = buses.procs[0]
    session_bus.terminate()
    session_bus.wait(5)
    try:
        rc = daemon.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"borgd still runs 10 s after losing the session bus:\n{daemon.log()[-3000:]}")
    last = daemon.log().strip().splitlines()[-1]
    report(f"session bus lost: exit {rc}: {last[:160]}")
    assert rc != 0, daemon.log()
    assert re.search(r"bus", last, re.I), last
