"""Commit notifications over PostgreSQL LISTEN/NOTIFY.

A writer sends one NOTIFY per committed job transaction on a channel per
(schema, table); the payload names the writer (`by`), the document and the
operations' ordinals and types. It is a hint: anything that depends on it
also polls, so a lost notification costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger("reactor.notify")

MAX_PAYLOAD = 8000  # PostgreSQL's limit is 8000 bytes; above it we skip the NOTIFY


def channel_name(schema: str = "public", table: str = "reactor_operations") -> str:
    return f"reactor_commit_{schema}_{table}"


READ_MODEL_CHANNEL = "reactor_read_models"


Handler = Callable[[str, dict[str, Any]], None]


class NotifyListener:
    """One dedicated LISTEN connection per process, reconnecting with
    exponential backoff. Handlers get (channel, payload) for every
    notification, the process's own included; `on_reconnect` handlers run
    after a reconnect so waiters can re-check what they may have missed."""

    def __init__(
        self, url: str | dict[str, Any], channels: list[str], instance_id: str | None = None
    ):
        self.url = url
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
            try:
                if isinstance(self.url, str):
                    conn = await asyncpg.connect(self.url)
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
                    log.info("LISTEN connection re-established")
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
                log.warning("LISTEN connection failed (%s); retrying in %.2fs", exc, delay)
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        for handler in list(self._handlers):
            try:
                handler(channel, data)
            except Exception:  # one bad handler must not starve the others
                log.exception("notification handler failed")
