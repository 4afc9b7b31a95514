"""plan_batch: validating a batch request into an executable plan (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from reactor.domain.batch import (
    BATCH_ID_RE,
    BatchPlan,
    BatchRequest,
    ExistingDocument,
    plan_batch,
)
from reactor.domain.errors import ValidationError
from reactor.domain.model import DocumentModel, ModelRegistry
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
