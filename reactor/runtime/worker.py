"""A reactor worker: the batch workflow and the apply activities on one task
queue. Run many of them against the same Temporal and PostgreSQL to scale."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.batch import BatchActivities
from activities.reactions import ReactionActivities
from reactor.application.read_models import ReadModel, ReadModelCoordinator
from reactor.application.write_cache import WriteCache
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.signing import (
    Ed25519Verifier,
    SignatureVerifier,
    keys_fingerprint,
    verification_fingerprint,
)
from reactor.observability.outage import install_outage_filter
from reactor.observability.worker import ActivityAttributesInterceptor, TracedJobApplier
from reactor.reactions.drain import ReactionDrainer
from reactor.reactions.processor import Processor
from reactor.reactions.router import ReactionRouter
from reactor.runtime.gc_tuning import thresholds_from_env, tune_for_worker
from reactor.runtime.process import BoundedStop, shutdown_grace
from reactor.runtime.settings import Settings, model_modules, trusted_keys_from_env
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.job_ledger import JobLedger
from reactor.storage.migrate import migrate
from reactor.storage.notify import READ_MODEL_CHANNEL, CommitNotifier, NotifyListener, channel_name
from reactor.storage.operation_store import OperationStore
from workflows.batch import BatchWorkflow
from workflows.reaction import ReactionWorkflow

if TYPE_CHECKING:
    from reactor.api.reactor import Reactor

log = logging.getLogger("reactor.worker")


class ReactorWorker:
    """A Temporal worker plus, when reactions are registered, the router that
    wakes their workflows. Use as `async with`, or `run()` / `shutdown()`."""

    def __init__(
        self,
        worker: Worker,
        router: ReactionRouter | None = None,
        subscribe: Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]] | None = None,
    ):
        self.worker = worker
        self.router = router
        self._subscribe = subscribe

    async def __aenter__(self) -> ReactorWorker:
        await self.worker.__aenter__()
        if self.router is not None:
            await self.router.start(self._subscribe)
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
            await self.worker.run()
        finally:
            if self.router is not None:
                await self.router.stop()

    async def shutdown(self) -> None:
        if self.router is not None:
            await self.router.stop()
        await self.worker.shutdown()


def build_worker(
    client: Client,
    db: Database,
    registry: ModelRegistry,
    task_queue: str,
    *,
    cache: WriteCache | None = None,
    keyframe_interval: int = 100,
    max_parallel_jobs: int = 8,
    graceful_shutdown: timedelta = timedelta(seconds=30),
    read_models: ReadModelCoordinator | None = None,
    notify: bool = True,
    instance_id: str | None = None,
    verifier: SignatureVerifier | None = None,
    processors: Sequence[Processor] = (),
    reactor: Reactor | None = None,
    listener: NotifyListener | None = None,
    poll_interval: float = 1.0,
    fanout: int = 2,
) -> ReactorWorker:
    """The one place a reactor worker is assembled (CLI, module, tests).

    With `processors`, it also hosts their reaction workflows and drains, and
    routes commits to them: local commits directly, other processes' commits
    through `listener` (NOTIFY) when given; the poll covers the rest."""
    # A database outage is one log line, not a traceback per retried attempt.
    install_outage_filter()
    drainer = ReactionDrainer(db, list(processors), reactor=reactor) if processors else None
    router = (
        ReactionRouter(
            client,
            task_queue,
            list(processors),
            poll_interval=poll_interval,
            fanout=fanout,
            wake_local=drainer.wake_local,
        )
        if drainer is not None
        else None
    )
    if listener is not None:
        instance_id = listener.instance_id
    applier = TracedJobApplier(  # a JobApplier with a span per job
        db,
        registry,
        cache=cache,
        keyframe_interval=keyframe_interval,
        notify_channel=channel_name() if notify else None,
        instance_id=instance_id,
        verifier=verifier,
        on_commit=router.route if router is not None else None,
        # With no read model to catch up, a commit is READ_READY as it lands.
        read_ready_on_commit=read_models is None or not read_models.read_models,
    )
    acts = BatchActivities(
        applier,
        JobLedger(db),
        read_models=read_models,
        max_parallel=max_parallel_jobs,
        # With read models, a job is read-ready once they caught up: said on
        # their channel, where reaction routers do not listen.
        ready_notifier=CommitNotifier(db.pool, READ_MODEL_CHANNEL, applier.instance_id)
        if notify and not applier.read_ready_on_commit
        else None,
    )
    workflows: list[type] = [BatchWorkflow]
    activities: list[Callable[..., Any]] = [acts.apply_jobs, acts.load_plan]
    subscribe = None
    if router is not None and drainer is not None:
        workflows.append(ReactionWorkflow)
        activities.append(ReactionActivities(drainer).drain_reaction)
        if listener is not None:
            store = OperationStore(db, notify=True, listener=listener)

            def subscribe(handler: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
                me = store.instance_id

                def remote(channel: str, payload: dict[str, Any]) -> None:
                    if channel == store.channel and payload.get("by") != me:
                        handler(payload)

                return listener.add_handler(remote)

    return ReactorWorker(
        Worker(
            client,
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            graceful_shutdown_timeout=graceful_shutdown,
            interceptors=[ActivityAttributesInterceptor()],
            # `reactor doctor` reads how each worker of a task queue verifies
            # signatures from here: a chunk is checked or not depending on
            # which worker takes it, so they must agree.
            identity=f"{client.identity};verify={verification_fingerprint(verifier)}",
        ),
        router,
        subscribe,
    )


def processors_from_env() -> list[Processor]:
    """REACTOR_PROCESSORS: comma-separated `module:attribute`, each a
    Processor or a list of them."""
    found: list[Processor] = []
    for spec in filter(
        None, (s.strip() for s in os.environ.get("REACTOR_PROCESSORS", "").split(","))
    ):
        module_name, _, attr = spec.partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
        found.extend(obj if isinstance(obj, list | tuple) else [obj])
    return found


def read_models_from_env() -> list[ReadModel]:
    """REACTOR_READ_MODELS: comma-separated `module:attribute`, where the
    attribute is a read model instance or a zero-argument factory (class)."""
    found: list[ReadModel] = []
    for spec in filter(
        None, (s.strip() for s in os.environ.get("REACTOR_READ_MODELS", "").split(","))
    ):
        module_name, _, attr = spec.partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
        found.append(obj() if isinstance(obj, type) else obj)
    return found


def registry_of(models: Sequence[ModuleType | DocumentModel] | None = None) -> ModelRegistry:
    return ModelRegistry([DocumentModel.from_module(m) for m in (models or model_modules())])


async def run_worker(
    settings: Settings,
    *,
    models: Sequence[ModuleType | DocumentModel] | None = None,
    stop: asyncio.Event | None = None,
    apply_migrations: bool = True,
) -> None:
    """Runs until `stop` is set or SIGINT/SIGTERM arrives, then drains:
    in-flight activities get the grace period to finish and polling stops, so
    another worker takes over the rest. The process leaves within the grace
    period whatever its activities do; a second signal
    leaves at once (see reactor.runtime.process.BoundedStop)."""
    gc_thresholds = thresholds_from_env()  # a bad value fails before anything starts
    trusted_keys = trusted_keys_from_env()  # so does a bad key
    grace = shutdown_grace()
    stop = stop or asyncio.Event()
    guard = BoundedStop(grace)
    if threading.current_thread() is threading.main_thread():
        guard.install()
    guard.bind(stop)
    db = await Database.connect(settings.database_url, max_size=12)
    try:
        if apply_migrations:
            async with db.pool.acquire() as conn:
                await migrate(conn)
        client = await connect(settings.temporal_address, settings.namespace)
        coordinator = ReadModelCoordinator(db, read_models_from_env())
        await coordinator.setup()
        notify = os.environ.get("REACTOR_NOTIFY", "1") != "0"
        processors = processors_from_env()
        listener = reactor = None
        if processors:
            from reactor.api.reactor import Reactor

            await ReactionDrainer(db, processors).setup()
            reactor = Reactor(db=db, client=client, registry=registry_of(models))
            if notify:
                listener = NotifyListener(settings.database_url, [channel_name()])
                await listener.start()
        worker = build_worker(
            client,
            db,
            registry_of(models),
            settings.task_queue,
            read_models=coordinator,
            notify=notify,
            processors=processors,
            reactor=reactor,
            listener=listener,
            poll_interval=float(os.environ.get("REACTOR_REACTION_POLL", "1.0")),
            verifier=Ed25519Verifier(set(trusted_keys)) if trusted_keys else None,
            graceful_shutdown=timedelta(seconds=guard.drain_s),
        )
        tune_for_worker(gc_thresholds)
        try:
            async with worker:
                log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
                if trusted_keys:
                    log.info(
                        "verifying signatures against %d trusted keys (verify=%s)",
                        len(trusted_keys),
                        keys_fingerprint(trusted_keys),
                    )
                else:
                    log.info("not verifying signatures (REACTOR_TRUSTED_KEYS is empty)")
                await stop.wait()
                log.info("worker draining in-flight activities")
        finally:
            if listener is not None:
                await listener.stop()
    finally:
        await db.close()
