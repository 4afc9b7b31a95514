"""Routes commits to reactions.

Remote commits arrive by NOTIFY (the store's notify hook, which filters out
this process's own commits); local commits are routed directly by the apply
path. A drain waiting in this process is woken in-process (the fast path);
otherwise the reaction workflow gets a signal-with-start, which also starts
it if it is not running. Signals are coalesced without adding latency: the
first is sent at once; wakes arriving while it is in flight collapse into one
more signal after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from temporalio.client import Client
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from reactor.domain.workflow_io import ReactionInput
from reactor.observability.search_attributes import reaction_start_attributes
from reactor.reactions.processor import Processor
from workflows.reaction import TASK_TIMEOUT, ReactionWorkflow

log = logging.getLogger("reactor.reactions")


def reaction_workflow_id(task_queue: str, name: str) -> str:
    """Per task queue: reactors sharing a namespace keep separate reactions."""
    return f"reaction-{task_queue}-{name}"


class ReactionRouter:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        processors: list[Processor],
        *,
        poll_interval: float = 1.0,
        fanout: int = 2,
        wake_local: Callable[[str], bool] | None = None,
    ):
        self.wake_local = wake_local
        self.client = client
        self.task_queue = task_queue
        self.processors = processors
        self.poll_interval = poll_interval
        self.fanout = fanout
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._dispose: Callable[[], None] | None = None
        self._attributes = True
        self.signals_sent = 0

    async def start(
        self, subscribe: Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]] | None
    ) -> None:
        for proc in self.processors:
            await self._signal(proc.name)
        if subscribe is not None:
            self._dispose = subscribe(self.route)

    async def stop(self) -> None:
        if self._dispose is not None:
            self._dispose()
        tasks = list(self._inflight.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def route(self, payload: dict[str, Any]) -> None:
        # A commit too big for one NOTIFY lists its action types, not its events.
        events = payload.get("events")
        types = (
            {e.get("type", "") for e in events}
            if events is not None
            else {str(t) for t in payload.get("types", [])}
        )
        doc_type = str(payload.get("document_type", ""))
        for proc in self.processors:
            if proc.matches_types(types, doc_type):
                self.wake(proc.name)

    def wake(self, name: str) -> None:
        """The drain waiting in this process, if any, else a signal."""
        if self.wake_local is not None and self.wake_local(name):
            return
        if name in self._inflight:
            self._again.add(name)
            return
        self._inflight[name] = asyncio.create_task(self._send(name))

    async def _send(self, name: str) -> None:
        try:
            while True:
                try:
                    await self._signal(name)
                except Exception as exc:  # the poll still covers it
                    log.warning("could not wake reaction %s: %s", name, exc)
                if name not in self._again:
                    return
                self._again.discard(name)
        finally:
            self._inflight.pop(name, None)

    async def _signal(self, name: str) -> None:
        self.signals_sent += 1
        proc = next(p for p in self.processors if p.name == name)
        attributes = (
            reaction_start_attributes(name, sorted(proc.document_types or ()))
            if self._attributes
            else None
        )
        try:
            await self._start(name, proc, attributes)
        except RPCError as exc:
            # A cluster without our search attributes: start without them.
            if attributes is None or "search attribute" not in exc.message.lower():
                raise
            self._attributes = False
            await self._start(name, proc, None)

    async def _start(
        self, name: str, proc: Processor, attributes: TypedSearchAttributes | None
    ) -> None:
        kinds = ", ".join(sorted(proc.action_types or ())) or "all actions"
        await self.client.start_workflow(
            ReactionWorkflow.run,
            ReactionInput(name=name, poll_interval_s=self.poll_interval, fanout=self.fanout),
            id=reaction_workflow_id(self.task_queue, name),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="wake",
            static_summary=f"reaction {name} ({kinds})",
            static_details=f"document types: {', '.join(sorted(proc.document_types or ())) or 'all'}",
            search_attributes=attributes,
            task_timeout=TASK_TIMEOUT,
        )
