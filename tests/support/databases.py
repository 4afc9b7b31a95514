"""Fresh databases on a test PostgreSQL server: one per test (or fault run)
so runs cannot see each other's documents."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from reactor.storage.migrate import migrate


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def new_migrated_database(server_url: str, prefix: str) -> str:
    """Creates a database named `prefix` + a random suffix on the server
    `server_url` reaches, migrates it, and returns its URL."""
    name = prefix + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url
