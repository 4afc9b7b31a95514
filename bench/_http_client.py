"""A load generator's HTTP client: one keep-alive HTTP/1.1 connection per
client, JSON in and out, nothing else.

On a 2-core machine the client shares the cores with the server it
measures. httpx costs about as much CPU per request as the server's own HTTP
handling, so a benchmark through it measures the client as much as the
server; this one writes a request in one call and reads an answer framed by
Content-Length (what uvicorn sends for a JSON answer), as `wrk` would.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import orjson


class HttpError(RuntimeError):
    pass


class Connection:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, target: str, body: Any) -> tuple[int, Any]:
        """`target`: path and query. The status and the parsed JSON answer."""
        payload = orjson.dumps(body)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(head + payload)
        status_line = await self._reader.readline()
        if not status_line:
            raise HttpError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = None
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            raise HttpError(f"an answer without Content-Length (status {status})")
        return status, orjson.loads(await self._reader.readexactly(length))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await asyncio.gather(self._writer.wait_closed(), return_exceptions=True)
            self._writer = None
