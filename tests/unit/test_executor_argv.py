"""Restore paths as users name them: the argv borg needs (borg stores paths without '/')."""

from __future__ import annotations

import pytest

from borgd.core.borg_argv import build_argv
from borgd.core.config import JobOptions, JobSpec, ProfileConfig, RepoConfig
from borgd.core.jobs import JobType

REPO = RepoConfig(name="main", url="/srv/borg/main")
WEB = ProfileConfig(name="web", repository="main", sources=("/srv/www",))


def restore(*paths: str) -> JobSpec:
    return JobSpec(
        type=JobType.RESTORE,
        repo=REPO,
        profile=WEB,
        options=JobOptions(archive="web-1", destination="/tmp/r", paths=paths),
    )


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ((), ()),
        (("/srv/www/index.html",), ("srv/www/index.html",)),
        (("srv/www/index.html",), ("srv/www/index.html",)),
        (("//srv/www", "/etc/x y"), ("srv/www", "etc/x y")),
        (("-weird",), ("-weird",)),  # after "--": never an option
    ],
)
def test_restore_paths_lose_their_leading_slash(
    paths: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    argv = build_argv(restore(*paths))
    assert argv[: argv.index("--") + 2] == (
        "borg", "extract", "--log-json", "--progress", "--", "/srv/borg/main::web-1",
    )  # fmt: skip
    assert argv[argv.index("--") + 2 :] == expected


@pytest.mark.parametrize(("path", "message"), [("", "empty"), ("/", "whole archive")])
def test_restore_paths_that_name_nothing_are_refused(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_argv(restore(path))
