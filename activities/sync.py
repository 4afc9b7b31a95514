"""Activities of the sync channel workflow: one round of pull and push, and
the wait for something to move.

A round's cursors (the channel's row) only move past what the other side
acknowledged: the remote's operations once their load jobs here ended
READ_READY, ours once the remote's load jobs did. A round that fails halfway
leaves them where the last acknowledgement put them, and the next round
sends the same pages again: load batch ids are digests of what they carry,
so a page loaded twice is one batch, and an operation already held is
skipped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from pydantic import BaseModel
from temporalio import activity

from reactor.api.remote import RemoteReactor
from reactor.application.change_feed import FeedClosed, FeedEvent, Overflowed
from reactor.application.events import ReactorEventTypes, SyncEvent
from reactor.domain.errors import ReactorError
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.storage.errors import one_line
from reactor.storage.identity import reactor_id
from reactor.storage.sync_channels import Channel, PostgresChannelStore
from reactor.storage.sync_source import SyncSource, echoed

if TYPE_CHECKING:
    from reactor.api.module import ReactorModule

# Operations per page, each way.
PAGE = 500
# Pages one round moves each way: then it ends, reporting `more`, and the
# workflow starts the next at once (a round stays short, its progress shown).
PAGES_PER_ROUND = 8
# Heartbeats of a round and a wait, well within their heartbeat timeouts
# (workflows/sync.py: 30 s for a round, 10 s for a wait).
HEARTBEAT_S = 5.0
# Jobs that end a load written: READ_READY, or WRITE_READY when a read model
# holds them back (written all the same; the read model is not the sender's).
WRITTEN = (JobStatus.READ_READY, JobStatus.WRITE_READY)
ERROR_LIMIT = 2000  # characters of an error kept in the channel's row


class SyncRoundInput(BaseModel):
    name: str


class RoundResult(BaseModel):
    ok: bool
    pulled: int = 0  # operations loaded here
    pushed: int = 0  # operations the remote accepted
    more: bool = False  # a round's page budget ran out: more is waiting
    error: str | None = None  # why the round failed (ok false)
    removed: bool = False  # the channel is gone: its workflow ends

    @property
    def moved(self) -> bool:
        return self.pulled > 0 or self.pushed > 0 or self.more


class WaitInput(BaseModel):
    name: str
    timeout_s: float


class WaitResult(BaseModel):
    changed: bool  # false: the timeout passed


class RoundFailed(ReactorError):
    """A side refused or failed what the round sent it: the round ends, the
    cursor stays."""


class _Round:
    """What a round moved so far, for its events and its result."""

    def __init__(self) -> None:
        self.pulled = 0
        self.pushed = 0
        self.more = False


class SyncActivities:
    """Bound to one module (its reactor, database, change feed and event
    bus) per worker."""

    def __init__(self, module: ReactorModule):
        self.module = module
        self.channels = PostgresChannelStore(module.database)
        self.source = SyncSource(module.database)

    @activity.defn(name="sync_round")
    async def sync_round(self, inp: SyncRoundInput) -> RoundResult:
        """Pulls, then pushes. A failure of either side, or of the remote's
        answer, is the round's result (the workflow backs off and shows it);
        only a worker lost mid-round makes Temporal retry the activity."""
        channel = await self.channels.get(inp.name)
        if channel is None:
            return RoundResult(ok=False, removed=True, error=f"channel {inp.name} was removed")
        bus = self.module.event_bus
        await bus.emit(ReactorEventTypes.SYNC_PENDING, SyncEvent(channel=inp.name))
        moved = _Round()
        try:
            async with _heartbeats(), RemoteReactor(channel.url, channel.token) as remote:
                me = await reactor_id(self.module.database)
                remote_id = await self._pull(channel, remote, me, moved)
                await self._push(channel, remote, me, remote_id, moved)
        except Exception as exc:  # every failure is shown and backed off from, none retried here
            error = one_line(exc)[:ERROR_LIMIT]
            with contextlib.suppress(Exception):  # the database may be what failed
                await self.channels.failed(inp.name, error)
            await bus.emit(
                ReactorEventTypes.SYNC_FAILED,
                SyncEvent(channel=inp.name, pulled=moved.pulled, pushed=moved.pushed, error=error),
            )
            return RoundResult(ok=False, pulled=moved.pulled, pushed=moved.pushed, error=error)
        await self.channels.succeeded(inp.name)
        await bus.emit(
            ReactorEventTypes.SYNC_SUCCEEDED,
            SyncEvent(channel=inp.name, pulled=moved.pulled, pushed=moved.pushed),
        )
        return RoundResult(ok=True, pulled=moved.pulled, pushed=moved.pushed, more=moved.more)

    async def _pull(self, channel: Channel, remote: RemoteReactor, me: str, moved: _Round) -> str:
        """Loads the remote's pages after the pull cursor; returns the
        remote's reactor id."""
        after = channel.pull
        remote_id = channel.remote_id
        for _ in range(PAGES_PER_ROUND):
            page = await remote.operations(
                after,
                PAGE,
                peer=me,
                document_type=channel.document_type,
                document_id=channel.document_id,
            )
            if remote_id is not None and page.reactor_id != remote_id:
                raise RoundFailed(
                    f"{channel.url} is now reactor {page.reactor_id}, not {remote_id} whose "
                    "log this channel followed: remove the channel and add it again"
                )
            if page.reactor_id == me:
                raise RoundFailed(f"{channel.url} is this reactor itself")
            remote_id = page.reactor_id
            count = sum(len(load.operations) for load in page.loads)
            if page.loads:
                # After failed rounds, a new attempt: the failed batch's
                # cause (a missing create, a limit) may be gone.
                result = await self.module.reactor.load_batch(
                    page.loads, origin=remote_id, attempt=channel.attempts
                )
                jobs = await self.module.reactor.wait_for_batch(result.batch_id)
                _check_written(jobs, "loading the remote's operations here")
            if page.next != after or page.reactor_id != channel.remote_id:
                await self.channels.advance_pull(channel.name, page.next, count, remote_id)
            moved.pulled += count
            after = page.next
            if not page.more:
                return remote_id
        moved.more = True
        assert remote_id is not None  # set by the first page
        return remote_id

    async def _push(
        self, channel: Channel, remote: RemoteReactor, me: str, remote_id: str, moved: _Round
    ) -> None:
        """Sends this reactor's pages after the push cursor, leaving out what
        the remote sent."""
        after = channel.push
        for _ in range(PAGES_PER_ROUND):
            page = await self.source.read_page(
                after, PAGE, remote_id, channel.document_type, channel.document_id
            )
            if page.loads:
                jobs = await remote.load(me, page.loads, attempt=channel.attempts)
                _check_written(jobs, "loading this reactor's operations on the remote")
            if page.next != after:
                await self.channels.advance_push(channel.name, page.next, page.served)
            moved.pushed += page.served
            after = page.next
            if not page.more:
                return
        moved.more = True

    @activity.defn(name="wait_for_changes")
    async def wait_for_changes(self, inp: WaitInput) -> WaitResult:
        """Until the remote's event stream shows an event after the pull
        cursor, or a local operation the remote lacks follows the push
        cursor, or `timeout_s` passed, or the worker stops. A remote that
        cannot be reached leaves the local side and the timeout: the round
        after says why."""
        channel = await self.channels.get(inp.name)
        if channel is None:
            return WaitResult(changed=True)  # the round ends the workflow
        async with (
            _heartbeats(),
            RemoteReactor(channel.url, channel.token) as remote,
            asyncio.TaskGroup() as group,
        ):
            waits = [
                group.create_task(self._remote_event(channel, remote, inp.timeout_s)),
                group.create_task(self._local_operation(channel, inp.timeout_s)),
                group.create_task(_worker_stopping()),
            ]
            changed = False
            for done in asyncio.as_completed(waits):
                if await done:
                    changed = True
                    break
            for wait in waits:
                wait.cancel()
        return WaitResult(changed=changed)

    async def _remote_event(
        self, channel: Channel, remote: RemoteReactor, timeout_s: float
    ) -> bool:
        try:
            return await remote.wait_for_event(
                channel.pull, timeout_s, channel.document_type, channel.document_id
            )
        except ReactorError:  # RemoteUnavailableError, RemoteRejectedError
            await asyncio.sleep(timeout_s)
            return False

    async def _local_operation(self, channel: Channel, timeout_s: float) -> bool:
        """Reads the change feed from the push cursor (a page at a time while
        it catches up, then woken by commits)."""

        def lacking(event: FeedEvent) -> bool:
            op = event.operation
            if channel.document_type is not None and event.document_type != channel.document_type:
                return False
            if channel.document_id is not None and op.document_id != channel.document_id:
                return False
            return not echoed(op, channel.remote_id)

        feed = self.module.change_feed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with feed.open(lacking, after=channel.push) as reader:
                while (left := deadline - loop.time()) > 0:
                    if await reader.next(left):
                        return True
        except (Overflowed, FeedClosed):
            return True  # many commits, or the process stopping: a round decides
        return False


async def _worker_stopping() -> bool:
    """A stopping worker ends its waits at once instead of holding its
    shutdown for the poll interval; the next round runs on any worker."""
    await activity.wait_for_worker_shutdown()
    return True


def _check_written(jobs: list[JobInfo], what: str) -> None:
    for job in jobs:
        if job.status in WRITTEN:
            continue
        if job.error is not None:
            raise RoundFailed(
                f"{what}: job {job.id} (document {job.document_id}) failed: "
                f"{job.error.type}: {job.error.message}"
            )
        raise RoundFailed(f"{what}: job {job.id} (document {job.document_id}) is {job.status}")


@contextlib.asynccontextmanager
async def _heartbeats() -> AsyncIterator[None]:
    """Lets Temporal notice a lost worker, and hands this activity its
    cancellation (the workflow cancels a wait when woken)."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_S)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
