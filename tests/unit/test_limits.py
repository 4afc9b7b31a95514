"""The storable-value checker and the request limits (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from reactor.domain.errors import ValidationError
from reactor.domain.limits import (
    MAX_DEPTH,
    MAX_INT,
    MIN_INT,
    Limits,
    check_storable,
    find_unstorable,
    text_problem,
)
from reactor.runtime.settings import limits_from_env


def nested(depth: int, leaf: Any = 1) -> Any:
    """`depth` lists, one inside the other, built without recursion."""
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def rejected(value: Any, field: str = "input") -> ValidationError:
    with pytest.raises(ValidationError) as info:
        check_storable(value, job="j", field=field)
    assert info.value.job == "j"
    return info.value


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"text": "plain", "n": 1, "x": 1.5, "ok": True, "none": None},
        {"unicode": "ünïcødé ✓ 🎉", "kanji": "漢字"},
        {"min": MIN_INT, "max": MAX_INT, "big53": 2**53 + 1, "neg": -(2**60)},
        {"literal backslash-u": "\\u0000 is six characters here"},
        {"deep": nested(MAX_DEPTH - 1)},
        {"k" * 100: ["a", {"b": [1, 2, {"c": None}]}]},
        {"tuple": (1, 2)},
        {"when": datetime(2024, 1, 1, tzinfo=UTC)},
    ],
)
def test_storable_values_pass_and_come_back_as_their_json(value: dict[str, Any]) -> None:
    out = check_storable(value, job="j", field="input")
    assert out == orjson.dumps(value)


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ({"text": "bad\x00char"}, "input.text", "NUL"),
        ({"items": [{"name": "ok"}, {"name": "a\x00"}]}, "input.items[1].name", "NUL"),
        ({"a\x00b": 1}, "input['a\\x00b']", "key contains a NUL"),
        ({"text": "\ud800"}, "input.text", "lone surrogate (\\ud800)"),
        ({"text": "ok \udfff tail"}, "input.text", "lone surrogate (\\udfff)"),
        ({"\udc80": 1}, "input['\\udc80']", "key contains a lone surrogate"),
        ({"text": "é\x00"}, "input.text", "NUL"),
        ({"n": 2**63}, "input.n", "out of range"),
        ({"n": 2**64}, "input.n", "out of range"),
        ({"n": MIN_INT - 1}, "input.n", "out of range"),
        ({"n": 10**5000}, "input.n", "of 16,610 bits"),
        ({"x": float("nan")}, "input.x", "not a finite number"),
        ({"x": [1.0, float("inf")]}, "input.x[1]", "not a finite number"),
        ({"x": -float("inf")}, "input.x", "not a finite number"),
        ({"with space": {"a-b": "\x00"}}, "input['with space'].a-b", "NUL"),
        ({1: "x"}, "input", "keys must be strings"),
    ],
)
def test_unstorable_values_are_named_by_path(value: Any, field: str, words: str) -> None:
    err = rejected(value)
    assert err.field == field
    assert words in err.reason


def test_nesting_one_past_the_limit_is_rejected_at_the_level_it_passes() -> None:
    err = rejected({"deep": nested(MAX_DEPTH)})
    assert err.field is not None and err.field.startswith("input.deep[0]")
    assert err.field.count("[0]") == MAX_DEPTH - 1
    assert f"more than {MAX_DEPTH} levels" in err.reason


@pytest.mark.parametrize("depth", [300, 100_000])
def test_very_deep_nesting_is_an_error_not_a_recursion_error(depth: int) -> None:
    value = {"x": nested(depth)}
    err = rejected(value)
    assert "levels" in err.reason
    assert find_unstorable(value) is not None


def test_deep_dicts_are_bounded_too() -> None:
    value: Any = "leaf"
    for _ in range(100_000):
        value = {"a": value}
    err = rejected(value)
    assert err.field is not None and err.field.startswith("input.a.a")


def test_the_first_problem_in_document_order_is_reported() -> None:
    err = rejected({"a": "fine", "b": ["\x00", float("nan")], "c": 2**70})
    assert err.field == "input.b[0]"


def test_a_top_level_scalar_is_checked() -> None:
    assert find_unstorable("a\x00") == ("", "the text contains a NUL character (\\u0000)")
    assert find_unstorable(5) is None


def test_a_value_json_cannot_write_is_named() -> None:
    err = rejected({"s": {1, 2}})
    assert err.field == "input"
    assert "not JSON" in err.reason


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", None),
        ("ascii", None),
        ("ünï", None),
        ("\x00", "NUL"),
        ("ü\x00", "NUL"),
        ("\ud83d", "surrogate"),
        ("🎉", None),
    ],
)
def test_text_problem(text: str, problem: str | None) -> None:
    found = text_problem(text)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_limits_have_defaults_a_user_would_accept() -> None:
    limits = Limits()
    assert limits.max_request_bytes == 16 * 1024 * 1024
    assert limits.max_jobs_per_batch == 10_000
    assert limits.max_actions_per_job > 3_000
    assert limits.max_input_bytes == 256 * 1024


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10"])
def test_limits_must_be_positive_integers(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_jobs_per_batch"):
        Limits(max_jobs_per_batch=bad)


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REACTOR_MAX_REQUEST_BYTES", "1000")
    monkeypatch.setenv("REACTOR_MAX_JOBS_PER_BATCH", "7")
    monkeypatch.setenv("REACTOR_MAX_ACTIONS_PER_JOB", "9")
    monkeypatch.setenv("REACTOR_MAX_INPUT_BYTES", "100")
    assert limits_from_env() == Limits(
        max_request_bytes=1000, max_jobs_per_batch=7, max_actions_per_job=9, max_input_bytes=100
    )
    monkeypatch.delenv("REACTOR_MAX_JOBS_PER_BATCH")
    assert limits_from_env().max_jobs_per_batch == Limits().max_jobs_per_batch


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "1e6"])
def test_a_bad_limit_variable_is_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    from reactor.domain.errors import ReactorError

    monkeypatch.setenv("REACTOR_MAX_INPUT_BYTES", bad)
    with pytest.raises(ReactorError, match="REACTOR_MAX_INPUT_BYTES"):
        limits_from_env()
