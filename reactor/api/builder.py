"""ReactorBuilder: the fluent way to wire a reactor (Powerhouse's builder in
snake_case)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

import asyncpg

from reactor.api.module import ReactorModule, WorkerConfig
from reactor.api.reactor import Reactor, ReactorConfig
from reactor.application.change_feed import ChangeFeed
from reactor.application.consistency import ConsistencyWaiter
from reactor.application.events import EventBus
from reactor.application.job_tracker import JobTracker
from reactor.application.read_models import ReadModel, ReadModelCoordinator
from reactor.application.ready_check import LedgerCheck
from reactor.application.ready_notices import ReadyNotices
from reactor.application.subscriptions import SubscriptionManager
from reactor.application.wakeup import Wakeup
from reactor.application.write_cache import WriteCache
from reactor.domain.errors import ValidationError
from reactor.domain.limits import Limits
from reactor.domain.model import DocumentModel, ModelLoader, ModelRegistry
from reactor.domain.signing import Ed25519Verifier, SignatureVerifier
from reactor.domain.upgrades import UpgradeManifest
from reactor.domain.workflow_io import BatchConfig
from reactor.observability.outage import install_outage_filter
from reactor.reactions.manager import ProcessorManager
from reactor.reactions.processor import Handler, Processor, processor
from reactor.runtime.codec import PayloadKeys
from reactor.runtime.connection import TemporalConnection
from reactor.runtime.process import drain_period
from reactor.runtime.settings import Settings, limits_from_env, load_settings, temporal_from_env
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.migrate import migrate
from reactor.storage.notify import READ_MODEL_CHANNEL, NotifyListener, channel_name
from reactor.storage.stores import Stores
from reactor.storage.sync_channels import Channel

if TYPE_CHECKING:
    from reactor.api.http.auth import JwtHandler

# Connections a pool opens at most; a worker process takes a little more, for
# its parallel jobs besides the reactions and read models it hosts.
DEFAULT_POOL_SIZE = 10
WORKER_POOL_SIZE = 12


class ReactorBuilder:
    def __init__(self) -> None:
        self._models: list[DocumentModel] = []
        self._loaders: list[ModelLoader] = []
        self._manifests: list[UpgradeManifest] = []
        self._database: str | asyncpg.Pool | None = None
        self._pool_size = DEFAULT_POOL_SIZE
        self._temporal_address: str | None = None
        self._namespace: str | None = None
        self._connection: dict[str, Any] = {}
        self._task_queue = "reactor"
        self._migration_strategy = "auto"
        self._batch = BatchConfig()
        self._worker = WorkerConfig()
        self._cache = WriteCache()
        self._logger: logging.Logger | None = None
        self._event_bus: EventBus | None = None
        self._read_models: list[ReadModel] = []
        self._verifier: SignatureVerifier | None = None
        self._signal_handlers = False
        self._notifications = True
        self._processors: list[Processor] = []
        self._poll_interval = 1.0
        self._limits: Limits | None = None
        self._jwt_handler: JwtHandler | None = None
        self._eager_start: bool | None = None
        self._sync: list[Channel] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> ReactorBuilder:
        """A worker process's builder, configured by `settings` alone (see
        Settings.from_env): its models, read models, processors, trusted
        keys, limits and shutdown grace."""
        builder = (
            cls()
            .with_document_models(settings.model_modules())
            .with_database(settings.database_url, pool_size=WORKER_POOL_SIZE)
            .with_temporal(settings.temporal_address, settings.namespace, settings.task_queue)
            .with_limits(settings.limits)
            .with_reaction_poll_interval(settings.reaction_poll_s)
            .with_worker_config(
                WorkerConfig(
                    notify=settings.notify,
                    graceful_shutdown=timedelta(seconds=drain_period(settings.shutdown_grace_s)),
                    max_rewind=settings.sync_max_rewind,
                )
            )
        )
        for spec in settings.read_models:
            found = _imported(spec)
            builder.with_read_model(found() if isinstance(found, type) else found)
        for spec in settings.processors:
            found = _imported(spec)
            for proc in found if isinstance(found, list | tuple) else [found]:
                builder._add_processor(proc)
        if settings.trusted_keys:
            builder.with_signature_verifier(Ed25519Verifier(set(settings.trusted_keys)))
        if settings.api_auth.configured:
            from reactor.api.http.auth import JwtHandler

            builder.with_jwt_handler(JwtHandler.from_settings(settings.api_auth))
        # A worker listens for commits only to route other processes' commits
        # to the reactions it hosts: without any, the connection, and the
        # parsing of every commit's notice, would buy nothing.
        return builder.with_notifications(settings.notify and bool(builder._processors))

    def with_document_models(self, models: Sequence[ModuleType | DocumentModel]) -> ReactorBuilder:
        self._models.extend(DocumentModel.from_module(m) for m in models)
        return self

    def with_document_model_loader(self, loader: ModelLoader) -> ReactorBuilder:
        """`loader(document_type)` returns the model of a type no registered
        model has (a model module or a DocumentModel), or None. The registry
        asks loaders in the order given, when a batch is planned and when a
        worker of this module reduces a job, and keeps what they return.
        It is called synchronously (planning and reduction do not await): a
        slow loader delays only the first lookup of each type."""
        self._loaders.append(loader)
        return self

    def with_upgrade_manifests(self, manifests: Sequence[UpgradeManifest]) -> ReactorBuilder:
        """Each manifest (reactor/domain/upgrades.py) joins the model of its
        document type: documents are created at its latest version and
        UPGRADE_DOCUMENT steps them up. A model module may instead define
        `upgrade_manifest`."""
        self._manifests.extend(manifests)
        return self

    def with_logger(self, logger: logging.Logger) -> ReactorBuilder:
        self._logger = logger
        return self

    def with_executor_config(
        self, max_concurrency: int = 4, job_timeout: float = 600.0
    ) -> ReactorBuilder:
        """`max_concurrency`: activity calls a batch runs at once (each runs up
        to `max_parallel_jobs` jobs concurrently); `job_timeout`: seconds one
        activity call may take before Temporal retries it elsewhere."""
        if max_concurrency < 1 or job_timeout <= 0:
            raise ValueError("max_concurrency must be >= 1 and job_timeout > 0")
        self._batch = self._batch.model_copy(
            update={"max_parallel_chunks": max_concurrency, "activity_timeout_s": job_timeout}
        )
        return self

    def with_limits(self, limits: Limits) -> ReactorBuilder:
        """Bounds on each request (bytes, jobs, actions per job, bytes per
        action input; see reactor/domain/limits.py). Without it, the
        REACTOR_MAX_* environment variables, else the defaults."""
        self._limits = limits
        return self

    def with_write_cache_config(
        self, max_documents: int = 1000, ring_buffer_size: int = 1, keyframe_interval: int = 100
    ) -> ReactorBuilder:
        """Write-path cache of `max_documents` lanes, each keeping its last
        `ring_buffer_size` revisions; a keyframe every `keyframe_interval`
        operations bounds the cost of rebuilding a document."""
        if max_documents < 1 or ring_buffer_size < 1 or keyframe_interval < 1:
            raise ValueError("cache sizes and keyframe interval must be >= 1")
        self._cache = WriteCache(max_documents, ring_buffer_size)
        self._worker.keyframe_interval = keyframe_interval
        return self

    def with_max_rewind(self, operations: int) -> ReactorBuilder:
        """How many local operations a load may rewind to merge (default
        1,000); a larger merge fails with ExcessiveReshuffleError and writes
        nothing (reactor/domain/merge.py)."""
        if operations < 0:
            raise ValueError("max_rewind must be >= 0")
        self._worker.max_rewind = operations
        return self

    def with_migration_strategy(self, strategy: str) -> ReactorBuilder:
        if strategy not in ("auto", "none"):
            raise ValueError(f"migration strategy must be 'auto' or 'none', not {strategy!r}")
        self._migration_strategy = strategy
        return self

    def with_database(
        self, database: str | asyncpg.Pool, *, pool_size: int = DEFAULT_POOL_SIZE
    ) -> ReactorBuilder:
        """A PostgreSQL DSN (opened as a pool of up to `pool_size`
        connections), or an asyncpg pool created with `init=Database.init`."""
        self._database = database
        self._pool_size = pool_size
        return self

    def with_temporal(
        self,
        address: str,
        namespace: str | None = None,
        task_queue: str = "reactor",
        *,
        tls: bool | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        server_name: str | None = None,
        api_key: str | None = None,
        payload_key: str | None = None,
        payload_keys: str | None = None,
    ) -> ReactorBuilder:
        """`namespace` and the keyword arguments are the REACTOR_TEMPORAL_* /
        REACTOR_PAYLOAD_* variables of the same names
        (reactor.runtime.connection); those not given here come from the
        environment, as for workers and the CLI."""
        self._temporal_address = address
        self._namespace = namespace
        self._task_queue = task_queue
        self._connection = {
            "tls": tls,
            "tls_ca": tls_ca,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "server_name": server_name,
            "api_key": api_key,
            "payload_keys": PayloadKeys.parse(payload_key, payload_keys)
            if payload_key or payload_keys
            else None,
        }
        return self

    def _temporal_connection(self, address: str) -> TemporalConnection:
        """What `with_temporal` was given, over the REACTOR_* variables."""
        return temporal_from_env(address=address, namespace=self._namespace, **self._connection)

    def with_event_bus(self, event_bus: EventBus) -> ReactorBuilder:
        self._event_bus = event_bus
        return self

    def with_read_model(self, read_model: ReadModel) -> ReactorBuilder:
        if not isinstance(read_model, ReadModel):
            raise TypeError("a read model needs a `name` and `async index_operations(operations)`")
        self._read_models.append(read_model)
        return self

    def with_signature_verifier(self, verifier: SignatureVerifier) -> ReactorBuilder:
        self._verifier = verifier
        return self

    def with_jwt_handler(self, handler: JwtHandler) -> ReactorBuilder:
        """Bearer tokens the HTTP API checks (reactor.api.http.auth): without
        one the API is unauthenticated and serves loopback only."""
        self._jwt_handler = handler
        return self

    def with_eager_start(self, enabled: bool) -> ReactorBuilder:
        """Whether the reactor asks Temporal to start its batches eagerly, on
        a worker of this process. By default it does once the module creates
        a worker on its task queue (ReactorModule.create_worker); workers
        elsewhere take batches from the task queue either way."""
        self._eager_start = enabled
        return self

    def with_sync(
        self,
        url: str,
        *,
        name: str | None = None,
        token: str | None = None,
        document_type: str | None = None,
        document_id: str | None = None,
    ) -> ReactorBuilder:
        """A sync channel to the reactor whose HTTP API is at `url` (`token`:
        a JWT it accepts), exchanging every document, those of one type, or
        one document. The module stores it (or updates the stored one of the
        same name: the name defaults to the URL's host and port) and starts
        its workflow `sync-<name>` when it starts a worker. Call once per
        remote; ValidationError naming the field for a bad one."""
        channel = Channel.declare(
            url, name=name, token=token, document_type=document_type, document_id=document_id
        )
        if any(c.name == channel.name for c in self._sync):
            raise ValidationError(
                f"a channel named {channel.name!r} is declared twice: give each its own name",
                field="name",
            )
        self._sync.append(channel)
        return self

    def with_signal_handlers(self) -> ReactorBuilder:
        """SIGINT/SIGTERM call reactor.kill(): no new writes, in-flight batches finish."""
        self._signal_handlers = True
        return self

    def with_batch_config(self, config: BatchConfig) -> ReactorBuilder:
        self._batch = config
        return self

    def with_worker_config(self, config: WorkerConfig) -> ReactorBuilder:
        self._worker = config
        return self

    def with_processor(
        self,
        name: str,
        handler: Handler,
        *,
        action_types: list[str] | None = None,
        document_types: list[str] | None = None,
        exactly_once: bool = False,
        max_attempts: int = 5,
        lease_seconds: float = 30.0,
    ) -> ReactorBuilder:
        """A reaction: `handler(operation, context)` runs after commits of
        matching operations, on this module's workers, at least once (exactly
        once for output written through `context.tx` with `exactly_once`)."""
        return self._add_processor(
            processor(
                name,
                handler,
                action_types=action_types,
                document_types=document_types,
                exactly_once=exactly_once,
                max_attempts=max_attempts,
                lease_seconds=lease_seconds,
            )
        )

    def _add_processor(self, proc: Processor) -> ReactorBuilder:
        if any(p.name == proc.name for p in self._processors):
            raise ValueError(f"processor {proc.name!r} registered twice")
        self._processors.append(proc)
        return self

    def with_reaction_poll_interval(self, seconds: float) -> ReactorBuilder:
        """How often reactions poll when no wake-up arrives (the safety net)."""
        self._poll_interval = seconds
        return self

    def with_notifications(self, enabled: bool) -> ReactorBuilder:
        """LISTEN for commits (token reads, subscriptions and job events wake
        at once; without it they poll). On by default."""
        self._notifications = enabled
        return self

    async def build(self) -> Reactor:
        """The reactor alone; closing it closes what the module opened for
        it (the LISTEN connection and the subscriptions) too."""
        module = await self.build_module()
        module.reactor.close_with(module.subscription_manager.close)
        if module.listener is not None:
            module.reactor.close_with(module.listener.stop)
        return module.reactor

    async def build_module(self) -> ReactorModule:
        """Opens every store and component once: the reactor, its workers
        (`create_worker()`) and tooling all share them."""
        if not self._models and not self._loaders:
            raise ValueError(
                "no document models: call with_document_models([...]) or "
                "with_document_model_loader(...) first"
            )
        limits = self._limits or limits_from_env()  # before anything is opened
        # A database outage is one log line here too, not a traceback per
        # reconnect attempt, whether or not this process hosts a worker.
        install_outage_filter()
        database, address = self._database, self._temporal_address
        if database is None or address is None:
            # Fall back to REACTOR_* variables, then a `reactor dev` running here.
            settings = load_settings()
            database = database or settings.database_url
            if address is None:
                address = settings.temporal_address
                self._namespace, self._task_queue = settings.namespace, settings.task_queue
        db = (
            await Database.connect(database, max_size=self._pool_size)
            if isinstance(database, str)
            else Database.from_pool(database)
        )
        try:
            return await self._assemble(db, _dsn(database), address, limits)
        except BaseException:
            await db.close()
            raise

    async def _assemble(
        self, db: Database, dsn: str | dict[str, Any], address: str, limits: Limits
    ) -> ReactorModule:
        if self._migration_strategy == "auto":
            async with db.pool.acquire() as conn:
                ran = await migrate(conn)
            if ran:
                logging.getLogger("reactor").info("applied migrations: %s", ", ".join(ran))
        client = await connect(self._temporal_connection(address))
        listener = (
            NotifyListener(dsn, [channel_name(), READ_MODEL_CHANNEL])
            if self._notifications
            else None
        )
        stores = Stores.over(db, listener)
        bus = self._event_bus or EventBus()
        wakeup = Wakeup()
        consistency = ConsistencyWaiter(db, [rm.name for rm in self._read_models], wakeup)
        # Announcements are believed only once the ledger confirms them.
        ledger_check = LedgerCheck(stores.ledger, consistency)
        coordinator = ReadModelCoordinator(db, self._read_models)
        await coordinator.setup()
        reactor = Reactor(
            stores=stores,
            client=client,
            registry=ModelRegistry(self._models, self._loaders, self._manifests),
            config=ReactorConfig(
                task_queue=self._task_queue,
                batch=self._batch,
                limits=limits,
                eager_start=self._eager_start,
            ),
            event_bus=bus,
            consistency=consistency,
            job_tracker=JobTracker(bus, stores.operations, ledger_check),
            ready_notices=ReadyNotices(ledger_check, max_operations=limits.max_actions_per_job),
            change_feed=ChangeFeed(db, wakeup),
        )
        if listener is not None:

            def on_notify(_channel: str, payload: dict[str, Any]) -> None:
                wakeup.set()
                # Commits, and read-ready announcements on either channel.
                reactor.ready_notices.on_commit(payload)
                reactor.job_tracker.on_commit(payload)

            listener.add_handler(on_notify)
            listener.on_reconnect(wakeup.set)
            await listener.start()
            reactor.ready_notices.listening = True
        manager = ProcessorManager(db, self._processors)
        await manager.setup()
        if self._signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, reactor.kill)
        if self._logger is not None:
            logging.getLogger("reactor").handlers = self._logger.handlers
            logging.getLogger("reactor").setLevel(self._logger.level)
        return ReactorModule(
            reactor=reactor,
            stores=stores,
            client=client,
            registry=reactor.registry,
            event_bus=bus,
            read_model_coordinator=coordinator,
            subscription_manager=SubscriptionManager(reactor.change_feed),
            processor_manager=manager,
            write_cache=self._cache,
            listener=listener,
            worker_config=self._worker,
            signature_verifier=self._verifier,
            poll_interval=self._poll_interval,
            jwt_handler=self._jwt_handler,
            sync_channels=list(self._sync),
        )


def _imported(spec: str) -> Any:
    """`module:attribute`, imported."""
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _dsn(database: str | asyncpg.Pool) -> str | dict[str, Any]:
    if isinstance(database, str):
        return database
    # A borrowed pool: LISTEN needs a dedicated connection with the same
    # parameters (asyncpg keeps them on the pool).
    return {"args": database._connect_args, "kwargs": database._connect_kwargs}


__all__ = ["ReactorBuilder"]
