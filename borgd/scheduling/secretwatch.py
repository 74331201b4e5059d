"""Which repositories' passphrases sit in a locked keyring (condition ``secret-unavailable``).

:class:`SecretWatcher` keeps ``Conditions.locked_secrets`` up to date for
every repository whose passphrase is stored (not a ``passcommand``): at
start, when the Secret Service signals that a collection changed (gnome-keyring
and KeePassXC send ``CollectionChanged`` and ``PropertiesChanged`` on lock
and unlock), when the service comes or goes, and when the scheduler is about
to start due jobs (:meth:`refresh`).  Implementations that signal nothing
are covered by a re-check once a minute, and only while some repository is
locked.  ``on_change`` (the scheduler's poke) runs when the set changes, so
a held-back job starts as soon as the keyring is unlocked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from borgd.scheduling.conditions import Conditions
from borgd.store import Store
from borgd.wakeups import Latch, Poke

log = structlog.get_logger(__name__)

SECRETS_NAME = "org.freedesktop.secrets"
MATCH_RULES = (
    f"type='signal',sender='{SECRETS_NAME}',interface='org.freedesktop.Secret.Service'",
    f"type='signal',sender='{SECRETS_NAME}',interface='org.freedesktop.DBus.Properties',"
    "member='PropertiesChanged',arg0='org.freedesktop.Secret.Collection'",
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
    f"member='NameOwnerChanged',arg0='{SECRETS_NAME}'",
)
SERVICE_SIGNALS = frozenset({"CollectionChanged", "CollectionCreated", "CollectionDeleted"})


class SecretWatcher:
    def __init__(
        self,
        *,
        conditions: Conditions,
        store: Store,
        is_locked: Callable[[str], Awaitable[bool]],
        on_change: Callable[[], None],
        bus: MessageBus | None = None,
        recheck_s: float = 60.0,
    ) -> None:
        self.conditions = conditions
        self.store = store
        self.is_locked = is_locked
        self.on_change = on_change
        self.bus = bus
        self.recheck_s = recheck_s
        self._poke = Poke()
        self._lock = anyio.Lock()
        self.settled = Latch()  # subscribed to the keyring's signals, or gave up

    def kick(self) -> None:
        self._poke()

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        first = msg.body[0] if msg.body else None
        if (
            (msg.interface == "org.freedesktop.Secret.Service" and msg.member in SERVICE_SIGNALS)
            or (msg.member == "PropertiesChanged" and first == "org.freedesktop.Secret.Collection")
            or (msg.member == "NameOwnerChanged" and first == SECRETS_NAME)
        ):
            self.kick()

    async def _subscribe(self) -> None:
        bus = self.bus
        if bus is None:
            return
        bus.add_message_handler(self._on_message)
        for rule in MATCH_RULES:
            try:
                await bus.call(
                    Message(
                        destination="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus",
                        member="AddMatch",
                        signature="s",
                        body=[rule],
                    )
                )
            except Exception as exc:  # signals are a speed-up; refresh() still works
                log.debug("secrets.match_failed", error=str(exc))

    def _candidates(self) -> list[str]:
        return [
            r.name
            for r in self.store.catalog.repositories()
            if r.has_passphrase and not r.passcommand
        ]

    async def refresh(self) -> None:
        """Re-read the lock state of every stored passphrase."""
        async with self._lock:
            locked: set[str] = set()
            for name in self._candidates():
                try:
                    if await self.is_locked(name):
                        locked.add(name)
                except Exception as exc:  # one broken lookup must not hide the others
                    log.debug("secrets.check_failed", repository=name, error=str(exc))
            if locked == self.conditions.locked_secrets:
                return
            log.info(
                "secrets.locked" if locked else "secrets.unlocked",
                repositories=sorted(locked),
            )
            self.conditions.locked_secrets = locked
        self.on_change()

    async def run(self) -> None:
        try:
            await self._subscribe()
        finally:
            self.settled.set()  # subscribed or gave up: the first refresh follows at once
        while True:
            since = self._poke.generation
            await self.refresh()
            # A keyring without lock signals is looked at again while something is locked.
            await self._poke.wait(
                since, self.recheck_s if self.conditions.locked_secrets else None
            )
