"""A job id comes from users (`reactor status`, `get_job_status`): whatever
it holds, parsing answers with the index or a ValidationError naming
`job_id`, never another exception."""

from __future__ import annotations

import pytest

from reactor.domain.errors import ValidationError
from reactor.domain.jobs import MAX_JOB_INDEX_DIGITS, job_id_for, parse_job_id


def test_a_job_id_parses_back_to_its_batch_and_index() -> None:
    assert parse_job_id(job_id_for("b:1", 7)) == ("b:1", 7)
    longest = "9" * MAX_JOB_INDEX_DIGITS
    assert parse_job_id(f"b:{longest}") == ("b", int(longest))
    assert int(longest) < 2**63  # PostgreSQL's bigint


@pytest.mark.parametrize("digits", [MAX_JOB_INDEX_DIGITS + 1, 5000, 100_000])
def test_an_index_with_too_many_digits_is_a_malformed_job_id(digits: int) -> None:
    with pytest.raises(ValidationError) as info:
        parse_job_id("b:" + "1" * digits)
    assert info.value.field == "job_id"
    assert f"its index has {digits} digits, over the limit of {MAX_JOB_INDEX_DIGITS}" in str(
        info.value.reason
    )


@pytest.mark.parametrize("job_id", ["x", "b:", ":3", "b:-1", "b:x", "b:٣"])
def test_an_id_without_a_decimal_index_is_a_malformed_job_id(job_id: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_job_id(job_id)
    assert info.value.field == "job_id"
    assert f"malformed job id {job_id!r}" in info.value.reason
