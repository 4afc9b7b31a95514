"""ReactorClient: waits for READ_READY and returns documents; signs actions
when it has a signer; raises when a job fails."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reactor.api.module import ReactorModule
from reactor.api.reactor import ActionLike, Reactor, _parse_request, _spec
from reactor.application.subscriptions import Callback, SearchFilter
from reactor.domain.actions import Action, ActionSpec
from reactor.domain.batch import BatchRequest, lookup_ids, plan_batch
from reactor.domain.document import Document, PagedResults
from reactor.domain.errors import JobFailedError
from reactor.domain.history import HistoryError, LoggedLane, Replayer
from reactor.domain.jobs import ConsistencyToken, JobInfo, JobStatus
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel
from reactor.domain.reduction import needs_history
from reactor.domain.signing import Signer, sign_action
from reactor.runtime.gc_tuning import gc_paused
from reactor.storage.document_view import DocumentView
from reactor.storage.operation_store import OperationStore


class ReactorClient:
    def __init__(self, module: ReactorModule, signer: Signer | None = None, timeout: float = 60.0):
        self.module = module
        self.reactor: Reactor = module.reactor
        self.signer = signer
        self.timeout = timeout

    # -- reads ----------------------------------------------------------------

    async def get(self, identifier: str) -> Document:
        return await self.reactor.get_by_id_or_slug(identifier)

    async def get_children(self, document_id: str) -> PagedResults:
        ids = await self.reactor.get_children(document_id)
        return PagedResults(results=[await self.reactor.get(i) for i in ids], total=len(ids))

    async def get_parents(self, document_id: str) -> PagedResults:
        ids = await self.reactor.get_parents(document_id)
        return PagedResults(results=[await self.reactor.get(i) for i in ids], total=len(ids))

    async def subscribe(
        self, search: SearchFilter | Mapping[str, Any], callback: Callback
    ) -> Callable[[], None]:
        """Calls `callback(change)` for created/updated/deleted/relationship
        changes of matching documents, whichever process wrote them."""
        return await self.module.subscription_manager.subscribe(
            dict(search) if isinstance(search, Mapping) else search, callback
        )

    # -- writes (each waits for READ_READY) -----------------------------------

    async def create_empty(
        self,
        document_type: str,
        *,
        document_id: str | None = None,
        slug: str | None = None,
        name: str = "",
    ) -> Document:
        doc_id = document_id or str(uuid.uuid4())
        create: dict[str, Any] = {"document_type": document_type, "name": name}
        if slug is not None:
            create["slug"] = slug
        await self.execute_batch({"jobs": [_create_job("create", doc_id, create)]})
        return await self.reactor.get(doc_id)

    async def create(self, document: Document | Mapping[str, Any]) -> Document:
        """Creates a document from a header (id, slug, name, document_type)."""
        header = (
            document.header.model_dump()
            if isinstance(document, Document)
            else dict(document.get("header", document))
        )
        return await self.create_empty(
            header["document_type"],
            document_id=header.get("id"),
            slug=header.get("slug"),
            name=header.get("name") or "",
        )

    async def create_document_in_drive(
        self,
        drive_id: str,
        document: Document | Mapping[str, Any],
        parent_folder: str | None = None,
    ) -> Document:
        header = (
            document.header.model_dump()
            if isinstance(document, Document)
            else dict(document.get("header", document))
        )
        doc_id = header.get("id") or str(uuid.uuid4())
        create: dict[str, Any] = {
            "document_type": header["document_type"],
            "name": header.get("name") or "",
        }
        if header.get("slug"):
            create["slug"] = header["slug"]
        await self.execute_batch(
            {
                "jobs": [
                    _create_job("create", doc_id, create),
                    {
                        "key": "file",
                        "document_id": drive_id,
                        "depends_on": ["create"],
                        "actions": [
                            {
                                "type": "ADD_FILE",
                                "input": {
                                    "id": doc_id,
                                    "name": create["name"] or doc_id,
                                    "document_type": create["document_type"],
                                    "parent_folder": parent_folder,
                                },
                            }
                        ],
                    },
                ]
            }
        )
        return await self.reactor.get(doc_id)

    async def execute(
        self, document_id: str, branch: str, actions: Sequence[ActionLike]
    ) -> Document:
        specs = [_spec(a) for a in actions]
        scope = next((s.scope for s in specs if s.scope), "global")
        result = await self.execute_batch(
            {
                "jobs": [
                    {
                        "key": "job",
                        "document_id": document_id,
                        "branch": branch,
                        "scope": scope,
                        "actions": [s.model_dump(exclude_none=True) for s in specs],
                    }
                ]
            }
        )
        token = result["job"].consistency_token
        return await self.reactor.get(document_id, consistency_token=token, branch=branch)

    async def execute_batch(self, request: BatchRequest | Mapping[str, Any]) -> dict[str, JobInfo]:
        """Runs the batch until every job is final; raises JobFailedError
        naming every failed job (the error's `.jobs` holds all results)."""
        with gc_paused():
            req = _parse_request(request, self.reactor.config.limits)
        if self.signer is not None:
            req = await self._signed(req)
        result = await self.reactor.execute_batch(req)
        # Each job as soon as it is final (Reactor.wait_for_job): the documents
        # are readable before the batch's workflow has closed.
        finals = await asyncio.gather(
            *(self.reactor.wait_for_job(j.id) for j in result.jobs.values())
        )
        infos = {j.key: j for j in finals}
        failed = [j for j in infos.values() if j.status is JobStatus.FAILED]
        if failed:
            detail = "; ".join(
                f"{j.key}: {j.error.type}: {j.error.message}" if j.error else j.key for j in failed
            )
            error = JobFailedError(f"{len(failed)} job(s) failed: {detail}")
            error.jobs = infos  # type: ignore[attr-defined]
            raise error
        return infos

    async def rename(self, document_id: str, name: str, branch: str = "main") -> Document:
        return await self.execute(
            document_id, branch, [{"type": "SET_NAME", "input": {"name": name}}]
        )

    async def move_children(
        self, source_parent: str, target_parent: str, child_ids: Sequence[str], branch: str = "main"
    ) -> None:
        def rel(kind: str, parent: str) -> dict[str, Any]:
            return {
                "key": f"{kind}-{parent}",
                "document_id": parent,
                "branch": branch,
                "scope": "document",
                "actions": [{"type": kind, "input": {"target_id": c}} for c in child_ids],
            }

        await self.execute_batch(
            {
                "jobs": [
                    rel("REMOVE_RELATIONSHIP", source_parent),
                    rel("ADD_RELATIONSHIP", target_parent),
                ]
            }
        )

    async def delete_document(self, document_id: str, branch: str = "main") -> None:
        await self.delete_documents([document_id], branch)

    async def delete_documents(self, document_ids: Sequence[str], branch: str = "main") -> None:
        await self.execute_batch(
            {
                "jobs": [
                    {
                        "key": d,
                        "document_id": d,
                        "branch": branch,
                        "scope": "document",
                        "actions": [{"type": "DELETE_DOCUMENT"}],
                    }
                    for d in document_ids
                ]
            }
        )

    async def wait_consistent(self, token: ConsistencyToken) -> None:
        await self.reactor.consistency.wait(token, self.timeout)

    # -- signing --------------------------------------------------------------

    async def _signed(self, req: BatchRequest) -> BatchRequest:
        """Signs every action over the state it will apply to, by replaying
        the batch locally in lane order from the documents' current heads. A
        concurrent writer makes the signature stale: the job then fails
        verification rather than applying to a state its signer never saw."""
        assert self.signer is not None
        reactor = self.reactor
        existing = await reactor.document_view.lookup(*lookup_ids(req))
        plan = plan_batch(req, reactor.registry, existing, reactor.config.limits)
        # A lane an UNDO, REDO or PRUNE touches is followed through its log,
        # as the worker does: what such an action leaves depends on history.
        with_history = {(p.document_id, p.scope, p.branch) for p in plan.jobs if needs_history(p)}
        lanes: dict[tuple[str, str, str], _SigningLane] = {}
        jobs = []
        for job, planned in zip(req.jobs, plan.jobs, strict=True):
            key = (planned.document_id, planned.scope, planned.branch)
            if key not in lanes:
                model = None
                if planned.scope != "document":
                    model = reactor.registry.get(planned.document_type)
                lanes[key] = await self._lane(*key, model, key in with_history)
            lane = lanes[key]
            signed: list[ActionSpec] = []
            for action in planned.actions:
                signed_action = sign_action(self.signer, action, planned.document_id, lane.digest())
                signed.append(_spec(signed_action))
                lane.apply(action)
            jobs.append(job.model_copy(update={"actions": signed}))
        return req.model_copy(update={"jobs": jobs, "batch_id": plan.batch_id})

    async def _lane(
        self,
        document_id: str,
        scope: str,
        branch: str,
        model: DocumentModel | None,
        with_history: bool,
    ) -> _SigningLane:
        async with self.reactor.db.pool.acquire() as conn:
            if with_history and model is not None:
                log = await OperationStore.load_range(
                    conn, document_id, scope, branch, 0, _WHOLE_LOG
                )
                replay = Replayer(model, scope, LaneReducer.initial(model, scope))
                for op in log:
                    replay.apply(op)
                return _SigningLane(replay.lane, LoggedLane(replay.lane, model, scope, log))
            state = await DocumentView.head_state(conn, document_id, scope, branch)
        if state is None:
            state = LaneReducer.initial(model, scope).state()
        return _SigningLane(LaneReducer(model, scope, state), None)


# Past any lane's last index (indexes are PostgreSQL integers).
_WHOLE_LOG = 2**31 - 1


class _SigningLane:
    """A lane's state as a signer follows a batch through it. With its log,
    an UNDO, REDO or PRUNE leaves what the worker will compute (the same
    `LoggedLane`). A history action the lane cannot take leaves it as it is:
    the job fails on the worker with that action's named error, whatever
    comes after it."""

    def __init__(self, lane: LaneReducer, logged: LoggedLane | None):
        self._lane = lane
        self._logged = logged

    def digest(self) -> str:
        return (self._logged.lane if self._logged is not None else self._lane).digest()

    def apply(self, action: Action) -> None:
        if self._logged is None:
            self._lane.apply(action)
            return
        with contextlib.suppress(HistoryError):
            self._logged.apply(action)


class ReactorClientBuilder:
    def __init__(self) -> None:
        self._module: ReactorModule | None = None
        self._signer: Signer | None = None

    def with_reactor_module(self, module: ReactorModule) -> ReactorClientBuilder:
        self._module = module
        return self

    def with_signer(self, signer: Signer) -> ReactorClientBuilder:
        self._signer = signer
        return self

    def build(self) -> ReactorClient:
        if self._module is None:
            raise ValueError("call with_reactor_module(module) first")
        return ReactorClient(self._module, self._signer)


def _create_job(key: str, document_id: str, create: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": document_id,
        "scope": "document",
        "actions": [{"type": "CREATE_DOCUMENT", "input": create}],
    }
