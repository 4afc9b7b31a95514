"""A reactor worker: the batch workflow and the apply activities on one task
queue. Run many of them against the same Temporal and PostgreSQL to scale."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from types import ModuleType

from temporalio.client import Client
from temporalio.worker import Worker

from activities.batch import BatchActivities
from reactor.application.apply import JobApplier
from reactor.application.write_cache import WriteCache
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.runtime.settings import Settings, model_modules
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.job_ledger import JobLedger
from reactor.storage.migrate import migrate
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
) -> Worker:
    applier = JobApplier(db, registry, cache=cache, keyframe_interval=keyframe_interval)
    acts = BatchActivities(applier, JobLedger(db), max_parallel=max_parallel_jobs)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BatchWorkflow],
        activities=[acts.apply_jobs, acts.load_plan],
        graceful_shutdown_timeout=graceful_shutdown,
    )


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
        worker = build_worker(client, db, registry_of(models), settings.task_queue)
        async with worker:
            log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
            await stop.wait()
            log.info("worker draining in-flight activities")
    finally:
        await db.close()
