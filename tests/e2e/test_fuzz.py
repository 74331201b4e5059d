"""Hostile input: thousands of calls with wrong types, huge strings, random bytes, wild numbers.

Every call is answered (success where the input happens to be valid, else an
org.borgd1.Error.*), the daemon stays up, and no rejected call changes the store.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import anyio
import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from tests.conftest import ROOT

CALLS = 3000
SEED = 20261122
MUTATING_OK = {"Pause", "Resume", "PauseSchedule", "ResumeSchedule"}


def manager_methods() -> dict[str, str]:
    root = ET.parse(ROOT / "dbus" / "org.borgd1.Manager.xml").getroot()
    iface = next(i for i in root.iter("interface") if i.get("name") == "org.borgd1.Manager")
    return {
        m.get("name"): "".join(
            a.get("type") for a in m.findall("arg") if a.get("direction") == "in"
        )
        for m in iface.findall("method")
    }


def random_text(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return ""
    if kind == 1:
        return "x" * rng.choice([65, 4097, 100_000])
    if kind == 2:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 40)))
    if kind == 3:
        return rng.choice(
            ["main", "docs", "/tmp", "relative", "../etc", "a b", "$(reboot)", ";rm -rf /"]
        )
    if kind == 4:
        return "/" + "/".join(rng.choice(["a", "..", ".", "\t", "ü"]) for _ in range(5))
    if kind == 5:
        return bytes(rng.randrange(1, 256) for _ in range(20)).decode("latin-1")
    if kind == 6:
        return rng.choice(
            ["backup", "restore", "init", "check", "every 0s", "*:*:*", "25:00", "cron"]
        )
    return "ssh://" + "h" * rng.randrange(1, 300) + "/r"


def random_value(sig: str, rng: random.Random):
    if sig == "s":
        return random_text(rng)
    if sig in ("t", "u", "i", "x", "y", "n", "q"):
        limits = {
            "t": (0, 2**64 - 1),
            "u": (0, 2**32 - 1),
            "i": (-(2**31), 2**31 - 1),
            "x": (-(2**63), 2**63 - 1),
            "y": (0, 255),
            "n": (-(2**15), 2**15 - 1),
            "q": (0, 2**16 - 1),
        }[sig]
        return rng.choice([limits[0], limits[1], 0, 1, 7, rng.randint(*limits)])
    if sig == "b":
        return rng.random() < 0.5
    if sig == "d":
        return rng.choice([float("nan"), float("inf"), -1.0, 1e308])
    if sig == "as":
        return [random_text(rng) for _ in range(rng.randrange(0, 4))]
    if sig == "a{sv}":
        keys = [
            "passphrase",
            "init",
            "encryption",
            "keep_daily",
            "excludes",
            "profile",
            "status",
            "limit",
            "timezone",
            "catch_up_window",
            "destination",
            "paths",
            "bogus",
            "",
        ]
        out = {}
        for _ in range(rng.randrange(0, 4)):
            vsig = rng.choice(["s", "b", "u", "t", "i", "as", "d", "x"])
            out[rng.choice(keys) if rng.random() < 0.8 else random_text(rng)[:50]] = Variant(
                vsig, random_value(vsig, rng)
            )
        return out
    raise AssertionError(sig)


def split(signature: str) -> list[str]:
    parts, i = [], 0
    while i < len(signature):
        if signature.startswith("a{sv}", i):
            parts.append("a{sv}")
            i += 5
        elif signature.startswith("as", i):
            parts.append("as")
            i += 2
        else:
            parts.append(signature[i])
            i += 1
    return parts


@pytest.mark.anyio
async def test_fuzz_every_method(start_borgd, busctl, session_env, tmp_path):
    daemon = start_borgd()
    busctl(
        "AddRepository", "ssa{sv}", "main", str(tmp_path / "repo"), 1, "encryption", "s", "none"
    )
    busctl("AddProfile", "ssasa{sv}", "docs", "main", 1, str(tmp_path), 0)
    methods = manager_methods()
    rng = random.Random(SEED)
    bus = await MessageBus(bus_address=session_env.vars["DBUS_SESSION_BUS_ADDRESS"]).connect()

    async def call(member, signature, body):
        reply = await bus.call(
            Message(
                destination="org.borgd1",
                path="/org/borgd1",
                interface="org.borgd1.Manager",
                member=member,
                signature=signature,
                body=body,
            )
        )
        return reply

    async def snapshot():
        """What a refused call must not change: the configuration, and which jobs exist
        (not their progress: a job queued by an earlier call runs on meanwhile)."""
        out = []
        for member, sig, body in (
            ("ListRepositories", "", []),
            ("ListProfiles", "", []),
            ("ListSchedules", "", []),
        ):
            reply = await call(member, sig, body)
            assert reply.message_type is MessageType.METHOD_RETURN
            out.append(repr(reply.body))
        reply = await call("ListJobs", "a{sv}", [{}])
        assert reply.message_type is MessageType.METHOD_RETURN
        fixed = ("id", "type", "trigger", "profile", "repository", "parent_id", "requeued_from")
        out.append(repr([[j[k].value for k in fixed] for j in reply.body[0]]))
        return out

    baseline = await snapshot()
    outcomes = {"ok": 0, "error": 0}
    errors: dict[str, int] = {}
    with anyio.fail_after(240):
        for n in range(CALLS):
            member = rng.choice(sorted(methods))
            signature = methods[member]
            if rng.random() < 0.15:  # a wrong signature for a real member
                signature = rng.choice(["", "s", "t", "ss", "a{sv}", "tu", "sas", "b"])
            parts = split(signature)
            try:
                body = [random_value(p, rng) for p in parts]
                reply = await call(member, signature, body)
            except Exception as exc:  # the client refused to marshal it: nothing was sent
                assert "marshal" in str(exc).lower() or isinstance(
                    exc, (ValueError, OverflowError, TypeError, UnicodeError)
                ), exc
                continue
            if reply.message_type is MessageType.ERROR:
                outcomes["error"] += 1
                errors[reply.error_name] = errors.get(reply.error_name, 0) + 1
                assert reply.error_name.startswith("org.borgd1.Error."), (member, body, reply.body)
                if n % 3 == 0:
                    assert await snapshot() == baseline, (member, body)
            else:
                outcomes["ok"] += 1
                if member not in MUTATING_OK and not member.startswith(
                    ("List", "Get", "Upcoming")
                ):
                    baseline = await snapshot()
    bus.disconnect()
    print(f"fuzz: {CALLS} calls, {outcomes}, errors {errors}")
    assert daemon.proc.poll() is None, daemon.log()
    assert outcomes["error"] > CALLS // 2
    assert set(errors) <= {
        f"org.borgd1.Error.{n}"
        for n in ("NotFound", "InvalidArgument", "AlreadyExists", "InvalidState", "Unavailable")
    }
    assert "org.borgd1.Error.Unavailable" not in errors, "an internal error reached a client"
    assert isinstance(busctl("ListProfiles"), list)  # still answering
