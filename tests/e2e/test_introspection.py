"""dbus/*.xml is the contract: the running daemon's introspection must match it."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import ROOT


def members(xml_text: str, interface: str) -> dict[str, object]:
    root = ET.fromstring(xml_text)
    iface = next(i for i in root.iter("interface") if i.get("name") == interface)
    out: dict[str, object] = {}
    for el in iface:
        if el.tag == "method":
            args = [(a.get("direction", "in"), a.get("type")) for a in el.findall("arg")]
            out[f"method {el.get('name')}"] = args
        elif el.tag == "signal":
            out[f"signal {el.get('name')}"] = [a.get("type") for a in el.findall("arg")]
        elif el.tag == "property":
            out[f"property {el.get('name')}"] = (el.get("type"), el.get("access"))
    return out


def introspect(env: dict[str, str], path: str) -> str:
    res = subprocess.run(
        [
            "busctl",
            "--user",
            "call",
            "org.borgd1",
            path,
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            "--json=short",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    import json

    return json.loads(res.stdout)["data"][0]


def test_manager_matches_the_xml(start_borgd, session_env):
    start_borgd()
    live = members(introspect(session_env.vars, "/org/borgd1"), "org.borgd1.Manager")
    spec = members((ROOT / "dbus" / "org.borgd1.Manager.xml").read_text(), "org.borgd1.Manager")
    assert live == spec
    # The methods and properties man/borgd.dbus.5 documents, at least.
    for name in ("AddRepository", "StartJob", "ListJobs", "Upcoming", "Pause", "GetJobLog"):
        assert f"method {name}" in live
    for name in (
        "Version",
        "Paused",
        "PausedUntil",
        "SleepMonitor",
        "OnBattery",
        "Metered",
        "ActiveJobs",
        "NextRun",
        "MetricsFile",
    ):
        assert f"property {name}" in live


def test_job_xml_lists_every_job_key():
    spec = members((ROOT / "dbus" / "org.borgd1.Job.xml").read_text(), "org.borgd1.Job")
    from borgd.dbus.types import JOB_KEYS

    assert {k.split(" ", 1)[1] for k in spec if k.startswith("property")} == set(JOB_KEYS)
    assert "method Cancel" in spec


def test_xml_files_are_the_two_interfaces():
    """Each contract file parses and declares exactly the interface it is named after."""
    files = sorted(Path(ROOT / "dbus").glob("*.xml"))
    assert [p.name for p in files] == ["org.borgd1.Job.xml", "org.borgd1.Manager.xml"]
    for path in files:
        names = [i.get("name") for i in ET.parse(path).getroot().iter("interface")]
        assert names == [path.stem], (path, names)


def test_live_job_object_matches_the_xml(start_borgd, busctl, session_env, tmp_path):
    """A job's object (/org/borgd1/job/<id>) as the running daemon introspects it: a
    scheduled job is live, so a schedule makes one without running borg."""
    start_borgd()
    busctl("AddRepository", "ssa{sv}", "main", str(tmp_path / "repo"), 0)
    busctl("AddProfile", "ssasa{sv}", "docs", "main", 1, str(tmp_path), 0)
    busctl("AddSchedule", "sssa{sv}", "docs", "backup", "daily", 0)
    listed = busctl("ListJobs", "a{sv}", 0)
    (intent,) = listed if isinstance(listed, list) else [listed]
    assert intent["status"] == "scheduled"
    live = members(
        introspect(session_env.vars, f"/org/borgd1/job/{intent['id']}"), "org.borgd1.Job"
    )
    spec = members((ROOT / "dbus" / "org.borgd1.Job.xml").read_text(), "org.borgd1.Job")
    assert live == spec
