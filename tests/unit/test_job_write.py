"""The job's write statement is assembled from parts that name their
parameters: every placeholder $1..$N is used, and the argument at position
k is the value of the parameter numbered k, in every variant."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from reactor.storage.job_write import JobWrite, job_statement, write_arguments
from reactor.storage.sql_parts import Part, assemble

VARIANTS = [(False, False), (True, False), (False, True), (True, True)]


def _placeholders(sql: str) -> set[int]:
    return {int(n) for n in re.findall(r"\$(\d+)", sql)}


def _job(keyframes: bool, children: bool) -> JobWrite:
    """A write whose every argument is a distinct value."""
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return JobWrite(
        document_id="doc",
        scope="global",
        branch="main",
        job_id="batch:0",
        op_ids=["op-0", "op-1"],
        op_indices=[7, 8],
        op_timestamps=[at, at],
        op_hashes=["h7", "h8"],
        op_actions=['{"a": 7}', '{"a": 8}'],
        op_skips=[0, 2],
        revision=9,
        hash="h8",
        state='{"s": 1}',
        modified_at=at.replace(second=6),
        rename="new name",
        header=True,
        coordinates='[{"c": 1}]',
        applied_by="worker-1",
        lock_key="doc/main",
        keyframes=[(3, "k3", '{"k": 3}'), (6, "k6", '{"k": 6}')] if keyframes else [],
        children=["child-a", "child-b"] if children else None,
    )


@pytest.mark.parametrize(("keyframes", "children"), VARIANTS)
def test_placeholders_are_numbered_one_to_n_and_match_the_arguments(
    keyframes: bool, children: bool
) -> None:
    w = _job(keyframes, children)
    sql, args = write_arguments(w)
    statement = job_statement(keyframes, children)
    assert sql == statement.sql
    assert _placeholders(sql) == set(range(1, len(args) + 1))
    assert len(statement.params) == len(set(statement.params)) == len(args)
    expected: dict[str, object] = {
        f.name: getattr(w, f.name) for f in fields(w) if f.name not in ("keyframes", "children")
    }
    if keyframes:
        expected["keyframe_indices"] = [3, 6]
        expected["keyframe_hashes"] = ["k3", "k6"]
        expected["keyframe_states"] = ['{"k": 3}', '{"k": 6}']
    if children:
        expected["children"] = ["child-a", "child-b"]
    assert dict(zip(statement.params, args, strict=True)) == expected


def test_optional_parts_do_not_renumber_the_others() -> None:
    base = job_statement(False, False).params
    for keyframes, children in VARIANTS:
        params = job_statement(keyframes, children).params
        assert params[: len(base)] == base
    assert job_statement(True, True).params[len(base) :] == (
        "keyframe_indices",
        "keyframe_hashes",
        "keyframe_states",
        "children",
    )


def test_each_parameter_is_cast_where_it_is_used() -> None:
    """The numbering lines up with the SQL: each array goes where its type does."""
    statement = job_statement(True, True)
    number = {name: i + 1 for i, name in enumerate(statement.params)}
    for name, cast in [
        ("op_indices", "int[]"),
        ("op_timestamps", "timestamptz[]"),
        ("op_actions", "text[]"),
        ("keyframe_indices", "int[]"),
        ("keyframe_states", "text[]"),
        ("children", "text[]"),
        ("state", "text::json"),
        ("coordinates", "text::jsonb"),
    ]:
        assert f"${number[name]}::{cast}" in statement.sql
    assert f"hashtextextended(${number['lock_key']}, 0)" in statement.sql


def test_assemble_numbers_declared_names_in_order() -> None:
    statement = assemble(
        Part("SELECT {b}, {a}", params=("a", "b")), Part(" WHERE {c} = {a}", params=("c",))
    )
    assert statement.sql == "SELECT $2, $1 WHERE $3 = $1"
    assert statement.params == ("a", "b", "c")
    assert statement.arguments(SimpleNamespace(c=3, a=1, b=2)) == [1, 2, 3]
    single = assemble(Part("SELECT {a}", params=("a",)))
    assert single.arguments(SimpleNamespace(a=1)) == [1]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ((Part("SELECT {a}", ("a",)), Part(" {a}", ("a",))), "declared twice"),
        ((Part("SELECT {a}, {b}", ("a",)),), "used but not declared"),
        ((Part("SELECT {a}", ("a", "b")),), "declared but not used"),
    ],
)
def test_assemble_refuses_a_parameter_that_would_misnumber(
    parts: tuple[Part, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assemble(*parts)
