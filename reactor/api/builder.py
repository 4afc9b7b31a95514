"""ReactorBuilder: the fluent way to wire a reactor (Powerhouse's builder in
snake_case)."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import asyncpg

from reactor.api.reactor import Reactor, ReactorConfig
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.runtime.settings import load_settings
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.migrate import migrate
from workflows.batch import BatchConfig


class ReactorBuilder:
    def __init__(self) -> None:
        self._models: list[DocumentModel] = []
        self._database: str | asyncpg.Pool | None = None
        self._temporal_address: str | None = None
        self._namespace = "default"
        self._task_queue = "reactor"
        self._migration_strategy = "auto"
        self._batch = BatchConfig()

    def with_document_models(
        self, models: Sequence[ModuleType | DocumentModel]
    ) -> ReactorBuilder:
        self._models.extend(DocumentModel.from_module(m) for m in models)
        return self

    def with_database(self, database: str | asyncpg.Pool) -> ReactorBuilder:
        """A PostgreSQL DSN, or an asyncpg pool created with `init=Database.init`."""
        self._database = database
        return self

    def with_temporal(
        self, address: str, namespace: str = "default", task_queue: str = "reactor"
    ) -> ReactorBuilder:
        self._temporal_address = address
        self._namespace = namespace
        self._task_queue = task_queue
        return self

    def with_migration_strategy(self, strategy: str) -> ReactorBuilder:
        if strategy not in ("auto", "none"):
            raise ValueError(f"migration strategy must be 'auto' or 'none', not {strategy!r}")
        self._migration_strategy = strategy
        return self

    def with_batch_config(self, config: BatchConfig) -> ReactorBuilder:
        self._batch = config
        return self

    async def build(self) -> Reactor:
        if not self._models:
            raise ValueError("no document models: call with_document_models([...]) first")
        database = self._database
        address = self._temporal_address
        if database is None or address is None:
            # Fall back to REACTOR_* variables, then a `reactor dev` running here.
            settings = load_settings()
            database = database or settings.database_url
            if address is None:
                address = settings.temporal_address
                self._namespace, self._task_queue = settings.namespace, settings.task_queue
        db = (
            await Database.connect(database)
            if isinstance(database, str)
            else Database.from_pool(database)
        )
        if self._migration_strategy == "auto":
            async with db.pool.acquire() as conn:
                await migrate(conn)
        client = await connect(address, self._namespace)
        return Reactor(
            db=db,
            client=client,
            registry=ModelRegistry(self._models),
            config=ReactorConfig(task_queue=self._task_queue, batch=self._batch),
        )
