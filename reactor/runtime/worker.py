"""A reactor worker: the batch workflow and the apply activities on one task
queue. Run many of them against the same Temporal and PostgreSQL to scale."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Sequence
from datetime import timedelta
from types import ModuleType

from temporalio.client import Client
from temporalio.worker import Worker

from activities.batch import BatchActivities
from reactor.application.read_models import ReadModel, ReadModelCoordinator
from reactor.application.write_cache import WriteCache
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.signing import SignatureVerifier
from reactor.observability.worker import ActivityAttributesInterceptor, TracedJobApplier
from reactor.runtime.settings import Settings, model_modules
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.job_ledger import JobLedger
from reactor.storage.migrate import migrate
from reactor.storage.notify import channel_name
from workflows.batch import BatchWorkflow

log = logging.getLogger("reactor.worker")


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
) -> Worker:
    """The one place a reactor worker is assembled (CLI, module, tests)."""
    applier = TracedJobApplier(  # a JobApplier with a span per job
        db,
        registry,
        cache=cache,
        keyframe_interval=keyframe_interval,
        notify_channel=channel_name() if notify else None,
        instance_id=instance_id,
        verifier=verifier,
    )
    acts = BatchActivities(
        applier, JobLedger(db), read_models=read_models, max_parallel=max_parallel_jobs
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BatchWorkflow],
        activities=[acts.apply_jobs, acts.load_plan],
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=[ActivityAttributesInterceptor()],
    )


def read_models_from_env() -> list[ReadModel]:
    """REACTOR_READ_MODELS: comma-separated `module:attribute`, where the
    attribute is a read model instance or a zero-argument factory (class)."""
    found: list[ReadModel] = []
    for spec in filter(None, (s.strip() for s in os.environ.get("REACTOR_READ_MODELS", "").split(","))):
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
    in-flight activities finish (bounded by the graceful timeout) and polling
    stops, so another worker takes over the rest."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    db = await Database.connect(settings.database_url, max_size=12)
    try:
        if apply_migrations:
            async with db.pool.acquire() as conn:
                await migrate(conn)
        client = await connect(settings.temporal_address, settings.namespace)
        coordinator = ReadModelCoordinator(db, read_models_from_env())
        await coordinator.setup()
        worker = build_worker(
            client,
            db,
            registry_of(models),
            settings.task_queue,
            read_models=coordinator,
            notify=os.environ.get("REACTOR_NOTIFY", "1") != "0",
        )
        async with worker:
            log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
            log.info("worker draining in-flight activities")
    finally:
        await db.close()
