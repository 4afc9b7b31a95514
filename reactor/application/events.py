"""The in-process event bus: job lifecycle events, delivered to handlers in
registration order; one handler's error is logged and stops neither the
others nor the job."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from reactor.domain.document import Operation
from reactor.domain.jobs import JobError, JobStatus

log = logging.getLogger("reactor.events")


class ReactorEventTypes(StrEnum):
    JOB_PENDING = "JOB_PENDING"
    JOB_RUNNING = "JOB_RUNNING"
    JOB_WRITE_READY = "JOB_WRITE_READY"
    JOB_READ_READY = "JOB_READ_READY"
    JOB_FAILED = "JOB_FAILED"
    # A sync channel's round (workflows/sync.py): started, then ended.
    SYNC_PENDING = "SYNC_PENDING"
    SYNC_SUCCEEDED = "SYNC_SUCCEEDED"
    SYNC_FAILED = "SYNC_FAILED"


STATUS_EVENT = {
    JobStatus.PENDING: ReactorEventTypes.JOB_PENDING,
    JobStatus.RUNNING: ReactorEventTypes.JOB_RUNNING,
    JobStatus.WRITE_READY: ReactorEventTypes.JOB_WRITE_READY,
    JobStatus.READ_READY: ReactorEventTypes.JOB_READ_READY,
    JobStatus.FAILED: ReactorEventTypes.JOB_FAILED,
}


class JobEvent(BaseModel):
    job_id: str
    batch_id: str
    key: str
    document_id: str
    status: JobStatus
    error: JobError | None = None
    operations: list[Operation] = Field(default_factory=list)


class SyncEvent(BaseModel):
    """One round of a sync channel: the operations it moved so far (all of
    them once it ended), and why it failed."""

    channel: str
    pulled: int = 0
    pushed: int = 0
    error: str | None = None


Handler = Callable[[str, Any], None | Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Returns the unsubscribe function."""
        handlers = self._handlers.setdefault(str(event_type), [])
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def has_subscribers(self, event_type: str) -> bool:
        return bool(self._handlers.get(str(event_type)))

    async def emit(self, event_type: str, event: Any) -> None:
        for handler in list(self._handlers.get(str(event_type), [])):
            try:
                result = handler(str(event_type), event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event handler for %s failed", event_type)
