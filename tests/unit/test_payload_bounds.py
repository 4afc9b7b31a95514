"""What keeps a batch's Temporal payloads bounded whatever users put in
them: error messages are cut, and the workflow measures its result's job
views (past a budget, waiters page through a query)."""

from __future__ import annotations

from reactor.domain.jobs import MAX_ERROR_MESSAGE, JobError, JobStatus
from reactor.domain.workflow_io import BatchSummary, JobView, views_json_size


def test_a_short_error_message_is_kept_whole() -> None:
    assert JobError(type="ReducerError", message="no such item").message == "no such item"


def test_a_long_error_message_is_cut_and_says_how_much_was_cut() -> None:
    message = "state=" + "x" * 50_000
    cut = JobError(type="ReducerError", message=message).message
    assert len(cut) <= MAX_ERROR_MESSAGE
    assert cut.startswith("state=xxx")
    kept = cut.index("…")
    assert cut.endswith(f"({len(message) - kept} more characters)")


def test_an_error_read_back_from_a_payload_is_cut_too() -> None:
    error = JobError.model_validate({"type": "E", "message": "y" * 5000})
    assert len(error.message) <= MAX_ERROR_MESSAGE


def test_the_views_size_is_their_size_in_the_batch_result() -> None:
    """Non-ASCII text and JSON escapes included: the size is of the bytes
    Temporal receives, not an estimate."""
    views = [
        JobView(
            index=i,
            key=f'key-{i}-"é😀\n',
            document_id="doc-€",
            status=JobStatus.FAILED,
            error=JobError(type="ReducerError", message="\u0001 bad\n" * 50),
        )
        for i in range(20)
    ]
    summary = BatchSummary(batch_id="b", total=20, counts={}, failed=20, finished=True)
    without = len(summary.model_dump_json().encode())
    with_views = len(summary.model_copy(update={"jobs": views}).model_dump_json().encode())
    # "jobs":null becomes "jobs":[...]: the list's bytes replace the 4 of null.
    assert views_json_size(views) == with_views - without + 4
