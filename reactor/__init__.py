"""A Temporal-orchestrated, event-sourced document reactor on PostgreSQL."""

from reactor.api.builder import ReactorBuilder
from reactor.api.reactor import BatchResult, Reactor
from reactor.domain.actions import Action, ActionSpec
from reactor.domain.batch import BatchRequest, JobRequest
from reactor.domain.document import Document, DocumentHeader, Operation, PagedResults
from reactor.domain.errors import (
    AmbiguousIdentifierError,
    DocumentNotFoundError,
    ReactorError,
    ReducerError,
    ValidationError,
)
from reactor.domain.jobs import ConsistencyToken, JobInfo, JobStatus

__all__ = [
    "Action",
    "ActionSpec",
    "AmbiguousIdentifierError",
    "BatchRequest",
    "BatchResult",
    "ConsistencyToken",
    "Document",
    "DocumentHeader",
    "DocumentNotFoundError",
    "JobInfo",
    "JobRequest",
    "JobStatus",
    "Operation",
    "PagedResults",
    "Reactor",
    "ReactorBuilder",
    "ReactorError",
    "ReducerError",
    "ValidationError",
]
