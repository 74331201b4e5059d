"""Private buses for the python-dbusmock tests: one per test module, environment restored.

`PrivateDBus.start()` sets DBUS_SYSTEM_BUS_ADDRESS or DBUS_SESSION_BUS_ADDRESS,
which dbusmock's spawn helpers read; the previous value comes back afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from dbusmock.testcase import BusType, PrivateDBus

_VARIABLE = {
    BusType.SYSTEM: "DBUS_SYSTEM_BUS_ADDRESS",
    BusType.SESSION: "DBUS_SESSION_BUS_ADDRESS",
}


def module_bus(bus_type: BusType) -> Callable[[], Iterator[PrivateDBus]]:
    """A module-scoped fixture: `system_bus = module_bus(BusType.SYSTEM)` in a test module."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[PrivateDBus]:
        variable = _VARIABLE[bus_type]
        saved = os.environ.get(variable)
        bus = PrivateDBus(bus_type)
        bus.start()
        try:
            yield bus
        finally:
            bus.stop()
            if saved is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = saved

    return fixture
