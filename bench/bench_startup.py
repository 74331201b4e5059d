"""Start-up time: process start to READY=1, empty store and 100,000 finished jobs.

    .venv/bin/python bench/bench_startup.py [--quick] [--source DIR]

borgd is first installed non-editable into a temporary venv (pip compiles
its bytecode), from this checkout or from ``--source DIR`` (another checkout,
e.g. an older commit, for a before/after in one session): these machines set
PYTHONDONTWRITEBYTECODE=1, so running the checkout would compile every borgd
module at each start, which no user's install does.

Each run starts the installed ``borgd`` (as systemd's ExecStart does) on
private session and system buses with a fresh state folder (a migrated empty
store, or a copy of a store holding 100,000 finished jobs) and times Popen →
the ``READY=1`` datagram on its NOTIFY_SOCKET; then stops it with SIGTERM
(that time is printed too).  Each round also times the floor set by borgd's
libraries, ``python -c 'import sqlalchemy, dbus_fast.aio, anyio, structlog,
sdnotify'``, in a fresh process; rounds interleave the three, so machine
noise hits all alike.  The medians of 5 rounds are printed with their ratio
to the floor's median, beside the targets (1.2× the floor with an empty
store, 1.4× with 100,000 jobs): figures, not assertions.  One more run sends
SIGTERM the moment READY=1 arrives, as systemd may: the daemon must still
stop gracefully (exit 0).

To explain the figure it also times, each in a fresh process: the bare
interpreter, ``import borgd.daemon`` and ``borg --version`` (borgd asks borg
its version after READY), and lists the modules beyond the floor whose
imports cost most (``python -X importtime``, self time).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import _harness as h

# READY=1 within this many times the floor's import time.
TARGETS = {"empty": 1.2, "100k": 1.4}
CREATE_STORE = "import sys; from borgd.store import Store; Store.open(sys.argv[1]).close()"


def extra(parser) -> None:
    parser.add_argument(
        "--source", type=Path, default=h.ROOT, help="the checkout to install (default: this one)"
    )


@dataclass(frozen=True)
class Run:
    ready: float  # Popen → READY=1, seconds
    ready_cpu: float  # borgd's CPU seconds when READY=1 arrived
    stopped: float  # SIGTERM → exit, seconds
    rc: int
    jobs: int  # left in the store after the run


def one_run(
    session: h.Session,
    cleanup: h.Cleanup,
    installed: h.Installed,
    template: Path | None,
    tag: str,
    pause: float = 0.2,
) -> Run:
    home = session.home(tag)
    store = h.store_path(home)
    store.parent.mkdir(parents=True, mode=0o700)
    if template is not None:
        shutil.copyfile(template, store)
        store.chmod(0o600)
    else:  # by the installed borgd: its own schema version
        create = [installed.python, "-c", CREATE_STORE, str(store)]
        subprocess.run(create, check=True, cwd=session.root)  # not the checkout's borgd
    daemon = h.Borgd(session, home, cleanup, tag=tag, installed=installed)
    ready = daemon.wait_ready()
    ready_cpu = h.cpu_seconds(daemon.pid)
    time.sleep(pause)  # see "SIGTERM at READY=1" below
    begin = time.monotonic()
    daemon.stop()
    stopped = time.monotonic() - begin
    rc = daemon.proc.returncode
    jobs = h.count_jobs(store)
    shutil.rmtree(home, ignore_errors=True)
    return Run(ready, ready_cpu, stopped, rc or 0, jobs)


def wall(argv: list[str], repeat: int, cwd: Path) -> str:
    """Medians of `repeat` fresh runs of `argv`: wall and CPU seconds, peak RSS."""
    runs = [h.measure_process(argv, cwd) for _ in range(repeat)]
    return (
        f"{statistics.median(r.wall for r in runs):.3f} s"
        f" (CPU {statistics.median(r.cpu for r in runs):.3f} s,"
        f" peak {statistics.median(r.peak_mib for r in runs):.1f} MiB)"
    )


def self_times(python: str, code: str, cwd: Path) -> dict[str, int]:
    """`python -X importtime -c code`: self time (µs) per imported module."""
    res = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    out: dict[str, int] = {}
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _cumulative, name = (p.strip() for p in line.replace(":", "|", 1).split("|"))
        out[name] = int(self_us)
    return out


def import_offenders(python: str, cwd: Path, top: int = 10) -> list[tuple[str, float]]:
    """Modules `import borgd.daemon` loads beyond the floor, by self time (s), summed
    per package (two name levels: `borgd.store`, `sqlalchemy.orm`)."""
    floor = self_times(python, h.FLOOR_IMPORTS, cwd)
    per_pkg: dict[str, int] = {}
    for name, us in self_times(python, "import borgd.daemon", cwd).items():
        if name not in floor:
            key = ".".join(name.split(".")[:2])
            per_pkg[key] = per_pkg.get(key, 0) + us
    ranked = sorted(per_pkg.items(), key=lambda kv: -kv[1])[:top]
    return [(name, us / 1e6) for name, us in ranked]


def body(args, cleanup: h.Cleanup) -> int:
    runs = 2 if args.quick else 5
    n_jobs = 20_000 if args.quick else 100_000
    session = h.Session.create(cleanup, "borgd-bench-startup-")
    print(f"installing {args.source} into a temporary venv …", file=sys.stderr)
    installed = h.install_borgd(cleanup, args.source.resolve())
    template = session.root / "template.sqlite3"
    print(f"seeding {n_jobs:,} finished jobs …", file=sys.stderr)
    h.seed_finished_jobs(template, n_jobs, now_us=time.time_ns() // 1000, python=installed.python)

    label_big = f"{n_jobs // 1000}k"
    results: dict[str, list[Run]] = {"empty": [], label_big: []}
    floor: list[h.Measured] = []
    for i in range(runs):  # interleaved, so machine noise hits every case alike
        floor.append(h.measure_floor(installed.python, session.root))
        results["empty"].append(one_run(session, cleanup, installed, None, f"empty{i}"))
        results[label_big].append(one_run(session, cleanup, installed, template, f"big{i}"))

    def med(values) -> float:
        return statistics.median(list(values))

    table = h.Table(f"borgd start-up (median of {runs} rounds); {installed.describe()}")
    table.add(
        "floor: python -c '" + h.FLOOR_IMPORTS + "'",
        f"{med(f.wall for f in floor):.3f} s, CPU {med(f.cpu for f in floor):.3f} s,"
        f" peak {med(f.peak_mib for f in floor):.1f} MiB",
    )
    table.add("  runs", " ".join(f"{f.wall:.3f}" for f in floor))
    for label, rows in results.items():
        target = TARGETS.get(label, TARGETS["100k"])
        what = "empty store" if label == "empty" else f"{n_jobs:,} finished jobs"
        # Each round's ratio to the floor measured beside it, then the median.
        ratio = med(r.ready / f.wall for r, f in zip(rows, floor, strict=True))
        cpu_ratio = med(r.ready_cpu / f.cpu for r, f in zip(rows, floor, strict=True))
        table.add(
            f"start → READY=1, {what}",
            f"{med(r.ready for r in rows):.3f} s = {ratio:.2f}× floor",
            f"<= {target:g}× floor",
            ratio <= target,
        )
        table.add("  runs", " ".join(f"{r.ready:.3f}" for r in rows))
        table.add(
            "  borgd's CPU time at READY=1",
            f"{med(r.ready_cpu for r in rows):.3f} s = {cpu_ratio:.2f}× the floor's CPU time",
        )
        table.add(
            "  SIGTERM → exit (median; exit codes)",
            f"{med(r.stopped for r in rows):.3f} s; " + ",".join(str(r.rc) for r in rows),
        )
        if label != "empty":
            left = sorted({r.jobs for r in rows})
            table.add(
                "  jobs in the store after the run",
                ", ".join(f"{n:,}" for n in left),
                f"{n_jobs:,} (no history lost)",
                left == [n_jobs],
            )

    codes = [
        one_run(session, cleanup, installed, None, f"race{i}", pause=0).rc for i in range(runs)
    ]
    table.add(
        "SIGTERM at once after READY=1 → exit codes",
        ",".join(map(str, codes)),
        "0 (graceful stop)",
        set(codes) == {0},
    )

    where = session.root
    borg = shutil.which("borg", path=h.VENV_BIN) or "borg"
    table.add("explained by (each in a fresh process, median of 3):", "")
    for label, argv in (
        ("python -c pass", [installed.python, "-c", "pass"]),
        ("python -c 'import borgd.daemon'", [installed.python, "-c", "import borgd.daemon"]),
        ("borg --version (asked after READY)", [borg, "--version"]),
    ):
        table.add(f"  {label}", wall(argv, 3, where))
    table.print()

    print("\npython -X importtime 'import borgd.daemon', beyond the floor's modules, self time:")
    for name, seconds in import_offenders(installed.python, where):
        print(f"  {name:28} {seconds * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0], extra))
