"""The one place that starts processes: borg and the profile's hooks.

borg gets an argument vector (never a shell), stdin from /dev/null, a new
session (so it can never wait on our terminal for a passphrase), and the
passphrase through an anonymous pipe named by BORG_PASSPHRASE_FD.  stderr
and stdout are read in chunks and split into lines here; callers get lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import structlog

log = structlog.get_logger(__name__)

LineSink = Callable[[str], None]
CHUNK = 65536
MAX_LINE = 1 << 20  # a line longer than this is cut: borg never prints such lines


@dataclass
class StopPolicy:
    """How to stop a process: first signal, then SIGTERM and SIGKILL after bounded waits."""

    first: signal.Signals = signal.SIGTERM
    grace: float = 10.0  # after the first signal
    term_grace: float = 5.0  # after SIGTERM, before SIGKILL


@dataclass
class RunningProcess:
    """Handle given to the caller while a process runs, to stop it or read its pid."""

    pid: int
    start_time: int
    policy: StopPolicy
    _process: anyio.abc.Process
    stop_requested: bool = False
    _stopper_started: bool = field(default=False, repr=False)

    def send(self, sig: signal.Signals) -> None:
        """Signal the process itself, never its group: hooks' children are theirs to stop."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stopped: bool  # the caller asked us to stop it


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, names a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command name may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return 0


def process_matches(pid: int, start_time: int) -> bool:
    return pid > 0 and start_time > 0 and process_start_time(pid) == start_time


async def _pump_lines(stream: anyio.abc.ByteReceiveStream | None, sink: LineSink) -> None:
    if stream is None:
        return
    pending = b""
    async for chunk in stream:
        pending += chunk
        if b"\n" not in pending:
            if len(pending) > MAX_LINE:
                sink(pending.decode("utf-8", "replace"))
                pending = b""
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sink(line.decode("utf-8", "replace"))
    if pending:
        sink(pending.decode("utf-8", "replace"))


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    passphrase: bytes | None = None,
    on_stderr: LineSink,
    on_stdout: LineSink | None = None,
    policy: StopPolicy | None = None,
    on_started: Callable[[RunningProcess], None] | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Run argv to completion; stdout is collected (and passed line by line if asked).

    Cancelling the calling scope stops the process with `policy` before returning.
    """
    policy = policy or StopPolicy()
    child_env = dict(env)
    pass_fds: tuple[int, ...] = ()
    read_fd = write_fd = -1
    if passphrase is not None:
        read_fd, write_fd = os.pipe()
        os.set_inheritable(read_fd, True)
        child_env["BORG_PASSPHRASE_FD"] = str(read_fd)
        pass_fds = (read_fd,)
    stdout_lines: list[str] = []

    def collect(line: str) -> None:
        stdout_lines.append(line)
        if on_stdout is not None:
            on_stdout(line)

    try:
        process = await anyio.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=child_env,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    finally:
        if read_fd >= 0:
            os.close(read_fd)
    if write_fd >= 0:
        # A passphrase is far below the pipe's buffer: this never blocks.
        assert passphrase is not None
        try:
            os.write(write_fd, passphrase)
        finally:
            os.close(write_fd)

    handle = RunningProcess(
        pid=process.pid,
        start_time=process_start_time(process.pid),
        policy=policy,
        _process=process,
    )
    if on_started is not None:
        on_started(handle)
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_lines, process.stderr, on_stderr)
            tg.start_soon(_pump_lines, process.stdout, collect)
            if timeout is not None:
                with anyio.move_on_after(timeout) as scope:
                    await process.wait()
                if scope.cancelled_caught:
                    timed_out = True
                    await stop_process(handle)
            await process.wait()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stop_process(handle)
            await process.aclose()
        raise
    await process.aclose()
    rc = process.returncode if process.returncode is not None else -1
    return RunResult(
        returncode=rc,
        stdout="\n".join(stdout_lines),
        stopped=handle.stop_requested or timed_out,
    )


async def stop_process(handle: RunningProcess) -> None:
    """First signal, then SIGTERM, then SIGKILL, each after a bounded wait."""
    handle.stop_requested = True
    proc = handle._process
    steps = (
        (handle.policy.first, handle.policy.grace),
        (signal.SIGTERM, handle.policy.term_grace),
        (signal.SIGKILL, 5.0),
    )
    for sig, grace in steps:
        if proc.returncode is not None:
            return
        handle.send(sig)
        with anyio.move_on_after(grace):
            await proc.wait()
    if proc.returncode is None:
        log.error("process.unkillable", pid=handle.pid)


def request_stop(handle: RunningProcess, tg: anyio.abc.TaskGroup) -> None:
    """Start stopping a running process in the background (cancel, shutdown)."""
    if handle._stopper_started:
        return
    handle._stopper_started = True
    tg.start_soon(stop_process, handle)
