"""Five-field cron expressions, checked against the maintained ``cronsim`` library."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import cronsim  # a test dependency (pyproject.toml [test]): missing means failing
import pytest

from borgd.core.schedule import SpecError, parse_spec

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOWS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _field(
    rng: random.Random, lo: int, hi: int, names: tuple[str, ...] = (), base: int = 0
) -> str:
    def value(v: int) -> str:
        if names and rng.random() < 0.3 and 0 <= v - base < len(names):
            word = names[v - base]
            return rng.choice((word, word.upper(), word.title()))
        return str(v)

    r = rng.random()
    if r < 0.3:
        return "*"
    if r < 0.4:
        return f"*/{rng.randint(1, max(1, (hi - lo) // 2))}"
    items = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.random()
        a = rng.randint(lo, hi)
        if kind < 0.45:
            items.append(value(a))
        elif kind < 0.8 and a < hi:
            b = rng.randint(a + 1, hi)
            step = f"/{rng.randint(1, max(1, b - a))}" if rng.random() < 0.35 else ""
            items.append(f"{value(a)}-{value(b)}{step}")
        else:
            items.append(f"{a}/{rng.randint(1, max(1, hi - lo))}")
    return ",".join(items)


def generate_cron(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        dom = _field(rng, 1, 31) if rng.random() < 0.8 else rng.choice(("1", "15", "28", "1-7"))
        fields = [
            _field(rng, 0, 59),
            _field(rng, 0, 23),
            dom,
            _field(rng, 1, 12, _MONTHS, 1),
            _field(rng, 0, 7, _DOWS, 0) if rng.random() < 0.6 else "*",
        ]
        out.append(" ".join(fields))
    return out


EXPRESSIONS = generate_cron(1337, 300)
BASES = (
    datetime(2023, 11, 14, 22, 13, tzinfo=UTC),
    datetime(2024, 2, 28, 23, 59, tzinfo=UTC),
    datetime(2024, 12, 31, 12, 0, tzinfo=UTC),
)


def _cronsim_list(expr: str, start: datetime, count: int) -> list[datetime] | None:
    try:
        it = cronsim.CronSim(expr, start)
        return [t.astimezone(UTC) for t in itertools.islice(it, count)]
    except cronsim.CronSimError:
        return None


def _near_transition(tz: ZoneInfo, when: datetime) -> bool:
    window = timedelta(hours=26)
    return (when - window).astimezone(tz).utcoffset() != (when + window).astimezone(tz).utcoffset()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "Europe/Berlin"])
def test_generated_expressions_match_cronsim(zone: str) -> None:
    tz = ZoneInfo(zone)
    compared = 0
    for expr in EXPRESSIONS:
        try:
            spec = parse_spec(expr, zone)
        except SpecError:
            assert _cronsim_list(expr, BASES[0].astimezone(tz), 1) is None, expr
            continue
        assert spec.kind == "cron"
        for base in BASES:
            expected = _cronsim_list(expr, base.astimezone(tz), 8)
            assert expected is not None, expr
            got = list(itertools.islice(spec.iter_after(base), len(expected)))
            if got != expected and any(_near_transition(tz, t) for t in got + expected):
                continue  # DST: covered by test_schedule_dst, cronsim differs there
            assert got == expected, (expr, zone, base)
            compared += 1
    assert compared >= 0.9 * len(EXPRESSIONS) * len(BASES)


def test_generator_is_deterministic_and_mostly_valid() -> None:
    assert generate_cron(5, 40) == generate_cron(5, 40)
    valid = 0
    for expr in EXPRESSIONS:
        try:
            parse_spec(expr, "UTC")
            valid += 1
        except SpecError:
            pass
    assert valid >= 250


@pytest.mark.parametrize(
    ("macro", "normalized"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro: str, normalized: str) -> None:
    spec = parse_spec(macro, "UTC")
    assert spec.kind == "cron"
    assert spec.normalized == normalized
    start = datetime(2024, 3, 5, 10, 30, tzinfo=UTC)
    expected = list(itertools.islice(cronsim.CronSim(normalized, start), 5))
    assert list(itertools.islice(spec.iter_after(start), 5)) == expected


def test_normalized_fields() -> None:
    assert parse_spec("0 2 * * 1-5", "UTC").normalized == "0 2 * * 1-5"
    assert parse_spec("  0   2 * *   MON-fri ", "UTC").normalized == "0 2 * * 1-5"
    assert parse_spec("*/15 0 1,15 jan,Jul 7", "UTC").normalized == "*/15 0 1,15 1,7 0"
    assert parse_spec("5/20 * * * *", "UTC").normalized == "5-59/20 * * * *"


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    spec = parse_spec("0 12 13 * fri", "UTC")  # the 13th OR any Friday
    days = [
        t.date() for t in itertools.islice(spec.iter_after(datetime(2024, 9, 1, tzinfo=UTC)), 6)
    ]
    assert [d.isoformat() for d in days] == [
        "2024-09-06",  # Fri
        "2024-09-13",  # Fri and the 13th: once
        "2024-09-20",
        "2024-09-27",
        "2024-10-04",
        "2024-10-11",
    ]
    spec = parse_spec("0 12 13 * *", "UTC")  # day-of-week '*': AND, i.e. only the 13th
    assert spec.next_after(datetime(2024, 9, 1, tzinfo=UTC)) == datetime(
        2024, 9, 13, 12, tzinfo=UTC
    )
    spec = parse_spec("0 12 */10 * fri", "UTC")  # '*/10' starts with '*': AND
    assert spec.next_after(datetime(2024, 9, 1, tzinfo=UTC)) == datetime(
        2024, 10, 11, 12, tzinfo=UTC
    )


def test_cron_times_are_in_the_spec_zone() -> None:
    spec = parse_spec("30 3 * * *", "Asia/Kolkata")
    assert spec.next_after(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(
        2024, 1, 1, 22, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expr", "token"),
    [
        ("61 * * * *", "61"),
        ("* 24 * * *", "24"),
        ("* * 0 * *", "0"),
        ("* * * 13 *", "13"),
        ("* * * * 8", "8"),
        ("* * * foo *", "foo"),
        ("* * * * mun", "mun"),
        ("5-1 * * * *", "5-1"),
        ("*/0 * * * *", "greater than zero"),
        ("0 2 * *", "5 fields"),
        ("0 0 0 2 * * *", "found 7"),
        ("0 0 30 feb *", "30"),
        ("@reboot", "@reboot"),
        ("@fortnightly", "@fortnightly"),
        ("1,,2 * * * *", "empty"),
    ],
)
def test_bad_expressions_name_the_token(expr: str, token: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(expr, "UTC")
    assert token in str(info.value)
