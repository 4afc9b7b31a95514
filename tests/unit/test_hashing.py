"""The one definition of a state's hash (reactor/domain/hashing.py): the
sha256 of the canonical JSON of exactly the state `get()` returns. The write
path (`ReduceSession`), replay and signing (`LaneReducer`) and a writer that
re-reads the stored JSON must all arrive at the same hash, including for
instances a reducer built around validation."""

from __future__ import annotations

import datetime
import functools
import json
import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.actions import Action
from reactor.domain.hashing import canonical_bytes, canonical_json, state_hash
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel, EmptyState
from reactor.models import todo_list

# Pydantic warns when it serializes a value its schema does not declare; the
# tests that build such instances on purpose filter it.
SERIALIZER_WARNING = "ignore:Pydantic serializer warnings:UserWarning"
AT = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def stdlib_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def read_back(stored: bytes) -> Any:
    """What `get()` returns for a stored state (the view decodes with orjson)."""
    return orjson.loads(stored)


# -- canonical JSON ----------------------------------------------------------

# Floats whose text Python's json module writes as orjson does (see below).
PLAIN_FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: "e-" not in repr(f)
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | PLAIN_FLOATS | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_canonical_bytes_are_the_standard_librarys_sorted_compact_utf8(value: Any) -> None:
    assert canonical_bytes(value) == stdlib_canonical(value)
    assert canonical_json(value) == stdlib_canonical(value).decode()


@pytest.mark.parametrize(
    "text",
    [
        "café naïve",
        "emoji 😀🎉👩‍👩‍👧‍👦 🇫🇷",
        "combining e\u0301 and precomposed \u00e9",
        'quotes " and backslash \\ and slash /',
        "control \x00 \x01 \x1f \t \n \r \x7f",
        "separators \u2028 \u2029",
        "bmp edge \uffff and astral \U0010ffff",
    ],
)
def test_strings_and_keys_are_written_and_sorted_as_the_standard_library_does(text: str) -> None:
    keys = ["é", "e", "Z", "😀", "中", "a\u0301", "", "ａ", text]
    value = {k: [text, k] for k in keys}
    assert canonical_bytes(value) == stdlib_canonical(value)


def test_floats_differ_from_the_standard_library_only_in_small_exponents_and_non_finite() -> None:
    assert canonical_bytes([1e16, 1.5e300, 0.1, -0.0]) == stdlib_canonical(
        [1e16, 1.5e300, 0.1, -0.0]
    )
    assert canonical_bytes(1e-7) == b"1e-7"  # json.dumps: 1e-07
    assert canonical_bytes([math.nan, math.inf]) == b"[null,null]"  # json.dumps: NaN, Infinity


class Item(BaseModel):
    id: str
    n: int = 0


@pytest.mark.filterwarnings(SERIALIZER_WARNING)
@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 2**100])
def test_integers_json_cannot_hold_in_64_bits_fail_as_model_and_as_json(value: int) -> None:
    with pytest.raises(orjson.JSONEncodeError):
        state_hash(Item(id="big", n=value))
    with pytest.raises(orjson.JSONEncodeError):
        state_hash({"id": "big", "n": value})


def test_largest_64_bit_integers_hash() -> None:
    for value in (2**63 - 1, 2**64 - 1, -(2**63)):
        model = Item(id="edge", n=value)
        assert state_hash(model) == state_hash({"id": "edge", "n": value})


# -- a model is hashed as the JSON it is stored as -----------------------------


class Box(BaseModel):
    item: Item
    items: list[Item] = Field(default_factory=list)
    s: str = ""
    i: int = 0
    ratio: float = 0.0


class SubItem(Item):
    extra: str = "only on the subclass"


def _assigned(field: str, value: Any) -> Box:
    box = Box(item=Item(id="base"))
    setattr(box, field, value)  # no validate_assignment: the value goes in as is
    return box


def _missing_field_with_unknown_attribute() -> Item:
    model = Item.model_construct(id="a")
    del model.__dict__["n"]
    model.__dict__["unknown"] = "stored nowhere"
    return model


class WithCachedProperty(BaseModel):
    id: str
    n: int = 0

    @functools.cached_property
    def shout(self) -> str:
        return self.id.upper()


def _cached() -> WithCachedProperty:
    model = WithCachedProperty(id="a", n=1)
    assert model.shout == "A"  # lands in __dict__
    return model


# Instances built around validation: each once gave a __dict__ serializer
# other bytes than the stored JSON.
AROUND_VALIDATION: list[tuple[str, Callable[[], BaseModel]]] = [
    ("bool_in_int_by_model_copy", lambda: Item(id="a").model_copy(update={"n": True})),
    ("bool_in_int_by_model_construct", lambda: Item.model_construct(id="a", n=True)),
    ("bool_in_int_by_assignment", lambda: _assigned("i", True)),
    ("missing_field_and_unknown_attribute", _missing_field_with_unknown_attribute),
    ("unknown_key_by_model_copy", lambda: Item(id="a").model_copy(update={"zz": 1})),
    ("cached_property", _cached),
    ("int_in_float_by_model_copy", lambda: Box(item=Item(id="a")).model_copy(update={"ratio": 3})),
    ("subclass_in_base_field", lambda: Box(item=SubItem(id="x"), items=[SubItem(id="y")])),
    ("datetime_in_str", lambda: Box.model_construct(item=Item(id="a"), s=AT)),
    ("dict_in_model_field", lambda: Box.model_construct(item={"z": 1, "id": "x"})),
    ("missing_required_field", lambda: Box.model_construct()),
]


@pytest.mark.filterwarnings(SERIALIZER_WARNING)
@pytest.mark.parametrize("make", [pytest.param(m, id=name) for name, m in AROUND_VALIDATION])
def test_a_models_hash_is_the_hash_of_its_stored_json_read_back(
    make: Callable[[], BaseModel],
) -> None:
    model = make()
    stored = orjson.dumps(model.model_dump(mode="json"))
    assert state_hash(model) == state_hash(read_back(stored))
    assert canonical_bytes(model) == stdlib_canonical(read_back(stored))


@pytest.mark.filterwarnings(SERIALIZER_WARNING)
def test_bool_in_an_int_field_hashes_as_the_int_that_is_stored() -> None:
    model = Item(id="a").model_copy(update={"n": True})
    assert canonical_bytes(model) == b'{"id":"a","n":1}'


def test_an_unknown_attribute_is_not_hashed() -> None:
    assert canonical_bytes(_missing_field_with_unknown_attribute()) == b'{"id":"a"}'


# -- write path, get() and replay agree ------------------------------------------


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    on: bool = False


class Tally(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    n: int = 0
    entries: list[Entry] = Field(default_factory=list)


def _tally_reducer(state: Tally, action: Action) -> Tally:
    """Reducers of every kind a model writes, among them ones that bypass
    validation (model_copy) and leave values of another type in a field."""
    data = action.input
    match action.type:
        case "ADD":
            return state.model_copy(update={"n": state.n + data["k"]})
        case "FLAG":  # a bool in the int field
            return state.model_copy(update={"n": data["on"]})
        case "RENAME":
            return state.model_copy(update={"name": data["name"]})
        case "PUSH":
            entries = [*state.entries, Entry(key=data["name"], on=bool(state.n % 2))]
            return Tally(name=state.name, n=state.n, entries=entries)
        case "TOGGLE" if state.entries:
            first = state.entries[0].model_copy(update={"on": not state.entries[0].on})
            return state.model_copy(update={"entries": [first, *state.entries[1:]]})
        case "STRIP":  # a declared field missing, an unknown attribute present
            stripped = Tally.model_construct(n=state.n, entries=state.entries)
            del stripped.__dict__["name"]
            stripped.__dict__["unknown"] = data["name"]
            return stripped
    return state


TALLY = DocumentModel(
    document_type="test/tally",
    state_schemas={"global": Tally, "local": EmptyState},
    action_schemas={"global": {}, "local": {}},
    reducers={"global": _tally_reducer, "local": lambda s, a: s},
)

ACTIONS = st.one_of(
    st.builds(lambda k: ("ADD", {"k": k}), st.integers(-(2**40), 2**40)),
    st.builds(lambda on: ("FLAG", {"on": on}), st.booleans()),
    st.builds(lambda name: ("RENAME", {"name": name}), st.text(max_size=8)),
    st.builds(lambda name: ("PUSH", {"name": name}), st.text(max_size=8)),
    st.just(("TOGGLE", {})),
    st.just(("SET_NAME", {"name": "base action"})),
)


def _action(kind: str, data: dict[str, Any]) -> Action:
    return Action(type=kind, input=data, timestamp=AT)


def _write(
    model: DocumentModel, jobs: list[list[Action]], warm: list[bool]
) -> tuple[list[str], list[Any], bytes]:
    """The write path: one ReduceSession per job, starting from the model the
    previous job left (a warm cache) or from the stored JSON (a cold writer).
    Returns each operation's hash, the JSON `get()` would return after it
    and the head's stored bytes."""
    stored = orjson.dumps(model.initial_state("global"))
    cached: BaseModel | None = None
    hashes: list[str] = []
    after: list[Any] = []
    for job, use_cache in zip(jobs, warm, strict=True):
        if use_cache and cached is not None:
            session = model.session("global", None, cached)
        else:
            session = model.session("global", read_back(stored))
        for action in job:
            session.apply(action)
            hashes.append(session.digest())
            after.append(read_back(orjson.dumps(session.state())))
        stored = session.state_json()
        cached = session.validated
    return hashes, after, stored


def _replay(model: DocumentModel, actions: list[Action]) -> list[str]:
    lane = LaneReducer.initial(model, "global")
    return [lane.apply(a) for a in actions]


@pytest.mark.filterwarnings(SERIALIZER_WARNING)
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(ACTIONS, min_size=1, max_size=6), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_write_path_hash_equals_hash_of_get_equals_replay_hash(
    jobs_spec: list[list[tuple[str, dict[str, Any]]]], warm: list[bool]
) -> None:
    jobs = [[_action(k, d) for k, d in job] for job in jobs_spec]
    hashes, after, stored = _write(TALLY, jobs, warm[: len(jobs)])
    assert hashes == [state_hash(state) for state in after]
    flat = [a for job in jobs for a in job]
    assert _replay(TALLY, flat) == hashes
    # DocumentModel.reduce, one action at a time on JSON: a writer always cold.
    state = TALLY.initial_state("global")
    for action, digest in zip(flat, hashes, strict=True):
        state = TALLY.reduce("global", state, action)
        assert state_hash(state) == digest
    assert read_back(stored) == after[-1]


@pytest.mark.filterwarnings(SERIALIZER_WARNING)
@pytest.mark.parametrize("warm", [True, False])
def test_each_state_built_around_validation_hashes_as_stored_and_replays(warm: bool) -> None:
    jobs = [
        [_action("ADD", {"k": 3}), _action("FLAG", {"on": True})],  # n is True
        [_action("ADD", {"k": 1}), _action("RENAME", {"name": "ü"})],
        [_action("PUSH", {"name": "é"}), _action("STRIP", {"name": "gone"})],
    ]
    hashes, after, stored = _write(TALLY, jobs, [warm] * len(jobs))
    assert after[1] == {"name": "", "n": 1, "entries": []}
    assert after[3] == {"name": "ü", "n": 2, "entries": []}
    assert after[5] == {"n": 2, "entries": [{"key": "é", "on": False}]}
    assert hashes == [state_hash(s) for s in after]
    assert _replay(TALLY, [a for job in jobs for a in job]) == hashes
    assert read_back(stored) == after[-1]


def test_stored_json_keeps_the_models_field_order() -> None:
    session = DocumentModel.from_module(todo_list).session("global", {"items": []})
    session.apply(_action("ADD_TODO_ITEM", {"id": "b", "text": "z"}))
    assert session.state_json() == (
        b'{"items":[{"id":"b","text":"z","checked":false}],'
        b'"stats":{"total":1,"checked":0,"unchecked":1}}'
    )
    assert session.digest() == state_hash(read_back(session.state_json()))
