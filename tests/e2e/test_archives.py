"""Archives over D-Bus, against real borg: the cache follows what the repository holds."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.conftest import BusctlError, borg_json, make_tree, wait_until
from tests.e2e.jobs_helpers import asv, backing_up, marked_tree, sparse_tree, wait_running
from tests.e2e.jobs_helpers import job as job_row
from tests.reliability.helpers import (
    add_profile,
    all_jobs,
    borg_env,
    borg_run,
    init_repo,
    start_job,
    wait_status,
)


def archives(busctl, repository: str, **flt: Any) -> list[dict[str, Any]]:
    rows = busctl("ListArchives", "sa{sv}", repository, *asv(**flt))
    return rows if isinstance(rows, list) else [rows] if rows else []


def refreshed(busctl, repository: str) -> dict[str, Any]:
    done = wait_status(busctl, busctl("RefreshArchives", "s", repository))
    assert done["status"] == "succeeded" and done["type"] == "list", done
    return done


def backup(busctl, profile: str) -> dict[str, Any]:
    done = wait_status(busctl, start_job(busctl, profile))
    assert done["status"] == "succeeded", done
    return done


def test_two_profiles_backups_and_a_prune_list_as_borg_does(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    src = make_tree(tmp_path / "src", 12)
    add_profile(busctl, "web", "r", [src], keep_daily=("u", 1))
    add_profile(busctl, "home", "r", [src])
    made = [backup(busctl, p) for p in ("web", "home", "web", "home", "web")]
    env = borg_env(session_env)

    # Each backup is in the cache at once, with its job and borg's figures.
    listed = {a["name"]: a for a in archives(busctl, "r")}
    assert set(listed) == {j["archive"] for j in made}
    for job in made:
        row = listed[job["archive"]]
        assert (row["profile"], row["job_id"]) == (job["profile"], job["id"]), row
        assert row["nfiles"] == job["nfiles"] == 12
        assert row["original_size"] == job["original_size"] > 0
        assert row["repository"] == "r" and not row["checkpoint"]
    assert [a["start"] for a in archives(busctl, "r")] == sorted(
        (a["start"] for a in listed.values()), reverse=True
    )  # newest first

    # An archive made outside borgd shows after a refresh, with no profile and no job;
    # its figures follow from an `info` job chained to the refresh.
    borg_run("create", f"{repo}::by-hand", str(src), env=env).check_returncode()
    refresh = refreshed(busctl, "r")
    by_hand = {a["name"]: a for a in archives(busctl, "r")}["by-hand"]
    assert (by_hand["profile"], by_hand["job_id"]) == ("", 0)
    (info_job,) = [j for j in all_jobs(busctl, type="list") if j["parent_id"] == refresh["id"]]
    assert info_job["archive"] == "by-hand"  # the only archive borgd did not make
    assert wait_status(busctl, info_job["id"])["status"] == "succeeded"
    truth = borg_json("info", "--glob-archives=*", str(repo), env=env)["archives"]
    truth = {a["name"]: a for a in truth}
    figures = ("nfiles", "original_size", "compressed_size", "deduplicated_size")
    by_hand = {a["name"]: a for a in archives(busctl, "r")}["by-hand"]
    assert [by_hand[k] for k in figures] == [truth["by-hand"]["stats"][k] for k in figures]
    for name, row in listed.items():  # borgd's own: the figures its `create` reported
        assert [row[k] for k in figures[:3]] == [truth[name]["stats"][k] for k in figures[:3]]

    # A prune of web keeps one a day: the cache follows without being asked.
    prune = wait_status(busctl, start_job(busctl, "web", "prune"))
    assert prune["status"] == "succeeded", prune
    wait_until(
        lambda: any(
            j["type"] == "list" and j["parent_id"] == prune["id"] and j["status"] == "succeeded"
            for j in all_jobs(busctl, type="list")
        ),
        60,
        "the list job the prune chained",
    )
    truth = borg_json("list", str(repo), env=env)["archives"]
    cached = archives(busctl, "r")
    assert sorted((a["name"], a["id"]) for a in cached) == sorted(
        (a["name"], a["id"]) for a in truth
    )
    assert [a["name"] for a in archives(busctl, "r", profile="web")] == [made[4]["archive"]]
    assert len(archives(busctl, "r", profile="home")) == 2
    assert len(archives(busctl, "r", limit=("u", 1))) == 1

    # ListRepositories tells what the repository holds and when each kind of job ended well.
    (facts,) = busctl("ListRepositories")
    assert facts["archives"] == len(cached)
    assert facts["last_backup"] == max(j["finished_at"] for j in made)
    assert facts["last_prune"] == wait_status(busctl, prune["id"])["finished_at"]
    assert (facts["last_compact"], facts["last_check"]) == (0, 0)
    du = int(subprocess.run(["du", "-s", "-B1", str(repo)], capture_output=True,
                            text=True, check=True).stdout.split()[0])  # fmt: skip
    data = sum(f.stat().st_size for f in (repo / "data").rglob("*") if f.is_file())
    assert data <= facts["size"] <= du, (data, facts["size"], du)

    # RepositoryStats: one row per backup, for a size-over-time chart.
    rows = busctl("RepositoryStats", "st", "r", 0)
    assert [(r["archive"], r["profile"], r["nfiles"]) for r in rows] == [
        (j["archive"], j["profile"], 12) for j in made
    ]
    assert all(0 < r["repository_size"] <= facts["size"] for r in rows), rows
    assert rows[0]["deduplicated_size"] > rows[-1]["deduplicated_size"]  # later ones dedupe
    later = busctl("RepositoryStats", "st", "r", made[2]["finished_at"])
    assert [r["archive"] for r in later] == [j["archive"] for j in made[2:]]


def test_delete_refuses_a_profiles_newest_archive_unless_forced(
    start_borgd, busctl, gdbus, session_env, tmp_path
):
    start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    add_profile(busctl, "web", "r", [make_tree(tmp_path / "src", 3)])
    old, new = backup(busctl, "web"), backup(busctl, "web")

    with pytest.raises(BusctlError) as err:
        gdbus("DeleteArchive", "'r'", f"'{new['archive']}'", "@a{sv} {}")
    assert err.value.name == "org.borgd1.Error.InvalidState", err.value
    assert "newest successful backup of profile 'web'" in err.value.text
    assert {a["name"] for a in archives(busctl, "r")} == {old["archive"], new["archive"]}

    gone = wait_status(busctl, busctl("DeleteArchive", "ssa{sv}", "r", old["archive"], 0))
    assert (gone["status"], gone["type"], gone["archive"]) == (
        "succeeded",
        "delete",
        old["archive"],
    ), gone
    assert [a["name"] for a in archives(busctl, "r")] == [new["archive"]]
    forced = busctl("DeleteArchive", "ssa{sv}", "r", new["archive"], *asv(force=True))
    assert wait_status(busctl, forced)["status"] == "succeeded"
    assert archives(busctl, "r") == []
    assert borg_json("list", str(repo), env=borg_env(session_env))["archives"] == []


def test_bad_archive_calls_change_nothing(start_borgd, busctl, gdbus, tmp_path):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    add_profile(busctl, "web", "r", [make_tree(tmp_path / "src", 2)])
    jobs_before = all_jobs(busctl)
    for error, member, args in (
        ("NotFound", "ListArchives", ["'nope'", "@a{sv} {}"]),
        ("InvalidArgument", "ListArchives", ["'r'", "{'colour': <'red'>}"]),
        ("NotFound", "ListArchives", ["'r'", "{'profile': <'nope'>}"]),
        ("InvalidArgument", "ListArchives", ["'r'", "{'limit': <'many'>}"]),
        ("NotFound", "RefreshArchives", ["'nope'"]),
        ("NotFound", "RepositoryStats", ["'nope'", "@t 0"]),
        ("NotFound", "DeleteArchive", ["'r'", "'no-such-archive'", "@a{sv} {}"]),
        ("InvalidArgument", "DeleteArchive", ["'r'", "'x'", "{'forse': <true>}"]),
        ("InvalidArgument", "StartJob", ["'web'", "'delete'", "@a{sv} {}"]),
        ("InvalidArgument", "StartJob", ["'web'", "'list'", "@a{sv} {}"]),
    ):
        with pytest.raises(BusctlError) as err:
            gdbus(member, *args)
        assert err.value.name == f"org.borgd1.Error.{error}", (member, args, err.value)
    assert all_jobs(busctl) == jobs_before
    # Any u64 is a valid time and a valid-looking job id: answers, not internal errors.
    assert busctl("RepositoryStats", "st", "r", 2**64 - 1) == []
    with pytest.raises(BusctlError) as err:
        gdbus("UnmountArchive", f"@t {2**64 - 1}")
    assert err.value.name == "org.borgd1.Error.InvalidArgument", err.value


def contents(busctl, repository: str, archive: str, path: str, **opts: Any) -> list[dict]:
    rows = busctl("ListArchiveContents", "sssa{sv}", repository, archive, path, *asv(**opts))
    return rows if isinstance(rows, list) else [rows] if rows else []


def odd_tree(root: Path) -> Path:
    """Nested folders, a symlink, names with spaces and one with a byte that is not UTF-8."""
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "with space").mkdir()
    (root / "docs" / "a.txt").write_bytes(os.urandom(3000))
    (root / "docs" / "sub" / "b.txt").write_text("beta\n")
    (root / "with space" / "f 1.txt").write_bytes(os.urandom(5000))
    (root / "link").symlink_to("docs/a.txt")
    with open(os.path.join(os.fsencode(root), b"raw-\xff.bin"), "wb") as f:
        f.write(os.urandom(700))
    for i in range(25):
        (root / "docs" / f"n{i:02}.dat").write_bytes(b"x" * i)
    return root


def test_browse_page_restore_and_diff(start_borgd, busctl, session_env, tmp_path):
    start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    src = odd_tree(tmp_path / "src")
    add_profile(busctl, "web", "r", [src])
    first = backup(busctl, "web")
    env = borg_env(session_env)
    truth = [
        json.loads(line)["path"]
        for line in borg_run(
            "list", "--json-lines", f"{repo}::{first['archive']}", env=env
        ).stdout.splitlines()
    ]
    top = src.relative_to("/").as_posix()

    # Folders borg did not store are there to walk down from the top.
    parts = top.split("/")
    assert [e["path"] for e in contents(busctl, "r", first["archive"], "")] == [parts[0]]
    here = contents(busctl, "r", first["archive"], top)
    assert {e["path"].rsplit("/", 1)[1] for e in here} == {
        "docs", "with space", "link", "raw-?.bin",
    }  # fmt: skip
    link = next(e for e in here if e["path"].endswith("/link"))
    assert (link["type"], link["target"]) == ("l", "docs/a.txt")
    a = contents(busctl, "r", first["archive"], f"{top}/docs", pattern="*/a.txt")[0]
    assert (a["type"], a["size"], a["mode"] & 0o777) == (
        "-",
        3000,
        (src / "docs/a.txt").stat().st_mode & 0o777,
    )

    # Paging a recursive listing covers every entry exactly once.
    seen: list[str] = []
    offset = 0
    while page := contents(
        busctl, "r", first["archive"], top, recursive=True, offset=("u", offset), limit=("u", 7)
    ):
        seen += [e["path"] for e in page]
        offset += len(page)
    assert sorted(seen) == sorted(p for p in truth if p.startswith(f"{top}/"))
    assert len(seen) == len(set(seen))

    # A path taken from the listing restores byte-identical, spaces and odd bytes included.
    listed = [e["path"] for e in here if e["path"].endswith(("with space", "raw-?.bin"))]
    dest = tmp_path / "restored"
    done = wait_status(busctl, busctl(
        "StartJob", "ssa{sv}", "web", "restore",
        *asv(destination=str(dest), archive=first["archive"], paths=listed),
    ))  # fmt: skip
    assert done["status"] == "succeeded", done
    assert filecmp.cmp(
        src / "with space" / "f 1.txt", dest / top / "with space" / "f 1.txt", shallow=False
    )
    raw = b"raw-\xff.bin"
    assert filecmp.cmp(
        os.path.join(os.fsencode(dest / top), raw), os.path.join(os.fsencode(src), raw), False
    )

    # Diff: added, removed, modified.
    (src / "new.txt").write_text("new\n")
    (src / "docs" / "sub" / "b.txt").unlink()
    with open(src / "docs" / "a.txt", "ab") as f:
        f.write(os.urandom(4000))
    second = backup(busctl, "web")
    diff = busctl("DiffArchives", "sssa{sv}", "r", first["archive"], second["archive"], 0)
    by_path = {d["path"]: d for d in diff}
    assert "added" in by_path[f"{top}/new.txt"]["changes"]
    assert by_path[f"{top}/new.txt"]["size_delta"] == 4
    assert "removed" in by_path[f"{top}/docs/sub/b.txt"]["changes"]
    assert "modified" in by_path[f"{top}/docs/a.txt"]["changes"]
    assert by_path[f"{top}/docs/a.txt"]["size_delta"] > 0
    paged = busctl(
        "DiffArchives", "sssa{sv}", "r", first["archive"], second["archive"], *asv(limit=("u", 1))
    )
    assert len(paged if isinstance(paged, list) else [paged]) == 1


async def timed_call(address: str, member: str, signature: str, body: list) -> tuple:
    """One call's round trip on a connection made beforehand: (seconds, error name, text)."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        began = time.monotonic()
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
        took = time.monotonic() - began
    finally:
        bus.disconnect()
    error = reply.error_name if reply.message_type is MessageType.ERROR else ""
    return took, error, reply.body[0] if reply.body else ""


def test_a_busy_repository_answers_unavailable_naming_the_job_at_once(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    src = make_tree(tmp_path / "src", 3)
    add_profile(busctl, "small", "r", [src])
    add_profile(busctl, "big", "r", [sparse_tree(tmp_path / "big", 300, 200)])
    first = backup(busctl, "small")
    (src / "added.txt").write_text("new\n")
    second = backup(busctl, "small")
    a, b = first["archive"], second["archive"]
    # What was read before the lane got busy: a listing, and a diff.
    contents = busctl("ListArchiveContents", "sssa{sv}", "r", a, "", 0)
    diff = busctl("DiffArchives", "sssa{sv}", "r", a, b, 0)
    diff = diff if isinstance(diff, list) else [diff]
    assert "added" in diff[-1]["changes"] and len(diff) == 2, diff  # the folder, its file
    running = start_job(busctl, "big")
    wait_running(busctl, running)
    address = session_env.vars["DBUS_SESSION_BUS_ADDRESS"]
    for member, signature, body in (
        ("ListArchiveContents", "sssa{sv}", ["r", b, "", {}]),
        ("DiffArchives", "sssa{sv}", ["r", b, a, {}]),  # the other way round: not read yet
    ):
        took, error, text = anyio.run(timed_call, address, member, signature, body)
        assert error == "org.borgd1.Error.Unavailable", (member, error, text)
        assert f"backup job {running} holds borg's lock" in text, text
        # borg itself would wait for the lock (1 s by default, then fail); borgd answers
        # from its own records: a few milliseconds, with a second's margin for a busy CI.
        assert took < 1.0, (member, took)
    # What borgd read before answers from its own copy, pages too; ListArchives from the
    # cache.  The backup is still running.
    assert busctl("ListArchiveContents", "sssa{sv}", "r", a, "", 0) == contents
    page = busctl("DiffArchives", "sssa{sv}", "r", a, b, *asv(offset=("u", 1), limit=("u", 1)))
    assert (page if isinstance(page, list) else [page]) == diff[1:]
    assert [x["name"] for x in archives(busctl, "r")] == [b, a]
    assert job_row(busctl, running)["status"] == "running"
    busctl("CancelJob", "t", running)
    wait_status(busctl, running)


def test_borgctl_archive_commands(start_borgd, busctl, borgctl, complete, tmp_path):
    start_borgd()
    init_repo(busctl, "r", tmp_path / "repo")
    src = make_tree(tmp_path / "src", 6)
    add_profile(busctl, "web", "r", [src])
    made = [backup(busctl, "web") for _ in range(2)]
    (src / "extra.txt").write_text("more\n")
    made.append(backup(busctl, "web"))

    out = borgctl("archives", "r", "--json")
    assert out.returncode == 0, out.stderr
    assert [a["name"] for a in json.loads(out.stdout)] == [j["archive"] for j in reversed(made)]
    table = borgctl("archives", "r").stdout
    assert all(j["archive"] in table for j in made) and "web" in table

    top = src.relative_to("/").as_posix()
    listed = borgctl("ls", "r", made[2]["archive"], top, "--json")
    assert listed.returncode == 0, listed.stderr
    assert f"{top}/extra.txt" in {e["path"] for e in json.loads(listed.stdout)}
    diff = borgctl("diff", "r", made[1]["archive"], made[2]["archive"])
    assert "added" in diff.stdout and "extra.txt" in diff.stdout, diff.stdout

    stats = borgctl("stats", "r")
    assert stats.returncode == 0, stats.stderr
    bars = [line for line in stats.stdout.splitlines() if line[:4].isdigit()]
    assert len(bars) == 3, stats.stdout  # one row per backup
    # The first backup added everything: the longest bar; the second added nothing.
    assert bars[0].count("#") == 40 and bars[1].count("#") == 0, stats.stdout
    assert bars[2].count("#") >= 1, stats.stdout

    refused = borgctl("archive", "rm", "r", made[2]["archive"])
    assert refused.returncode != 0 and "newest successful backup" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    gone = borgctl("archive", "rm", "r", made[0]["archive"])
    assert gone.returncode == 0, gone.stderr
    wait_until(lambda: made[0]["archive"] not in borgctl("archives", "r").stdout, 30, "the delete")

    # Completion asks borgd for repository and archive names.
    assert complete("ls", "") == ["r"]
    assert sorted(complete("ls", "r", "web-")) == sorted(j["archive"] for j in made[1:])
    assert complete("archive", "rm", "r", made[2]["archive"][:8]) != []


def test_a_successful_backup_removes_its_profiles_checkpoints(
    start_borgd, busctl, session_env, tmp_path
):
    start_borgd()
    repo = tmp_path / "repo"
    init_repo(busctl, "r", repo)
    big = marked_tree(tmp_path / "big", 16, 128)
    add_profile(busctl, "web", "r", [big])
    stopped = start_job(busctl, "web")
    wait_running(busctl, stopped)
    wait_until(lambda: backing_up(busctl, stopped), 30, "borg to store data", interval=0.05)
    busctl("CancelJob", "t", stopped)
    cancelled = wait_status(busctl, stopped)
    assert cancelled["archive"].endswith(".checkpoint"), cancelled
    assert [a["name"] for a in archives(busctl, "r", checkpoints=True)] == [cancelled["archive"]]

    small = make_tree(tmp_path / "small", 3)
    busctl("UpdateProfile", "sa{sv}", "web", *asv(sources=[str(small)]))
    done = backup(busctl, "web")
    delete = wait_until(
        lambda: [j for j in all_jobs(busctl, type="delete") if j["parent_id"] == done["id"]],
        10,
        "the chained delete of the checkpoint",
    )
    assert delete[0]["archive"] == cancelled["archive"]
    assert wait_status(busctl, delete[0]["id"])["status"] == "succeeded"
    names = borg_json("list", "--consider-checkpoints", str(repo), env=borg_env(session_env))
    assert [a["name"] for a in names["archives"]] == [done["archive"]]
    assert [a["name"] for a in archives(busctl, "r", checkpoints=True)] == [done["archive"]]
