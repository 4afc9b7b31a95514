"""What an apply attempt learns from the heartbeat its predecessor left."""

from __future__ import annotations

from activities.chunk_progress import ChunkProgress


def test_jobs_the_previous_attempt_died_in_count_attempts_in_a_row() -> None:
    first = ChunkProgress(2, [{"attempt": 1, "running": [3, 4], "stuck": {}}])
    assert first.never_finished() == {3: 1, 4: 1}
    again = ChunkProgress(3, [{"attempt": 2, "running": [4], "stuck": {"3": 1, "4": 1}}])
    assert again.never_finished() == {4: 2}


def test_a_previous_attempt_that_left_no_heartbeat_died_in_no_job() -> None:
    # The last heartbeat is from attempt 1: attempt 2 died before any job.
    assert ChunkProgress(3, [{"attempt": 1, "running": [0], "stuck": {}}]).never_finished() == {}
    assert ChunkProgress(1, []).never_finished() == {}
    assert ChunkProgress(2, [7]).never_finished() == {}  # not this activity's details


def test_local_attempts_do_not_heartbeat() -> None:
    progress = ChunkProgress(1, None)
    assert not progress.heartbeats
    progress.beat()  # outside an activity: would raise if it sent anything
