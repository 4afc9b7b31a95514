"""The worker process (`reactor worker`, `python worker.py`): the builder
from the environment, then its module's worker, until a stop is asked. Run
many of them against the same Temporal and PostgreSQL to scale."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from types import ModuleType

from reactor.api.builder import ReactorBuilder
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.signing import keys_fingerprint
from reactor.runtime.gc_tuning import tune_for_worker
from reactor.runtime.process import BoundedStop
from reactor.runtime.settings import Settings, model_modules

log = logging.getLogger("reactor.worker")


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Runs until `stop` is set or SIGINT/SIGTERM arrives, then drains:
    in-flight activities get the grace period to finish and polling stops, so
    another worker takes over the rest. The process leaves within the grace
    period whatever its activities do; a second signal leaves at once (see
    reactor.runtime.process.BoundedStop)."""
    stop = stop or asyncio.Event()
    guard = BoundedStop(settings.shutdown_grace_s)
    if threading.current_thread() is threading.main_thread():
        guard.install()
    guard.bind(stop)
    module = await ReactorBuilder.from_settings(settings).build_module()
    try:
        worker = module.create_worker()
        tune_for_worker(settings.gc_thresholds)
        async with worker:
            log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
            if settings.trusted_keys:
                log.info(
                    "verifying signatures against %d trusted keys (verify=%s)",
                    len(settings.trusted_keys),
                    keys_fingerprint(settings.trusted_keys),
                )
            else:
                log.info("not verifying signatures (REACTOR_TRUSTED_KEYS is empty)")
            await stop.wait()
            log.info("worker draining in-flight activities")
    finally:
        await module.close()


def registry_of(models: Sequence[ModuleType | DocumentModel] | None = None) -> ModelRegistry:
    """The registry of `models`, by default those a worker of this
    environment loads (see reactor.runtime.settings.model_modules)."""
    return ModelRegistry([DocumentModel.from_module(m) for m in (models or model_modules())])
