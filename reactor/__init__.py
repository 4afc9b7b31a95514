"""A Temporal-orchestrated, event-sourced document reactor on PostgreSQL.

The public names load on first use: `reactor.api` imports the workflows and,
through them, the activities, which import the reactor's own modules. Loading
it eagerly here would make `import activities.batch` (or any module of the
reactor imported first) a circular import."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reactor.api.builder import ReactorBuilder as ReactorBuilder
    from reactor.api.reactor import BatchResult as BatchResult
    from reactor.api.reactor import Reactor as Reactor
    from reactor.domain.actions import Action as Action
    from reactor.domain.actions import ActionSpec as ActionSpec
    from reactor.domain.batch import BatchRequest as BatchRequest
    from reactor.domain.batch import JobRequest as JobRequest
    from reactor.domain.document import Document as Document
    from reactor.domain.document import DocumentHeader as DocumentHeader
    from reactor.domain.document import Operation as Operation
    from reactor.domain.document import PagedResults as PagedResults
    from reactor.domain.errors import AmbiguousIdentifierError as AmbiguousIdentifierError
    from reactor.domain.errors import DocumentNotFoundError as DocumentNotFoundError
    from reactor.domain.errors import ReactorError as ReactorError
    from reactor.domain.errors import ReducerError as ReducerError
    from reactor.domain.errors import ValidationError as ValidationError
    from reactor.domain.jobs import ConsistencyToken as ConsistencyToken
    from reactor.domain.jobs import JobInfo as JobInfo
    from reactor.domain.jobs import JobStatus as JobStatus

_MODULES = {
    "Action": "reactor.domain.actions",
    "ActionSpec": "reactor.domain.actions",
    "AmbiguousIdentifierError": "reactor.domain.errors",
    "BatchRequest": "reactor.domain.batch",
    "BatchResult": "reactor.api.reactor",
    "ConsistencyToken": "reactor.domain.jobs",
    "Document": "reactor.domain.document",
    "DocumentHeader": "reactor.domain.document",
    "DocumentNotFoundError": "reactor.domain.errors",
    "JobInfo": "reactor.domain.jobs",
    "JobRequest": "reactor.domain.batch",
    "JobStatus": "reactor.domain.jobs",
    "Operation": "reactor.domain.document",
    "PagedResults": "reactor.domain.document",
    "Reactor": "reactor.api.reactor",
    "ReactorBuilder": "reactor.api.builder",
    "ReactorError": "reactor.domain.errors",
    "ReducerError": "reactor.domain.errors",
    "ValidationError": "reactor.domain.errors",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'reactor' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])
