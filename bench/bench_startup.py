"""Start-up time: process start to READY=1, empty store and 100,000 finished jobs.

    .venv/bin/python bench/bench_startup.py [--quick]

Each run starts ``python -m borgd.daemon`` on private session and system
buses with a fresh state folder (a migrated empty store, or a copy of a store
holding 100,000 finished jobs) and times Popen → the ``READY=1`` datagram on
its NOTIFY_SOCKET; then stops it with SIGTERM (that time is printed too).
The median of 5 runs per case is compared with the targets (0.5 s and 1 s).
One more run sends SIGTERM the moment READY=1 arrives, as systemd may: the
daemon must still stop gracefully (exit 0).

To explain the figure it also times, each in a fresh process: the bare
interpreter, ``import borgd.daemon`` and ``borg --version`` (borgd asks borg
its version before READY), and lists the packages whose imports cost most
(``python -X importtime``, self time summed per top-level package).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _harness as h

TARGETS = {"empty": 0.5, "100k": 1.0}


def one_run(
    session: h.Session, cleanup: h.Cleanup, template: Path | None, tag: str, pause: float = 0.2
):
    home = session.home(tag)
    store = h.store_path(home)
    store.parent.mkdir(parents=True, mode=0o700)
    if template is not None:
        shutil.copyfile(template, store)
        store.chmod(0o600)
    else:
        from borgd.store import Store

        Store.open(store).close()
    daemon = h.Borgd(session, home, cleanup, tag=tag)
    ready = daemon.wait_ready()
    time.sleep(pause)  # see "SIGTERM at READY=1" below
    begin = time.monotonic()
    daemon.stop()
    stopped = time.monotonic() - begin
    rc = daemon.proc.returncode
    jobs = h.count_jobs(store)
    shutil.rmtree(home, ignore_errors=True)
    return ready, stopped, rc, jobs


def wall(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=h.ROOT)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def import_offenders(top: int = 8) -> tuple[float, list[tuple[str, float]]]:
    """Total import time of borgd.daemon and self time per top-level package (s)."""
    res = subprocess.run(
        [h.PYTHON, "-X", "importtime", "-c", "import borgd.daemon"],
        capture_output=True,
        text=True,
        check=True,
        cwd=h.ROOT,
    )
    per_pkg: dict[str, int] = {}
    total = 0
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, cumulative, name = (p.strip() for p in line.replace(":", "|", 1).split("|"))
        per_pkg[name.split(".")[0]] = per_pkg.get(name.split(".")[0], 0) + int(self_us)
        if name == "borgd.daemon":
            total = int(cumulative)
    ranked = sorted(per_pkg.items(), key=lambda kv: -kv[1])[:top]
    return total / 1e6, [(name, us / 1e6) for name, us in ranked]


def body(args, cleanup: h.Cleanup) -> int:
    runs = 2 if args.quick else 5
    n_jobs = 20_000 if args.quick else 100_000
    session = h.Session.create(cleanup, "borgd-bench-startup-")
    template = session.root / "template.sqlite3"
    print(f"seeding {n_jobs:,} finished jobs …", file=sys.stderr)
    h.seed_finished_jobs(template, n_jobs, now_us=time.time_ns() // 1000)

    label_big = f"{n_jobs // 1000}k"
    results: dict[str, list[tuple[float, float, int, int]]] = {"empty": [], label_big: []}
    for i in range(runs):  # interleaved, so machine noise hits both cases alike
        results["empty"].append(one_run(session, cleanup, None, f"empty{i}"))
        results[label_big].append(one_run(session, cleanup, template, f"big{i}"))

    table = h.Table(f"borgd start-up (median of {runs} runs)")
    for label, rows in results.items():
        ready = statistics.median(r[0] for r in rows)
        target = TARGETS.get(label, TARGETS["100k"])
        what = "empty store" if label == "empty" else f"{n_jobs:,} finished jobs"
        table.add(
            f"start → READY=1, {what}",
            f"{ready:.3f} s",
            f"<= {target:g} s",
            ready <= target,
        )
        table.add(
            "  runs",
            " ".join(f"{r[0]:.3f}" for r in rows),
        )
        table.add(
            "  SIGTERM → exit (median; exit codes)",
            f"{statistics.median(r[1] for r in rows):.3f} s; " + ",".join(str(r[2]) for r in rows),
        )
        if label != "empty":
            left = sorted({r[3] for r in rows})
            table.add(
                "  jobs in the store after the run",
                ", ".join(f"{n:,}" for n in left),
                f"{n_jobs:,} (no history lost)",
                left == [n_jobs],
            )

    codes = [one_run(session, cleanup, None, f"race{i}", pause=0)[2] for i in range(runs)]
    table.add(
        "SIGTERM at once after READY=1 → exit codes",
        ",".join(map(str, codes)),
        "0 (graceful stop)",
        set(codes) == {0},
    )

    table.add("explained by (each in a fresh process, median of 3):", "")
    table.add("  python -c pass", f"{wall([h.PYTHON, '-c', 'pass'], 3):.3f} s")
    table.add(
        "  python -c 'import borgd.daemon'",
        f"{wall([h.PYTHON, '-c', 'import borgd.daemon'], 3):.3f} s",
    )
    borg = shutil.which("borg", path=h.VENV_BIN) or "borg"
    table.add("  borg --version (asked after READY)", f"{wall([borg, '--version'], 3):.3f} s")
    table.print()

    total, ranked = import_offenders()
    print(f"\npython -X importtime: import borgd.daemon {total:.3f} s; self time by package:")
    for name, seconds in ranked:
        print(f"  {name:24} {seconds * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    h.main(body, h.parse_args(__doc__.splitlines()[0]))
