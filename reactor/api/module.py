"""ReactorModule: the reactor and every component behind it, for tooling,
tests and in-process workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client

from reactor.api.reactor import Reactor
from reactor.application.events import EventBus
from reactor.application.job_tracker import JobTracker
from reactor.application.read_models import ReadModelCoordinator
from reactor.application.subscriptions import SubscriptionManager
from reactor.application.write_cache import WriteCache
from reactor.domain.model import ModelRegistry
from reactor.domain.signing import SignatureVerifier
from reactor.reactions.manager import ProcessorManager
from reactor.runtime.worker import ReactorWorker, build_worker
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.keyframe_store import KeyframeStore
from reactor.storage.notify import NotifyListener
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import OperationStore
from reactor.storage.relationship_index import RelationshipIndex


@dataclass
class WorkerConfig:
    max_parallel_jobs: int = 8
    keyframe_interval: int = 100
    notify: bool = True
    graceful_shutdown: timedelta = timedelta(seconds=30)


@dataclass
class ReactorModule:
    reactor: Reactor
    event_bus: EventBus
    job_tracker: JobTracker
    operation_store: OperationStore
    keyframe_store: KeyframeStore
    write_cache: WriteCache
    operation_index: OperationIndex
    document_view: DocumentView
    document_indexer: RelationshipIndex
    read_model_coordinator: ReadModelCoordinator
    subscription_manager: SubscriptionManager
    database: Database
    client: Client
    registry: ModelRegistry
    listener: NotifyListener | None
    worker_config: WorkerConfig = field(default_factory=WorkerConfig)
    signature_verifier: SignatureVerifier | None = None
    features: dict[str, Any] = field(default_factory=dict)
    processor_manager: ProcessorManager | None = None
    poll_interval: float = 1.0

    def create_worker(self, task_queue: str | None = None) -> ReactorWorker:
        """A worker for this module's task queue, sharing its write cache,
        read models and signature verifier. Use as `async with`."""
        cfg = self.worker_config
        return build_worker(
            self.client,
            self.database,
            self.registry,
            task_queue or self.reactor.config.task_queue,
            cache=self.write_cache,
            keyframe_interval=cfg.keyframe_interval,
            max_parallel_jobs=cfg.max_parallel_jobs,
            graceful_shutdown=cfg.graceful_shutdown,
            read_models=self.read_model_coordinator,
            notify=cfg.notify,
            instance_id=self.listener.instance_id if self.listener else None,
            verifier=self.signature_verifier,
            processors=list(self.processor_manager.processors.values())
            if self.processor_manager
            else (),
            reactor=self.reactor,
            listener=self.listener,
            poll_interval=self.poll_interval,
        )

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
