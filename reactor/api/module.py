"""ReactorModule: the reactor and every component behind it, as the builder
opened them once, for tooling, tests and workers; and the worker assembled
from them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.batch import BatchActivities
from activities.reactions import ReactionActivities
from activities.sync import SyncActivities
from reactor.api.reactor import Reactor
from reactor.application.change_feed import ChangeFeed
from reactor.application.events import EventBus
from reactor.application.job_tracker import JobTracker
from reactor.application.read_models import ReadModelCoordinator
from reactor.application.subscriptions import SubscriptionManager
from reactor.application.write_cache import WriteCache
from reactor.domain.merge import DEFAULT_MAX_REWIND
from reactor.domain.model import ModelRegistry
from reactor.domain.signing import SignatureVerifier, verification_fingerprint
from reactor.observability.worker import ActivityAttributesInterceptor, TracedJobApplier
from reactor.reactions.drain import ReactionDrainer
from reactor.reactions.manager import ProcessorManager
from reactor.reactions.router import ReactionRouter
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.keyframe_store import KeyframeStore
from reactor.storage.notify import READ_MODEL_CHANNEL, CommitNotifier, NotifyListener, channel_name
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import OperationStore
from reactor.storage.relationship_index import RelationshipIndex
from reactor.storage.stores import Stores
from reactor.storage.sync_channels import Channel, ChannelStore, PostgresChannelStore
from workflows.batch import BatchWorkflow
from workflows.reaction import ReactionWorkflow
from workflows.sync import SyncWorkflow

if TYPE_CHECKING:
    from reactor.api.http.auth import JwtHandler

# Reaction workflows a router signals at once for one commit.
ROUTER_FANOUT = 2


@dataclass
class WorkerConfig:
    max_parallel_jobs: int = 8
    keyframe_interval: int = 100
    notify: bool = True
    # A load rewinding more local operations fails (ExcessiveReshuffleError).
    max_rewind: int = DEFAULT_MAX_REWIND
    graceful_shutdown: timedelta = timedelta(seconds=30)


class ReactorWorker:
    """A Temporal worker plus, when reactions are registered, the router that
    wakes their workflows. Use as `async with`, or `run()` / `shutdown()`."""

    def __init__(
        self,
        worker: Worker,
        router: ReactionRouter | None = None,
        subscribe: Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]] | None = None,
        *,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ):
        self.worker = worker
        self.router = router
        self._subscribe = subscribe
        # What the module starts with its worker (its declared sync channels).
        self._on_start = on_start

    async def __aenter__(self) -> ReactorWorker:
        await self.worker.__aenter__()
        if self.router is not None:
            await self.router.start(self._subscribe)
        if self._on_start is not None:
            try:
                await self._on_start()
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.router is not None:
            await self.router.stop()
        await self.worker.__aexit__(*exc)

    async def run(self) -> None:
        """Runs until shutdown() (the router only sends signals, so it can
        start before the worker polls)."""
        if self.router is not None:
            await self.router.start(self._subscribe)
        try:
            if self._on_start is not None:
                await self._on_start()
            await self.worker.run()
        finally:
            if self.router is not None:
                await self.router.stop()

    async def shutdown(self) -> None:
        if self.router is not None:
            await self.router.stop()
        await self.worker.shutdown()


@dataclass
class ReactorModule:
    reactor: Reactor
    stores: Stores
    client: Client
    registry: ModelRegistry
    event_bus: EventBus
    read_model_coordinator: ReadModelCoordinator
    subscription_manager: SubscriptionManager
    processor_manager: ProcessorManager
    write_cache: WriteCache
    listener: NotifyListener | None
    worker_config: WorkerConfig = field(default_factory=WorkerConfig)
    signature_verifier: SignatureVerifier | None = None
    poll_interval: float = 1.0
    # The HTTP API's token checking (ReactorBuilder.with_jwt_handler).
    jwt_handler: JwtHandler | None = None
    # Channels declared with ReactorBuilder.with_sync: stored, and their
    # workflows started, when a worker of this module starts.
    sync_channels: list[Channel] = field(default_factory=list)

    @property
    def change_feed(self) -> ChangeFeed:
        """The one tail of the global log: subscriptions and the HTTP event
        stream both read it."""
        return self.reactor.change_feed

    @property
    def database(self) -> Database:
        return self.stores.database

    @property
    def operation_store(self) -> OperationStore:
        return self.stores.operations

    @property
    def keyframe_store(self) -> KeyframeStore:
        return self.stores.keyframes

    @property
    def operation_index(self) -> OperationIndex:
        return self.stores.operation_index

    @property
    def document_view(self) -> DocumentView:
        return self.stores.documents

    @property
    def document_indexer(self) -> RelationshipIndex:
        return self.stores.relationships

    @property
    def job_tracker(self) -> JobTracker:
        return self.reactor.job_tracker

    @property
    def channel_store(self) -> ChannelStore:
        return PostgresChannelStore(self.database)

    async def start_sync(self, task_queue: str | None = None) -> None:
        """Stores the declared channels (a stored one of the same name takes
        their url, token and filter) and starts, or wakes, their workflows
        on `task_queue`."""
        # Imported when used: the module does not depend on the sync workflow's imports.
        from workflows.sync import start_channel

        store = self.channel_store
        for channel in self.sync_channels:
            await store.configure(channel)
            await start_channel(
                self.client, channel.name, task_queue or self.reactor.config.task_queue
            )

    def create_worker(self, task_queue: str | None = None) -> ReactorWorker:
        """The one place a worker is assembled: the batch workflow and its
        activities on this module's task queue, sharing its stores, write
        cache, read models and signature verifier. With processors it also
        hosts their reaction workflows and drains, and routes commits to
        them: local commits directly, other processes' commits through the
        module's listener (NOTIFY) when it has one; the poll covers the rest.
        Use as `async with`. A worker on the reactor's own task queue and
        client turns eager start on (unless the builder turned it off): the
        reactor's batches then start on it without a matching round trip."""
        queue = task_queue or self.reactor.config.task_queue
        if (
            self.reactor.config.eager_start is None
            and queue == self.reactor.config.task_queue
            and self.client is self.reactor.client
        ):
            self.reactor.eager_start = True
        cfg = self.worker_config
        processors = list(self.processor_manager.processors.values())
        drainer = (
            ReactionDrainer(self.database, processors, reactor=self.reactor) if processors else None
        )
        router = (
            ReactionRouter(
                self.client,
                queue,
                processors,
                poll_interval=self.poll_interval,
                fanout=ROUTER_FANOUT,
                wake_local=drainer.wake_local,
            )
            if drainer is not None
            else None
        )
        read_models = (
            self.read_model_coordinator if self.read_model_coordinator.read_models else None
        )
        applier = TracedJobApplier(  # a JobApplier with a span per job
            self.database,
            self.registry,
            cache=self.write_cache,
            keyframe_interval=cfg.keyframe_interval,
            max_rewind=cfg.max_rewind,
            notify_channel=channel_name() if cfg.notify else None,
            instance_id=self.listener.instance_id if self.listener is not None else None,
            verifier=self.signature_verifier,
            on_commit=router.route if router is not None else None,
            # With no read model to catch up, a commit is READ_READY as it lands.
            read_ready_on_commit=read_models is None,
        )
        acts = BatchActivities(
            applier,
            self.stores.ledger,
            read_models=read_models,
            max_parallel=cfg.max_parallel_jobs,
            # With read models, a job is read-ready once they caught up: said
            # on their channel, where reaction routers do not listen.
            ready_notifier=CommitNotifier(
                self.database.pool, READ_MODEL_CHANNEL, applier.instance_id
            )
            if cfg.notify and read_models is not None
            else None,
        )
        # Every worker hosts the sync channels' workflows: a channel added
        # from the command line runs on whichever worker polls its queue.
        sync = SyncActivities(self)
        workflows: list[type] = [BatchWorkflow, SyncWorkflow]
        activities: list[Callable[..., Any]] = [
            acts.apply_jobs,
            acts.load_plan,
            sync.sync_round,
            sync.wait_for_changes,
        ]
        if drainer is not None:
            workflows.append(ReactionWorkflow)
            activities.append(ReactionActivities(drainer).drain_reaction)
        return ReactorWorker(
            Worker(
                self.client,
                task_queue=queue,
                workflows=workflows,
                activities=activities,
                graceful_shutdown_timeout=cfg.graceful_shutdown,
                interceptors=[ActivityAttributesInterceptor()],
                # `reactor doctor` reads how each worker of a task queue
                # verifies signatures from here: a chunk is checked or not
                # depending on which worker takes it, so they must agree.
                identity=f"{self.client.identity};"
                f"verify={verification_fingerprint(self.signature_verifier)}",
            ),
            router,
            self._remote_commits if router is not None and self.listener is not None else None,
            on_start=(lambda: self.start_sync(queue)) if self.sync_channels else None,
        )

    def _remote_commits(self, handler: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Feeds `handler` the commits of other processes, as they are
        announced on the listener's commit channel."""
        assert self.listener is not None
        store = self.operation_store
        me = store.instance_id

        def remote(channel: str, payload: dict[str, Any]) -> None:
            if channel == store.channel and payload.get("by") != me:
                handler(payload)

        return self.listener.add_handler(remote)

    async def on_notified(self, handler: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Fan commit notifications from other processes out (e.g. to SSE)."""
        return await self.operation_store.notify(handler)

    async def close(self) -> None:
        await asyncio.gather(
            self.job_tracker.close(), self.subscription_manager.close(), return_exceptions=True
        )
        if self.listener is not None:
            await self.listener.stop()
        await self.reactor.close()
