"""Sending one delivery: Apprise, a healthchecks ping, or a webhook POST.

Runs in a worker thread with a timeout (a hanging server never touches the
event loop).  Apprise and httpx are imported on first use: a borgd without
notifiers never loads them.  Errors come back as `SendFailed` with text that
holds no piece of the URL (it carries tokens).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from borgd.core.notifications import SEND_TIMEOUT_S, ping_url, scrub

USER_AGENT = "borgd"


class SendFailed(Exception):
    """The message did not arrive; the text is safe to store and show."""


def send(kind: str, url: str, event: str, key: str, payload: dict[str, Any]) -> None:
    try:
        if kind == "apprise":
            _apprise(url, payload)
        elif kind == "healthchecks":
            _ping(url, event, payload)
        else:
            _webhook(url, event, key, payload)
    except SendFailed as exc:
        raise SendFailed(scrub(str(exc), url)) from None
    except Exception as exc:  # a library's own error text may quote the URL
        raise SendFailed(scrub(f"{type(exc).__name__}: {exc}", url)) from None


def apprise_knows(url: str) -> bool:
    """Apprise can parse this URL (a known service, well formed); nothing is sent."""
    import apprise

    with _quiet_apprise():
        return bool(apprise.Apprise().add(url))


def _webhook(url: str, event: str, key: str, payload: dict[str, Any]) -> None:
    import httpx

    headers = {"User-Agent": USER_AGENT, "Idempotency-Key": key, "X-Borgd-Event": event}
    reply = httpx.post(url, json=payload["job"], headers=headers, timeout=SEND_TIMEOUT_S)
    _check(reply.status_code)


def _ping(url: str, event: str, payload: dict[str, Any]) -> None:
    import httpx

    target = ping_url(url, event, payload["rid"], warning_fails=payload["warning_fails"])
    body = payload.get("log", "").encode("utf-8", "replace")[-100_000:]  # hc keeps 100 kB
    reply = httpx.post(
        target, content=body, headers={"User-Agent": USER_AGENT}, timeout=SEND_TIMEOUT_S
    )
    _check(reply.status_code)


def _check(status: int) -> None:
    if not 200 <= status < 300:
        raise SendFailed(f"the server answered HTTP {status}")


def _apprise(url: str, payload: dict[str, Any]) -> None:
    import apprise

    with _quiet_apprise() as seen:
        target = apprise.Apprise()
        if not target.add(url):
            raise SendFailed("Apprise does not know this URL (see apprise --details)")
        kind = {
            "failure": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING,
            "success": apprise.NotifyType.SUCCESS,
        }.get(payload.get("level", ""), apprise.NotifyType.INFO)
        if not target.notify(title=payload["title"], body=payload["body"], notify_type=kind):
            said = "; ".join(seen[-3:]) or "no reason given"
            raise SendFailed(f"Apprise could not deliver: {said}")


class _Kept(logging.Handler):
    """Apprise's warnings, per sending thread."""

    local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        seen = getattr(self.local, "seen", None)
        if seen is not None:
            seen.append(record.getMessage())


_KEPT = _Kept(level=logging.WARNING)


@contextlib.contextmanager
def _quiet_apprise() -> Iterator[list[str]]:
    """Apprise logs through `logging`, URLs included: none of it may reach borgd's log
    or stderr, ever (set once, for every thread); its warnings are kept, for the caller
    to scrub into `last_error`."""
    logger = logging.getLogger("apprise")
    if _KEPT not in logger.handlers:
        logger.addHandler(_KEPT)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    seen: list[str] = []
    _Kept.local.seen = seen
    try:
        yield seen
    finally:
        _Kept.local.seen = None
