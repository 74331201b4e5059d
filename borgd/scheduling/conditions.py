"""What may hold a due job back: battery, metered or missing network, a missing disk,
a locked keyring.

The watchers (UPower, NetworkManager, logind, the mount table, the Secret
Service) write into `Conditions`; the scheduler asks `blocker()` for one job.
`blocker()` is pure: the scheduler probes repository folders (off the event
loop, see `paths.py`) before it asks.  `NetworkSettle` keeps remote
repositories waiting after a resume until the network is back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from borgd.core.config import local_path
from borgd.core.jobs import SkipReason
from borgd.wakeups import Poke

log = structlog.get_logger(__name__)


@dataclass
class Conditions:
    on_battery: bool = False
    metered: bool = False
    online: bool = True
    sleep_monitor: str = "starting"
    disk_monitor: str = "starting"  # UDisks2: "active" or "unavailable: why"
    # After resume, remote repositories wait for the network to settle.
    network_settled: bool = True
    locked_secrets: set[str] = field(default_factory=set)
    # Local repository folders found missing (or hanging) by the scheduler's probe.
    unavailable_paths: set[str] = field(default_factory=set)


def blocker(
    cond: Conditions,
    *,
    url: str,
    repository: str,
    skip_on_battery: bool,
    skip_on_metered: bool,
) -> SkipReason | None:
    """The first condition that holds this job back, or None."""
    if skip_on_battery and cond.on_battery:
        return SkipReason.ON_BATTERY
    path = local_path(url)
    if path is None:
        if not cond.online or not cond.network_settled:
            return SkipReason.NETWORK_UNAVAILABLE
        if skip_on_metered and cond.metered:
            return SkipReason.METERED_NETWORK
    elif path in cond.unavailable_paths:
        return SkipReason.REPOSITORY_UNAVAILABLE
    if repository in cond.locked_secrets:
        return SkipReason.SECRET_UNAVAILABLE
    return None


class NetworkSettle:
    """After a resume, remote repositories wait for the network instead of failing.

    :meth:`suspending` (before sleep) and :meth:`resumed` clear
    ``conditions.network_settled``; :meth:`run` sets it again once the network
    is online (NetworkManager's view, ``conditions.online``) and has stayed so
    for ``settle_s`` seconds (Wi-Fi association, DHCP and VPNs take a moment
    after NetworkManager first reports a connection).  A network change or
    another resume during that time starts the wait again.  Between
    :meth:`suspending` and :meth:`resumed` nothing settles (the network is
    about to go away); if no resume follows within ``SLEEP_GRACE_S`` of
    monotonic time (which stops while the machine sleeps), the sleep did not
    happen and the settle time runs as usual.  ``on_change`` is called when
    the flag turns true, so the scheduler looks at held-back jobs.
    """

    SLEEP_GRACE_S = 60.0

    def __init__(
        self, conditions: Conditions, on_change: Callable[[], None], settle_s: float = 10.0
    ) -> None:
        self.conditions = conditions
        self.on_change = on_change
        self.settle_s = settle_s
        self._kick = Poke()
        self._sleeping = False

    def suspending(self) -> None:
        self.conditions.network_settled = False
        self._sleeping = True
        self._kick()

    def resumed(self) -> None:
        self.conditions.network_settled = False
        self._sleeping = False
        log.info("network.settling", settle_s=self.settle_s)
        self._kick()

    def network_changed(self) -> None:
        self._kick()

    async def run(self) -> None:
        while True:
            since = self._kick.generation
            if self._sleeping:
                if not await self._kick.wait(since, self.SLEEP_GRACE_S):
                    self._sleeping = False  # no sleep came of it
                continue
            if self.conditions.network_settled or not self.conditions.online:
                await self._kick.wait(since)
                continue
            if await self._kick.wait(since, self.settle_s):
                continue  # offline again, or another resume: start over
            self.conditions.network_settled = True
            log.info("network.settled")
            self.on_change()
