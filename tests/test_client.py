"""Job lifecycle events, consistency tokens across processes, subscriptions
across processes, signed actions, and the high-level client."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from reactor.api.client import ReactorClientBuilder
from reactor.application.events import ReactorEventTypes
from reactor.application.subscriptions import DocumentChange
from reactor.domain.actions import Action
from reactor.domain.errors import ConsistencyTimeoutError, JobFailedError
from reactor.domain.jobs import ConsistencyToken, Coordinate, JobStatus, workflow_id_for
from reactor.domain.signing import Ed25519Signer, Ed25519Verifier, sign_action
from reactor.read_models.todo_stats import TodoStatsPerDrive
from tests.conftest import ROOT, Stack, spawn_worker, wait_until, worker_env

CREATE_LIST = {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}


async def run_writer(
    stack: Stack, database_url: str, task_queue: str, request: dict[str, Any]
) -> dict[str, Any]:
    """Submits `request` from another OS process; returns {key: {status, token}}."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "support" / "writer.py"),
        json.dumps(request),
        env=worker_env(stack, database_url, task_queue),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_event_bus_emits_the_lifecycle_in_order_and_isolates_handler_errors(
    module_factory: Any,
) -> None:
    module = await module_factory()
    seen: list[tuple[str, str, int]] = []
    calls: list[str] = []

    def broken(event_type: str, event: Any) -> None:
        calls.append("broken")
        raise RuntimeError("handler bug")

    async def record(event_type: str, event: Any) -> None:
        calls.append("record")
        seen.append((event.key, event_type, len(event.operations)))

    for t in ReactorEventTypes:
        module.event_bus.subscribe(t, broken)
        module.event_bus.subscribe(t, record)
    result = await module.reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": "create",
                    "document_id": "ev",
                    "scope": "document",
                    "actions": [CREATE_LIST],
                },
                {
                    "key": "items",
                    "document_id": "ev",
                    "depends_on": ["create"],
                    "actions": [
                        {"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a"}},
                        {"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "b"}},
                    ],
                },
                {
                    "key": "bad",
                    "document_id": "ev",
                    "depends_on": ["items"],
                    "actions": [{"type": "DELETE_TODO_ITEM", "input": {"id": "404"}}],
                },
            ]
        }
    )
    jobs = await module.reactor.wait_for_batch(result.batch_id)
    assert [j.status for j in jobs] == [
        JobStatus.READ_READY,
        JobStatus.READ_READY,
        JobStatus.FAILED,
    ]

    async def all_final() -> bool:
        return sum(1 for _, t, _ in seen if t in ("JOB_READ_READY", "JOB_FAILED")) == 3

    await wait_until(all_final, 30, "final job events")
    by_job: dict[str, list[tuple[str, int]]] = {}
    for key, t, n in seen:
        by_job.setdefault(key, []).append((t, n))
    assert by_job["items"] == [
        ("JOB_PENDING", 0),
        ("JOB_RUNNING", 0),
        ("JOB_WRITE_READY", 2),
        ("JOB_READ_READY", 2),
    ]
    assert [t for t, _ in by_job["create"]] == [
        "JOB_PENDING",
        "JOB_RUNNING",
        "JOB_WRITE_READY",
        "JOB_READ_READY",
    ]
    assert [t for t, _ in by_job["bad"]] == ["JOB_PENDING", "JOB_FAILED"]
    # registration order, and the broken handler never stopped the next one
    assert calls[:2] == ["broken", "record"] and calls.count("broken") == calls.count("record")

    unsubscribe = module.event_bus.subscribe(ReactorEventTypes.JOB_PENDING, record)
    unsubscribe()
    before = len(seen)
    await module.reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": "more",
                    "document_id": "ev",
                    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "3", "text": "c"}}],
                }
            ]
        }
    )
    assert [e for e in seen[before:] if e[1] == "JOB_PENDING"] == [("more", "JOB_PENDING", 0)]


async def test_read_after_write_with_a_token_from_another_process(
    module_factory: Any, stack: Stack, database_url: str, task_queue: str
) -> None:
    reader = await module_factory(lambda b: b.with_read_model(TodoStatsPerDrive()))
    for n in range(3):
        doc = f"raw-{n}"
        out = await run_writer(
            stack,
            database_url,
            task_queue,
            {
                "jobs": [
                    {"key": "c", "document_id": doc, "scope": "document", "actions": [CREATE_LIST]},
                    {
                        "key": "w",
                        "document_id": doc,
                        "depends_on": ["c"],
                        "actions": [
                            {
                                "type": "ADD_TODO_ITEM",
                                "input": {"id": "x", "text": "written elsewhere"},
                            }
                        ],
                    },
                ]
            },
        )
        token = ConsistencyToken.model_validate(out["w"]["token"])
        assert token.coordinates == [
            Coordinate(document_id=doc, scope="global", branch="main", operation_index=0)
        ]
        got = await reader.reactor.get(doc, consistency_token=token)
        assert got.state["global"]["items"][0]["text"] == "written elsewhere"
        async with reader.database.pool.acquire() as conn:
            total = await conn.fetchval(
                "SELECT total FROM example_todo_list_stats WHERE list_id = $1", doc
            )
        assert total == 1  # the read model had indexed it too


async def test_token_for_an_operation_that_never_arrives_times_out_naming_it(
    module_factory: Any,
) -> None:
    module = await module_factory()
    job = await module.reactor.create("powerhouse/todo-list", document_id="lonely")
    await module.reactor.wait_for_job(job.id, timeout=30)
    token = ConsistencyToken(
        coordinates=[
            Coordinate(document_id="lonely", scope="global", branch="main", operation_index=41)
        ]
    )
    with pytest.raises(ConsistencyTimeoutError) as err:
        await module.reactor.get("lonely", consistency_token=token, timeout=0.5)
    message = str(err.value)
    assert "'lonely'" in message and "operation 41" in message and "scope 'global'" in message


async def test_subscribe_sees_another_process_write_and_unsubscribe_stops_it(
    module_factory: Any, stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    module = await module_factory(worker=False)
    client = ReactorClientBuilder().with_reactor_module(module).build()
    changes: list[DocumentChange] = []
    unsubscribe = await client.subscribe({"type": "powerhouse/todo-list"}, changes.append)
    worker = spawn_worker(stack, database_url, task_queue, tmp_path / "w.log")
    try:
        await run_writer(
            stack,
            database_url,
            task_queue,
            {
                "jobs": [
                    {
                        "key": "c",
                        "document_id": "sub-1",
                        "scope": "document",
                        "actions": [CREATE_LIST],
                    },
                    {
                        "key": "u",
                        "document_id": "sub-1",
                        "depends_on": ["c"],
                        "actions": [
                            {"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "hello"}}
                        ],
                    },
                    {
                        "key": "drive",
                        "document_id": "not-a-list",
                        "scope": "document",
                        "actions": [
                            {
                                "type": "CREATE_DOCUMENT",
                                "input": {"document_type": "powerhouse/document-drive"},
                            }
                        ],
                    },
                ]
            },
        )

        async def delivered() -> bool:
            return [c.kind for c in changes] == ["created", "updated"]

        await wait_until(delivered, 10, "created and updated changes")
        assert all(c.document_id == "sub-1" for c in changes)
        assert changes[1].document is not None
        assert changes[1].document.state["global"]["items"][0]["text"] == "hello"

        unsubscribe()
        out = await run_writer(
            stack,
            database_url,
            task_queue,
            {
                "jobs": [
                    {
                        "key": "u2",
                        "document_id": "sub-1",
                        "actions": [
                            {"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "unseen"}}
                        ],
                    }
                ]
            },
        )
        await module.reactor.get(
            "sub-1", consistency_token=ConsistencyToken.model_validate(out["u2"]["token"])
        )
        await asyncio.sleep(1.0)  # more than the poll interval: nothing may arrive
        assert len(changes) == 2
    finally:
        worker.terminate()
        worker.wait(30)


async def test_signed_actions_verify_and_tampering_fails_the_job_writing_nothing(
    module_factory: Any,
) -> None:
    signer = Ed25519Signer()
    module = await module_factory(
        lambda b: b.with_signature_verifier(Ed25519Verifier({signer.public_key()}))
    )
    client = ReactorClientBuilder().with_reactor_module(module).with_signer(signer).build()
    doc = await client.create_empty("powerhouse/todo-list", document_id="signed")
    doc = await client.execute(
        "signed", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "ok"}}]
    )
    assert doc.header.revision["global"] == 1
    ops = (await module.reactor.get_operations("signed", scope="global")).results
    assert ops[0].action.context is not None
    assert ops[0].action.context["signature"]["public_key"] == signer.public_key()

    head = doc.header.revision["global"]
    valid = sign_action(
        signer,
        Action(type="ADD_TODO_ITEM", input={"id": "2", "text": "signed"}),
        "signed",
        ops[-1].hash,
    )
    tampered = valid.model_copy(update={"input": {"id": "2", "text": "evil"}})
    unsigned = Action(type="ADD_TODO_ITEM", input={"id": "3", "text": "anonymous"})
    stranger = sign_action(
        Ed25519Signer(),
        Action(type="ADD_TODO_ITEM", input={"id": "4", "text": "x"}),
        "signed",
        ops[-1].hash,
    )
    for action, reason in (
        (tampered, "does not match"),
        (unsigned, "not signed"),
        (stranger, "untrusted"),
    ):
        job = await module.reactor.execute("signed", "main", [action])
        info = await module.reactor.wait_for_job(job.id, timeout=30)
        assert info.status is JobStatus.FAILED
        assert info.error is not None and info.error.type == "SignatureError"
        assert reason in info.error.message
    assert (await module.reactor.get("signed")).header.revision["global"] == head


async def test_without_a_verifier_signatures_are_stored_but_not_checked(
    module_factory: Any,
) -> None:
    module = await module_factory()
    client = ReactorClientBuilder().with_reactor_module(module).with_signer(Ed25519Signer()).build()
    await client.create_empty("powerhouse/todo-list", document_id="loose")
    await client.execute(
        "loose", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "signed"}}]
    )
    plain = ReactorClientBuilder().with_reactor_module(module).build()
    await plain.execute(
        "loose", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "unsigned"}}]
    )
    ops = (await module.reactor.get_operations("loose", scope="global")).results
    assert "signature" in (ops[0].action.context or {})
    assert ops[1].action.context is None


async def test_client_writes_return_documents_and_raise_on_failure(module_factory: Any) -> None:
    module = await module_factory()
    client = ReactorClientBuilder().with_reactor_module(module).build()
    drive = await client.create_empty("powerhouse/document-drive", document_id="dr", slug="drive")
    other = await client.create_empty("powerhouse/document-drive", document_id="dr2")
    assert drive.header.slug == "drive"
    listed = await client.create_document_in_drive(
        "dr", {"document_type": "powerhouse/todo-list", "name": "Tasks", "id": "tasks"}
    )
    assert listed.header.name == "Tasks"
    assert [d.id for d in (await client.get_children("dr")).results] == ["tasks"]
    renamed = await client.rename("tasks", "Chores")
    assert renamed.header.name == "Chores"
    assert (await client.get("drive")).id == "dr"
    with pytest.raises(JobFailedError, match="ReducerError"):
        await client.execute(
            "tasks", "main", [{"type": "DELETE_TODO_ITEM", "input": {"id": "missing"}}]
        )
    link = await module.reactor.add_children("dr", ["tasks"])
    await module.reactor.wait_for_job(link.id, timeout=30)
    await client.move_children("dr", "dr2", ["tasks"])
    assert [d.id for d in (await client.get_parents("tasks")).results] == [
        "dr",
        "dr2",
    ]  # dr still files it
    await client.delete_documents(["tasks"])
    assert (await client.get_children("dr2")).results == []
    assert other.id == "dr2"


async def test_the_job_tracker_forgets_jobs_once_their_batch_is_done(module_factory: Any) -> None:
    """A long-lived reactor submits without bound: neither an unfollowed
    submission nor a followed batch that has finished may leave per-job
    state behind, or its memory would grow with every job it ever submitted."""
    module = await module_factory()
    reactor = module.reactor
    create = {"key": "c", "document_id": "forget", "scope": "document", "actions": [CREATE_LIST]}
    await reactor.wait_for_batch((await reactor.execute_batch({"jobs": [create]})).batch_id)

    def items(prefix: str) -> dict[str, Any]:
        return {
            "jobs": [
                {
                    "key": f"{prefix}{i}",
                    "document_id": "forget",
                    "actions": [
                        {"type": "ADD_TODO_ITEM", "input": {"id": f"{prefix}{i}", "text": "x"}}
                    ],
                }
                for i in range(30)
            ]
        }

    unfollowed = await reactor.execute_batch(items("u"))
    assert reactor.job_tracker.tracked == 0
    await reactor.wait_for_batch(unfollowed.batch_id)
    assert reactor.job_tracker.tracked == 0

    finals: list[str] = []
    module.event_bus.subscribe(ReactorEventTypes.JOB_READ_READY, lambda _t, e: finals.append(e.key))
    followed = await reactor.execute_batch(items("f"))
    assert reactor.job_tracker.tracked == 30
    await reactor.wait_for_batch(followed.batch_id)

    async def forgotten() -> bool:
        return len(finals) == 30 and reactor.job_tracker.tracked == 0

    await wait_until(forgotten, 30, "every READ_READY event, then the tracker empty")


ADD = [
    {"type": "ADD_TODO_ITEM", "input": {"id": "a", "text": "A"}},
    {"type": "ADD_TODO_ITEM", "input": {"id": "b", "text": "B"}},
]


def comparable(info: Any) -> dict[str, Any]:
    """A JobInfo without its token's creation time."""
    data: dict[str, Any] = info.model_dump()
    if data["consistency_token"] is not None:
        data["consistency_token"].pop("created_at")
    return data


async def test_wait_for_job_answers_from_the_read_ready_announcement_as_the_workflow_does(
    module_factory: Any,
) -> None:
    """A worker without read models announces its commits as read-ready; the
    JobInfo the announcement gives is the one the workflow reports."""
    module = await module_factory()
    reactor = module.reactor
    created = await reactor.create("powerhouse/todo-list", document_id="ann")
    await reactor.wait_for_job(created.id, timeout=30)
    job = await reactor.execute("ann", "main", ADD)
    early = await reactor.wait_for_job(job.id, timeout=30)
    assert reactor.ready_notices.announced(job.id)  # the announcement arrived
    [closed] = await reactor.wait_for_batch(job.batch_id)  # the workflow's answer
    assert early.status is JobStatus.READ_READY
    assert comparable(early) == comparable(closed)
    assert early.consistency_token is not None
    assert [c.operation_index for c in early.consistency_token.coordinates] == [0, 1]
    assert comparable(await reactor.get_job_status(job.id)) == comparable(closed)


async def reactor_with_list(module_factory: Any, document_id: str) -> Any:
    """A reactor, and a todo list it created."""
    reactor = (await module_factory()).reactor
    created = await reactor.create("powerhouse/todo-list", document_id=document_id)
    await reactor.wait_for_job(created.id, timeout=30)
    return reactor


def hold_workflow_results(reactor: Any) -> asyncio.Future[Any]:
    """Holds back every batch workflow's result from `reactor` (until
    `release_workflow_results`): what answers then came from announcements."""
    held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reactor._batch_results.poll = lambda _batch_id: held
    return held


def release_workflow_results(reactor: Any, held: asyncio.Future[Any]) -> None:
    """The workflows answer again; the held waits end, so the next one asks."""
    reactor._batch_results.poll = reactor._poll_result
    held.cancel()


async def test_the_announcement_alone_answers_wait_for_job(module_factory: Any) -> None:
    """With the workflow's result held back, wait_for_job still returns: the
    commit's read-ready NOTIFY is enough, and the document is readable."""
    reactor = await reactor_with_list(module_factory, "solo")
    never = hold_workflow_results(reactor)
    job = await reactor.execute("solo", "main", ADD)
    info = await reactor.wait_for_job(job.id, timeout=30)
    assert info.status is JobStatus.READ_READY and not never.done()
    doc = await reactor.get("solo", consistency_token=info.consistency_token)
    assert [item["id"] for item in doc.state["global"]["items"]] == ["a", "b"]


async def test_a_job_too_big_to_list_its_events_is_answered_by_its_range(
    module_factory: Any,
) -> None:
    """150 operations do not fit one NOTIFY as events; the commit is
    announced as its range, which answers wait_for_job on its own with the
    token the workflow gives."""
    reactor = await reactor_with_list(module_factory, "long")
    held = hold_workflow_results(reactor)
    adds = [
        {"type": "ADD_TODO_ITEM", "input": {"id": f"i{n:03d}", "text": "t"}} for n in range(150)
    ]
    job = await reactor.execute("long", "main", adds)
    info = await reactor.wait_for_job(job.id, timeout=30)
    assert info.status is JobStatus.READ_READY and not held.done()
    assert info.consistency_token is not None
    assert [c.operation_index for c in info.consistency_token.coordinates] == list(range(150))
    release_workflow_results(reactor, held)
    [closed] = await reactor.wait_for_batch(job.batch_id)
    assert comparable(info) == comparable(closed)


async def test_a_failed_job_is_answered_by_its_workflow(module_factory: Any) -> None:
    module = await module_factory()
    reactor = module.reactor
    created = await reactor.create("powerhouse/todo-list", document_id="fails")
    await reactor.wait_for_job(created.id, timeout=30)
    job = await reactor.execute(
        "fails", "main", [{"type": "DELETE_TODO_ITEM", "input": {"id": "missing"}}]
    )
    info = await reactor.wait_for_job(job.id, timeout=30)
    assert info.status is JobStatus.FAILED and info.error is not None
    assert reactor.ready_notices.get(job.id) is None


async def test_a_reactor_that_never_waits_forgets_batches_once_they_closed(
    module_factory: Any,
) -> None:
    """Past its limit of remembered batches, a reactor asks Temporal which
    of them closed and forgets those; kill() still awaits the rest."""
    module = await module_factory()
    reactor = module.reactor
    reactor._started.limit = reactor._started._check_at = 4
    created = await reactor.create("powerhouse/todo-list", document_id="fire-and-forget")
    await reactor.wait_for_batch(created.batch_id)  # seen closed: forgotten
    jobs = [
        await reactor.execute(
            "fire-and-forget",
            "main",
            [{"type": "ADD_TODO_ITEM", "input": {"id": f"{i}", "text": "x"}}],
        )
        for i in range(4)
    ]
    for job in jobs:  # closed, seen through handles of our own, not the reactor's waits
        await reactor.client.get_workflow_handle(workflow_id_for(job.batch_id)).result()
    assert len(reactor._started) == 4
    last = await reactor.execute(
        "fire-and-forget", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "last", "text": "x"}}]
    )
    await reactor._started.checked()
    # The last one too, when it closed before the check.
    last_forgotten = reactor._started.get(last.batch_id) is None
    assert reactor._started.forgotten_closed == 4 + last_forgotten
    assert [reactor._started.get(j.batch_id) for j in jobs] == [None] * 4
    assert len(reactor._started) == (0 if last_forgotten else 1)
    await asyncio.wait_for(reactor.kill().completed, 30)
    assert (await reactor.get_job_status(last.id)).status is JobStatus.READ_READY


async def test_signed_history_actions_are_signed_over_the_states_the_worker_computes(
    module_factory: Any,
) -> None:
    """The signer follows UNDO, REDO and PRUNE through the lane's log as the
    worker does, so an action after one of them, in the same job or a later
    job of the same batch, is signed over the state it applies to."""
    signer = Ed25519Signer()
    module = await module_factory(
        lambda b: b.with_signature_verifier(Ed25519Verifier({signer.public_key()}))
    )
    client = ReactorClientBuilder().with_reactor_module(module).with_signer(signer).build()
    await client.create_empty("powerhouse/todo-list", document_id="signed-history")

    def add(i: int) -> dict[str, Any]:
        return {"type": "ADD_TODO_ITEM", "input": {"id": str(i), "text": f"item {i}"}}

    await client.execute("signed-history", "main", [add(1), add(2), add(3)])
    doc = await client.execute("signed-history", "main", [{"type": "UNDO"}, add(4)])
    assert [i["id"] for i in doc.state["global"]["items"]] == ["1", "2", "4"]
    jobs = await client.execute_batch(
        {
            "jobs": [
                {"key": "u", "document_id": "signed-history", "actions": [{"type": "UNDO"}]},
                {
                    "key": "r",
                    "document_id": "signed-history",
                    "depends_on": ["u"],
                    "actions": [
                        {"type": "REDO"},
                        {"type": "PRUNE", "input": {"start": 0, "end": 2}},
                        add(5),
                    ],
                },
            ]
        }
    )
    assert all(j.status is JobStatus.READ_READY for j in jobs.values()), jobs
    doc = await module.reactor.get("signed-history")
    assert [i["id"] for i in doc.state["global"]["items"]] == ["1", "2", "5"]
    assert (await module.reactor.verify("signed-history")).ok
