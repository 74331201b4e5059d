"""Notifications that leave the machine: real Apprise, real HTTP, a real outbox.

A local HTTP server (stdlib, 127.0.0.1) stands in for ntfy/Healthchecks/any
webhook receiver; borgd reaches it through Apprise's `json://`, through
healthchecks pings and through webhook POSTs.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.conftest import BusctlError, make_tree, wait_until
from tests.e2e.jobs_helpers import asv
from tests.reliability.helpers import add_profile, init_repo, start_job, wait_status

TOKEN_HC = "hcTOKEN5f2a9c1e"
TOKEN_HOOK = "hookSECRET7b3d0e44"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """An HTTP server on 127.0.0.1 that records every request; `hang` holds answers."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    hang: threading.Event | None = None
    _httpd: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Server:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urllib.parse.urlsplit(self.path)
                outer.received.append(
                    Received(
                        "POST",
                        parts.path,
                        dict(urllib.parse.parse_qsl(parts.query)),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                if outer.hang is not None:
                    outer.hang.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server():
    s = Server().start()
    yield s
    if s.hang is not None:
        s.hang.set()
    s.stop()


def deliveries(busctl, **flt: Any) -> list[dict[str, Any]]:
    rows = busctl("ListDeliveries", "a{sv}", *asv(**flt))
    return rows if isinstance(rows, list) else [rows] if rows else []


def add_notifier(busctl, name: str, url: str, **options: Any) -> int:
    return busctl("AddNotifier", "ssa{sv}", name, url, *asv(**options))


def broken_profile(busctl, tmp_path: Path, name: str = "broken") -> None:
    """A profile whose repository does not exist: each backup fails at once."""
    busctl("AddRepository", "ssa{sv}", "gone", str(tmp_path / "gone"), *asv(encryption="none"))
    add_profile(busctl, name, "gone", [make_tree(tmp_path / f"{name}-src", 2)])


def test_each_kind_reaches_the_server_with_only_what_was_asked(
    start_borgd, busctl, session_env, tmp_path, server
):
    daemon = start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "web", "r", [make_tree(tmp_path / "web", 3)])
    add_profile(busctl, "home", "r", [make_tree(tmp_path / "home", 3)])
    broken_profile(busctl, tmp_path)
    add_notifier(busctl, "alerts", server.url("/apprise", "json"))  # default: failures
    add_notifier(
        busctl, "hc", server.url(f"/ping/{TOKEN_HC}"), kind="healthchecks", profiles=["web"]
    )
    add_notifier(
        busctl,
        "hook",
        server.url(f"/hook/{TOKEN_HOOK}"),
        kind="webhook",
        events=["job-succeeded"],
        profiles=["home"],
    )
    web = wait_status(busctl, start_job(busctl, "web"))
    home = wait_status(busctl, start_job(busctl, "home"))
    broken = wait_status(busctl, start_job(busctl, "broken"))
    assert (web["status"], home["status"], broken["status"]) == ("succeeded",) * 2 + ("failed",)

    wait_until(
        lambda: len(sent := deliveries(busctl, status="sent")) == 4 and sent,
        30,
        "four deliveries sent",
    )
    by_path: dict[str, list[Received]] = {}
    for r in server.received:
        by_path.setdefault(r.path, []).append(r)
    assert set(by_path) == {"/apprise", f"/ping/{TOKEN_HC}/start", f"/ping/{TOKEN_HC}",
                            f"/hook/{TOKEN_HOOK}"}, by_path  # fmt: skip

    # Apprise's json:// on the failed backup only (the default events: failures).
    (alert,) = by_path["/apprise"]
    message = alert.json()
    assert "broken" in message["title"] and "failed" in message["title"], message
    assert message["type"] == "failure", message

    # healthchecks: /start, then the success ping with the log tail, one rid for the run.
    (start,) = by_path[f"/ping/{TOKEN_HC}/start"]
    (done,) = by_path[f"/ping/{TOKEN_HC}"]
    assert start.query["rid"] == done.query["rid"] and len(done.query["rid"]) == 36
    assert server.received.index(start) < server.received.index(done)
    log_lines = busctl("GetJobLog", "tu", web["id"], 100)
    assert done.body.decode().splitlines()[-1] == log_lines[-1], done.body

    # The webhook: home's success, as the job dictionary.
    (hook,) = by_path[f"/hook/{TOKEN_HOOK}"]
    sent_job = hook.json()
    assert (sent_job["id"], sent_job["profile"], sent_job["status"]) == (home["id"], "home",
                                                                         "succeeded")  # fmt: skip
    assert sent_job["archive"] == home["archive"] and sent_job["nfiles"] == home["nfiles"]
    assert hook.headers["x-borgd-event"] == "job-succeeded"
    assert hook.headers["idempotency-key"]

    # What ListNotifiers and ListDeliveries show: hosts, never the URL.
    listed = {x["name"]: x for x in busctl("ListNotifiers")}
    assert listed["hc"]["host"] == f"http://127.0.0.1:{server.port}"
    assert listed["hc"]["events"] == ["job-started", "job-succeeded", "job-failed"]
    assert listed["hook"]["profiles"] == ["home"]

    # The tokens appear in no reply, log, argv or store file.
    replies = json.dumps(
        [busctl("ListNotifiers"), deliveries(busctl), busctl("ListJobs", "a{sv}", 0)]
    )
    state = Path(session_env.vars["XDG_STATE_HOME"]) / "borgd"
    stored = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    argv = b""
    for pid in [daemon.proc.pid, *children(daemon.proc.pid)]:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv += f.read()
    assert "level='error'" not in daemon.log()  # nothing went wrong on the way
    for token in (TOKEN_HC, TOKEN_HOOK):
        assert token not in replies
        assert token.encode() not in stored
        assert token not in daemon.log()
        assert token.encode() not in argv


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_then_up_each_arrives_once_in_order_across_a_restart(
    start_borgd, busctl, tmp_path
):
    first_daemon = start_borgd("--notify-retry", "1")
    broken_profile(busctl, tmp_path)
    port = free_port()  # nothing listens there yet
    add_notifier(busctl, "hook", f"http://127.0.0.1:{port}/hook", kind="webhook")
    failed = [wait_status(busctl, start_job(busctl, "broken"))["id"] for _ in range(3)]

    def waiting() -> list[dict[str, Any]]:
        return sorted(deliveries(busctl, status="pending"), key=lambda d: d["id"])

    rows = wait_until(
        lambda: len(w := waiting()) == 3 and w[0]["attempts"] >= 1 and w, 30, "3 pending"
    )
    assert [d["job_id"] for d in rows] == failed
    assert "refused" in rows[0]["last_error"].lower() or rows[0]["last_error"], rows[0]
    assert [d["attempts"] for d in rows[1:]] == [0, 0]  # they wait behind the first

    # A restart in between: nothing is lost, nothing is queued twice.
    first_daemon.stop()
    start_borgd("--notify-retry", "1")
    assert [d["id"] for d in waiting()] == [d["id"] for d in rows]

    server = Server(port=port).start()
    try:
        wait_until(lambda: len(deliveries(busctl, status="sent")) == 3, 30, "all three sent")
        time.sleep(1.5)  # a late duplicate would arrive within a retry period
        ids = [r.json()["id"] for r in server.received]
        assert ids == failed  # each once, in order
        assert len({r.headers["idempotency-key"] for r in server.received}) == 3
    finally:
        server.stop()


async def _ping_times(address: str, seconds: float) -> list[float]:
    bus = await MessageBus(bus_address=address).connect()
    times = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            began = time.monotonic()
            reply = await bus.call(
                Message(
                    destination="org.borgd1",
                    path="/org/borgd1",
                    interface="org.freedesktop.DBus.Peer",
                    member="Ping",
                )
            )
            assert reply.message_type is MessageType.METHOD_RETURN
            times.append(time.monotonic() - began)
            await anyio.sleep(0.02)
    finally:
        bus.disconnect()
    return times


def test_a_hanging_server_delays_no_job_and_no_call(
    start_borgd, busctl, session_env, tmp_path, server
):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "web", "r", [make_tree(tmp_path / "web", 3)])
    server.hang = threading.Event()
    add_notifier(busctl, "slow", server.url("/hook"), kind="webhook", events=["job-succeeded"])
    first = wait_status(busctl, start_job(busctl, "web"))
    wait_until(lambda: server.received, 10, "the delivery to reach the hanging server")
    began = time.monotonic()
    second = wait_status(busctl, start_job(busctl, "web"))
    took = time.monotonic() - began
    times = anyio.run(_ping_times, session_env.vars["DBUS_SESSION_BUS_ADDRESS"], 2.0)
    assert (first["status"], second["status"]) == ("succeeded", "succeeded")
    assert took < 15, took  # a backup of 3 files; the server holds its answer for 60 s
    assert max(times) < 0.05, sorted(times)[-5:]
    (row, *_) = deliveries(busctl)
    assert row["status"] == "pending"  # still waiting for that answer, or to retry
    server.hang.set()


def test_bad_notifiers_are_refused_and_change_nothing(start_borgd, busctl, server):
    start_borgd()
    cases = [
        ("bad name", server.url("/x"), {}, "invalid notifier name"),
        ("n1", "", {}, "needs its URL"),
        ("n1", "no-scheme", {}, "needs a scheme"),
        ("n1", server.url("/x"), {"kind": "pager"}, "unknown notifier kind"),
        ("n1", "ntfy://topic", {"kind": "webhook"}, "must be http:// or https://"),
        ("n1", server.url("/x"), {"events": ["job-exploded"]}, "unknown event"),
        ("n1", server.url("/x"), {"colour": "red"}, "unknown AddNotifier option"),
        ("n1", "nosuchservice://x/y", {}, "Apprise does not know"),
    ]
    for name, url, options, said in cases:
        with pytest.raises(BusctlError) as err:
            add_notifier(busctl, name, url, **options)
        assert said in str(err.value), (said, str(err.value))
    assert busctl("ListNotifiers") in ([], None)
    add_notifier(busctl, "n1", server.url("/x", "json"))
    with pytest.raises(BusctlError) as err:
        add_notifier(busctl, "n1", server.url("/y", "json"))
    assert "exists" in str(err.value)
    with pytest.raises(BusctlError):
        busctl("UpdateNotifier", "sa{sv}", "n1", *asv(events=["nope"]))
    with pytest.raises(BusctlError):
        busctl("TestNotifier", "s", "nobody")
    (n1,) = busctl("ListNotifiers")
    assert n1["events"] == ["job-failed", "overdue", "missed-window", "blocked"]

    # A test message goes out at once; a removed notifier's URL is forgotten.
    delivery = busctl("TestNotifier", "s", "n1")
    wait_until(lambda: server.received, 10, "the test message")
    assert server.received[0].path == "/x"
    wait_until(
        lambda: deliveries(busctl)[0]["status"] == "sent", 10, "the test delivery marked sent"
    )
    assert deliveries(busctl)[0]["id"] == delivery
    busctl("RemoveNotifier", "s", "n1")
    assert busctl("ListNotifiers") in ([], None)


def test_borgctl_notify_commands(start_borgd, borgctl, server):
    start_borgd()
    url = server.url(f"/hook/{TOKEN_HOOK}")
    added = borgctl("notify", "add", "hook", "-", "--kind", "webhook", "--event", "job-failed",
                    input=url + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = borgctl("notify", "list", "--json")
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["kind"], row["events"]) == ("hook", "webhook", ["job-failed"])
    assert row["host"] == f"http://127.0.0.1:{server.port}"
    table = borgctl("notify", "list").stdout
    assert "hook" in table and TOKEN_HOOK not in table

    assert borgctl("notify", "test", "hook").returncode == 0
    wait_until(lambda: server.received, 10, "the test message")
    log = wait_until(
        lambda: (
            (rows := json.loads(borgctl("notify", "log", "--json").stdout))
            and rows[0]["status"] == "sent"
            and rows
        ),
        10,
        "the test delivery in the log",
    )
    assert (log[0]["notifier"], log[0]["event"]) == ("hook", "test")

    # Bad input: one line, exit 2, nothing changed.
    for argv in (("notify", "add", "other"), ("notify", "add", "x", "--url-env", "NOPE_UNSET")):
        bad = borgctl(*argv)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    bad = borgctl("notify", "add", "x", "ftp://h/p", "--kind", "webhook")
    assert bad.returncode == 2 and "http" in bad.stderr, bad.stderr  # borgd refused it
    assert borgctl("notify", "edit", "hook", "--disable").returncode == 0
    assert json.loads(borgctl("notify", "list", "--json").stdout)[0]["enabled"] is False
    assert borgctl("notify", "rm", "hook").returncode == 0
    assert json.loads(borgctl("notify", "list", "--json").stdout) == []


NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_STATE_DISCONNECTED, NM_STATE_CONNECTED_GLOBAL = 20, 70
LOGIND_IFACE = "org.freedesktop.login1.Manager"


def test_offline_deliveries_wait_and_go_when_the_network_returns(
    start_borgd, busctl, session_env, spawn_mock, tmp_path, server
):
    import dbus
    from dbusmock import MOCK_IFACE

    spawn_mock("networkmanager")
    logind = spawn_mock("logind")
    system = dbus.bus.BusConnection(session_env.vars["DBUS_SYSTEM_BUS_ADDRESS"])
    manager = system.get_object(NM, NM_PATH)
    manager.SetGlobalConnectionState(dbus.UInt32(NM_STATE_DISCONNECTED), dbus_interface=MOCK_IFACE)
    # A retry a minute away: only the network's return can send it soon.
    start_borgd("--notify-retry", "60")
    broken_profile(busctl, tmp_path)
    add_notifier(busctl, "hook", server.url("/hook"), kind="webhook")
    failed = wait_status(busctl, start_job(busctl, "broken"))
    time.sleep(1.5)  # what an online borgd takes to send it many times over
    (row,) = deliveries(busctl)
    assert (row["status"], row["attempts"], row["job_id"]) == ("pending", 0, failed["id"])
    assert server.received == []

    manager.SetGlobalConnectionState(
        dbus.UInt32(NM_STATE_CONNECTED_GLOBAL), dbus_interface=MOCK_IFACE
    )
    wait_until(lambda: deliveries(busctl)[0]["status"] == "sent", 10, "sent once online")
    (row,) = deliveries(busctl)
    assert row["attempts"] == 1 and [r.json()["id"] for r in server.received] == [failed["id"]]

    # Online but the server is down: the attempt fails and its retry is a minute away;
    # a resume from sleep (or the network coming back) sends it at once all the same.
    port = server.port
    server.stop()
    again = wait_status(busctl, start_job(busctl, "broken"))
    row = wait_until(
        lambda: (d := deliveries(busctl)[0])["attempts"] == 1 and d["job_id"] == again["id"] and d,
        10,
        "the failed attempt",
    )
    assert row["status"] == "pending" and row["last_error"], row
    revived = Server(port=port).start()
    try:
        for going_to_sleep in (True, False):
            logind.obj.EmitSignal(
                LOGIND_IFACE, "PrepareForSleep", "b", [going_to_sleep], dbus_interface=MOCK_IFACE
            )
        wait_until(lambda: revived.received, 10, "the retry after the resume")
        assert [r.json()["id"] for r in revived.received] == [again["id"]]
    finally:
        revived.stop()


def test_apply_and_export_carry_notifiers_never_their_urls(start_borgd, borgctl, tmp_path):
    start_borgd()
    url = f"http://127.0.0.1:9/hook/{TOKEN_HOOK}"
    config = tmp_path / "borgd.toml"
    config.write_text(
        '[notifiers.hook]\nkind = "webhook"\nevents = ["job-failed", "overdue"]\n'
        'url_env = "HOOK_URL"\n'
    )
    missing = borgctl("apply", str(config))
    assert missing.returncode == 2 and "$HOOK_URL is not set" in missing.stderr
    env_run = borgctl("apply", str(config), env_extra={"HOOK_URL": url})
    assert env_run.returncode == 0, env_run.stderr
    assert "add notifier hook" in env_run.stdout and TOKEN_HOOK not in env_run.stdout

    exported = borgctl("export").stdout
    assert "[notifiers.hook]" in exported and 'url = "secret:notifier/hook"' in exported
    assert TOKEN_HOOK not in exported
    again = tmp_path / "again.toml"
    again.write_text(exported)
    assert borgctl("apply", str(again)).stdout.strip() == "nothing to change"

    literal = tmp_path / "literal.toml"
    literal.write_text(f'[notifiers.x]\nkind = "webhook"\nurl = "{url}"\n')
    refused = borgctl("apply", str(literal))
    assert refused.returncode == 2 and "url_env" in refused.stderr
    assert TOKEN_HOOK not in refused.stderr


def test_held_back_and_overdue_profiles_are_told_once_per_episode(
    start_borgd, busctl, session_env, spawn_mock, tmp_path, server
):
    from tests.e2e.test_scheduler_runs import add_schedule, setup_profile

    spawn_mock("upower", {"OnBattery": True})
    start_borgd("--notify-blocked-after", "1")
    wait_until(lambda: busctl("ListJobs", "a{sv}", 0) is not None, 5, "borgd")
    add_notifier(
        busctl, "hook", server.url("/hook"), kind="webhook", events=["blocked", "overdue"]
    )
    setup_profile(busctl, session_env, "docs", max_age=1_000_000)  # overdue 1 s after adding
    add_schedule(busctl, "docs", "*:*:0/2", skip_on_battery=True)

    def events() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in server.received:
            out.setdefault(r.headers["x-borgd-event"], []).append(r.json())
        return out

    got = wait_until(
        lambda: {"blocked", "overdue"} <= set(e := events()) and e, 15, "blocked and overdue"
    )
    assert got["blocked"][0] == {"profile": "docs", "blocked_by": "on-battery",
                                 "since": got["blocked"][0]["since"]}  # fmt: skip
    assert got["overdue"][0]["profile"] == "docs"
    time.sleep(3)  # more occurrences are held back: still one episode each
    assert {k: len(v) for k, v in events().items()} == {"blocked": 1, "overdue": 1}


def test_a_run_that_missed_its_window_is_told(start_borgd, busctl, session_env, server):
    import signal
    from datetime import UTC, datetime, timedelta

    from tests.e2e.test_scheduler_runs import add_schedule, calendar_seconds, setup_profile

    daemon = start_borgd()
    setup_profile(busctl, session_env, "docs")
    add_notifier(busctl, "hook", server.url("/hook"), kind="webhook", events=["missed-window"])
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    add_schedule(busctl, "docs", calendar_seconds(at, 1), catch_up_window=1_000_000)
    daemon.stop(signal.SIGKILL)  # down while it is due, and for longer than its window
    time.sleep(max(0.0, at.timestamp() + 2.0 - time.time()))
    start_borgd()
    wait_until(lambda: server.received, 15, "the missed-window message")
    time.sleep(0.5)
    (got,) = server.received
    assert got.headers["x-borgd-event"] == "missed-window"
    body = got.json()
    assert (body["profile"], body["status"], body["skip_reason"]) == (
        "docs",
        "skipped",
        "missed-window",
    )
