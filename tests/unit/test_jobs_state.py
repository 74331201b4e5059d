"""The job state machine as a table: what a user can and cannot see happen."""

from __future__ import annotations

import pytest

from borgd.core.jobs import (
    LIVE,
    TERMINAL,
    IllegalTransition,
    JobStatus,
    allowed,
    check_transition,
    sources_for,
)

S = JobStatus


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (S.SCHEDULED, S.QUEUED),
        (S.SCHEDULED, S.SKIPPED),
        (S.SCHEDULED, S.CANCELLED),
        (S.QUEUED, S.RUNNING),
        (S.QUEUED, S.CANCELLED),
        (S.QUEUED, S.SKIPPED),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.WARNING),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.CANCELLED),
        (S.RUNNING, S.INTERRUPTED),
    ],
)
def test_allowed(src, dst):
    assert allowed(src, dst)
    check_transition(src, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (S.SCHEDULED, S.RUNNING),  # never skip the queue
        (S.QUEUED, S.SUCCEEDED),
        (S.SUCCEEDED, S.QUEUED),  # finished is final: requeue makes a new job
        (S.FAILED, S.RUNNING),
        (S.CANCELLED, S.QUEUED),
        (S.INTERRUPTED, S.RUNNING),
        (S.RUNNING, S.QUEUED),
        (S.RUNNING, S.RUNNING),
    ],
)
def test_refused(src, dst):
    assert not allowed(src, dst)
    with pytest.raises(IllegalTransition):
        check_transition(src, dst)


def test_terminal_states_have_no_way_out():
    for status in TERMINAL:
        assert not any(allowed(status, dst) for dst in JobStatus)
    assert set(JobStatus) == LIVE | TERMINAL


def test_sources_for_running_is_only_queued():
    assert sources_for(S.RUNNING) == {S.QUEUED}
    assert sources_for(S.CANCELLED) == {S.SCHEDULED, S.QUEUED, S.RUNNING}
