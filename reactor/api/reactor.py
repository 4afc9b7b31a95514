"""The reactor: writes start batch workflows and return JobInfo as soon as
Temporal durably accepted them; reads go to the document view."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from reactor.api.batch_results import BatchResults
from reactor.api.coalescer import ExecuteCoalescer
from reactor.api.started import StartedBatches
from reactor.api.submission import Submission
from reactor.application.change_feed import ChangeFeed
from reactor.application.consistency import ConsistencyWaiter
from reactor.application.events import EventBus
from reactor.application.job_tracker import JobTracker
from reactor.application.ready_notices import ReadyNotices
from reactor.application.verify import Verification, verify_document
from reactor.domain.actions import Action, ActionSpec
from reactor.domain.batch import (
    BatchRequest,
    JobRequest,
    check_arrival,
    check_counts,
    lookup_ids,
    plan_batch,
)
from reactor.domain.document import Document, PagedResults
from reactor.domain.errors import (
    AmbiguousIdentifierError,
    DocumentNotFoundError,
    JobNotFoundError,
    ReactorError,
    ShutdownError,
    ValidationError,
)
from reactor.domain.jobs import (
    ConsistencyToken,
    Coordinate,
    JobError,
    JobInfo,
    JobStatus,
    expand_spans,
    job_id_for,
    parse_job_id,
    recorded_spans,
    workflow_id_for,
)
from reactor.domain.limits import Limits
from reactor.domain.load_plan import check_load_ids, plan_loads
from reactor.domain.model import ModelRegistry
from reactor.domain.sync import LoadRequest, OperationRef, SyncOperation
from reactor.domain.workflow_io import BatchConfig, BatchSummary, JobView
from reactor.observability.tracing import annotate_batch, traced_batch
from reactor.runtime.gc_tuning import gc_paused
from reactor.storage.stores import Stores
from workflows.batch import BatchWorkflow

# The batch workflow's memo key for its request's hash (`BatchPlan.request_hash`).
REQUEST_HASH_MEMO = "request_hash"


ActionLike = Action | ActionSpec | Mapping[str, Any]
_M = TypeVar("_M", bound=pydantic.BaseModel)
_ONE_LOAD = "loads[0]."  # how load_batch names the fields of load()'s one request


class BatchResult(pydantic.BaseModel):
    batch_id: str
    jobs: dict[str, JobInfo]


@dataclass
class ShutdownHandle:
    is_shutdown: bool
    completed: asyncio.Future[None]


@dataclass
class ReactorConfig:
    task_queue: str = "reactor"
    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: Limits = field(default_factory=Limits)
    # Eager workflow start: Temporal hands a batch's first workflow task to a
    # worker of this process in the start's answer, skipping the task queue's
    # matching. None: on once the module creates a worker on this task queue
    # (ReactorModule.create_worker), whose client is this reactor's.
    eager_start: bool | None = None


class Reactor:
    """Built by ReactorBuilder, which opens the stores and the components
    behind them once for the whole process."""

    def __init__(
        self,
        *,
        stores: Stores,
        client: Client,
        registry: ModelRegistry,
        config: ReactorConfig,
        event_bus: EventBus,
        consistency: ConsistencyWaiter,
        job_tracker: JobTracker,
        ready_notices: ReadyNotices,
        change_feed: ChangeFeed,
    ):
        self.db = stores.database
        self.document_view = stores.documents
        self.operation_store = stores.operations
        self.relationships = stores.relationships
        self.ledger = stores.ledger
        self.client = client
        self.registry = registry
        self.config = config
        self.event_bus = event_bus
        self.consistency = consistency
        self.job_tracker = job_tracker
        self.ready_notices = ready_notices
        # The process's one tail of the global log: subscriptions and the
        # HTTP event stream read it.
        self.change_feed = change_feed
        # Coalesced groups stay within the batch limit (a group rejected as a
        # whole is resubmitted job by job, which is correct but slow).
        self._coalescer = ExecuteCoalescer(
            self._submit_jobs, max_jobs=min(500, self.config.limits.max_jobs_per_batch)
        )
        self._preparing = asyncio.Lock()  # FIFO: see execute_batch
        # Batches this reactor started and has not seen finish; kill() awaits
        # them. Handles only: no RPC is open until someone waits.
        self._started = StartedBatches()
        self._batch_results = BatchResults(self._poll_result, on_closed=self._started.forget)
        self._shutdown: ShutdownHandle | None = None
        # Only a worker on this very client can take an eager task: asking
        # without one costs nothing (the SDK drops the request), but says
        # nothing true either.
        self.eager_start = config.eager_start is True
        self._close_first: list[Callable[[], Awaitable[None]]] = []

    # -- writes ---------------------------------------------------------------

    @traced_batch  # the root span of the batch's trace
    async def execute_batch(self, request: BatchRequest | Mapping[str, Any]) -> BatchResult:
        """Validates the whole request, stores it, and starts its workflow.
        A rejected request raises ValidationError and starts nothing."""
        self._check_open()
        # From here kill() waits for this submission: it fails, or starts its
        # batch and kill() awaits that batch too.
        with self._started.submitting():
            return await self._submit_batch(request)

    async def _submit_batch(self, request: BatchRequest | Mapping[str, Any]) -> BatchResult:
        # One batch at a time through validation, planning and storage, in
        # submission order: with many submissions in flight, interleaving
        # them would start the first workflow only once every batch was
        # planned. Starting the workflows overlaps.
        async with self._preparing:
            self._check_open()  # kill() may have come while this one queued
            limits = self.config.limits
            with gc_paused():
                req = _parse_request(request, limits)
                # Documents, relationship targets, and the children of those
                # deleted: one query.
                ids, parents = lookup_ids(req)
            existing = await self.document_view.lookup(ids, parents)
            with gc_paused():
                plan = plan_batch(req, self.registry, existing, limits)
                annotate_batch(plan)
                sub = Submission.of(plan, self.config.batch)
                # The plan and the parsed request go now, before any await
                # and while the collector is off (see reactor/api/submission.py).
                del plan, req
            if sub.rows is not None:
                await self.ledger.store_batch(sub.rows)
        return await self._started_batch(sub)

    async def _started_batch(self, sub: Submission) -> BatchResult:
        # Before the start: with an eager start its jobs may be announced
        # before the start returns.
        self.ready_notices.submitted(sub.batch_id, sub.jobs)
        handle = await self._start(sub)
        self._started.remember(sub.batch_id, handle)
        result = BatchResult(
            batch_id=sub.batch_id,
            jobs={
                key: JobInfo(
                    id=job_id_for(sub.batch_id, index),
                    key=key,
                    batch_id=sub.batch_id,
                    document_id=document_id,
                )
                for index, (key, document_id) in enumerate(sub.jobs)
            },
        )
        await self.job_tracker.submitted(
            list(result.jobs.values()), handle, lambda: self.batch_jobs(sub.batch_id)
        )
        return result

    async def _start(self, sub: Submission) -> WorkflowHandle[Any, Any]:
        """Starts the batch's workflow, or returns the one a resubmission of
        the same request finds. The request's hash rides in the workflow's
        memo: inline batches are stored nowhere else, so that is where a
        different request under a used batch_id is caught."""
        wf_id = workflow_id_for(sub.batch_id)
        attributes = sub.attributes
        reuse = WorkflowIDReusePolicy.REJECT_DUPLICATE
        while True:
            try:
                return await self.client.start_workflow(
                    BatchWorkflow.run,
                    sub.start,
                    id=wf_id,
                    task_queue=self.config.task_queue,
                    # A batch id names one batch: a running or closed batch
                    # with this id raises WorkflowAlreadyStartedError, and
                    # the request is compared with the one it ran.
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=reuse,
                    memo={REQUEST_HASH_MEMO: sub.digest},
                    static_summary=sub.summary,
                    static_details=sub.details,
                    search_attributes=attributes,
                    # With a worker in this process, its first task comes back
                    # in the start response: one round trip less. A request the
                    # server or the worker cannot take starts the usual way.
                    request_eager_start=self.eager_start,
                )
            except WorkflowAlreadyStartedError:
                handle = self.client.get_workflow_handle_for(BatchWorkflow.run, wf_id)
                if await self._resubmitted(handle, sub.batch_id, sub.digest):
                    return handle
                if reuse is WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY:
                    raise ReactorError(
                        f"batch {sub.batch_id!r}: its workflow ended without finishing "
                        "and could not be started again"
                    ) from None
                # Same request, but its workflow failed or was terminated:
                # run it again (the job ledger keeps applied jobs applied).
                reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
            except RPCError as exc:
                # A cluster without our search attributes (`reactor
                # setup-search-attributes` not run): start without them.
                if (
                    attributes is None
                    or exc.status != RPCStatusCode.INVALID_ARGUMENT
                    or "search attribute" not in exc.message.lower()
                ):
                    raise
                logging.getLogger("reactor").warning(
                    "starting batch %s without search attributes: %s", sub.batch_id, exc
                )
                attributes = None

    async def _resubmitted(
        self, handle: WorkflowHandle[Any, Any], batch_id: str, digest: str
    ) -> bool:
        """For a batch id already in use, whose workflow ran this very request:
        True if that workflow is running or completed, False if it ended
        without finishing (failed, terminated, timed out, canceled). A
        different request raises ValidationError, and nothing was written."""
        description = await handle.describe()
        recorded = (await description.memo()).get(REQUEST_HASH_MEMO)
        if recorded != digest:
            raise ValidationError(
                f"batch_id {batch_id!r} was already used for a different request",
                field="batch_id",
            )
        return description.status in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.COMPLETED,
            WorkflowExecutionStatus.CONTINUED_AS_NEW,
        )

    async def execute(
        self,
        document_id: str,
        branch: str,
        actions: Sequence[ActionLike],
        *,
        scope: str | None = None,
    ) -> JobInfo:
        """One job: `actions` on one document. The scope defaults to the
        actions' own scope (they must agree). Concurrent calls share batch
        workflows (see reactor/api/coalescer.py)."""
        self._check_open()
        specs = [_spec(a) for a in actions]
        job_scope = scope or next((s.scope for s in specs if s.scope), "global")
        return await self._coalescer.execute(
            JobRequest(
                key="job", document_id=document_id, branch=branch, scope=job_scope, actions=specs
            )
        )

    async def load(
        self,
        document_id: str,
        branch: str,
        operations: Sequence[SyncOperation | Mapping[str, Any]],
        *,
        scope: str | None = None,
        after: OperationRef | Mapping[str, Any] | None = None,
        document_type: str | None = None,
        origin: str | None = None,
    ) -> JobInfo:
        """Appends operations another reactor produced (reactor/domain/merge.py):
        one job, verified against the lane and merged with local operations
        when both wrote. `after` is the sender's operation before the first
        one; `origin` the sender's reactor id. The scope defaults to the
        operations' own."""
        ops = [_sync_operation(op, f"operations[{k}]") for k, op in enumerate(operations)]
        if not ops:
            raise ValidationError("no operations to load", field="operations")
        request = {
            "document_id": document_id,
            "branch": branch,
            "scope": scope or ops[0].action.scope,
            "document_type": document_type,
            "after": after,
            "operations": ops,
        }
        try:
            result = await self.load_batch([request], origin=origin)
        except ValidationError as exc:
            # Named as this call's arguments: `operations[k]…`, `after…`.
            field = exc.field
            if field is not None and field.startswith(_ONE_LOAD):
                field = field[len(_ONE_LOAD) :]
            raise ValidationError(exc.reason, job=exc.job, field=field) from None
        return result.jobs["load-0"]

    async def load_batch(
        self,
        loads: Sequence[LoadRequest | Mapping[str, Any]],
        *,
        origin: str | None = None,
        attempt: int = 0,
    ) -> BatchResult:
        """One load job per request (keys `load-0`, `load-1`, ...), in one
        batch; jobs on the same document run in the order given. The batch
        is named by its content: the same loads again are the same batch,
        unless `attempt` (a retry after a failure) differs. A request the
        reactor cannot take raises ValidationError naming `loads[i]` and the
        field, and nothing starts."""
        self._check_open()
        parsed = [_load_request(load, f"loads[{i}]") for i, load in enumerate(loads)]
        check_load_ids(parsed)  # before the ids reach a query
        with self._started.submitting():
            async with self._preparing:
                self._check_open()
                ids = sorted({load.document_id for load in parsed})
                existing = await self.document_view.lookup(ids, [])
                plan = plan_loads(
                    parsed,
                    self.registry,
                    existing,
                    origin=origin,
                    attempt=attempt,
                    limits=self.config.limits,
                )
                annotate_batch(plan)
                sub = Submission.of(plan, self.config.batch)
                del plan
                if sub.rows is not None:
                    await self.ledger.store_batch(sub.rows)
            return await self._started_batch(sub)

    async def _submit_jobs(self, request: BatchRequest) -> dict[str, JobInfo]:
        return (await self.execute_batch(request)).jobs

    async def create(
        self,
        document_type: str,
        *,
        document_id: str | None = None,
        slug: str | None = None,
        name: str = "",
        branch: str = "main",
    ) -> JobInfo:
        create_input: dict[str, Any] = {"document_type": document_type, "name": name}
        if slug is not None:
            create_input["slug"] = slug
        return await self.execute(
            document_id or str(uuid.uuid4()),
            branch,
            [ActionSpec(type="CREATE_DOCUMENT", input=create_input, scope="document")],
        )

    async def delete_document(self, document_id: str, branch: str = "main") -> JobInfo:
        return await self.execute(
            document_id, branch, [ActionSpec(type="DELETE_DOCUMENT", scope="document")]
        )

    async def add_children(
        self, parent_id: str, child_ids: Iterable[str], branch: str = "main"
    ) -> JobInfo:
        return await self._relationships(parent_id, child_ids, branch, "ADD_RELATIONSHIP")

    async def remove_children(
        self, parent_id: str, child_ids: Iterable[str], branch: str = "main"
    ) -> JobInfo:
        return await self._relationships(parent_id, child_ids, branch, "REMOVE_RELATIONSHIP")

    async def _relationships(
        self, parent_id: str, child_ids: Iterable[str], branch: str, kind: str
    ) -> JobInfo:
        actions = [
            ActionSpec(type=kind, input={"target_id": c}, scope="document") for c in child_ids
        ]
        return await self.execute(parent_id, branch, actions)

    # -- jobs -----------------------------------------------------------------

    async def get_job_status(self, job_id: str) -> JobInfo:
        """From the batch workflow's state (a query: works while it runs and
        after it closed, from any process). A RUNNING job whose write already
        committed reports WRITE_READY; one this reactor submitted whose commit
        was just announced READ_READY, and which the job ledger confirms
        (reactor/application/ready_notices.py), is answered from the ledger:
        what the workflow reports a moment later."""
        batch_id, index = parse_job_id(job_id)
        announced = await self.ready_notices.confirmed(job_id)
        if announced is not None:
            return announced
        handle = self.client.get_workflow_handle(workflow_id_for(batch_id))
        try:
            view = await handle.query(BatchWorkflow.job, index)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFoundError(
                    f"job {job_id!r} not found (no batch {batch_id!r})", field="job_id"
                ) from None
            raise
        except WorkflowQueryFailedError:
            # The query refuses an index past the end; any other failure is
            # the workflow's, and stays as it is.
            total = (await handle.query(BatchWorkflow.summary)).total
            if index < total:
                raise
            raise JobNotFoundError(
                f"batch {batch_id!r} has no job {index} "
                f"(it has {total} job{'' if total == 1 else 's'})",
                field="job_id",
            ) from None
        info = _job_info(batch_id, view)
        if info.status is JobStatus.RUNNING:
            outcome = await self.ledger.outcome(job_id)
            if outcome is not None and outcome["status"] == "applied":
                info.status = JobStatus.WRITE_READY
                info.consistency_token = _token(
                    expand_spans(recorded_spans(outcome["coordinates"]))
                )
        return info

    async def batch_summary(self, batch_id: str) -> BatchSummary:
        handle = self.client.get_workflow_handle(workflow_id_for(batch_id))
        return await handle.query(BatchWorkflow.summary)

    async def batch_jobs(self, batch_id: str, page_size: int = 500) -> list[JobInfo]:
        handle = self.client.get_workflow_handle(workflow_id_for(batch_id))
        out: list[JobInfo] = []
        while True:
            views = await handle.query(BatchWorkflow.jobs, args=[len(out), page_size])
            out.extend(_job_info(batch_id, v) for v in views)
            if len(views) < page_size:
                return out

    async def wait_for_batch(self, batch_id: str) -> list[JobInfo]:
        """Every job's final JobInfo, once the batch workflow has finished
        (its summary and search attributes are final too). To act on a job
        as soon as it is READ_READY, use `wait_for_job`."""
        summary = await self._batch_results.wait(batch_id)
        if summary.jobs is not None:
            return [_job_info(batch_id, v) for v in summary.jobs]
        return await self.batch_jobs(batch_id)

    async def wait_for_job(self, job_id: str, *, timeout: float | None = None) -> JobInfo:
        """The job's final JobInfo (READ_READY or FAILED): from its commit's
        read-ready announcement, once the ledger confirmed it, when that
        comes first (see reactor/application/ready_notices.py; the workflow
        may still be closing then), else from its batch's result, one wait per batch
        however many callers share it."""
        batch_id, index = parse_job_id(job_id)

        async def wait() -> JobInfo:
            if self.ready_notices.listening:
                answer = await self._announced_or_closed(batch_id, job_id)
                if isinstance(answer, JobInfo):
                    return answer
                summary = answer
            else:
                summary = await self._batch_results.wait(batch_id)
            if summary.jobs is not None and index < len(summary.jobs):
                return _job_info(batch_id, summary.jobs[index])
            return await self.get_job_status(job_id)

        return await asyncio.wait_for(wait(), timeout)

    async def _announced_or_closed(self, batch_id: str, job_id: str) -> JobInfo | BatchSummary:
        """Whichever comes first: the job's read-ready announcement or its
        batch's result (the workflow's answer, failures included)."""
        known = await self.ready_notices.confirmed(job_id)
        if known is not None:
            return known
        notice = self.ready_notices.waiter(job_id)
        try:
            return await self._batch_results.race(batch_id, notice)
        finally:
            self.ready_notices.discard(job_id, notice)

    def _poll_result(self, batch_id: str) -> Awaitable[BatchSummary]:
        handle = self._started.get(batch_id) or self.client.get_workflow_handle_for(
            BatchWorkflow.run, workflow_id_for(batch_id)
        )
        return handle.result()

    # -- reads ----------------------------------------------------------------

    async def get(
        self,
        document_id: str,
        *,
        consistency_token: ConsistencyToken | None = None,
        branch: str = "main",
        timeout: float = 10.0,
    ) -> Document:
        """The document; with a consistency token, first waits (bounded by
        `timeout`) until every coordinate is indexed."""
        await self._consistent(consistency_token, timeout)
        doc = await self.document_view.get(document_id, branch=branch)
        if doc is None:
            raise DocumentNotFoundError(f"document {document_id!r} not found")
        return doc

    async def get_by_slug(
        self,
        slug: str,
        *,
        consistency_token: ConsistencyToken | None = None,
        branch: str = "main",
        timeout: float = 10.0,
    ) -> Document:
        await self._consistent(consistency_token, timeout)
        doc = await self.document_view.get_by_slug(slug, branch=branch)
        if doc is None:
            raise DocumentNotFoundError(f"no document with slug {slug!r}")
        return doc

    async def get_by_id_or_slug(
        self,
        identifier: str,
        *,
        consistency_token: ConsistencyToken | None = None,
        branch: str = "main",
        timeout: float = 10.0,
    ) -> Document:
        await self._consistent(consistency_token, timeout)
        by_id = await self.document_view.get(identifier, branch=branch)
        by_slug = await self.document_view.get_by_slug(identifier, branch=branch)
        if by_id is not None and by_slug is not None and by_id.id != by_slug.id:
            raise AmbiguousIdentifierError(
                f"{identifier!r} is the id of document {by_id.id!r} and the slug of document "
                f"{by_slug.id!r}; use get() or get_by_slug()"
            )
        doc = by_id or by_slug
        if doc is None:
            raise DocumentNotFoundError(f"no document with id or slug {identifier!r}")
        return doc

    async def _consistent(self, token: ConsistencyToken | None, timeout: float) -> None:
        if token is not None and token.coordinates:
            await self.consistency.wait(token, timeout)

    async def get_children(self, document_id: str) -> list[str]:
        return await self.relationships.children(document_id)

    async def get_parents(self, document_id: str) -> list[str]:
        return await self.relationships.parents(document_id)

    async def find(
        self,
        *,
        type: str | None = None,
        parent_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        branch: str = "main",
    ) -> PagedResults:
        return await self.document_view.find(
            document_type=type, parent_id=parent_id, cursor=cursor, limit=limit, branch=branch
        )

    async def get_operations(
        self,
        document_id: str,
        *,
        scope: str | None = None,
        branch: str = "main",
        cursor: int = 0,
        limit: int = 100,
    ) -> PagedResults:
        return await self.operation_store.get_operations(
            document_id, scope=scope, branch=branch, cursor=cursor, limit=limit
        )

    async def verify(self, document_id: str) -> Verification:
        """Replays every scope and branch of the document from its first
        operation and compares each stored hash, keyframe and the view's head
        with the replay: `ok`, or the first operation where they part."""
        return await verify_document(self.db, self.registry, document_id)

    # -- lifecycle ------------------------------------------------------------

    def kill(self) -> ShutdownHandle:
        """Stops accepting writes at once; `completed` resolves when every
        batch this reactor started has finished, those whose submission was
        under way at the kill included (a submission still queued for
        validation is refused with ShutdownError instead)."""
        if self._shutdown is None:

            async def drain() -> None:
                await self._started.settled()  # no more batches will start
                handles = self._started.handles()
                await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
                self._started.clear()

            self._shutdown = ShutdownHandle(
                is_shutdown=True, completed=asyncio.ensure_future(drain())
            )
        return self._shutdown

    def close_with(self, close: Callable[[], Awaitable[None]]) -> None:
        """Something `close()` closes first: what a builder opened for this
        reactor alone."""
        self._close_first.append(close)

    async def close(self) -> None:
        closers, self._close_first = self._close_first, []
        for close in closers:
            await close()
        await self._batch_results.close()
        await self.ready_notices.close()
        if self._shutdown is not None and not self._shutdown.completed.done():
            self._shutdown.completed.cancel()
            await asyncio.gather(self._shutdown.completed, return_exceptions=True)
        await self.job_tracker.close()
        await self._started.close()
        await self.change_feed.close()
        await self.db.close()

    def _check_open(self) -> None:
        if self._shutdown is not None:
            raise ShutdownError("the reactor was killed and accepts no more writes")


def _spec(action: ActionLike) -> ActionSpec:
    if isinstance(action, ActionSpec):
        return action
    if isinstance(action, Action):
        return ActionSpec(
            type=action.type,
            input=action.input,
            scope=action.scope,
            id=action.id,
            timestamp=action.timestamp,
            context=action.context,
        )
    return ActionSpec.model_validate(action)


def _parse_request(
    request: BatchRequest | Mapping[str, Any], limits: Limits | None = None
) -> BatchRequest:
    """The request as a BatchRequest, once its size and counts are within
    `limits`: checked on what arrived, before parsing (which costs in
    proportion) and before any query."""
    limits = limits or Limits()
    if isinstance(request, BatchRequest):
        check_counts(request, limits)
        return request
    if not isinstance(request, Mapping):
        raise ValidationError(
            f"a request is a mapping with a 'jobs' list, not a {type(request).__name__}"
        )
    check_arrival(request, limits)
    try:
        return BatchRequest.model_validate(request)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        job: str | None = None
        if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
            jobs = request.get("jobs") or []
            raw = jobs[loc[1]] if loc[1] < len(jobs) else {}
            job = (
                str(raw.get("key")) if isinstance(raw, Mapping) and raw.get("key") else f"#{loc[1]}"
            )
            loc = loc[2:]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        raise ValidationError(err["msg"], job=job, field=path or None) from None


def _sync_operation(op: SyncOperation | Mapping[str, Any], field: str) -> SyncOperation:
    if isinstance(op, SyncOperation):
        return op
    return _parsed(SyncOperation, op, field)


def _load_request(load: LoadRequest | Mapping[str, Any], field: str) -> LoadRequest:
    if isinstance(load, LoadRequest):
        return load
    return _parsed(LoadRequest, load, field)


def _parsed(model: type[_M], data: Any, field: str) -> _M:
    """`data` as `model`, or ValidationError naming the first bad field under `field`."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise ValidationError(err["msg"], field=f"{field}{path}") from None


def _token(coords: list[Coordinate]) -> ConsistencyToken | None:
    return ConsistencyToken(coordinates=coords) if coords else None


def _job_info(batch_id: str, view: JobView) -> JobInfo:
    error: JobError | None = view.error
    return JobInfo(
        id=job_id_for(batch_id, view.index),
        key=view.key,
        batch_id=batch_id,
        document_id=view.document_id,
        status=view.status,
        error=error,
        consistency_token=_token(expand_spans(view.coordinates)),
    )
