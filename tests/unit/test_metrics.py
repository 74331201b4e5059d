"""The metrics file: its text from fixed snapshots (borgd.core.metrics), and how the
writer behaves when changes come in bursts or the file's folder fails
(borgd.notify.metrics_file)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
import structlog

from borgd.core.metrics import (
    JobCount,
    LastBackup,
    ProfileState,
    RepositoryState,
    Snapshot,
    escape_label,
    render,
    seconds,
)
from borgd.notify import metrics_file
from borgd.notify.metrics_file import MetricsFile, write_atomic
from borgd.store.health import StoreHealth, StoreUnavailable
from tests.conftest import ROOT, VENV_BIN

HOME = ProfileState(
    name="home",
    repository="usb",
    overdue=False,
    next_run=1_700_086_400_000_000,
    last_backup=LastBackup(
        finished_at=1_700_000_000_250_000,
        duration=12.5,
        original_size=1000,
        compressed_size=600,
        deduplicated_size=300,
        nfiles=42,
    ),
)
MAIL = ProfileState(name="mail", repository="nas", overdue=True, next_run=0, last_backup=None)
SNAPSHOT = Snapshot(
    version="0.1.0",
    profiles=(MAIL, HOME),  # out of order on purpose
    repositories=(RepositoryState("usb", 123456, 3), RepositoryState("nas", 0, 0)),
    jobs=(JobCount("backup", "succeeded", 2), JobCount("backup", "failed", 1)),
)
EXPECTED = """\
# HELP borgd_info borgd's version (always 1).
# TYPE borgd_info gauge
borgd_info{version="0.1.0"} 1
# HELP borgd_profile_info A profile and the repository it backs up to (always 1).
# TYPE borgd_profile_info gauge
borgd_profile_info{profile="home",repository="usb"} 1
borgd_profile_info{profile="mail",repository="nas"} 1
# HELP borgd_last_success_timestamp_seconds When the profile's newest successful backup ended (0: none yet).
# TYPE borgd_last_success_timestamp_seconds gauge
borgd_last_success_timestamp_seconds{profile="home"} 1700000000.25
borgd_last_success_timestamp_seconds{profile="mail"} 0
# HELP borgd_last_backup_duration_seconds How long the profile's newest successful backup took.
# TYPE borgd_last_backup_duration_seconds gauge
borgd_last_backup_duration_seconds{profile="home"} 12.5
# HELP borgd_last_backup_original_bytes Size of the files in the profile's newest successful backup.
# TYPE borgd_last_backup_original_bytes gauge
borgd_last_backup_original_bytes{profile="home"} 1000
# HELP borgd_last_backup_compressed_bytes Compressed size of the profile's newest successful backup.
# TYPE borgd_last_backup_compressed_bytes gauge
borgd_last_backup_compressed_bytes{profile="home"} 600
# HELP borgd_last_backup_deduplicated_bytes What the profile's newest successful backup added to the repository.
# TYPE borgd_last_backup_deduplicated_bytes gauge
borgd_last_backup_deduplicated_bytes{profile="home"} 300
# HELP borgd_last_backup_files Files in the profile's newest successful backup.
# TYPE borgd_last_backup_files gauge
borgd_last_backup_files{profile="home"} 42
# HELP borgd_profile_overdue 1 while the profile is overdue: no successful backup within its max_age.
# TYPE borgd_profile_overdue gauge
borgd_profile_overdue{profile="home"} 0
borgd_profile_overdue{profile="mail"} 1
# HELP borgd_next_run_timestamp_seconds When the profile's next scheduled backup is due (0: none scheduled).
# TYPE borgd_next_run_timestamp_seconds gauge
borgd_next_run_timestamp_seconds{profile="home"} 1700086400
borgd_next_run_timestamp_seconds{profile="mail"} 0
# HELP borgd_jobs Job rows in borgd's store, by type and status.
# TYPE borgd_jobs gauge
borgd_jobs{type="backup",status="failed"} 1
borgd_jobs{type="backup",status="succeeded"} 2
# HELP borgd_repository_size_bytes The repository's latest known size on disk.
# TYPE borgd_repository_size_bytes gauge
borgd_repository_size_bytes{repository="usb"} 123456
# HELP borgd_repository_archives Archives in the repository, as borgd's archive cache knows them.
# TYPE borgd_repository_archives gauge
borgd_repository_archives{repository="nas"} 0
borgd_repository_archives{repository="usb"} 3
"""  # noqa: E501 - HELP lines are one line each


def promtool() -> str:
    found = shutil.which(
        "promtool",
        path=f"{ROOT / '.venv' / 'prometheus' / 'usr' / 'bin'}:{VENV_BIN}:{os.environ['PATH']}",
    )
    if not found:
        pytest.fail("promtool is not installed: run scripts/bootstrap.sh --test")
    return found


def test_a_snapshot_renders_as_the_contract_says():
    """Names, labels, units (seconds from microseconds) and order are the contract;
    a profile without a successful backup has no last-backup figures, a repository of
    unknown size no size."""
    assert render(SNAPSHOT) == EXPECTED


def test_only_the_version_when_nothing_is_configured():
    assert render(Snapshot(version="1.2")) == (
        "# HELP borgd_info borgd's version (always 1).\n"
        "# TYPE borgd_info gauge\n"
        'borgd_info{version="1.2"} 1\n'
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain-name_1.0", "plain-name_1.0"),
        ('say "hi"', 'say \\"hi\\"'),
        ("C:\\back\\up", "C:\\\\back\\\\up"),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),
        ("ünïcode ✓", "ünïcode ✓"),
    ],
)
def test_label_values_are_escaped(value, escaped):
    assert escape_label(value) == escaped


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0"),
        (1, "0.000001"),
        (1_000_000, "1"),
        (10_000_000, "10"),
        (1_700_000_000_250_000, "1700000000.25"),
        (1_700_000_000_123_456, "1700000000.123456"),
        (-5, "0"),
    ],
)
def test_microseconds_become_exact_seconds(us, text):
    assert seconds(us) == text
    assert float(text) == max(us, 0) / 1e6


def test_promtool_finds_nothing_to_say(tmp_path):
    """Also with label values that need every escape and a duration without figures."""
    odd = ProfileState(
        name='we"ird\\name\nx',
        repository="r\\",
        overdue=True,
        next_run=1,
        last_backup=LastBackup(1, 0.0, 0, 0, 0, 0),
    )
    text = render(
        Snapshot(
            version='1.0 "dev"',
            profiles=(odd, HOME),
            repositories=SNAPSHOT.repositories,
            jobs=SNAPSHOT.jobs,
        )
    )
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    # ... and it does complain about what the format forbids.
    broken = text.replace("# HELP borgd_jobs ", "# HELP borgd_jobs_other ")
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=broken, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0 and "borgd_jobs no help text" in done.stdout + done.stderr


def test_the_sample_alert_rules_are_valid_and_fire_when_they_should():
    """contrib/prometheus (the README's fleet set-up): `promtool test rules` runs the
    rules over made-up series and compares the alerts with the expected ones."""
    folder = ROOT / "contrib" / "prometheus"
    for argv in (
        ["check", "rules", "borgd-alerts.yml"],
        ["test", "rules", "borgd-alerts.test.yml"],
    ):
        done = subprocess.run(
            [promtool(), *argv], cwd=folder, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


# -- the writer ---------------------------------------------------------------------


def test_write_atomic_replaces_the_file_readable_by_others(tmp_path):
    target = tmp_path / "borgd.prom"
    target.write_text("old\n")
    old_inode = target.stat().st_ino
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != old_inode  # a new file renamed over the old one
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["borgd.prom"]  # no temporary left


def test_write_atomic_leaves_nothing_behind_when_the_rename_fails(tmp_path):
    target = tmp_path / "a-folder"
    target.mkdir()
    (target / "occupied").write_text("x")
    with pytest.raises(OSError):
        write_atomic(target, "text\n")  # a non-empty folder cannot be replaced by a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]


class Fixed(MetricsFile):
    """The writer over a fixed snapshot (or a store outage): only the store's health."""

    def __init__(self, path: Path, **kwargs) -> None:
        store: Any = SimpleNamespace(health=StoreHealth())
        super().__init__(path=path, store=store, clock=lambda: 0, disk_usage=None, **kwargs)
        self.snap = SNAPSHOT
        self.outage: StoreUnavailable | None = None
        self.taken: list[float] = []  # when each write took its snapshot

    async def snapshot(self) -> Snapshot:
        self.taken.append(anyio.current_time())
        if self.outage is not None:
            raise self.outage
        return self.snap


async def until(condition, what: str, timeout: float = 5) -> None:
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.anyio
async def test_a_burst_of_changes_is_one_write_and_the_last_change_lands(tmp_path):
    target = tmp_path / "borgd.prom"
    writer = Fixed(target, min_interval=0.3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        await until(lambda: writer.writes == 1, "the start-up write")
        assert target.read_text() == EXPECTED
        for n in range(50):
            writer.snap = Snapshot(version=f"burst-{n}")
            writer.mark()
        await until(lambda: writer.writes == 2, "the write after the burst")
        assert writer.taken[1] - writer.taken[0] >= 0.3  # not before the interval is over
        assert 'version="burst-49"' in target.read_text()  # the last change, in one write
        await anyio.sleep(0.5)
        assert writer.writes == 2  # and nothing more without a change
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_hung_write_never_stalls_and_a_failed_one_is_retried_at_the_next_change(
    tmp_path, monkeypatch
):
    target = tmp_path / "borgd.prom"
    release = threading.Event()
    real = metrics_file.write_atomic

    def hung(path: Path, text: str) -> None:
        release.wait(10)
        real(path, text)

    monkeypatch.setattr(metrics_file, "write_atomic", hung)
    writer = Fixed(target, write_timeout=0.2)
    with structlog.testing.capture_logs() as logs:
        with anyio.fail_after(2):
            assert await writer.write() is False  # gave up after 0.2 s
            assert await writer.write() is False  # no second thread on the same hang
        assert [(e["event"], e["log_level"]) for e in logs] == [
            ("metrics.write_failed", "warning"),
            ("metrics.write_failed", "warning"),
        ]
        assert "did not finish" in logs[0]["reason"]
        assert "has not returned" in logs[1]["reason"]
        release.set()
        await until(lambda: not writer._writing, "the hung write to return")

    monkeypatch.setattr(metrics_file, "write_atomic", real)
    missing = Fixed(tmp_path / "not-yet" / "borgd.prom")
    with structlog.testing.capture_logs() as logs:
        assert await missing.write() is False
    assert logs[0]["event"] == "metrics.write_failed" and "not-yet" in logs[0]["path"]
    (tmp_path / "not-yet").mkdir()
    assert await missing.write() is True
    assert (tmp_path / "not-yet" / "borgd.prom").read_text() == EXPECTED


@pytest.mark.anyio
async def test_after_a_store_outage_the_file_is_written_once_the_store_is_back(tmp_path):
    target = tmp_path / "borgd.prom"
    writer = Fixed(target, min_interval=0.05)
    writer.outage = StoreUnavailable("database is locked")
    writer.store.health.failed("database is locked")
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            await until(lambda: writer.taken, "the start-up attempt")
            await anyio.sleep(0.2)  # several intervals: no retry while the store is out
            assert len(writer.taken) == 1 and not target.exists()
            writer.outage = None
            writer.store.health.recovered()  # no job changed: the recovery alone
            await until(lambda: writer.writes == 1, "the write after the outage")
            tg.cancel_scope.cancel()
    assert target.read_text() == EXPECTED
    failed = [e for e in logs if e["event"] == "metrics.snapshot_failed"]
    assert [(e["log_level"], e["reason"]) for e in failed] == [("warning", "database is locked")]
