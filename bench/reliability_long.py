"""The long reliability runs of issue 7: crash 50 times, sleep 100 times, load for 60 s.

    .venv/bin/python bench/reliability_long.py [crash|sleep|load ...] [--seed N]

Runs the ``slow`` variants of tests/reliability (the default suite runs the
short ones) through pytest, so the invariants are the very same; pytest's
"reliability counts" section prints what each run did (iterations, cycles,
calls, job statuses) and its seed.  ``--seed`` (or $RELIABILITY_SEED) replays
a run.  Takes about 10 to 15 minutes on a 2-core machine.  Exit status:
pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    "crash": "tests/reliability/test_crash.py",  # kill -9 at 50 random moments
    "sleep": "tests/reliability/test_sleep.py",  # 100 PrepareForSleep cycles
    "load": "tests/reliability/test_load.py",  # 20 clients for 60 s
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN", help="crash, sleep, load (default: all)")
    parser.add_argument("--seed", type=int, help="replay a run (sets RELIABILITY_SEED)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.runs if name not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    env = dict(os.environ)
    if args.seed is not None:
        env["RELIABILITY_SEED"] = str(args.seed)
    modules = [RUNS[name] for name in (args.runs or RUNS)]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "slow",
        "--durations=0",
        *modules,
    ]
    print("running:", " ".join(cmd), flush=True)
    began = time.monotonic()
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    print(f"reliability_long: pytest exit status {rc} after {time.monotonic() - began:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
