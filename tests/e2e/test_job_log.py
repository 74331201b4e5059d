"""Job logs on the bus, bounded: ReadJobLog pages, GetJobLog's capped tail, `borgctl logs -f`.

The logs come from real backup jobs whose pre_command prints many lines (as a
chatty user script would), then real borg.  What clients get is compared with
the log file borgd wrote under $XDG_STATE_HOME/borgd/logs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BusctlError, make_tree, wait_until
from tests.e2e.jobs_helpers import add_profile, init_repo, start, wait_running, wait_status

LOG_END = 2**64 - 1
CAP = 10_000

# 12,000 numbered lines, a line that is not UTF-8 and one with a NUL byte.
MANY_LINES = (
    'i=0; while [ $i -lt 12000 ]; do echo "line $i"; i=$((i+1)); done; '
    "printf 'bad \\377 byte\\n'; printf 'nul \\000 here\\n'"
)
# 30 bursts of 150 long lines, 0.1 s apart: over 3 s of output, flushed by borgd in
# pieces that end inside lines (its write buffer fills in mid-line).
BURSTS = (
    "pad=$(printf '%0200d' 0); i=0; while [ $i -lt 30 ]; do j=0; "
    'while [ $j -lt 150 ]; do echo "burst $i line $j $pad"; j=$((j+1)); done; '
    "sleep 0.1; i=$((i+1)); done"
)


def log_file(session_env, job_id: int) -> Path:
    return session_env.state_dir / "logs" / f"{job_id}.log"


def file_lines(path: Path) -> list[str]:
    """The file as clients must see it: split at newlines, not UTF-8 and NUL as U+FFFD."""
    text = path.read_bytes().decode("utf-8", "replace").replace("\x00", "\ufffd")
    return text.removesuffix("\n").split("\n")


def out_lines(text: str) -> list[str]:
    return text.removesuffix("\n").split("\n") if text else []


def backup_with_hook(busctl, tmp_path: Path, profile: str, hook: str) -> int:
    if not busctl("ListRepositories"):
        init_repo(busctl, "main", tmp_path / "repo")
    source = tmp_path / "src"
    if not source.exists():
        make_tree(source, 20)
    add_profile(busctl, profile, "main", [source], pre_command=hook)
    return start(busctl, profile)


def test_pages_tail_and_errors(start_borgd, busctl, gdbus, borgctl, session_env, tmp_path):
    start_borgd()
    job_id = backup_with_hook(busctl, tmp_path, "chatty", MANY_LINES)
    done = wait_status(busctl, job_id, timeout=90)
    assert done["status"] == "succeeded", done
    path = log_file(session_env, job_id)
    expected = file_lines(path)
    assert len(expected) > 12_000 and "pre_command: line 11999" in expected
    assert "pre_command: bad \ufffd byte" in expected  # as the runner decoded it
    assert "pre_command: nul \ufffd here" in expected  # NUL reaches no client

    # Paging from 0 gives the file back line for line; each next_offset moves on.
    lines: list[str] = []
    offset = 0
    while True:
        page, next_offset = busctl("ReadJobLog", "ttu", job_id, offset, 1000)
        assert len(page) <= 1000
        if not page:
            assert next_offset == offset
            break
        assert next_offset > offset
        lines += page
        offset = next_offset
    assert lines == expected
    assert offset == path.stat().st_size
    # The end, asked past it, is the end; 0 lines means the cap, not "nothing".
    assert busctl("ReadJobLog", "ttu", job_id, LOG_END, 0) == [[], offset]
    assert busctl("ReadJobLog", "ttu", job_id, 0, 0)[0] == expected[:CAP]

    # The tail is capped at 10,000 lines, whatever is asked.
    assert busctl("GetJobLog", "tu", job_id, 20_000) == expected[-CAP:]
    assert busctl("GetJobLog", "tu", job_id, 0) == expected[-CAP:]
    assert busctl("GetJobLog", "tu", job_id, 5) == expected[-5:]

    # borgctl prints the whole log (more than one page can hold), or the capped tail;
    # --raw as borgd keeps it (borg's JSON lines too), checked line for line.
    res = borgctl("logs", str(job_id), "--raw")
    assert res.returncode == 0, res.stderr
    assert out_lines(res.stdout) == expected
    res = borgctl("logs", str(job_id), "-n", "20000", "--raw")
    assert res.returncode == 0, res.stderr
    assert out_lines(res.stdout) == expected[-CAP:]
    # Without --raw, borg's JSON events read as their messages, and progress is left out.
    res = borgctl("logs", str(job_id))
    assert res.returncode == 0, res.stderr
    readable = out_lines(res.stdout)
    assert not [line for line in readable if '"type": ' in line], readable[:5]
    assert readable[0] == expected[0]  # borgd's own lines as they are
    assert any("Initializing cache transaction" in line for line in readable)
    # Piped into head, it stops quietly.
    res = subprocess.run(
        f"{sys.executable} -m borgd.cli.main logs {job_id} | head -n 2",
        shell=True,
        env=session_env.vars,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out_lines(res.stdout) == expected[:2] and res.stderr == "", res.stderr

    # Errors: an unknown job, a bad id, a wrong signature.
    for member, args in (
        ("ReadJobLog", ("uint64 424242", "uint64 0", "uint32 0")),
        ("GetJobLog", ("uint64 424242", "uint32 0")),
    ):
        with pytest.raises(BusctlError) as err:
            gdbus(member, *args)
        assert err.value.name == "org.borgd1.Error.NotFound", err.value
    with pytest.raises(BusctlError) as err:
        gdbus("ReadJobLog", "uint64 0", "uint64 0", "uint32 0")
    assert err.value.name == "org.borgd1.Error.InvalidArgument", err.value
    # busctl prints only the error's text; dbus-send also prints its name.
    with pytest.raises(BusctlError) as err:
        busctl("ReadJobLog", "tu", job_id, 0)
    assert "takes arguments of signature 'ttu', got 'tu'" in err.value.text
    dbus_send = ["dbus-send", "--session", "--print-reply", "--dest=org.borgd1", "/org/borgd1"]
    sent = subprocess.run(
        [*dbus_send, "org.borgd1.Manager.ReadJobLog", f"uint64:{job_id}"],
        env=session_env.vars,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "org.borgd1.Error.InvalidArgument" in sent.stderr, sent


def test_borgctl_follows_a_running_job_by_offset(start_borgd, busctl, session_env, tmp_path):
    start_borgd()
    job_id = backup_with_hook(busctl, tmp_path, "bursts", BURSTS)
    wait_running(busctl, job_id)
    # Some lines are out already, so that the --tail 3 below has lines to show.
    wait_until(
        lambda: len(busctl("ReadJobLog", "ttu", job_id, 0, 0)[0]) >= 10, 30, "the first lines"
    )

    def borgctl_logs(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "borgd.cli.main", "logs", str(job_id), *args],
            env=session_env.vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    whole = borgctl_logs("-f", "--raw")
    tail = borgctl_logs("--tail", "3", "-f", "--raw")
    # The hook prints for over 3 s, so both start while the job is running.
    assert busctl("GetJob", "t", job_id)["status"] == "running"
    # Generous: the job takes about 5 s alone; two cores are shared with other tests.
    out, err = whole.communicate(timeout=90)
    tail_out, tail_err = tail.communicate(timeout=30)
    assert whole.returncode == 0 and tail.returncode == 0, err + tail_err

    done = busctl("GetJob", "t", job_id)
    assert done["status"] == "succeeded", done
    expected = file_lines(log_file(session_env, job_id))
    assert len(expected) > 4500 and expected[-1].startswith("borgd: succeeded")
    # Every line exactly once, in order: nothing repeated, nothing missing.
    assert out_lines(out) == expected
    # --tail 3 -f: three lines from before, then every new one, without a gap or repeat.
    followed = out_lines(tail_out)
    assert len(followed) >= 3
    assert followed == expected[-len(followed) :]
    assert len(followed) < len(expected)
