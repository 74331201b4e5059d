"""borgctl's response time beside busctl's, against the same daemon.

    .venv/bin/python bench/bench_borgctl.py [--quick]

Issue 14's target: ``borgctl status``, ``borgctl jobs`` and the completion
helper (``borgctl _names profiles``) each answer within 10x
``busctl get-property … Version`` of the same daemon.  borgd and borgctl are
installed non-editable (bytecode compiled, as users run them); borgd runs on
private buses with 1,000 finished jobs.  Rounds interleave the commands so
that machine noise hits all alike; the medians are printed with their ratio
to busctl's median: figures, not assertions.  To explain them it also times
a bare ``python -c pass`` and ``python -c 'import borgd.cli.main'`` (the
imports borgctl pays before it sends anything), and ``borgctl_floor.py``: the
same D-Bus calls from a script of argparse and dbus-python alone, the least this
stack spends, so the last table says what borgctl adds to it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import _harness as h

TARGET = 10.0
FLOOR = Path(__file__).with_name("borgctl_floor.py")
# Each borgctl command beside the floor that makes the same calls.
FLOORS = {
    "status": "borgctl status",
    "jobs": "borgctl jobs (50 of 1,000)",
    "profiles": "borgctl _names profiles (completion)",
}


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    begin = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - begin
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed


def body(args, cleanup: h.Cleanup) -> int:
    rounds = 5 if args.quick else 30
    installed = h.install_borgd(cleanup)
    session = h.Session.create(cleanup, "borgd-bench-borgctl-")
    home = session.home()
    h.seed_finished_jobs(h.store_path(home), 1000, now_us=time.time_ns() // 1000)
    daemon = h.Borgd(session, home, cleanup, installed=installed)
    daemon.wait_ready()
    env = session.env(home)
    python = str(installed.venv / "bin" / "python")
    borgctl = str(installed.venv / "bin" / "borgctl")
    address = session.session_bus
    commands = {
        "busctl get-property Version": [
            "busctl",
            f"--address={address}",
            "get-property",
            "org.borgd1",
            "/org/borgd1",
            "org.borgd1.Manager",
            "Version",
        ],
        "borgctl status": [borgctl, "status"],
        "borgctl jobs (50 of 1,000)": [borgctl, "jobs"],
        "borgctl _names profiles (completion)": [borgctl, "_names", "profiles"],
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import borgd.cli.main'": [python, "-c", "import borgd.cli.main"],
        **{f"floor: {what} (borgctl_floor.py)": [python, str(FLOOR), what] for what in FLOORS},
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            times[name].append(timed(argv, env, session.root))
    base = statistics.median(times["busctl get-property Version"])
    table = h.Table(
        f"borgctl beside busctl, median of {rounds} runs each (installed, {os.cpu_count()} cores)"
    )
    for name, values in times.items():
        median = statistics.median(values)
        ratio = median / base
        if name.startswith("borgctl"):
            table.add(
                name, f"{h.ms(median)} = {ratio:.1f}x busctl", f"<= {TARGET:g}x", ratio <= TARGET
            )
        else:
            table.add(name, f"{h.ms(median)} = {ratio:.1f}x busctl")
    table.print()
    floors = h.Table("borgctl beside the floor of its stack (the same calls, no borgd code)")
    for what, command in FLOORS.items():
        floor = statistics.median(times[f"floor: {what} (borgctl_floor.py)"])
        mine = statistics.median(times[command])
        floors.add(command, f"{h.ms(mine - floor)} over the floor = {mine / floor:.2f}x")
    floors.print()
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0]))
