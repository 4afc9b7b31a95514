"""Draining a reaction: scan the feed, claim streams, run the handler over
each stream's pending operations in order, ack or back off."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from reactor.application.wakeup import Wakeup
from reactor.domain.document import Operation
from reactor.reactions.processor import Processor, ReactionContext
from reactor.reactions.store import Claim, ReactionStore
from reactor.storage.database import Database
from reactor.storage.operation_store import Position

if TYPE_CHECKING:
    from reactor.api.reactor import Reactor

log = logging.getLogger("reactor.reactions")


class LeaseLostError(Exception):
    pass


@dataclass
class DrainResult:
    handled: int = 0
    failed: int = 0
    blocked: list[str] = field(default_factory=list)
    more: bool = False
    stopping: bool = False  # the worker is shutting down: stop scheduling drains here
    # Drains run again because something woke them (NOTIFY, a commit in this
    # process) rather than the poll: how operators, and tests, tell a reaction
    # that hears commits from one that only polls.
    woken: int = 0


class ReactionDrainer:
    def __init__(
        self,
        db: Database,
        processors: list[Processor],
        *,
        reactor: Reactor | None = None,
        owner: str | None = None,
        claim_limit: int = 16,
    ):
        self.db = db
        self.store = ReactionStore(db)
        self.processors = {p.name: p for p in processors}
        self.reactor = reactor
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.claim_limit = claim_limit
        # Streams handled at once per drain; well below any sane pool size.
        self._streams = asyncio.Semaphore(4)
        # Process-local wake-ups, one per reaction, and how many drains of
        # this process wait on each right now.
        self._wakeups = {name: Wakeup() for name in self.processors}
        self._waiting = dict.fromkeys(self.processors, 0)

    def wake_local(self, name: str) -> bool:
        """Wakes a drain of this process waiting for `name`; False if none is
        waiting here (then the workflow must be signalled)."""
        if self._waiting.get(name, 0) <= 0:
            return False
        self._wakeups[name].set()
        return True

    async def drain_and_wait(
        self,
        name: str,
        *,
        budget_seconds: float,
        idle_seconds: float,
        poll_seconds: float,
        stopping: Callable[[], bool] = lambda: False,
    ) -> DrainResult:
        """Drains, then keeps waiting up to `idle_seconds` for more work:
        woken at once by NOTIFY or local commits (see wake_local), else by a
        poll every `poll_seconds`. A wake during a drain is kept: the
        generation is compared after each drain."""
        wakeup = self._wakeups[name]
        total = DrainResult()
        loop_start = time.monotonic()
        idle_until = loop_start + idle_seconds
        self._waiting[name] += 1
        try:
            while True:
                generation = wakeup.generation
                result = await self.drain(name, budget_seconds=budget_seconds)
                total.handled += result.handled
                total.failed += result.failed
                total.blocked += result.blocked
                if result.more or time.monotonic() - loop_start > budget_seconds:
                    total.more = result.more
                    return total
                if result.handled:
                    idle_until = time.monotonic() + idle_seconds
                remaining = idle_until - time.monotonic()
                if stopping():
                    total.stopping = True
                    return total
                if remaining <= 0:
                    return total
                if wakeup.generation == generation:
                    # never wait past a second: shutdown must be noticed
                    await wakeup.wait(min(poll_seconds, remaining, 1.0))
                if wakeup.generation != generation:
                    total.woken += 1
        finally:
            self._waiting[name] -= 1

    async def setup(self) -> None:
        for name in self.processors:
            await self.store.ensure(name)

    async def drain(self, name: str, *, budget_seconds: float = 5.0) -> DrainResult:
        proc = self.processors[name]
        deadline = time.monotonic() + budget_seconds
        result = DrainResult()
        while True:
            scanned = await self.store.scan(proc)
            claims = await self.store.claim(name, self.owner, proc.lease_seconds, self.claim_limit)
            if claims:
                outcomes = await asyncio.gather(*(self._stream(proc, c) for c in claims))
                for handled, error, blocked in outcomes:
                    result.handled += handled
                    result.failed += error
                    if blocked:
                        result.blocked.append(blocked)
            if not scanned and not claims:
                return result
            if time.monotonic() > deadline:
                result.more = True
                return result

    async def _stream(self, proc: Processor, claim: Claim) -> tuple[int, int, str | None]:
        """(handled, failures, blocked document id or None). No connection is
        held across an at-least-once handler call: handlers may use the same
        pool (through the reactor) without starving the drain."""
        async with self._streams:
            return await self._stream_ops(proc, claim)

    async def _stream_ops(self, proc: Processor, claim: Claim) -> tuple[int, int, str | None]:
        handled = 0
        async with self.db.pool.acquire() as conn:
            doc_type = await conn.fetchval(
                "SELECT document_type FROM reactor_documents WHERE id = $1", claim.document_id
            )
            ops = await ReactionStore.pending(conn, claim.document_id, claim.done, claim.head)
        try:
            for pos, op in ops:
                ctx = ReactionContext(
                    reaction=proc.name,
                    document_type=doc_type or "",
                    position=pos,
                    attempt=claim.attempts + 1,
                    reactor=self.reactor,
                )
                if proc.matches(op, ctx.document_type):
                    if proc.exactly_once:
                        await self._exactly_once(proc, claim, op, ctx)
                    else:
                        await _call(proc, op, ctx)
                        await self._ack(proc, claim, pos)
                    handled += 1
                else:
                    await self._ack(proc, claim, pos)
        except LeaseLostError:
            log.warning(
                "%s: lease on %s lost; another worker takes over", proc.name, claim.document_id
            )
            return handled, 0, None
        except Exception as exc:
            attempts = claim.attempts + 1
            message = f"{type(exc).__name__}: {exc}"
            blocked = await self.store.fail(proc, claim.document_id, self.owner, message, attempts)
            if blocked:
                log.error(
                    "%s: stream %s blocked after %d attempts: %s",
                    proc.name,
                    claim.document_id,
                    attempts,
                    message,
                )
            return handled, 1, claim.document_id if blocked else None
        await self.store.release(proc.name, claim.document_id, self.owner)
        return handled, 0, None

    async def _exactly_once(
        self, proc: Processor, claim: Claim, op: Operation, ctx: ReactionContext
    ) -> None:
        async with self.db.pool.acquire() as conn, conn.transaction():
            await _call(proc, op, replace(ctx, tx=conn))
            if not await ReactionStore.ack(
                conn, proc.name, claim.document_id, self.owner, ctx.position, proc.lease_seconds
            ):
                raise LeaseLostError(claim.document_id)

    async def _ack(self, proc: Processor, claim: Claim, pos: Position) -> None:
        async with self.db.pool.acquire() as conn:
            if not await ReactionStore.ack(
                conn, proc.name, claim.document_id, self.owner, pos, proc.lease_seconds
            ):
                raise LeaseLostError(claim.document_id)


async def _call(proc: Processor, op: Operation, ctx: ReactionContext) -> None:
    result = proc.handler(op, ctx)
    if inspect.isawaitable(result):
        await result
