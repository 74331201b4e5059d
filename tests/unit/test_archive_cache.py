"""The archive cache follows borg's archive set and keeps what borgd's jobs said."""

from __future__ import annotations

from dataclasses import replace

import pytest

from borgd.core.archives import ArchiveInfo
from borgd.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "db")
    yield s
    s.close()


def info(name: str, start: int, *, id: str = "", nfiles: int = 0, size: int = 0) -> ArchiveInfo:
    return ArchiveInfo(
        name=name,
        id=id or f"id-{name}",
        start=start,
        end=start + 5,
        nfiles=nfiles,
        original_size=size,
        compressed_size=size // 2,
        deduplicated_size=size // 4,
        comment="",
        checkpoint=name.endswith(".checkpoint"),
    )


def names(store: Store, repo: int, **kw) -> list[str]:
    return [a.name for a in store.archives.query(repo, **kw)]


def test_the_listed_set_replaces_the_cache_newest_first(store: Store) -> None:
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    other = store.catalog.add_repository({"name": "o", "url": "/o"})
    store.archives.replace_set(other, [info("x-1", 1)], {})
    added, removed = store.archives.replace_set(
        repo, [info("web-1", 10), info("web-2", 20), info("home-1", 15)], {"web-1": "web"}
    )
    assert (added, removed) == (3, 0)
    assert names(store, repo) == ["web-2", "home-1", "web-1"]
    assert names(store, repo, profile="web") == ["web-1"]
    assert names(store, repo, limit=1) == ["web-2"]

    added, removed = store.archives.replace_set(repo, [info("web-2", 20), info("web-3", 30)], {})
    assert (added, removed) == (1, 2)
    assert names(store, repo) == ["web-3", "web-2"]
    assert names(store, other) == ["x-1"]  # another repository's cache is untouched


def test_figures_from_the_job_survive_a_listing_without_them(store: Store) -> None:
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    made = info("web-1", 10, nfiles=7, size=4000)
    store.archives.record_made(repo, made, profile="web", job_id=42)
    store.archives.replace_set(repo, [info("web-1", 10)], {"web-1": "web"})
    (row,) = store.archives.query(repo)
    assert (row.nfiles, row.original_size, row.deduplicated_size) == (7, 4000, 1000)
    assert (row.job_id, row.profile, row.archive_id) == (42, "web", "id-web-1")
    assert store.archives.without_figures(repo, 10) == []

    # Another archive under the same name (deleted and made again outside borgd):
    store.archives.replace_set(repo, [info("web-1", 50, id="other")], {"web-1": "web"})
    (row,) = store.archives.query(repo)
    assert (row.archive_id, row.job_id, row.nfiles) == ("other", 0, 0)
    assert store.archives.without_figures(repo, 10) == ["web-1"]


def test_archives_borgd_did_not_make_get_their_figures_once(store: Store) -> None:
    """Newest first, checkpoints aside; an empty archive's figures (all 0) count as known."""
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    listed = [info(f"hand-{i}", i) for i in range(1, 5)] + [info("web-1.checkpoint", 9)]
    store.archives.replace_set(repo, listed, {})
    store.archives.record_made(repo, info("web-2", 10), profile="web", job_id=3)  # all 0
    assert store.archives.without_figures(repo, 3) == ["hand-4", "hand-3", "hand-2"]

    assert store.archives.record_figures(repo, info("hand-4", 4, nfiles=5, size=800))
    assert store.archives.record_figures(repo, info("hand-3", 3))  # empty: all 0
    assert store.archives.without_figures(repo, 3) == ["hand-2", "hand-1"]
    (row,) = [a for a in store.archives.query(repo) if a.name == "hand-4"]
    assert (row.nfiles, row.original_size, row.compressed_size) == (5, 800, 400)

    # A listing of the same archives keeps what is known; one made again under its name
    # (another borg id) is unknown again, and an `info` of the old one is not taken.
    store.archives.replace_set(repo, [*listed[:3], info("hand-4", 40, id="new")], {})
    assert store.archives.without_figures(repo, 5) == ["hand-4", "hand-2", "hand-1"]
    assert not store.archives.record_figures(repo, info("hand-4", 4, nfiles=5, size=800))
    assert not store.archives.record_figures(repo, info("gone", 4, nfiles=5))


def test_checkpoints_are_listed_only_when_asked(store: Store) -> None:
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    store.archives.replace_set(repo, [info("web-1.checkpoint", 10), info("web-2", 20)], {})
    assert names(store, repo) == ["web-2"]
    assert names(store, repo, checkpoints=True) == ["web-2", "web-1.checkpoint"]


def test_a_removed_repository_takes_its_archives_along(store: Store) -> None:
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    store.archives.record_made(repo, info("web-1", 10), profile="web", job_id=1)
    store.catalog.remove_repository(repo)
    assert store.archives.query(repo) == ()


def test_record_made_updates_an_archive_already_listed(store: Store) -> None:
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    store.archives.replace_set(repo, [info("web-1", 10)], {})
    store.archives.record_made(
        repo, replace(info("web-1", 10, nfiles=3, size=80), id=""), profile="web", job_id=9
    )
    (row,) = store.archives.query(repo)
    assert (row.nfiles, row.job_id, row.archive_id, row.profile) == (3, 9, "id-web-1", "web")


def test_a_listing_links_each_archive_to_the_backup_that_reported_it(store: Store) -> None:
    from borgd.core.jobs import JobStatus

    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    made = {}
    for name, status in (("web-1", JobStatus.SUCCEEDED), ("web-2", JobStatus.FAILED)):
        job = store.jobs.queue(
            now=1, type="backup", trigger="manual", profile="web", repository="r",
            repository_id=repo, options={},
        )  # fmt: skip
        store.jobs.transition(job.id, JobStatus.RUNNING, started_at=2)
        store.jobs.transition(job.id, status, finished_at=3, archive=name)
        made[name] = job.id
    store.archives.replace_set(repo, [info("web-1", 10), info("web-2", 20), info("x", 30)], {})
    linked = {a.name: a.job_id for a in store.archives.query(repo)}
    # a failed backup never made the archive of that name: only a success links
    assert linked == {"web-1": made["web-1"], "web-2": 0, "x": 0}


def test_the_archive_record_has_the_tables_columns_in_order() -> None:
    """`ArchiveCache.query` builds records from plain row tuples."""
    from dataclasses import fields

    from borgd.core.records import Archive
    from borgd.store.models import ARCHIVES

    assert [f.name for f in fields(Archive)] == [c.name for c in ARCHIVES.columns]


def test_every_write_shows_in_the_next_answer_however_often_it_was_asked(store: Store) -> None:
    """The cache keeps its answers between writes: each kind of write must drop them."""
    repo = store.catalog.add_repository({"name": "r", "url": "/r"})
    asked = [names(store, repo), names(store, repo, profile="web"), names(store, repo, limit=1)]
    assert asked == [[], [], []]
    store.archives.record_made(repo, info("web-1", 10), profile="web", job_id=1)
    assert names(store, repo) == ["web-1"]
    assert names(store, repo, profile="web") == ["web-1"]
    store.archives.replace_set(repo, [info("web-1", 10), info("home-1", 20)], {})
    assert names(store, repo, limit=1) == ["home-1"]
    assert names(store, repo) == ["home-1", "web-1"]
    store.archives.remove(repo, "home-1")
    assert names(store, repo) == ["web-1"]
    assert names(store, repo, limit=1) == ["web-1"]
    store.archives.record_made(repo, replace(info("web-1", 10), nfiles=9), profile="web", job_id=1)
    assert store.archives.query(repo)[0].nfiles == 9
