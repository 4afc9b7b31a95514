"""A job's coordinates travel as one span: its expansion, the last index the
ledger path looks up, and its size on the wire."""

from __future__ import annotations

import json
from itertools import islice

import pydantic
import pytest

from reactor.domain.jobs import (
    Coordinate,
    JobOutcome,
    OperationSpan,
    expand_spans,
    operation_indices,
    recorded_spans,
)


def coord(index: int, document_id: str = "doc-a") -> Coordinate:
    return Coordinate(document_id=document_id, scope="global", branch="main", operation_index=index)


def test_a_span_expands_to_its_contiguous_coordinates() -> None:
    span = OperationSpan(
        document_id="doc-a", scope="global", branch="main", operation_index=7, count=3
    )
    assert span.coordinates() == [coord(7), coord(8), coord(9)]
    assert span.last_index == 9


def test_a_span_defaults_to_one_operation() -> None:
    span = OperationSpan(document_id="doc-a", scope="global", branch="main", operation_index=2)
    assert span.coordinates() == [coord(2)]
    assert span.last_index == 2


def test_an_empty_span_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="count"):
        OperationSpan(
            document_id="doc-a", scope="global", branch="main", operation_index=0, count=0
        )


def test_expand_spans_keeps_their_order() -> None:
    spans = [
        OperationSpan(document_id="doc-b", scope="global", branch="main", operation_index=5),
        OperationSpan(
            document_id="doc-a", scope="global", branch="main", operation_index=0, count=2
        ),
    ]
    assert expand_spans(spans) == [coord(5, "doc-b"), coord(0), coord(1)]


def test_a_ledger_rows_spans_read_back_as_written() -> None:
    spans = [
        OperationSpan(
            document_id="doc-a", scope="global", branch="main", operation_index=4, count=3
        )
    ]
    row = json.loads(json.dumps([s.model_dump() for s in spans]))
    assert recorded_spans(row) == spans


def test_a_hundred_action_job_is_one_span_on_the_wire() -> None:
    span = OperationSpan(
        document_id="doc-a", scope="global", branch="main", operation_index=0, count=100
    )
    wire = JobOutcome(index=0, ok=True, coordinates=[span]).model_dump_json()
    per_coordinate = JobOutcome(index=0, ok=True, coordinates=[]).model_dump_json()
    assert len(wire) - len(per_coordinate) == len(span.model_dump_json())
    assert expand_spans(JobOutcome.model_validate_json(wire).coordinates) == span.coordinates()


def test_operation_indices_are_lazy_over_huge_spans() -> None:
    spans = [
        OperationSpan(
            document_id="doc-a", scope="global", branch="main", operation_index=5, count=10**12
        )
    ]
    assert list(islice(operation_indices(spans), 3)) == [5, 6, 7]
