"""plan_batch: validating a batch request into an executable plan (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action
from reactor.domain.batch import (
    BATCH_ID_RE,
    BatchPlan,
    BatchRequest,
    ExistingDocument,
    check_arrival,
    lookup_ids,
    plan_batch,
)
from reactor.domain.document_scope import initial_document_state, reduce_document_scope
from reactor.domain.errors import ReducerError, ValidationError
from reactor.domain.limits import DEFAULT_LIMITS, MAX_DEPTH, MAX_INT, MIN_INT, Limits
from reactor.domain.model import DocumentModel, EmptyState, ModelRegistry
from reactor.models import BUILTIN_MODELS

TODO = "powerhouse/todo-list"
DRIVE = "powerhouse/document-drive"

REGISTRY = ModelRegistry([DocumentModel.from_module(m) for m in BUILTIN_MODELS])

# Documents that exist before the batch runs, unless a test says otherwise.
EXISTING: dict[str, ExistingDocument] = {
    "list-1": ExistingDocument(TODO),
    "drive-1": ExistingDocument(DRIVE),
    "gone": ExistingDocument(TODO, deleted=True),
}


def act(action_type: str, scope: str | None = None, **data: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": action_type, "input": data}
    if scope is not None:
        spec["scope"] = scope
    return spec


def create(document_type: str, **data: Any) -> dict[str, Any]:
    return act("CREATE_DOCUMENT", document_type=document_type, **data)


def job(
    key: str,
    document_id: str,
    *actions: dict[str, Any],
    scope: str = "global",
    branch: str = "main",
    depends_on: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": document_id,
        "scope": scope,
        "branch": branch,
        "actions": list(actions),
        "depends_on": list(depends_on),
    }


def add_item(item_id: str = "i1", text: str = "buy milk") -> dict[str, Any]:
    return act("ADD_TODO_ITEM", id=item_id, text=text)


def plan(
    *jobs: dict[str, Any],
    batch_id: str | None = None,
    existing: Mapping[str, ExistingDocument] = EXISTING,
) -> BatchPlan:
    request = BatchRequest.model_validate({"batch_id": batch_id, "jobs": list(jobs)})
    return plan_batch(request, REGISTRY, existing=existing)


def reject(
    *jobs: dict[str, Any],
    batch_id: str | None = None,
    existing: Mapping[str, ExistingDocument] = EXISTING,
) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        plan(*jobs, batch_id=batch_id, existing=existing)
    return info.value


# --- rejections: batch level ---------------------------------------------------------


def test_empty_jobs_list_is_rejected() -> None:
    err = reject()
    assert err.job is None
    assert err.field == "jobs"
    assert "no jobs" in err.reason


@pytest.mark.parametrize(
    "batch_id",
    [" ", "has space", "-leading-dash", ".leading-dot", "slash/inside", "x" * 129, "ünï"],
)
def test_invalid_batch_id_is_rejected(batch_id: str) -> None:
    err = reject(job("a", "list-1", add_item()), batch_id=batch_id)
    assert err.job is None
    assert err.field == "batch_id"
    assert "invalid batch_id" in err.reason
    assert repr(batch_id) in err.reason


# --- rejections: keys and dependencies -----------------------------------------------


def test_duplicate_key_is_rejected() -> None:
    err = reject(
        job("a", "list-1", add_item("i1")),
        job("b", "list-1", add_item("i2")),
        job("a", "list-1", add_item("i3")),
    )
    assert err.job == "a"
    assert err.field == "key"
    assert "duplicate job key" in err.reason
    assert "#0" in err.reason  # points at the first job using the key


def test_empty_key_is_rejected_by_position() -> None:
    err = reject(job("a", "list-1", add_item()), job("", "list-1", add_item("i2")))
    assert err.job == "#1"
    assert err.field == "key"
    assert "must not be empty" in err.reason


def test_an_overlong_key_is_rejected_by_position() -> None:
    err = reject(job("k" * 257, "list-1", add_item()))
    assert err.job == "#0"
    assert err.field == "key"
    assert "257 characters long (at most 256)" in err.reason


@pytest.mark.parametrize("field", ["document_id", "branch"])
def test_an_overlong_document_id_or_branch_is_rejected(field: str) -> None:
    long_name = "x" * 300
    spec = job("a", "list-1", add_item())
    spec[field] = long_name
    err = reject(spec, existing={**EXISTING, long_name: ExistingDocument(TODO)})
    assert err.job == "a"
    assert err.field == field
    assert "300 characters long (at most 256)" in err.reason


def test_names_of_256_characters_are_accepted() -> None:
    name = "n" * 256
    p = plan(job(name, name, add_item()), existing={name: ExistingDocument(TODO)})
    assert p.jobs[0].key == name and p.jobs[0].document_id == name


def test_unknown_dependency_is_rejected() -> None:
    err = reject(job("a", "list-1", add_item(), depends_on=("nope",)))
    assert err.job == "a"
    assert err.field == "depends_on"
    assert "unknown dependency" in err.reason
    assert "'nope'" in err.reason


def test_self_dependency_is_rejected() -> None:
    err = reject(job("a", "list-1", add_item(), depends_on=("a",)))
    assert err.job == "a"
    assert err.field == "depends_on"
    assert "cannot depend on itself" in err.reason


def test_two_job_cycle_is_rejected_naming_both_keys() -> None:
    err = reject(
        job("a", "list-1", add_item("i1"), depends_on=("b",)),
        job("b", "drive-1", act("ADD_FOLDER", id="f", name="F"), depends_on=("a",)),
    )
    assert err.job == "a"
    assert err.field == "depends_on"
    assert "dependency cycle" in err.reason
    assert "'a'" in err.reason and "'b'" in err.reason


def test_longer_cycle_is_rejected_naming_every_key() -> None:
    err = reject(
        job("a", "list-1", add_item("i1"), depends_on=("c",)),
        job("b", "drive-1", act("ADD_FOLDER", id="f", name="F"), depends_on=("a",)),
        job("c", "list-1", add_item("i2"), branch="dev", depends_on=("b",)),
    )
    assert err.field == "depends_on"
    assert err.job in {"a", "b", "c"}
    assert all(f"'{k}'" in err.reason for k in "abc")


def test_cycle_closed_by_lane_order_is_rejected() -> None:
    # "first" runs before "second" (same document and branch), yet waits for it.
    err = reject(
        job("first", "list-1", add_item("i1"), depends_on=("second",)),
        job("second", "list-1", add_item("i2")),
    )
    assert err.job == "first"
    assert err.field == "depends_on"
    assert "dependency cycle" in err.reason
    assert "'first'" in err.reason and "'second'" in err.reason
    assert "submission order" in err.reason


def test_dependency_on_later_job_of_another_lane_is_not_a_cycle() -> None:
    p = plan(
        job("first", "list-1", add_item("i1"), depends_on=("second",)),
        job("second", "list-1", add_item("i2"), branch="dev"),
    )
    assert [j.deps for j in p.jobs] == [[1], []]
    assert [j.after for j in p.jobs] == [None, None]


# --- rejections: job shape -----------------------------------------------------------


def test_job_without_actions_is_rejected() -> None:
    err = reject(job("a", "list-1"))
    assert err.job == "a"
    assert err.field == "actions"
    assert "no actions" in err.reason


def test_unknown_scope_is_rejected() -> None:
    err = reject(job("a", "list-1", add_item(), scope="public"))
    assert err.job == "a"
    assert err.field == "scope"
    assert "unknown scope 'public'" in err.reason


def test_empty_document_id_is_rejected() -> None:
    err = reject(job("a", "", add_item()))
    assert err.job == "a"
    assert err.field == "document_id"
    assert "must not be empty" in err.reason


def test_empty_branch_is_rejected() -> None:
    err = reject(job("a", "list-1", add_item(), branch=""))
    assert err.job == "a"
    assert err.field == "branch"


def test_action_scope_differing_from_job_scope_is_rejected() -> None:
    err = reject(
        job("a", "list-1", add_item("i1"), act("ADD_TODO_ITEM", scope="local", id="i2", text="x"))
    )
    assert err.job == "a"
    assert err.field == "actions[1].scope"
    assert "scope mismatch" in err.reason
    assert "'local'" in err.reason and "'global'" in err.reason


def test_action_scope_equal_to_job_scope_is_accepted() -> None:
    p = plan(job("a", "list-1", act("ADD_TODO_ITEM", scope="global", id="i1", text="x")))
    assert p.jobs[0].actions[0].scope == "global"


# --- rejections: action types and inputs ---------------------------------------------


def test_create_with_unknown_document_type_is_rejected() -> None:
    err = reject(job("a", "new-doc", create("acme/invoice"), scope="document"))
    assert err.job == "a"
    assert err.field == "actions[0].input.document_type"
    assert "unknown document type 'acme/invoice'" in err.reason
    assert TODO in err.reason  # lists what is registered


def test_unknown_action_type_for_model_is_rejected() -> None:
    err = reject(job("a", "list-1", add_item(), act("ADD_FOLDER", id="f", name="F")))
    assert err.job == "a"
    assert err.field == "actions[1].type"
    assert "unknown action type 'ADD_FOLDER'" in err.reason
    assert TODO in err.reason
    assert "ADD_TODO_ITEM" in err.reason  # lists the known ones


def test_unknown_document_scope_action_type_is_rejected() -> None:
    err = reject(job("a", "list-1", act("ADD_TODO_ITEM", id="x", text="y"), scope="document"))
    assert err.job == "a"
    assert err.field == "actions[0].type"
    assert "unknown document-scope action type 'ADD_TODO_ITEM'" in err.reason


def test_action_known_only_in_another_scope_is_rejected() -> None:
    # The todo list has no local actions at all.
    err = reject(job("a", "list-1", add_item(), scope="local"))
    assert err.job == "a"
    assert err.field == "actions[0].type"
    assert "scope 'local'" in err.reason


def test_input_missing_field_is_rejected() -> None:
    err = reject(job("a", "list-1", act("ADD_TODO_ITEM", id="i1")))
    assert err.job == "a"
    assert err.field == "actions[0].input.text"
    assert "ADD_TODO_ITEM" in err.reason
    assert "required" in err.reason.lower()


def test_input_wrong_type_is_rejected() -> None:
    err = reject(
        job("a", "list-1", add_item("i1"), act("UPDATE_TODO_ITEM", id="i1", checked="maybe"))
    )
    assert err.job == "a"
    assert err.field == "actions[1].input.checked"
    assert "UPDATE_TODO_ITEM" in err.reason
    assert "bool" in err.reason.lower()


def test_input_extra_field_is_rejected() -> None:
    err = reject(job("a", "list-1", act("ADD_TODO_ITEM", id="i1", text="x", priority=3)))
    assert err.job == "a"
    assert err.field == "actions[0].input.priority"
    assert "extra" in err.reason.lower()


def test_input_failing_field_constraint_is_rejected() -> None:
    err = reject(job("a", "list-1", act("ADD_TODO_ITEM", id="", text="x")))
    assert err.job == "a"
    assert err.field == "actions[0].input.id"
    assert "at least 1 character" in err.reason


def test_document_scope_input_is_validated() -> None:
    err = reject(job("a", "new-doc", create(TODO, slug="not a slug"), scope="document"))
    assert err.job == "a"
    assert err.field == "actions[0].input.slug"
    assert "CREATE_DOCUMENT" in err.reason


# --- rejections: document existence -------------------------------------------------


def test_action_on_missing_document_is_rejected() -> None:
    err = reject(job("a", "no-such-doc", add_item()))
    assert err.job == "a"
    assert err.field == "document_id"
    assert "'no-such-doc' does not exist" in err.reason
    assert "no earlier job" in err.reason


def test_action_before_the_create_in_the_same_batch_is_rejected() -> None:
    err = reject(
        job("use", "new-list", add_item()),
        job("make", "new-list", create(TODO), scope="document"),
    )
    assert err.job == "use"
    assert err.field == "document_id"
    assert "does not exist" in err.reason


def test_document_scope_action_on_missing_document_is_rejected() -> None:
    err = reject(job("a", "no-such-doc", act("SET_NAME", name="x"), scope="document"))
    assert err.job == "a"
    assert err.field == "document_id"
    assert "does not exist" in err.reason


def test_action_on_deleted_document_is_rejected() -> None:
    err = reject(job("a", "gone", add_item()))
    assert err.job == "a"
    assert err.field == "document_id"
    assert "'gone' is deleted" in err.reason


def test_document_scope_action_on_deleted_document_is_rejected() -> None:
    err = reject(job("a", "gone", act("DELETE_DOCUMENT"), scope="document"))
    assert err.job == "a"
    assert err.field == "document_id"
    assert "is deleted" in err.reason


def test_action_after_delete_in_the_same_batch_is_rejected() -> None:
    err = reject(
        job("del", "list-1", act("DELETE_DOCUMENT"), scope="document"),
        job("use", "list-1", add_item()),
    )
    assert err.job == "use"
    assert err.field == "document_id"
    assert "is deleted" in err.reason


def test_create_of_existing_document_is_rejected() -> None:
    err = reject(job("a", "list-1", create(TODO), scope="document"))
    assert err.job == "a"
    assert err.field == "document_id"
    assert "'list-1' already exists" in err.reason


def test_second_create_of_a_document_in_the_same_batch_is_rejected() -> None:
    err = reject(
        job("a", "new-list", create(TODO), scope="document"),
        job("b", "new-list", create(TODO), scope="document"),
    )
    assert err.job == "b"
    assert err.field == "document_id"
    assert "already exists" in err.reason


def test_two_creates_with_the_same_slug_are_rejected() -> None:
    err = reject(
        job("a", "doc-a", create(TODO, slug="shared"), scope="document"),
        job("b", "doc-b", create(DRIVE, slug="shared"), scope="document"),
    )
    assert err.job == "b"
    assert err.field == "actions[0].input.slug"
    assert "'shared'" in err.reason
    assert "'doc-a'" in err.reason


def test_valid_job_followed_by_invalid_one_still_raises() -> None:
    err = reject(
        job("good", "list-1", add_item("i1")),
        job("good-too", "new-list", create(TODO), scope="document"),
        job("bad", "list-1", act("ADD_TODO_ITEM", id="i2")),
    )
    assert err.job == "bad"
    assert err.field == "actions[0].input.text"


# --- happy paths ---------------------------------------------------------------------


def drive_and_list_batch() -> list[dict[str, Any]]:
    return [
        job("make-drive", "drive-2", create(DRIVE, slug="team", name="Team"), scope="document"),
        job("make-list", "list-2", create(TODO, slug="chores"), scope="document"),
        job(
            "file-list",
            "drive-2",
            act("ADD_FOLDER", id="f1", name="Home"),
            act("ADD_FILE", id="list-2", name="Chores", document_type=TODO, parent_folder="f1"),
            depends_on=("make-list",),
        ),
        job("add", "list-2", add_item("i1", "wash up"), add_item("i2", "cook")),
        job("check", "list-2", act("UPDATE_TODO_ITEM", id="i1", checked=True)),
        job("dev-add", "list-2", add_item("i3", "on dev"), branch="dev"),
        job("old-list", "list-1", add_item("i9"), depends_on=("check", "add", "check")),
        job("dev-more", "list-2", add_item("i4", "more dev"), branch="dev"),
        job("rename", "list-2", act("SET_NAME", name="Chores"), scope="document"),
    ]


def test_plan_lanes_chain_jobs_per_document_and_branch() -> None:
    p = plan(*drive_and_list_batch())
    assert [j.key for j in p.jobs] == [
        "make-drive",
        "make-list",
        "file-list",
        "add",
        "check",
        "dev-add",
        "old-list",
        "dev-more",
        "rename",
    ]
    assert [j.index for j in p.jobs] == list(range(9))
    # (drive-2, main): 0 -> 2; (list-2, main): 1 -> 3 -> 4 -> 8 (whatever the scope);
    # (list-2, dev): 5 -> 7; (list-1, main): 6.
    assert [j.after for j in p.jobs] == [None, None, 0, 1, 3, None, None, 5, 4]
    assert [(j.document_id, j.branch, j.scope) for j in p.jobs] == [
        ("drive-2", "main", "document"),
        ("list-2", "main", "document"),
        ("drive-2", "main", "global"),
        ("list-2", "main", "global"),
        ("list-2", "main", "global"),
        ("list-2", "dev", "global"),
        ("list-1", "main", "global"),
        ("list-2", "dev", "global"),
        ("list-2", "main", "document"),
    ]


def test_plan_translates_dependencies_to_indices() -> None:
    p = plan(*drive_and_list_batch())
    assert p.jobs[2].deps == [1]
    assert p.jobs[6].deps == [4, 3]  # in the given order, duplicates dropped
    assert all(j.deps == [] for j in p.jobs if j.key not in {"file-list", "old-list"})


def test_plan_fills_document_types() -> None:
    p = plan(*drive_and_list_batch())
    types = {j.key: j.document_type for j in p.jobs}
    assert types == {
        "make-drive": DRIVE,
        "make-list": TODO,
        "file-list": DRIVE,  # from the CREATE earlier in the batch
        "add": TODO,
        "check": TODO,
        "dev-add": TODO,
        "old-list": TODO,  # from the existing documents
        "dev-more": TODO,
        "rename": TODO,
    }


def test_plan_materializes_action_ids_and_timestamps() -> None:
    given_ts = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    fixed = {**add_item("i1"), "id": "my-action", "timestamp": given_ts.isoformat()}
    before = datetime.now(UTC)
    p = plan(job("a", "list-1", fixed, add_item("i2"), add_item("i3")))
    after = datetime.now(UTC)
    actions = p.jobs[0].actions
    assert actions[0].id == "my-action"
    assert actions[0].timestamp == given_ts
    generated = actions[1:]
    assert all(a.id for a in generated)
    assert len({a.id for a in actions}) == 3
    assert all(before <= a.timestamp <= after for a in generated)
    assert all(uuid.UUID(a.id).version == 4 for a in generated)
    # A job's actions are submitted together: one submission time for all.
    assert generated[0].timestamp == generated[1].timestamp
    assert all(a.scope == "global" for a in actions)
    # Fixed once: reading the plan again gives the same values.
    assert p.jobs[0].actions == actions
    again = BatchPlan.model_validate_json(p.model_dump_json())
    assert again.jobs[0].actions == actions


def test_plan_actions_take_the_job_scope() -> None:
    p = plan(job("a", "list-1", act("SET_NAME", name="x"), scope="document"))
    assert p.jobs[0].actions[0].scope == "document"


def test_plan_normalizes_inputs() -> None:
    p = plan(*drive_and_list_batch())
    by_key = {j.key: j for j in p.jobs}
    assert by_key["check"].actions[0].input == {"id": "i1", "text": None, "checked": True}
    assert by_key["make-list"].actions[0].input == {
        "document_type": TODO,
        "slug": "chores",
        "name": "",
    }
    assert by_key["file-list"].actions[0].input == {
        "id": "f1",
        "name": "Home",
        "parent_folder": None,
    }
    assert by_key["add"].actions[0].input == {"id": "i1", "text": "wash up"}
    assert by_key["add"].actions[0].type == "ADD_TODO_ITEM"


def test_plan_normalizes_update_with_only_an_id() -> None:
    p = plan(job("a", "list-1", act("UPDATE_TODO_ITEM", id="i1")))
    assert p.jobs[0].actions[0].input == {"id": "i1", "text": None, "checked": None}


def test_plan_generates_batch_id_when_missing() -> None:
    first = plan(job("a", "list-1", add_item()))
    second = plan(job("a", "list-1", add_item()))
    assert BATCH_ID_RE.match(first.batch_id)
    assert BATCH_ID_RE.match(second.batch_id)
    assert first.batch_id != second.batch_id


@pytest.mark.parametrize("batch_id", ["b1", "nightly-2024.01.02_x", "A" * 128])
def test_plan_keeps_given_batch_id(batch_id: str) -> None:
    assert plan(job("a", "list-1", add_item()), batch_id=batch_id).batch_id == batch_id


def test_plan_entries_carry_the_dag_without_payload() -> None:
    p = plan(*drive_and_list_batch())
    entries = p.entries()
    assert [e.key for e in entries] == [j.key for j in p.jobs]
    assert [e.deps for e in entries] == [j.deps for j in p.jobs]
    assert [e.after for e in entries] == [j.after for j in p.jobs]
    assert [e.document_type for e in entries] == [j.document_type for j in p.jobs]
    assert [e.actions for e in entries] == [len(j.actions) for j in p.jobs]


def test_create_then_delete_then_nothing_else_is_valid() -> None:
    p = plan(
        job("make", "tmp", create(TODO), scope="document"),
        job("fill", "tmp", add_item()),
        job("drop", "tmp", act("DELETE_DOCUMENT"), scope="document"),
    )
    assert [j.after for j in p.jobs] == [None, 0, 1]
    assert [j.document_type for j in p.jobs] == [TODO, TODO, TODO]


def test_planning_does_not_change_existing_mapping() -> None:
    existing = dict(EXISTING)
    plan(
        job("del", "list-1", act("DELETE_DOCUMENT"), scope="document"),
        job("make", "new-list", create(TODO), scope="document"),
        existing=existing,
    )
    assert existing == EXISTING


# --- values PostgreSQL and the state hash cannot store -------------------------------


class MeterInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = 0.0
    count: int = 0
    data: Any = None


class MeterState(BaseModel):
    total: float = 0.0


METER = DocumentModel(
    document_type="test/meter",
    state_schemas={"global": MeterState, "local": EmptyState},
    action_schemas={"global": {"MEASURE": MeterInput}, "local": {}},
    reducers={"global": lambda state, action: state, "local": lambda state, action: state},
)
WITH_METER = ModelRegistry([*(DocumentModel.from_module(m) for m in BUILTIN_MODELS), METER])


def reject_with(
    registry: ModelRegistry, *jobs: dict[str, Any], limits: Limits = DEFAULT_LIMITS
) -> ValidationError:
    request = BatchRequest.model_validate({"jobs": list(jobs)})
    with pytest.raises(ValidationError) as info:
        plan_batch(request, registry, {**EXISTING, "m": ExistingDocument("test/meter")}, limits)
    return info.value


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"key": "a\x00"}, "key"),
        ({"key": "\ud800"}, "key"),
        ({"document_id": "list\x00"}, "document_id"),
        ({"document_id": "li\udfffst"}, "document_id"),
        ({"branch": "ma\x00in"}, "branch"),
        ({"scope": "glob\x00al"}, "scope"),
        ({"depends_on": ["x\x00"]}, "depends_on[0]"),
    ],
)
def test_unstorable_names_are_rejected_by_field(spec: dict[str, Any], field: str) -> None:
    err = reject({**job("a", "list-1", add_item()), **spec})
    assert err.field == field
    assert err.job == ("#0" if field == "key" else "a")
    assert "NUL" in err.reason or "surrogate" in err.reason


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (add_item(text="bad\x00char"), "actions[0].input.text"),
        (add_item(item_id="\ud800"), "actions[0].input.id"),
        ({"type": "ADD_TODO\x00", "input": {}}, "actions[0].type"),
        ({**add_item(), "id": "id\x00"}, "actions[0].id"),
        ({**add_item(), "context": {"who": ["ok", "\x00"]}}, "actions[0].context.who[1]"),
        ({**add_item(), "context": {"n": 2**64}}, "actions[0].context.n"),
    ],
)
def test_unstorable_action_values_are_rejected_by_path(action: dict[str, Any], field: str) -> None:
    err = reject(job("a", "list-1", action))
    assert (err.job, err.field) == ("a", field)


def test_a_nul_in_a_dict_key_of_an_input_is_rejected() -> None:
    err = reject_with(WITH_METER, job("a", "m", act("MEASURE", data={"ok": 1, "k\x00": 2})))
    assert (err.job, err.field) == ("a", "actions[0].input.data['k\\x00']")
    assert "key contains a NUL" in err.reason


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"value": "NaN"}, "actions[0].input.value", "not a finite number"),
        ({"value": "inf"}, "actions[0].input.value", "not a finite number"),
        ({"value": float("nan")}, "actions[0].input.value", "not a finite number"),
        ({"count": "9" * 20}, "actions[0].input.count", "out of range"),
        ({"count": "-" + "9" * 20}, "actions[0].input.count", "out of range"),
        ({"count": 2**63}, "actions[0].input.count", "out of range"),
        ({"data": [[[2**63]]]}, "actions[0].input.data[0][0][0]", "out of range"),
    ],
)
def test_values_a_model_turns_unstorable_are_rejected_as_stored(
    data: dict[str, Any], field: str, words: str
) -> None:
    """A model may read "NaN" as a float or a long numeric string as an int:
    what is stored is checked, not only what was sent."""
    err = reject_with(WITH_METER, job("a", "m", act("MEASURE", **data)))
    assert (err.job, err.field) == ("a", field)
    assert words in err.reason


def test_integers_at_the_bounds_are_accepted() -> None:
    request = BatchRequest.model_validate(
        {"jobs": [job("a", "m", act("MEASURE", count=MAX_INT), act("MEASURE", count=MIN_INT))]}
    )
    p = plan_batch(request, WITH_METER, {"m": ExistingDocument("test/meter")})
    assert [a.input["count"] for a in p.jobs[0].actions] == [MAX_INT, MIN_INT]


@pytest.mark.parametrize("depth", [MAX_DEPTH, 100_000])
def test_nesting_too_deep_is_rejected_before_the_model_reads_it(depth: int) -> None:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    err = reject_with(WITH_METER, job("a", "m", act("MEASURE", data=value)))
    assert err.job == "a"
    assert err.field is not None and err.field.startswith("actions[0].input.data[0]")
    assert f"more than {MAX_DEPTH} levels" in err.reason


# --- limits ----------------------------------------------------------------------------


def test_too_many_jobs_is_rejected_with_the_limit_and_the_count() -> None:
    jobs = [job(f"j{i}", "list-1", add_item(f"i{i}")) for i in range(6)]
    err = reject_with(REGISTRY, *jobs, limits=Limits(max_jobs_per_batch=5))
    assert (err.job, err.field) == (None, "jobs")
    assert "6" in err.reason and "limit of 5" in err.reason


def test_too_many_actions_is_rejected_with_the_limit_and_the_count() -> None:
    actions = [add_item(f"i{i}") for i in range(4)]
    err = reject_with(
        REGISTRY, job("big", "list-1", *actions), limits=Limits(max_actions_per_job=3)
    )
    assert (err.job, err.field) == ("big", "actions")
    assert "is 4" in err.reason and "limit of 3" in err.reason


def test_a_job_of_3000_actions_is_legal_by_default() -> None:
    actions = [add_item(f"i{i}") for i in range(3000)]
    assert len(plan(job("big", "list-1", *actions)).jobs[0].actions) == 3000


def test_an_input_over_the_byte_limit_is_rejected_with_its_size() -> None:
    err = reject_with(
        REGISTRY,
        job("a", "list-1", add_item("i1"), add_item("i2", "x" * 200)),
        limits=Limits(max_input_bytes=100),
    )
    assert (err.job, err.field) == ("a", "actions[1].input")
    size = len(orjson.dumps({"id": "i2", "text": "x" * 200}))
    assert f"is {size} bytes, over the limit of 100 bytes" in err.reason


def test_inputs_over_the_request_limit_are_rejected() -> None:
    jobs = [job(f"j{i}", "list-1", add_item(f"i{i}", "x" * 100)) for i in range(20)]
    err = reject_with(REGISTRY, *jobs, limits=Limits(max_request_bytes=1000))
    assert err.field is None
    assert "limit of 1,000" in err.reason


def test_check_arrival_measures_the_request_before_parsing() -> None:
    raw = {"jobs": [job(f"j{i}", "list-1", add_item(f"i{i}", "x" * 100)) for i in range(20)]}
    size = len(orjson.dumps(raw))
    with pytest.raises(ValidationError) as info:
        check_arrival(raw, Limits(max_request_bytes=size - 1))
    assert f"is {size:,} bytes" in info.value.reason
    check_arrival(raw, Limits(max_request_bytes=size))


@pytest.mark.parametrize(
    ("raw", "job_key", "field"),
    [
        ({"jobs": [{"key": f"k{i}"} for i in range(3)]}, None, "jobs"),
        ({"jobs": [{"key": "a", "actions": [{}, {}, {}]}]}, "a", "actions"),
        ({"jobs": [{"actions": [{}, {}, {}]}]}, "#0", "actions"),
    ],
)
def test_check_arrival_counts_before_parsing(
    raw: dict[str, Any], job_key: str | None, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        check_arrival(raw, Limits(max_jobs_per_batch=2, max_actions_per_job=2))
    assert (info.value.job, info.value.field) == (job_key, field)


def test_check_arrival_names_what_json_cannot_hold() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    raw = {"jobs": [job("a", "list-1", act("ADD_TODO_ITEM", id="1", text="t", x=deep))]}
    with pytest.raises(ValidationError) as info:
        check_arrival(raw)
    assert info.value.job == "a"
    assert info.value.field is not None
    assert info.value.field.startswith("actions[0].input.x[0]")
    raw = {"jobs": [job("b", "list-1", add_item(text="\ud800"))]}
    with pytest.raises(ValidationError) as info:
        check_arrival(raw)
    assert (info.value.job, info.value.field) == ("b", "actions[0].input.text")


# --- relationships -------------------------------------------------------------------


def relate(kind: str, target: str) -> dict[str, Any]:
    return act(kind, target_id=target)


def test_a_relationship_to_a_missing_document_is_rejected() -> None:
    err = reject(job("a", "list-1", relate("ADD_RELATIONSHIP", "ghost"), scope="document"))
    assert (err.job, err.field) == ("a", "actions[0].input.target_id")
    assert "'ghost' does not exist" in err.reason


def test_a_relationship_to_itself_is_rejected() -> None:
    err = reject(job("a", "list-1", relate("ADD_RELATIONSHIP", "list-1"), scope="document"))
    assert (err.job, err.field) == ("a", "actions[0].input.target_id")
    assert "its own child" in err.reason


def test_a_relationship_to_a_deleted_document_is_rejected() -> None:
    err = reject(job("a", "list-1", relate("ADD_RELATIONSHIP", "gone"), scope="document"))
    assert (err.job, err.field) == ("a", "actions[0].input.target_id")
    assert "deleted" in err.reason


def test_a_relationship_to_a_document_created_earlier_in_the_batch_is_accepted() -> None:
    p = plan(
        job("make", "new", create(TODO), scope="document"),
        job("link", "list-1", relate("ADD_RELATIONSHIP", "new"), scope="document"),
    )
    assert p.jobs[1].actions[0].input["target_id"] == "new"


def test_a_relationship_to_a_document_created_later_in_the_batch_is_rejected() -> None:
    err = reject(
        job("link", "list-1", relate("ADD_RELATIONSHIP", "new"), scope="document"),
        job("make", "new", create(TODO), scope="document"),
    )
    assert (err.job, err.field) == ("link", "actions[0].input.target_id")


def test_removing_an_edge_to_a_missing_document_stays_possible() -> None:
    p = plan(job("a", "list-1", relate("REMOVE_RELATIONSHIP", "ghost"), scope="document"))
    assert p.jobs[0].actions[0].type == "REMOVE_RELATIONSHIP"


def test_deleting_a_parent_is_refused_naming_its_children() -> None:
    existing = {**EXISTING, "parent": ExistingDocument(TODO, children=2)}
    err = reject(job("del", "parent", act("DELETE_DOCUMENT"), scope="document"), existing=existing)
    assert (err.job, err.field) == ("del", "actions[0]")
    assert "has 2 children: remove them first" in err.reason


def test_deleting_a_document_given_a_child_earlier_in_the_batch_is_refused() -> None:
    err = reject(
        job("link", "list-1", relate("ADD_RELATIONSHIP", "drive-1"), scope="document"),
        job("del", "list-1", act("DELETE_DOCUMENT"), scope="document"),
    )
    assert (err.job, err.field) == ("del", "actions[0]")
    assert "has 1 child:" in err.reason


def test_deleting_a_parent_after_removing_its_children_is_accepted() -> None:
    existing = {**EXISTING, "parent": ExistingDocument(TODO, children=1)}
    p = plan(
        job("unlink", "parent", relate("REMOVE_RELATIONSHIP", "list-1"), scope="document"),
        job("del", "parent", act("DELETE_DOCUMENT"), scope="document"),
        existing=existing,
    )
    assert [j.key for j in p.jobs] == ["unlink", "del"]


def test_lookup_ids_names_documents_targets_and_deletions_that_can_be_queried() -> None:
    request = BatchRequest.model_validate(
        {
            "jobs": [
                job("a", "p", relate("ADD_RELATIONSHIP", "c1"), scope="document"),
                job("b", "q", act("DELETE_DOCUMENT"), scope="document"),
                job("c", "r\x00", add_item()),
                job("d", "p", relate("ADD_RELATIONSHIP", "c\x00"), scope="document"),
                job("e", "s", add_item(item_id="not-a-target")),
            ]
        }
    )
    assert lookup_ids(request) == (["c1", "p", "q", "s"], ["q"])


def test_the_reducer_refuses_to_delete_a_document_with_children() -> None:
    state = {**initial_document_state(), "document_type": TODO, "children": ["c1"]}
    action = Action(type="DELETE_DOCUMENT", scope="document")
    with pytest.raises(ReducerError, match="has 1 child"):
        reduce_document_scope(state, action)
    state["children"] = []
    assert reduce_document_scope(state, action)["deleted"] is True
