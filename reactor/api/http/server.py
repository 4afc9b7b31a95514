"""Serving the API: uvicorn on a socket bound here (port 0 picks a free
one, and the bound port is known before the ready line), stopped within a
bound: open requests get `graceful_s` to finish, then are cancelled.

`serve_reactor` is `reactor serve`: a reactor from the environment, a
worker in the same process unless told otherwise, the API, and a bounded
stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from reactor.api.builder import ReactorBuilder
from reactor.api.http.app import create_app
from reactor.api.http.routes_events import (
    EventStreamConfig,
    close_event_streams,
    configure_events,
)
from reactor.domain.errors import ReactorError, ValidationError
from reactor.runtime.gc_tuning import tune_for_worker
from reactor.runtime.process import BoundedStop
from reactor.runtime.settings import Settings

log = logging.getLogger("reactor.api")

# Without authentication the API answers this interface only.
LOOPBACK = "127.0.0.1"
# Seconds open requests (a `wait=true` among them) get once a stop is asked.
GRACEFUL_S = 5.0


def check_bind(host: str, authenticated: bool) -> None:
    """Refuses to expose an unauthenticated API beyond this machine."""
    if not authenticated and host != LOOPBACK:
        raise ValidationError(
            f"refusing to serve on {host!r} without authentication: set REACTOR_JWT_SECRET, "
            f"REACTOR_JWT_PUBLIC_KEY or REACTOR_JWKS_URL, or serve on {LOOPBACK}",
            field="host",
        )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """`app` served on host:port until `stop()` or the `async with` ends."""

    def __init__(
        self, app: FastAPI, host: str = LOOPBACK, port: int = 0, *, graceful_s: float = GRACEFUL_S
    ):
        self.app = app
        self.host = host
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on
        # sockets that say they are TCP, and with it on, a response written
        # in two parts waits for the client's delayed ACK (~40 ms) whenever
        # the connection is reused at once.
        self._socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise ReactorError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=int(max(1, graceful_s)),
            access_log=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise ReactorError(f"the API server on {self.url} stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        await close_event_streams(self.app)  # open streams end now, not at the grace's end
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._socket.close()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve_reactor(
    settings: Settings,
    *,
    host: str = LOOPBACK,
    port: int = 8080,
    worker: bool = True,
    ready: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Runs until `stop` is set or SIGINT/SIGTERM arrives. The ready line
    names the API's URL and whether it checks tokens."""
    check_bind(host, settings.api_auth.configured)
    stop = stop or asyncio.Event()
    guard = BoundedStop(settings.shutdown_grace_s)
    if threading.current_thread() is threading.main_thread():
        guard.install()
    guard.bind(stop)
    # Commit notices wake token reads and `wait=true` at once.
    builder = ReactorBuilder.from_settings(settings).with_notifications(settings.notify)
    module = await builder.build_module()
    try:
        in_process = module.create_worker() if worker else None
        if in_process is not None:
            # A worker's collector settings (reactor.runtime.gc_tuning): the
            # process holds the same long-lived objects a worker process does.
            tune_for_worker(settings.gc_thresholds)
        async with contextlib.AsyncExitStack() as running:
            if in_process is not None:
                await running.enter_async_context(in_process)
            app = create_app(module.reactor, module.jwt_handler, settings=settings)
            if settings.api_events_max_queued is not None:
                configure_events(app, EventStreamConfig(max_queued=settings.api_events_max_queued))
            server = await running.enter_async_context(ApiServer(app, host, port))
            auth = module.jwt_handler
            ready(
                f"reactor serve: api={server.url} docs={server.url}/docs "
                f"auth={auth.scheme if auth is not None else 'none (UNAUTHENTICATED, loopback only)'} "
                f"worker={'on' if in_process is not None else 'off'} "
                f"task_queue={settings.task_queue}"
            )
            await stop.wait()
            log.info("stopping: no new writes; open requests get %ss", GRACEFUL_S)
            module.reactor.kill()
    finally:
        await module.close()
