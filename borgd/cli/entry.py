"""The borgctl program: the process around `borgd.cli.main.main`.

A command that only asks (status, jobs, completion…) lives for well under a
tenth of a second, most of it Python starting up, and two costs of an ordinary
Python process buy it nothing: the cyclic garbage collector, which walks the
young objects of every import and of every parsed reply (its memory is freed
by reference counting, and it exits moments later), and the teardown of the
interpreter at exit.  Together they were ~15 % of ``borgctl jobs``
(bench/bench_borgctl.py).  So the collector is off until `main` knows the
command, and a command that leaves it off leaves with ``os._exit`` once its
output is flushed.  Commands that live long (``ui``, ``watch``, ``logs -f``,
``run --wait``, anything on the event loop) turn the collector back on and end
the ordinary way.  For the same reason borgctl's modules import `typing`
only for the type checker (``TYPE_CHECKING = False``, which mypy reads as
true): nothing else on the way to a quick command's call needs it (~3 ms).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys

TYPE_CHECKING = False  # importing typing costs borgctl ~3 ms at start (cli/entry.py)
if TYPE_CHECKING:
    from typing import NoReturn


def main() -> NoReturn:
    gc.disable()
    from borgd.cli.main import main as borgctl

    leave(borgctl())


def leave(code: int) -> NoReturn:
    """End the process with `code`: at once after a short-lived command, and at once
    when the output cannot be written (the interpreter would try again at exit and
    print a traceback-like complaint)."""
    try:
        sys.stdout.flush()
    except OSError as exc:  # a full disk, say; a closed pipe ends us by SIGPIPE
        if not code:  # else main has said what failed
            print(f"borgctl: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        _exit_now(code or 1)
    if gc.isenabled():
        sys.exit(code)
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)
