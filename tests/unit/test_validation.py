"""Argument validation: every rejection names the problem; valid input passes unchanged."""

from __future__ import annotations

import pytest

from borgd.core.validation import (
    LIST_FILTER,
    PROFILE_OPTIONS,
    REPOSITORY_OPTIONS,
    InvalidArgument,
    check_absolute_path,
    check_name,
    check_options,
    check_url,
)


@pytest.mark.parametrize("name", ["docs", "Home-2", "a", "x.y_z", "9lives", "a" * 64])
def test_good_names(name):
    assert check_name("profile", name) == name


@pytest.mark.parametrize(
    "name", ["", "-x", ".hidden", "a b", "ä", "a/b", "a" * 65, "x;rm -rf", "\x00"]
)
def test_bad_names(name):
    with pytest.raises(InvalidArgument, match="invalid profile name"):
        check_name("profile", name)


@pytest.mark.parametrize(
    "url",
    [
        "/backup/repo",
        "file:///backup/repo",
        "ssh://u@host:2222/./repo",
        "ssh://host/repo",
        "u@host:repo",
        "host:/srv/r",
    ],
)
def test_good_urls(url):
    assert check_url(url)


@pytest.mark.parametrize("url", ["", "relative/repo", " /x", "/x\n", "http://host/repo", "ssh://"])
def test_bad_urls(url):
    with pytest.raises(InvalidArgument):
        check_url(url)


@pytest.mark.parametrize("path", ["relative", "", "/x\x00y", "/a\nb"])
def test_bad_paths(path):
    with pytest.raises(InvalidArgument):
        check_absolute_path("source path", path)


def test_unknown_key_lists_the_allowed_ones():
    with pytest.raises(InvalidArgument) as err:
        check_options("profile", PROFILE_OPTIONS, {"colour": ("s", "red")})
    assert "colour" in str(err.value) and "keep_daily" in str(err.value)


@pytest.mark.parametrize(
    ("table", "key", "sig", "value", "message"),
    [
        (PROFILE_OPTIONS, "keep_daily", "s", "7", "must be an integer"),
        (PROFILE_OPTIONS, "keep_daily", "i", -1, "between 0"),
        (PROFILE_OPTIONS, "keep_daily", "t", 2**40, "between 0"),
        (PROFILE_OPTIONS, "prune_after", "s", "yes", "boolean"),
        (PROFILE_OPTIONS, "excludes", "s", "*.tmp", "list of strings"),
        (REPOSITORY_OPTIONS, "encryption", "s", "rot13", "one of"),
        (REPOSITORY_OPTIONS, "passphrase", "as", ["x"], "must be a string"),
        (LIST_FILTER, "limit", "s", "10", "integer"),
    ],
)
def test_type_and_range_errors(table, key, sig, value, message):
    with pytest.raises(InvalidArgument, match=message):
        check_options("x", table, {key: (sig, value)})


def test_valid_options_come_back_as_plain_values():
    got = check_options(
        "profile",
        PROFILE_OPTIONS,
        {"keep_daily": ("u", 7), "excludes": ("as", ["*.tmp"]), "prune_after": ("b", True)},
    )
    assert got == {"keep_daily": 7, "excludes": ["*.tmp"], "prune_after": True}
    assert check_options("filter", LIST_FILTER, {"status": ("s", "failed")}) == {
        "status": ["failed"]
    }
