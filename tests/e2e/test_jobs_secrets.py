"""The passphrase reaches borg through a pipe and nothing else keeps it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from itertools import pairwise

import pytest

from tests.conftest import borg_json, make_tree, wait_until
from tests.e2e.jobs_helpers import (
    add_profile,
    add_repo,
    borg_children,
    borg_env,
    init_repo,
    sparse_tree,
    start,
    wait_running,
    wait_status,
)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_passphrase_never_leaks(start_borgd, busctl, session_env, tmp_path):
    daemon = start_borgd()
    monitor = subprocess.Popen(
        ["busctl", "--user", "monitor", "--json=short", "org.borgd1"],
        env=session_env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(monitor.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: busctl("ListRepositories") == [] and lines, 10, "busctl monitor")
        passphrase = f"pass-{secrets.token_hex(12)}"
        secret = passphrase.encode()
        repo = tmp_path / "repo"
        init_repo(busctl, "vault", repo, encryption="repokey-blake2", passphrase=passphrase)
        add_profile(busctl, "docs", "vault", [sparse_tree(tmp_path / "data", 8, 200)])
        job_id = start(busctl, "docs")
        wait_running(busctl, job_id)
        borg = wait_until(lambda: borg_children(daemon.proc.pid), 5, "borg to start")[0]
        cmdline = read(f"/proc/{borg}/cmdline")
        environ = read(f"/proc/{borg}/environ")
        assert b" create " in cmdline.replace(b"\0", b" ")
        assert secret not in cmdline
        assert secret not in environ
        names = [v.split(b"=", 1)[0] for v in environ.split(b"\0") if v]
        assert b"BORG_PASSPHRASE_FD" in names and b"BORG_PASSPHRASE" not in names
        # The rest of borg's world, per borgd(8) (running borg): its own session,
        # stdin /dev/null, UTF-8, modern exit codes, ssh that never asks, and no way to
        # talk to our systemd.
        stat = read(f"/proc/{borg}/stat")
        assert int(stat[stat.rfind(b")") + 2 :].split()[3]) == borg  # session leader
        assert os.readlink(f"/proc/{borg}/fd/0") == "/dev/null"
        variables = dict(v.split(b"=", 1) for v in environ.split(b"\0") if b"=" in v)
        assert variables[b"LANG"] == variables[b"LC_ALL"] == b"C.UTF-8"
        assert variables[b"BORG_EXIT_CODES"] == b"modern"
        assert variables[b"BORG_RSH"] == b"ssh -o BatchMode=yes"
        assert b"NOTIFY_SOCKET" not in names and b"NOTIFY_SOCKET" in read(
            f"/proc/{daemon.proc.pid}/environ"
        )

        done = wait_status(busctl, job_id)
        assert done["status"] == "succeeded", done
        # Every reply a client can get, for the monitor to see.
        replies = [
            busctl("GetJob", "t", job_id),
            busctl("ListJobs", "a{sv}", 0),
            busctl("ListRepositories"),
            busctl("ListProfiles"),
            busctl("GetJobLog", "tu", job_id, 0),
        ]
        assert secret not in json.dumps(replies).encode()
        # The repository really is sealed with it.
        listing = borg_json("list", str(repo), env=borg_env(session_env, passphrase))
        assert [a["name"] for a in listing["archives"]] == [done["archive"]]
    finally:
        monitor.terminate()
        monitor.wait(10)
        reader.join(10)

    messages = [json.loads(line) for line in lines if line.startswith("{")]
    from_borgd = [m for m in messages if m["type"] != "method_call"]
    assert len(from_borgd) > 10
    assert secret not in json.dumps(from_borgd).encode()
    # ...the only message that carries it is the AddRepository call itself.
    assert [m["member"] for m in messages if secret in json.dumps(m).encode()] == ["AddRepository"]
    # Progress signals of the backup: at most one a second.
    progress_times = [
        m["timestamp-realtime"]
        for m in from_borgd
        if m.get("member") == "JobChanged"
        and m["payload"]["data"][0] == job_id
        and "progress" in m["payload"]["data"][1]
        and "status" not in m["payload"]["data"][1]
    ]
    assert len(progress_times) >= 2
    assert all(b - a >= 900_000 for a, b in pairwise(progress_times)), progress_times

    state = session_env.state_dir
    for name in ("borgd.sqlite3", "borgd.sqlite3-wal"):
        if (state / name).exists():
            assert secret not in read(str(state / name)), name
    logs = list((state / "logs").iterdir())
    assert logs
    for path in logs:
        assert secret not in read(str(path)), path
    assert passphrase not in daemon.log()
    # Where it does live: a private file (no Secret Service on this session bus).
    stored = [p for p in (session_env.home / "config" / "borgd").rglob("*") if p.is_file()]
    assert [read(str(p)).strip() for p in stored] == [secret]
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in stored)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_passphrase_in_any_output_with_passcommands_and_failing_borg(
    log_format, start_borgd, busctl, session_env, tmp_path
):
    """Jobs with a passphrase, with a passcommand, and a borg that fails while holding a
    passphrase; borgd logging at debug level.  No passphrase text is in borgd's stderr, the
    job logs under $XDG_STATE_HOME/borgd/logs, the store, or any D-Bus reply; and no reply
    shows a passcommand's text (borgd.dbus(5), ListRepositories)."""
    daemon = start_borgd("--log-format", log_format, "--log-level", "debug")
    stored = f"stored-{secrets.token_hex(12)}"
    by_command = f"command-{secrets.token_hex(12)}"
    refused = f"refused-{secrets.token_hex(12)}"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(by_command + "\n")
    passcommand = f"cat {secret_file}"
    source = make_tree(tmp_path / "src", 5)

    # A passphrase borgd keeps: init and a backup.
    init_repo(busctl, "vault", tmp_path / "vault", encryption="repokey", passphrase=stored)
    add_profile(busctl, "docs", "vault", [source])
    ok = wait_status(busctl, start(busctl, "docs"))
    # A passcommand: init and a backup.
    init_repo(busctl, "cmd", tmp_path / "cmd", encryption="repokey", passcommand=passcommand)
    add_profile(busctl, "viacmd", "cmd", [source])
    via_command = wait_status(busctl, start(busctl, "viacmd"))
    # A passphrase given to a borg that fails: the folder is no repository.
    (tmp_path / "not-a-repo").mkdir()
    add_repo(busctl, "broken", tmp_path / "not-a-repo", passphrase=refused)
    add_profile(busctl, "fails", "broken", [source])
    failed = wait_status(busctl, start(busctl, "fails"))
    assert (ok["status"], via_command["status"], failed["status"]) == (
        "succeeded",
        "succeeded",
        "failed",
    ), (ok, via_command, failed)
    # The command really gave borg its passphrase: the repository opens with it.
    listing = borg_json("list", str(tmp_path / "cmd"), env=borg_env(session_env, by_command))
    assert [a["name"] for a in listing["archives"]] == [via_command["archive"]]

    jobs = busctl("ListJobs", "a{sv}", 0)
    replies = [
        busctl("ListRepositories"),
        busctl("ListProfiles"),
        jobs,
        *(busctl("GetJob", "t", j["id"]) for j in jobs),
        *(busctl("GetJobLog", "tu", j["id"], 0) for j in jobs),
    ]
    everything_said = json.dumps(replies)
    assert passcommand not in everything_said
    assert {r["name"]: r["has_passcommand"] for r in busctl("ListRepositories")} == {
        "vault": False,
        "cmd": True,
        "broken": False,
    }
    assert daemon.stop() == 0
    logs = sorted((session_env.state_dir / "logs").iterdir())
    assert len(logs) == len(jobs), logs
    state = session_env.state_dir
    places = {
        "borgd's stderr": daemon.log().encode(),
        "D-Bus replies": everything_said.encode(),
        **{str(p): read(str(p)) for p in logs},
        **{
            name: read(str(state / name))
            for name in ("borgd.sqlite3", "borgd.sqlite3-wal")
            if (state / name).exists()
        },
    }
    for text in (stored, by_command, refused):
        leaks = [where for where, data in places.items() if text.encode() in data]
        assert leaks == [], f"{text[:8]}… appears in {leaks}"
