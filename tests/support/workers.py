"""Modules for in-process workers that only apply jobs: built like any
other (ReactorBuilder), without a commit listener since nothing in them
waits on commits."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.runtime.settings import model_modules


async def worker_module(
    database_url: str,
    temporal_address: str,
    task_queue: str,
    *,
    models: Sequence[ModuleType] | None = None,
    namespace: str | None = None,
) -> ReactorModule:
    return await (
        ReactorBuilder()
        .with_document_models(models or model_modules())
        .with_database(database_url)
        .with_temporal(temporal_address, namespace, task_queue)
        .with_notifications(False)
        .build_module()
    )
