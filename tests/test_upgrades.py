"""Model versions through the whole stack: a document with history, created
before its type had a manifest, is upgraded by UPGRADE_DOCUMENT as one job;
its log keeps every operation, replay reproduces every hash across the
upgrade and `Reactor.verify` passes. Refused upgrades and actions written
for a newer version fail their job with a named error and write nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.application.replay import rebuild_state
from reactor.domain.hashing import state_hash
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.domain.upgrades import UpgradeManifest, UpgradeStep
from tests.conftest import Stack
from tests.support.rows import row_counts
from tests.support.versioned_counter import counter_model, labelled, tenfold

Factory = Callable[..., Awaitable[ReactorModule]]


counter = counter_model("test/versioned-counter")


def _broken(state: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("cannot read this state")


MANIFEST = UpgradeManifest.of(
    "test/versioned-counter",
    3,
    [UpgradeStep(2, {"global": labelled}), UpgradeStep(3, {"global": tenfold})],
)
BROKEN = UpgradeManifest.of(
    "test/versioned-counter",
    4,
    [
        UpgradeStep(2, {"global": labelled}),
        UpgradeStep(3, {"global": tenfold}),
        UpgradeStep(4, {"global": _broken}),
    ],
)
# Replay re-runs the steps a document went through: every manifest of the
# type keeps them as they were.
GAP = UpgradeManifest.of(
    "test/versioned-counter",
    5,
    [
        UpgradeStep(2, {"global": labelled}),
        UpgradeStep(3, {"global": tenfold}),
        UpgradeStep(5),
    ],
)


def add(n: int, **context: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "ADD", "input": {"n": n}}
    if context:
        action["context"] = context
    return action


def upgrade(to: int) -> dict[str, Any]:
    return {"type": "UPGRADE_DOCUMENT", "input": {"to_version": to}}


async def run(
    reactor: Reactor, doc: str, *actions: dict[str, Any], scope: str = "global"
) -> JobInfo:
    job = await reactor.execute(doc, "main", list(actions), scope=scope)
    return await reactor.wait_for_job(job.id, timeout=60)


async def create(reactor: Reactor, doc: str) -> None:
    create = {"type": "CREATE_DOCUMENT", "input": {"document_type": counter.document_type}}
    info = await run(reactor, doc, create, scope="document")
    assert info.status is JobStatus.READ_READY, info


def versioned(
    stack: Stack, queue: str, manifest: UpgradeManifest | None
) -> Callable[[ReactorBuilder], ReactorBuilder]:
    """A module of its own task queue (its worker alone reduces its jobs,
    with its registry) whose model has `manifest`."""

    def configure(builder: ReactorBuilder) -> ReactorBuilder:
        builder = (
            builder.with_document_models([counter])
            .with_temporal(stack.temporal_address, task_queue=queue)
            .with_write_cache_config(50, 2, keyframe_interval=2)
        )
        return builder.with_upgrade_manifests([manifest]) if manifest else builder

    return configure


async def assert_replays(reactor: Reactor, doc: str) -> None:
    """Every revision of every model scope rebuilds with the stored hashes,
    from keyframes and from the first operation (rebuild_state raises on a
    difference), and the whole document verifies."""
    for scope in ("global", "local"):
        ops = (await reactor.get_operations(doc, scope=scope, limit=1000)).results
        for revision in range(len(ops) + 1):
            for use_keyframes in (True, False):
                _, digest, _ = await rebuild_state(
                    reactor.db,
                    reactor.registry,
                    doc,
                    scope,
                    revision=revision,
                    use_keyframes=use_keyframes,
                )
                if revision:
                    assert digest == ops[revision - 1].hash
    verification = await reactor.verify(doc)
    assert verification.ok, verification.difference


async def test_a_document_with_history_is_upgraded_and_replays(
    module_factory: Factory, stack: Stack, task_queue: str
) -> None:
    old = (await module_factory(versioned(stack, f"{task_queue}-v1", None))).reactor
    await create(old, "c1")
    for n in (1, 2, 3):  # three jobs: keyframes at indexes 1 (every 2 operations)
        assert (await run(old, "c1", add(n))).status is JobStatus.READ_READY
    before = await old.get("c1")
    assert before.header.model_version == 1
    assert before.state["global"] == {"count": 6, "label": ""}

    reactor = (await module_factory(versioned(stack, f"{task_queue}-v3", MANIFEST))).reactor
    info = await run(reactor, "c1", upgrade(3), scope="document")
    assert info.status is JobStatus.READ_READY, info
    after = await reactor.get("c1")
    assert after.header.model_version == 3
    # label filled in at version 2, then the count's tenfold meaning at 3
    assert after.state["global"] == {"count": 60, "label": "count=6"}
    assert after.header.revision["global"] == 4

    global_log = (await reactor.get_operations("c1", scope="global", limit=100)).results
    assert [op.action.type for op in global_log] == ["ADD", "ADD", "ADD", "UPGRADE_DOCUMENT"]
    assert global_log[3].action.input == {"from_version": 1, "to_version": 3}
    assert global_log[3].hash == state_hash({"count": 60, "label": "count=6"})
    local_log = (await reactor.get_operations("c1", scope="local", limit=100)).results
    assert [op.action.type for op in local_log] == ["UPGRADE_DOCUMENT"]
    document_log = (await reactor.get_operations("c1", scope="document", limit=100)).results
    assert [op.action.type for op in document_log] == ["CREATE_DOCUMENT", "UPGRADE_DOCUMENT"]

    # the next job reads the upgraded head; it crosses a keyframe boundary
    assert (await run(reactor, "c1", add(4), add(5))).status is JobStatus.READ_READY
    assert (await reactor.get("c1")).state["global"] == {"count": 69, "label": "count=6"}
    await assert_replays(reactor, "c1")

    # The steps are part of the log's meaning: a registry without them
    # cannot replay the upgrade, and says where.
    stale = await old.verify("c1")
    assert not stale.ok and stale.difference is not None
    assert (stale.difference.scope, stale.difference.index) == ("global", 3)
    assert "UPGRADE_DOCUMENT fails on replay" in stale.difference.detail


async def test_created_documents_start_at_the_latest_version(
    module_factory: Factory, stack: Stack, task_queue: str
) -> None:
    reactor = (await module_factory(versioned(stack, f"{task_queue}-v3", MANIFEST))).reactor
    await create(reactor, "c2")
    document = await reactor.get("c2")
    assert document.header.model_version == 3
    created = (await reactor.get_operations("c2", scope="document", limit=10)).results[0]
    assert created.action.input["model_version"] == 3
    # written for the version it is at: accepted
    assert (await run(reactor, "c2", add(2, model_version=3))).status is JobStatus.READ_READY
    await assert_replays(reactor, "c2")


async def _refused(
    reactor: Reactor, database_url: str, doc: str, action: dict[str, Any], scope: str
) -> str:
    """The error type of a job that must fail and write nothing."""
    before = await row_counts(database_url)
    document = await reactor.get(doc)
    info = await run(reactor, doc, action, scope=scope)
    assert info.status is JobStatus.FAILED, info
    assert info.error is not None
    after = await row_counts(database_url)
    for table in ("reactor_operations", "reactor_document_states", "reactor_keyframes"):
        assert after[table] == before[table], table
    assert await reactor.get(doc) == document
    return info.error.type


async def test_refused_upgrades_and_newer_actions_fail_with_their_name(
    module_factory: Factory, stack: Stack, task_queue: str, database_url: str
) -> None:
    old = (await module_factory(versioned(stack, f"{task_queue}-v1", None))).reactor
    await create(old, "c3")
    assert (await run(old, "c3", add(1))).status is JobStatus.READ_READY
    assert await _refused(old, database_url, "c3", upgrade(2), "document") == ("UnsupportedVersion")

    broken = (await module_factory(versioned(stack, f"{task_queue}-v4", BROKEN))).reactor
    assert await _refused(broken, database_url, "c3", upgrade(4), "document") == (
        "UpgradeStepFailed"
    )
    assert await _refused(broken, database_url, "c3", add(1, model_version=2), "global") == (
        "ActionVersionTooNew"
    )
    assert (await run(broken, "c3", upgrade(3), scope="document")).status is JobStatus.READ_READY
    for to in (3, 2):
        assert await _refused(broken, database_url, "c3", upgrade(to), "document") == (
            "UpgradeNotHigher"
        )
    assert await _refused(broken, database_url, "c3", upgrade(5), "document") == (
        "UnsupportedVersion"
    )

    gap = (await module_factory(versioned(stack, f"{task_queue}-v5", GAP))).reactor
    assert await _refused(gap, database_url, "c3", upgrade(5), "document") == ("MissingUpgradeStep")
    await assert_replays(gap, "c3")
