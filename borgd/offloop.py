"""Calls that can hang for good (a `stat` on a frozen mount, a DNS lookup), off the loop.

anyio's worker threads are joined when the interpreter exits: one stuck in
`stat` forever would keep borgd from ever exiting on SIGTERM.  These calls
get a daemon thread of their own instead, and the caller waits for it at most
``timeout`` seconds; a thread that never returns is abandoned, and dies with
the process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.from_thread
from anyio.lowlevel import current_token

T = TypeVar("T")


async def call_with_timeout(fn: Callable[[], T], timeout: float, name: str) -> T:
    """``fn()`` in a daemon thread; raises TimeoutError when it takes longer than
    ``timeout`` (the thread is left to finish, or not, on its own)."""
    token = current_token()
    done = anyio.Event()
    box: list[tuple[bool, object]] = []

    def work() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=work, name=f"borgd-{name}", daemon=True).start()
    with anyio.move_on_after(timeout):
        await done.wait()
    if not box:
        raise TimeoutError(f"{name} did not finish in {timeout:g} s")
    ok, value = box[0]
    if ok:
        return value  # type: ignore[return-value]
    assert isinstance(value, BaseException)
    raise value
