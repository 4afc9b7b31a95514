"""Every class of bad input gets a ValidationError naming the job and the
field, before anything is written: no row in any reactor table, no workflow
started. Requests are mappings, as a user's batch file is once read."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from reactor.api.builder import ReactorBuilder
from reactor.api.client import ReactorClientBuilder
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.domain.errors import ValidationError
from reactor.domain.jobs import JobStatus, workflow_id_for
from reactor.domain.limits import MAX_DEPTH, Limits
from tests.support import meter_model
from tests.support.direct import plan_job
from tests.support.rows import row_counts

Factory = Callable[..., Awaitable[ReactorModule]]
TODO = "powerhouse/todo-list"
DEFAULTS = Limits()


def create(doc: str, document_type: str = TODO, key: str | None = None, **extra: Any) -> dict:
    return {
        "key": key or f"create-{doc}",
        "document_id": doc,
        "scope": "document",
        "actions": [
            {"type": "CREATE_DOCUMENT", "input": {"document_type": document_type, **extra}}
        ],
    }


def add(item: str = "1", text: str = "milk") -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item, "text": text}}


def measure(**data: Any) -> dict[str, Any]:
    return {"type": "MEASURE", "input": data}


def job(*actions: dict[str, Any], key: str = "j", doc: str = "list", **extra: Any) -> dict:
    return {"key": key, "document_id": doc, "actions": list(actions), **extra}


def doc_job(*actions: dict[str, Any], key: str = "j", doc: str = "list") -> dict:
    return job(*actions, key=key, doc=doc, scope="document")


def relate(kind: str, target: str) -> dict[str, Any]:
    return {"type": kind, "input": {"target_id": target}}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Batches that create the documents they need come first; those that need
# documents already in the database say so (`SETUP` below).
LIST = create("list")
METER = create("m", meter_model.document_type)


@dataclass(frozen=True)
class Case:
    # Big requests are built when their test runs, not when tests are collected.
    jobs: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]
    job: str | None
    field: str | None
    words: str
    db: bool = False  # needs the documents SETUP writes
    extra: dict[str, Any] = field(default_factory=dict)  # request keys besides jobs


CASES: dict[str, Case] = {
    "nul in an input text": Case(
        [LIST, job(add(text="bad\x00char"))], "j", "actions[0].input.text", "NUL"
    ),
    "nul in an input text, on a stored document": Case(
        [job(add(text="bad\x00char"), doc="kept")], "j", "actions[0].input.text", "NUL", db=True
    ),
    "nul in a document id": Case([job(add(), doc="li\x00st")], "j", "document_id", "NUL"),
    "nul in a job key": Case([LIST, job(add(), key="k\x00")], "#1", "key", "NUL"),
    "nul in a branch": Case([LIST, job(add(), branch="ma\x00in")], "j", "branch", "NUL"),
    "nul in a dict key of an input": Case(
        [METER, job(measure(data={"fine": 1, "k\x00": 2}), doc="m")],
        "j",
        "actions[0].input.data['k\\x00']",
        "key contains a NUL",
    ),
    "nul in a dependency": Case(
        [LIST, job(add(), depends_on=["create-list", "x\x00"])], "j", "depends_on[1]", "NUL"
    ),
    "nul in an action type": Case(
        [LIST, job({"type": "ADD\x00", "input": {}})], "j", "actions[0].type", "NUL"
    ),
    "nul in an action id": Case([LIST, job({**add(), "id": "a\x00"})], "j", "actions[0].id", "NUL"),
    "nul in an action context": Case(
        [LIST, job({**add(), "context": {"note": "x\x00"}})],
        "j",
        "actions[0].context.note",
        "NUL",
    ),
    "lone surrogate in an input": Case(
        [LIST, job(add(text="\ud800"))], "j", "actions[0].input.text", "lone surrogate"
    ),
    "lone surrogate in a document id": Case(
        [job(add(), doc="\udfffx")], "j", "document_id", "lone surrogate"
    ),
    "integer of 2**63": Case(
        [METER, job(measure(count=2**63), doc="m")], "j", "actions[0].input.count", "out of range"
    ),
    "integer of 2**64 in free-form data": Case(
        [METER, job(measure(data={"n": 2**64}), doc="m")],
        "j",
        "actions[0].input.data.n",
        "out of range",
    ),
    "integer below -2**63": Case(
        [METER, job(measure(count=-(2**63) - 1), doc="m")],
        "j",
        "actions[0].input.count",
        "out of range",
    ),
    "integer past 64 bits from a numeric string": Case(
        [METER, job(measure(count="9" * 20), doc="m")],
        "j",
        "actions[0].input.count",
        "out of range",
    ),
    "NaN": Case(
        [METER, job(measure(value=float("nan")), doc="m")],
        "j",
        "actions[0].input.value",
        "not a finite number",
    ),
    "infinity read from a string": Case(
        [METER, job(measure(value="-inf"), doc="m")],
        "j",
        "actions[0].input.value",
        "not a finite number",
    ),
    "nesting one level too deep": Case(
        [METER, job(measure(data=nested(MAX_DEPTH)), doc="m")],
        "j",
        "actions[0].input.data" + "[0]" * (MAX_DEPTH - 1),
        f"more than {MAX_DEPTH} levels",
    ),
    "nesting 100,000 deep": Case(
        lambda: [METER, job(measure(data=nested(100_000)), doc="m")],
        "j",
        "actions[0].input.data" + "[0]" * (MAX_DEPTH - 1),
        f"more than {MAX_DEPTH} levels",
    ),
    "too many jobs": Case(
        lambda: [job(add(str(i)), key=f"j{i}") for i in range(DEFAULTS.max_jobs_per_batch + 1)],
        None,
        "jobs",
        f"is {DEFAULTS.max_jobs_per_batch + 1:,}, over the limit of "
        f"{DEFAULTS.max_jobs_per_batch:,}",
    ),
    "too many actions": Case(
        lambda: [LIST, job(*(add(str(i)) for i in range(DEFAULTS.max_actions_per_job + 1)))],
        "j",
        "actions",
        f"over the limit of {DEFAULTS.max_actions_per_job:,}",
    ),
    "an input over the byte limit": Case(
        lambda: [LIST, job(add(text="x" * DEFAULTS.max_input_bytes))],
        "j",
        "actions[0].input",
        f"over the limit of {DEFAULTS.max_input_bytes:,} bytes",
    ),
    "a request over the byte limit": Case(
        lambda: (
            [LIST]
            + [
                job(add(text="x" * (DEFAULTS.max_input_bytes // 2)), key=f"j{i}")
                for i in range(2 * DEFAULTS.max_request_bytes // DEFAULTS.max_input_bytes + 1)
            ]
        ),
        None,
        None,
        f"over the limit of {DEFAULTS.max_request_bytes:,} bytes",
    ),
    "empty key": Case([LIST, job(add(), key="")], "#1", "key", "must not be empty"),
    "key too long": Case([LIST, job(add(), key="k" * 257)], "#1", "key", "at most 256"),
    "duplicate key": Case(
        [LIST, job(add(), key="create-list")], "create-list", "key", "duplicate job key"
    ),
    "unknown dependency": Case(
        [LIST, job(add(), depends_on=["ghost"])], "j", "depends_on", "unknown dependency"
    ),
    "self dependency": Case([LIST, job(add(), depends_on=["j"])], "j", "depends_on", "itself"),
    "dependency cycle": Case(
        [
            LIST,
            create("other"),
            job(add("1"), key="a", depends_on=["b"]),
            job(add("2"), key="b", doc="other", depends_on=["a"]),
        ],
        "a",
        "depends_on",
        "dependency cycle",
    ),
    "unknown scope": Case([LIST, job(add(), scope="galaxy")], "j", "scope", "unknown scope"),
    "scope mismatch": Case(
        [LIST, job({**add(), "scope": "local"})], "j", "actions[0].scope", "scope mismatch"
    ),
    "unknown document type": Case(
        [create("x", "acme/nothing", key="j")],
        "j",
        "actions[0].input.document_type",
        "unknown document type",
    ),
    "unknown action type": Case(
        [LIST, job({"type": "FLY", "input": {}})], "j", "actions[0].type", "unknown action type"
    ),
    "input failing its schema": Case(
        [LIST, job({"type": "ADD_TODO_ITEM", "input": {"id": "1"}})],
        "j",
        "actions[0].input.text",
        "Field required",
    ),
    "document missing": Case([job(add(), doc="ghost")], "j", "document_id", "does not exist"),
    "document deleted": Case([job(add(), doc="gone")], "j", "document_id", "deleted", db=True),
    "create of an existing document": Case(
        [create("kept", key="j")], "j", "document_id", "already exists", db=True
    ),
    "slug taken in the batch": Case(
        [create("a", slug="s"), create("b", slug="s", key="j")],
        "j",
        "actions[0].input.slug",
        "also used by document 'a'",
    ),
    "relationship to a missing document": Case(
        [LIST, doc_job(relate("ADD_RELATIONSHIP", "ghost"))],
        "j",
        "actions[0].input.target_id",
        "'ghost' does not exist",
    ),
    "relationship to itself": Case(
        [LIST, doc_job(relate("ADD_RELATIONSHIP", "list"))],
        "j",
        "actions[0].input.target_id",
        "its own child",
    ),
    "relationship to a deleted document": Case(
        [doc_job(relate("ADD_RELATIONSHIP", "gone"), doc="kept")],
        "j",
        "actions[0].input.target_id",
        "deleted",
        db=True,
    ),
    "deleting a parent with children": Case(
        [doc_job({"type": "DELETE_DOCUMENT"}, doc="parent")],
        "j",
        "actions[0]",
        "has 1 child: remove them first",
        db=True,
    ),
    "deleting a drive that holds a file": Case(
        [doc_job({"type": "DELETE_DOCUMENT"}, doc="drive")],
        "j",
        "actions[0]",
        "has 1 child: remove them first",
        db=True,
    ),
    "bad batch_id": Case([LIST], None, "batch_id", "invalid batch_id", extra={"batch_id": "a b"}),
    "extra field": Case([LIST, job(add(), colour="red")], "j", "colour", "Extra inputs"),
    "wrong type": Case([LIST, job(add(), doc=42)], "j", "document_id", "valid string"),
    "no jobs": Case([], None, "jobs", "no jobs"),
    "job without actions": Case([LIST, job()], "j", "actions", "no actions"),
}

# In the database before the batch under test, for cases with db=True.
SETUP = {
    "jobs": [
        create("kept"),
        create("gone"),
        create("parent"),
        create("kid"),
        doc_job({"type": "DELETE_DOCUMENT"}, key="delete", doc="gone"),
        doc_job(relate("ADD_RELATIONSHIP", "kid"), key="link", doc="parent"),
        create("drive", "powerhouse/document-drive"),
        job(
            {"type": "ADD_FILE", "input": {"id": "file", "name": "a", "document_type": TODO}},
            key="file",
            doc="drive",
        ),
    ]
}


def with_meter(builder: ReactorBuilder) -> ReactorBuilder:
    return builder.with_document_models([meter_model])


async def assert_not_started(reactor: Reactor, batch_id: str) -> None:
    handle = reactor.client.get_workflow_handle(workflow_id_for(batch_id))
    with pytest.raises(RPCError) as info:
        await handle.describe()
    assert info.value.status == RPCStatusCode.NOT_FOUND


async def setup_documents(reactor: Reactor) -> None:
    result = await reactor.execute_batch(SETUP)
    jobs = await reactor.wait_for_batch(result.batch_id)
    assert [j.status for j in jobs] == [JobStatus.READ_READY] * len(SETUP["jobs"]), jobs


def test_there_are_at_least_30_classes_of_bad_input() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_rejected_naming_job_and_field_and_writes_nothing(
    name: str, module_factory: Factory, database_url: str
) -> None:
    case = CASES[name]
    module = await module_factory(with_meter, worker=case.db)
    reactor = module.reactor
    if case.db:
        await setup_documents(reactor)
    before = await row_counts(database_url)
    batch_id = case.extra.get("batch_id", "rejected-batch")
    jobs = case.jobs() if callable(case.jobs) else case.jobs
    with pytest.raises(ValidationError) as info:
        await reactor.execute_batch({"batch_id": batch_id, "jobs": jobs, **case.extra})
    err = info.value
    assert (err.job, err.field) == (case.job, case.field), str(err)
    assert case.words in err.reason, str(err)
    assert await row_counts(database_url) == before
    await assert_not_started(reactor, batch_id)


async def test_limits_set_on_the_builder_are_enforced_with_their_values(
    module_factory: Factory, database_url: str
) -> None:
    module = await module_factory(
        lambda b: b.with_limits(Limits(max_jobs_per_batch=2, max_input_bytes=64)), worker=False
    )
    reactor = module.reactor
    before = await row_counts(database_url)
    with pytest.raises(ValidationError) as info:
        await reactor.execute_batch({"batch_id": "b1", "jobs": [LIST, job(add()), job(add("2"))]})
    assert info.value.field == "jobs"
    assert "is 3, over the limit of 2" in info.value.reason
    with pytest.raises(ValidationError) as info:
        await reactor.execute_batch({"batch_id": "b2", "jobs": [LIST, job(add(text="x" * 64))]})
    assert (info.value.job, info.value.field) == ("j", "actions[0].input")
    assert "over the limit of 64 bytes" in info.value.reason
    assert await row_counts(database_url) == before
    await assert_not_started(reactor, "b1")
    await assert_not_started(reactor, "b2")


async def test_a_single_execute_with_a_bad_value_is_rejected_to_its_caller(
    module_factory: Factory, database_url: str
) -> None:
    """`execute()` builds the request itself (no mapping to measure): the
    same checks hold, on the parsed request."""
    module = await module_factory(with_meter, worker=True)
    reactor = module.reactor
    await setup_documents(reactor)
    before = await row_counts(database_url)
    with pytest.raises(ValidationError) as info:
        await reactor.execute("kept", "main", [add(text="bad\x00char")])
    assert (info.value.job, info.value.field) == ("job", "actions[0].input.text")
    with pytest.raises(ValidationError) as info:
        await reactor.execute("kept", "main", [{**add(), "input": {"x": nested(100_000)}}])
    assert info.value.field is not None and info.value.field.startswith("actions[0].input.x")
    with pytest.raises(ValidationError) as info:
        await reactor.add_children("kept", ["kept"])
    assert info.value.field == "actions[0].input.target_id"
    assert await row_counts(database_url) == before


async def test_a_job_id_with_thousands_of_digits_is_a_validation_error(
    module_factory: Factory,
) -> None:
    reactor = (await module_factory(worker=False)).reactor
    job_id = "b:" + "7" * 5000  # past Python's int() digit limit
    for ask in (reactor.get_job_status, reactor.wait_for_job):
        with pytest.raises(ValidationError) as info:
            await ask(job_id)
        assert info.value.field == "job_id"
        assert "its index has 5000 digits, over the limit of 18" in info.value.reason


async def test_children_can_be_read_and_a_parent_deleted_once_they_are_removed(
    module_factory: Factory,
) -> None:
    module = await module_factory(worker=True)
    reactor = module.reactor
    await setup_documents(reactor)
    client = ReactorClientBuilder().with_reactor_module(module).build()
    for target in ("parent", "ghost"):
        with pytest.raises(ValidationError, match="target_id"):
            await reactor.add_children("parent", [target])
    assert [d.header.id for d in (await client.get_children("parent")).results] == ["kid"]
    with pytest.raises(ValidationError, match="has 1 child"):
        await reactor.delete_document("parent")
    unlink = await reactor.remove_children("parent", ["kid"])
    assert (await reactor.wait_for_job(unlink.id, timeout=60)).status is JobStatus.READ_READY
    assert (await client.get_children("parent")).results == []
    delete = await reactor.delete_document("parent")
    assert (await reactor.wait_for_job(delete.id, timeout=60)).status is JobStatus.READ_READY


async def test_a_child_added_after_validation_fails_the_delete_in_the_reducer(
    module_factory: Factory,
) -> None:
    """Validation counts the children it sees; one added between validation
    and the write is refused by the document scope's reducer: the job ends
    FAILED, it is never retried."""
    module = await module_factory(worker=True)
    reactor = module.reactor
    await setup_documents(reactor)
    # Planned while "kept" had no children...
    batch_id, planned = await plan_job(
        module.database, "kept", [{"type": "DELETE_DOCUMENT"}], scope="document"
    )
    # ...then a child arrives before it is applied.
    link = await reactor.add_children("kept", ["kid"])
    assert (await reactor.wait_for_job(link.id, timeout=60)).status is JobStatus.READ_READY
    from reactor.application.apply import JobApplier

    outcome = await JobApplier(module.database, module.registry).apply(batch_id, planned)
    assert not outcome.ok
    assert outcome.error is not None and "has 1 child" in outcome.error.message
    assert (await reactor.get("kept")).header.deleted is False


async def test_a_drive_given_a_file_earlier_in_its_batch_is_not_deleted(
    module_factory: Factory,
) -> None:
    """The file node is the drive model's child, added by a global job that
    validation does not count and the document scope's state does not hold:
    the delete, applied under the drive's lane lock after it, counts the
    edge and ends FAILED with HasChildren, writing nothing."""
    module = await module_factory(worker=True)
    reactor = module.reactor
    result = await reactor.execute_batch(
        {
            "jobs": [
                create("drv", "powerhouse/document-drive"),
                job(
                    {"type": "ADD_FILE", "input": {"id": "f1", "name": "a", "document_type": TODO}},
                    key="file",
                    doc="drv",
                ),
                doc_job({"type": "DELETE_DOCUMENT"}, key="delete", doc="drv"),
            ]
        }
    )
    jobs = await reactor.wait_for_batch(result.batch_id)
    assert [j.status for j in jobs] == [
        JobStatus.READ_READY,
        JobStatus.READ_READY,
        JobStatus.FAILED,
    ], jobs
    error = jobs[2].error
    assert error is not None and error.type == "HasChildren", error
    assert "has 1 child " in error.message, error.message
    drive = await reactor.get("drv")
    assert drive.header.deleted is False
    assert drive.header.revision["document"] == 1, drive.header
    assert await reactor.get_children("drv") == ["f1"]


async def test_concurrent_executes_are_grouped_within_the_batch_limit(
    module_factory: Factory,
) -> None:
    module = await module_factory(
        lambda b: b.with_limits(Limits(max_jobs_per_batch=2)), worker=True
    )
    reactor = module.reactor
    infos = await asyncio.gather(*(reactor.create(TODO, document_id=f"d{i}") for i in range(5)))
    finals = await asyncio.gather(*(reactor.wait_for_job(i.id, timeout=60) for i in infos))
    assert [f.status for f in finals] == [JobStatus.READ_READY] * 5
    # Grouped by two (the first alone, submitted at once), never as a group
    # too big that is then resubmitted job by job.
    sizes = Counter(i.batch_id for i in infos)
    assert max(sizes.values()) <= 2 and len(sizes) <= 3, sizes
