"""Modules for in-process workers that only apply jobs: built like any
other (ReactorBuilder), without a commit listener since nothing in them
waits on commits."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.domain.workflow_io import BatchConfig
from reactor.models import BUILTIN_MODELS
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


def suite_builder(database_url: str, temporal_address: str, task_queue: str) -> ReactorBuilder:
    """The suite's reactor: the built-in models, and a short heartbeat
    timeout so that a chunk whose worker was killed is retried soon."""
    return (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(temporal_address, task_queue=task_queue)
        .with_batch_config(BatchConfig(heartbeat_timeout_s=5))
    )
