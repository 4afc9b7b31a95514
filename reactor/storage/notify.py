"""Commit notifications over PostgreSQL LISTEN/NOTIFY.

A writer announces every committed job on a channel per (schema, table); a
commit's payload names the writer (`by`), the document, the job and the
operations' ordinals and types. It is a hint: anything that depends on it
also polls, so a lost notification costs latency, never correctness.

Notifications are sent *after* the job's commit, not inside its transaction:
PostgreSQL serializes the commits of all transactions that issued a NOTIFY
behind one cluster-wide lock held through the commit's WAL flush, so NOTIFY
inside every job transaction made concurrent jobs commit one at a time
(~25% of throughput here, bench/RESULTS.md). `CommitNotifier` sends the
commits of one event-loop tick together, as one message of the form
{"by": ..., "commits": [...]}; `NotifyListener` hands each commit to its
handlers as its own payload.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from reactor.observability.outage import OUTAGE, install_outage_filter
from reactor.runtime.settings import postgres_tls_from_env

log = logging.getLogger("reactor.notify")

MAX_PAYLOAD = 8000  # PostgreSQL takes payloads shorter than this (bytes)


def channel_name(schema: str = "public", table: str = "reactor_operations") -> str:
    return f"reactor_commit_{schema}_{table}"


READ_MODEL_CHANNEL = "reactor_read_models"


Handler = Callable[[str, dict[str, Any]], None]


class CommitNotifier:
    """Announces committed jobs on `channel`, batched per event-loop tick.
    `publish` returns once the message carrying the commit was sent (or
    failed: a hint is never worth failing a job), so a job reported done has
    been announced; `announce` queues it and hands back that moment as a
    future."""

    def __init__(self, pool: asyncpg.Pool, channel: str, instance_id: str):
        self.pool = pool
        self.channel = channel
        self.instance_id = instance_id
        # A message is _head + commits joined by "," + b"]}"; _bare is the
        # length of one with no commit in it.
        self._head = b'{"by":' + orjson.dumps(instance_id) + b',"commits":['
        self._bare = len(self._head) + 2
        self._pending: list[bytes] = []
        self._sent: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.messages = 0

    async def publish(
        self, commit: dict[str, Any], *, oversize: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        sent = self.announce(commit, oversize=oversize)
        if sent is not None:
            await sent

    def announce(
        self, commit: dict[str, Any], *, oversize: Callable[[], dict[str, Any]] | None = None
    ) -> asyncio.Future[None] | None:
        """Queues the commit; the future resolves once its message was sent.
        A commit too big for a NOTIFY is announced as `oversize()` (a shorter
        form of it, built only then) when that fits; None when nothing fits
        (listeners' polling covers it)."""
        encoded = orjson.dumps(commit)
        if not self._fits(encoded):
            if oversize is None:
                return None
            encoded = orjson.dumps(oversize())
            if not self._fits(encoded):
                return None
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            # Left over from an event loop that is gone (tests run one per test).
            self._task, self._sent, self._pending = None, None, []
        self._pending.append(encoded)
        if self._sent is None:
            self._sent = loop.create_future()
        sent = self._sent
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="reactor-commit-notifier")
        return asyncio.shield(sent)

    def _fits(self, encoded: bytes) -> bool:
        """Whether one encoded commit fits in a message of its own."""
        return self._bare + len(encoded) < MAX_PAYLOAD

    def _envelope(self, commits: bytes) -> bytes:
        return self._head + commits + b"]}"

    def _messages(self, commits: list[bytes]) -> list[str]:
        messages: list[str] = []
        group: list[bytes] = []
        size = self._bare
        for c in commits:
            # PostgreSQL takes payloads shorter than MAX_PAYLOAD bytes.
            if group and size + len(c) + 1 >= MAX_PAYLOAD:
                messages.append(self._envelope(b",".join(group)).decode())
                group, size = [], self._bare
            group.append(c)
            size += len(c) + 1
        if group:
            messages.append(self._envelope(b",".join(group)).decode())
        return messages

    async def _run(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # commits finishing in this tick join the message
                commits, sent = self._pending, self._sent
                self._pending, self._sent = [], None
                try:
                    messages = self._messages(commits)
                    async with self.pool.acquire() as conn:
                        await conn.execute(
                            "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
                            self.channel,
                            messages,
                        )
                    self.messages += len(messages)
                except Exception as exc:  # noqa: BLE001 - a hint; pollers cover it
                    # An outage is one line for the process (OutageLogFilter).
                    log.warning("commit notification not sent", exc_info=exc)
                finally:
                    if sent is not None and not sent.done():
                        sent.set_result(None)
        finally:
            self._task = None


class NotifyListener:
    """One dedicated LISTEN connection per process, reconnecting with
    exponential backoff. Handlers get (channel, payload) for every
    notification, the process's own included; `on_reconnect` handlers run
    after a reconnect so waiters can re-check what they may have missed."""

    def __init__(
        self, url: str | dict[str, Any], channels: list[str], instance_id: str | None = None
    ):
        self.url = url
        # A borrowed pool's parameters carry their own TLS settings.
        self._tls = postgres_tls_from_env() if isinstance(url, str) else {}
        self.channels = channels
        self.instance_id = instance_id or uuid.uuid4().hex
        self._handlers: list[Handler] = []
        self._reconnect_handlers: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0

    def add_handler(self, handler: Handler) -> Callable[[], None]:
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        self._reconnect_handlers.append(handler)

    async def start(self) -> None:
        if self._task is None:
            install_outage_filter()  # its failed attempts rely on it to stay one line
            self._task = asyncio.create_task(self._run(), name="reactor-notify-listener")
            await asyncio.wait_for(self._connected.wait(), 30)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    @property
    def backend_pid(self) -> int | None:
        return self._conn.get_server_pid() if self._conn is not None else None

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while True:
            since = OUTAGE.mark()
            try:
                if isinstance(self.url, str):
                    conn = await asyncpg.connect(self.url, **self._tls)
                else:
                    conn = await asyncpg.connect(*self.url["args"], **self.url["kwargs"])
                self._conn = conn
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for ch in self.channels:
                    await conn.add_listener(ch, self._dispatch)
                self._connected.set()
                if not first:
                    self.reconnects += 1
                    log.debug("LISTEN connection re-established")
                    OUTAGE.succeeded(since)  # the database answers: an outage being logged is over
                    for h in list(self._reconnect_handlers):
                        h()
                first = False
                delay = 0.05
                while not lost.is_set() and not conn.is_closed():
                    # asyncpg only notices a dead socket on use: probe it.
                    try:
                        await asyncio.wait_for(lost.wait(), 1.0)
                    except TimeoutError:
                        try:
                            await asyncio.wait_for(conn.execute("SELECT 1"), 2.0)
                        except (asyncpg.PostgresError, OSError, TimeoutError):
                            break
                        except asyncpg.InterfaceError:
                            break
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # Once per outage, with the process's other failed attempts
                # (OutageLogFilter); anything else keeps its traceback.
                log.warning("LISTEN connection failed; retrying", exc_info=exc)
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            data = orjson.loads(payload)
        except ValueError:  # orjson.JSONDecodeError is one
            return
        commits = data.get("commits") if isinstance(data, dict) else None
        if isinstance(commits, list):  # a CommitNotifier message: one payload per commit
            payloads = [{"by": data.get("by"), **c} for c in commits if isinstance(c, dict)]
        elif isinstance(data, dict):
            payloads = [data]
        else:  # any role may NOTIFY anything: handlers are given objects only
            log.debug("notification on %s dropped: %s, not an object", channel, type(data).__name__)
            return
        for item in payloads:
            for handler in list(self._handlers):
                try:
                    handler(channel, item)
                except Exception:  # one bad handler must not starve the others
                    log.exception("notification handler failed")
