"""Document lifecycle through the Python API: create, rename, relationships,
delete, lookups by id or slug."""

from __future__ import annotations

import pytest

from reactor.api.reactor import Reactor
from reactor.domain.errors import AmbiguousIdentifierError, DocumentNotFoundError, ValidationError
from reactor.domain.jobs import JobStatus

pytestmark = pytest.mark.usefixtures("worker")


async def done(reactor: Reactor, job_id: str) -> JobStatus:
    return (await reactor.wait_for_job(job_id, timeout=60)).status


async def test_create_rename_relate_and_delete(reactor: Reactor) -> None:
    parent = await reactor.create("powerhouse/document-drive", document_id="p", slug="parent")
    child = await reactor.create("powerhouse/todo-list", document_id="c", name="Child")
    assert await done(reactor, parent.id) is JobStatus.READ_READY
    assert await done(reactor, child.id) is JobStatus.READ_READY

    rename = await reactor.execute(
        "c", "main", [{"type": "SET_NAME", "input": {"name": "Renamed"}}]
    )
    assert await done(reactor, rename.id) is JobStatus.READ_READY
    assert (await reactor.get("c")).header.name == "Renamed"

    link = await reactor.add_children("p", ["c"])
    assert await done(reactor, link.id) is JobStatus.READ_READY
    assert await reactor.get_children("p") == ["c"]
    assert await reactor.get_parents("c") == ["p"]
    assert [d.id for d in (await reactor.find(parent_id="p")).results] == ["c"]

    unlink = await reactor.remove_children("p", ["c"])
    assert await done(reactor, unlink.id) is JobStatus.READ_READY
    assert await reactor.get_children("p") == []

    relink = await reactor.add_children("p", ["c"])
    assert await done(reactor, relink.id) is JobStatus.READ_READY
    delete = await reactor.delete_document("c")
    assert await done(reactor, delete.id) is JobStatus.READ_READY
    with pytest.raises(DocumentNotFoundError):
        await reactor.get("c")
    assert await reactor.get_children("p") == []  # deleted children are hidden

    with pytest.raises(ValidationError, match="document 'c' is deleted") as rejected:
        await reactor.execute(
            "c", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}]
        )
    assert rejected.value.field == "document_id"


async def test_get_by_id_or_slug_and_ambiguity(reactor: Reactor) -> None:
    a = await reactor.create("powerhouse/todo-list", document_id="alpha", slug="beta")
    b = await reactor.create("powerhouse/todo-list", document_id="beta", slug="gamma")
    await done(reactor, a.id)
    await done(reactor, b.id)
    assert (await reactor.get_by_id_or_slug("alpha")).id == "alpha"
    assert (await reactor.get_by_id_or_slug("gamma")).id == "beta"
    with pytest.raises(AmbiguousIdentifierError, match="'beta'"):
        await reactor.get_by_id_or_slug("beta")
    with pytest.raises(DocumentNotFoundError):
        await reactor.get_by_id_or_slug("nothing")


async def test_slug_taken_by_another_batch_fails_the_job_cleanly(reactor: Reactor) -> None:
    first = await reactor.create("powerhouse/todo-list", document_id="one", slug="shared")
    assert await done(reactor, first.id) is JobStatus.READ_READY
    second = await reactor.create("powerhouse/todo-list", document_id="two", slug="shared")
    info = await reactor.wait_for_job(second.id, timeout=60)
    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.type == "SlugTaken"
    with pytest.raises(DocumentNotFoundError):
        await reactor.get("two")


async def test_drive_file_nodes_drive_the_child_index(reactor: Reactor) -> None:
    await done(reactor, (await reactor.create("powerhouse/document-drive", document_id="drv")).id)
    add = await reactor.execute(
        "drv",
        "main",
        [
            {"type": "ADD_FOLDER", "input": {"id": "f", "name": "Folder"}},
            {
                "type": "ADD_FILE",
                "input": {
                    "id": "doc-1",
                    "name": "One",
                    "document_type": "powerhouse/todo-list",
                    "parent_folder": "f",
                },
            },
            {
                "type": "ADD_FILE",
                "input": {"id": "doc-2", "name": "Two", "document_type": "powerhouse/todo-list"},
            },
        ],
    )
    assert await done(reactor, add.id) is JobStatus.READ_READY
    assert await reactor.get_children("drv") == ["doc-1", "doc-2"]
    rm = await reactor.execute("drv", "main", [{"type": "DELETE_NODE", "input": {"id": "f"}}])
    assert await done(reactor, rm.id) is JobStatus.READ_READY
    assert await reactor.get_children("drv") == ["doc-2"]
