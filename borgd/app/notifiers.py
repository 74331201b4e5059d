"""Notifier use cases: add, change, remove, list, test; the deliveries' log.

The URL is a secret (it carries tokens): it goes to the secret store like a
passphrase, and only its scheme and host (`host`) are kept in the store and
shown.  Every argument is checked before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread

from borgd import errors
from borgd.app.context import UseCaseContext
from borgd.core import notifications as n
from borgd.core.records import Delivery, Notifier
from borgd.core.validation import Variant, check_name
from borgd.notify import senders
from borgd.notify.outbox import Outbox


def notifier_dict(notifier: Notifier) -> dict[str, Any]:
    return {
        "id": notifier.id,
        "name": notifier.name,
        "kind": notifier.kind,
        "events": list(notifier.events),
        "profiles": list(notifier.profiles),
        "enabled": notifier.enabled,
        "host": notifier.host,
    }


def delivery_dict(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "notifier": d.notifier,
        "event": d.event,
        "job_id": d.job_id,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "sent_at": d.sent_at,
    }


async def _check_url(kind: str, url: str) -> None:
    n.check_url(kind, url)
    # Apprise's ~100 plugins load on first use (a fraction of a second): off the loop.
    if kind == "apprise" and not await anyio.to_thread.run_sync(senders.apprise_knows, url):
        raise errors.InvalidArgument(
            f"Apprise does not know the URL given for this notifier (scheme "
            f"{n.public_host(url).split('://')[0]!r}); see `apprise --details` for its services"
        )


class NotifierCases(UseCaseContext):
    def _outbox(self) -> Outbox:
        if self.outbox is None:
            raise errors.Unavailable("this borgd sends no notifications")
        return self.outbox

    async def add_notifier(self, name: str, url: str, options: Mapping[str, Variant]) -> int:
        check_name("notifier", name)
        opts = n.check_notifier_options(options)
        settings = n.settings_from(opts, None)
        await _check_url(settings.kind, url)
        self._outbox()
        if any(x.name == name for x in self.store.notifiers.all()):
            raise errors.AlreadyExists(f"a notifier named {name!r} exists")
        await self._set_notifier_url(name, url.encode())
        try:
            added = self.store.notifiers.add(name, settings, n.public_host(url), self.clock())
        except Exception:
            await self._delete_notifier_url(name)
            raise
        return added.id

    async def update_notifier(self, name: str, options: Mapping[str, Variant]) -> None:
        check_name("notifier", name)
        opts = n.check_notifier_options(options, update=True)
        current = self.store.notifiers.get(name)
        base = n.NotifierSettings(
            current.kind, tuple(current.events), tuple(current.profiles), current.enabled
        )
        settings = n.settings_from(opts, base)
        url = opts.get("url")
        if url is not None:
            await _check_url(settings.kind, url)
        elif settings.kind != current.kind and settings.kind != "apprise":
            raise errors.InvalidArgument(
                f"a {settings.kind} notifier needs an http(s) URL: give `url` with `kind`"
            )
        if url is not None:
            await self._set_notifier_url(name, url.encode())
        self.store.notifiers.update(name, settings, n.public_host(url) if url else None)
        self._outbox().kick()  # enabled again: what waited may go

    async def remove_notifier(self, name: str) -> None:
        check_name("notifier", name)
        self.store.notifiers.remove(name, "the notifier was removed")
        await self._delete_notifier_url(name)

    def list_notifiers(self) -> list[dict[str, Any]]:
        return [notifier_dict(x) for x in self.store.notifiers.all()]

    def test_notifier(self, name: str) -> int:
        check_name("notifier", name)
        notifier = self.store.notifiers.get(name)
        return self._outbox().test(notifier)

    def list_deliveries(self, flt: Mapping[str, Variant]) -> list[dict[str, Any]]:
        opts = n.check_delivery_filter(flt)
        rows = self.store.notifiers.deliveries(
            notifier=opts.get("notifier") or None,
            status=opts.get("status") or None,
            limit=opts.get("limit", 0),
        )
        return [delivery_dict(d) for d in rows]
