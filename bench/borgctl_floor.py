"""The least a Python client of borgctl's stack spends on one of its commands.

    python bench/borgctl_floor.py status|jobs|profiles

Imports what every borgctl command needs before it can ask (argparse, which
every command line goes through, and dbus-python, the quick commands'
client), connects to the session bus, makes the D-Bus calls of ``borgctl
status``, ``borgctl jobs`` (ListJobs, limit 50) or the completion helper
(ListProfiles), lets dbus-python read the replies, and prints nothing: no
borgd code at all.  `bench_borgctl.py` times borgctl beside it, so that what
borgctl adds can be told from what Python, argparse and dbus-python cost on
the machine.  (borgctl ends without the interpreter's teardown, cli/entry.py,
and this script does not: borgctl can come in under it.)
"""

import argparse  # noqa: F401  (every borgctl command line goes through it)
import sys

import dbus

CALLS = {
    "status": [
        ("org.freedesktop.DBus.Properties", "GetAll", "s", ["org.borgd1.Manager"]),
        (
            "org.borgd1.Manager",
            "ListJobs",
            "a{sv}",
            [{"status": dbus.Array(["running", "queued"], signature="s")}],
        ),
    ],
    "jobs": [("org.borgd1.Manager", "ListJobs", "a{sv}", [{"limit": dbus.UInt32(50)}])],
    "profiles": [("org.borgd1.Manager", "ListProfiles", "", [])],
}

bus = dbus.SessionBus()
for interface, member, signature, args in CALLS[sys.argv[1]]:
    bus.call_blocking("org.borgd1", "/org/borgd1", interface, member, signature, args)
