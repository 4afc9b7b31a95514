"""`reactor upgrade --type T [--to N]` as a user runs it: documents created
before their type had a manifest are upgraded by batches of UPGRADE_DOCUMENT
jobs, step by step to the version asked; a second run submits nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.domain.jobs import JobStatus
from reactor.domain.model import DocumentModel
from tests.conftest import Stack, worker_env
from tests.support import versioned_counter
from tests.support.cli import run_reactor
from tests.support.rows import row_counts

Factory = Callable[..., Awaitable[ReactorModule]]
DOCS = ("k1", "k2", "k3")


async def test_upgrade_command_upgrades_every_document_once(
    module_factory: Factory, stack: Stack, database_url: str, task_queue: str
) -> None:
    unversioned = dataclasses.replace(DocumentModel.from_module(versioned_counter), upgrades=None)

    def before_the_manifest(builder: ReactorBuilder) -> ReactorBuilder:
        return builder.with_document_models([unversioned]).with_temporal(
            stack.temporal_address, task_queue=f"{task_queue}-v1"
        )

    old = (await module_factory(before_the_manifest)).reactor
    for n, doc in enumerate(DOCS, start=1):
        result = await old.execute_batch(
            {
                "jobs": [
                    {
                        "key": "create",
                        "document_id": doc,
                        "scope": "document",
                        "actions": [
                            {
                                "type": "CREATE_DOCUMENT",
                                "input": {"document_type": versioned_counter.document_type},
                            }
                        ],
                    },
                    {
                        "key": "add",
                        "document_id": doc,
                        "depends_on": ["create"],
                        "actions": [{"type": "ADD", "input": {"n": n}}],
                    },
                ]
            }
        )
        infos = await old.wait_for_batch(result.batch_id)
        assert all(i.status is JobStatus.READ_READY for i in infos), infos

    # The worker the command's batches reach knows the manifest.
    reactor = (await module_factory(lambda b: b.with_document_models([versioned_counter]))).reactor
    env = worker_env(stack, database_url, task_queue)
    env["REACTOR_MODELS"] = versioned_counter.__name__
    kind = versioned_counter.document_type

    code, out, err = await run_reactor(env, "upgrade", "--type", kind, "--to", "2", "--json")
    assert code == 0, err
    jobs = json.loads(out)["jobs"]
    assert len(jobs) == len(DOCS)
    assert {(await reactor.get(d)).header.model_version for d in DOCS} == {2}

    code, out, err = await run_reactor(env, "upgrade", "--type", kind)
    assert code == 0, err
    for n, doc in enumerate(DOCS, start=1):
        document = await reactor.get(doc)
        assert document.header.model_version == 3
        assert document.state["global"] == {"count": n * 10, "label": f"count={n}"}
        ops = (await reactor.get_operations(doc, scope="global", limit=10)).results
        assert [op.action.input for op in ops[1:]] == [
            {"from_version": 1, "to_version": 2},
            {"from_version": 2, "to_version": 3},
        ]
        assert (await reactor.verify(doc)).ok

    before = await row_counts(database_url)
    code, out, err = await run_reactor(env, "upgrade", "--type", kind)
    assert code == 0, err
    assert "nothing to upgrade" in out
    assert await row_counts(database_url) == before

    code, out, err = await run_reactor(env, "upgrade", "--type", kind, "--to", "7")
    assert code == 2
    assert "no version 7" in err and "Traceback" not in err
