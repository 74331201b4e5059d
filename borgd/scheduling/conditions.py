"""What may hold a due job back: battery, metered or missing network, a missing disk.

The watchers (UPower, NetworkManager, logind) write into `Conditions`; the
scheduler asks `blocker()` for one job.  Pure except for the path check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from borgd.core.config import local_path
from borgd.core.jobs import SkipReason


@dataclass
class Conditions:
    on_battery: bool = False
    metered: bool = False
    online: bool = True
    sleep_monitor: str = "unavailable: not started"
    # After resume, remote repositories wait for the network to settle.
    network_settled: bool = True
    locked_secrets: set[str] = field(default_factory=set)


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
    elif not os.path.isdir(path):
        return SkipReason.REPOSITORY_UNAVAILABLE
    if repository in cond.locked_secrets:
        return SkipReason.SECRET_UNAVAILABLE
    return None
