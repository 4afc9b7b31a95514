"""Sync channels: one row per remote reactor this one exchanges operations
with (reactor_sync_channels, migration 0005).

A channel is configuration (url, token, filter) plus the state its workflow
`sync-<name>` keeps between rounds: the positions acknowledged on both sides,
totals, and whether the last round failed. The workflow is the only writer of
the state; the builder and `reactor sync` write the configuration.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import asyncpg
from pydantic import BaseModel, ConfigDict

from reactor.domain.channel_status import ChannelState
from reactor.domain.errors import ValidationError
from reactor.domain.jobs import MAX_ERROR_MESSAGE
from reactor.domain.limits import text_problem
from reactor.storage.database import Database
from reactor.storage.operation_store import Position

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_URL = 2048
MAX_FILTER = 256  # a document type or id, as the wire models bound them

_COLUMNS = """
name, url, token, document_type, document_id, remote_id,
pull_tx::text::bigint AS pull_tx, pull_ordinal, push_tx::text::bigint AS push_tx,
push_ordinal, pulled, pushed, status, attempts, last_error, last_success_at,
created_at, updated_at
"""
_INSERT = f"""
INSERT INTO reactor_sync_channels (name, url, token, document_type, document_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO NOTHING
RETURNING {_COLUMNS}
"""
# A channel declared again (builder, at each start): a new token is taken as
# is; a new remote or filter makes the cursors meaningless, so they restart
# (loads skip operations the receiver already holds).
_CONFIGURE = f"""
INSERT INTO reactor_sync_channels AS c (name, url, token, document_type, document_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE SET
    token = EXCLUDED.token,
    url = EXCLUDED.url,
    document_type = EXCLUDED.document_type,
    document_id = EXCLUDED.document_id,
    remote_id = CASE WHEN c.url = EXCLUDED.url THEN c.remote_id END,
    pull_tx = CASE WHEN {{same}} THEN c.pull_tx ELSE '0' END,
    pull_ordinal = CASE WHEN {{same}} THEN c.pull_ordinal ELSE 0 END,
    push_tx = CASE WHEN {{same}} THEN c.push_tx ELSE '0' END,
    push_ordinal = CASE WHEN {{same}} THEN c.push_ordinal ELSE 0 END,
    updated_at = now()
RETURNING {_COLUMNS}
""".replace(
    "{same}",
    "(c.url, c.document_type, c.document_id) IS NOT DISTINCT FROM "
    "(EXCLUDED.url, EXCLUDED.document_type, EXCLUDED.document_id)",
)
_GET = f"SELECT {_COLUMNS} FROM reactor_sync_channels WHERE name = $1"
_LIST = f"SELECT {_COLUMNS} FROM reactor_sync_channels ORDER BY name"
_REMOVE = "DELETE FROM reactor_sync_channels WHERE name = $1"
_ADVANCE_PULL = """
UPDATE reactor_sync_channels SET pull_tx = $2::text::xid8, pull_ordinal = $3,
    pulled = pulled + $4, remote_id = $5, updated_at = now()
WHERE name = $1
"""
_ADVANCE_PUSH = """
UPDATE reactor_sync_channels SET push_tx = $2::text::xid8, push_ordinal = $3,
    pushed = pushed + $4, updated_at = now()
WHERE name = $1
"""
_SUCCEEDED = """
UPDATE reactor_sync_channels SET status = 'SUCCEEDED', attempts = 0, last_error = NULL,
    last_success_at = now(), updated_at = now()
WHERE name = $1
"""
_FAILED = """
UPDATE reactor_sync_channels SET status = 'FAILED', attempts = attempts + 1,
    last_error = $2, updated_at = now()
WHERE name = $1
RETURNING attempts
"""


class Channel(BaseModel):
    """A channel's row. Built by hand only for `add`/`configure` (name, url,
    token, filter); the rest is the state the stores keep."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    token: str | None = None
    document_type: str | None = None
    document_id: str | None = None
    remote_id: str | None = None
    pull: Position = Position()  # the remote's log, loaded here up to this
    push: Position = Position()  # this log, acknowledged by the remote up to this
    pulled: int = 0
    pushed: int = 0
    status: ChannelState = ChannelState.PENDING
    attempts: int = 0  # failed rounds in a row
    last_error: str | None = None
    last_success_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def declare(
        cls,
        url: str,
        *,
        name: str | None = None,
        token: str | None = None,
        document_type: str | None = None,
        document_id: str | None = None,
    ) -> Channel:
        """A new channel's configuration, checked; the name defaults to the
        URL's host and port."""
        check_url(url)
        channel = cls(
            name=default_name(url) if name is None else name,
            url=url,
            token=token,
            document_type=document_type,
            document_id=document_id,
        )
        check_channel(channel)
        return channel

    @property
    def filter(self) -> str:
        """The filter in words, for listings."""
        if self.document_type is not None:
            return f"type {self.document_type}"
        if self.document_id is not None:
            return f"document {self.document_id}"
        return "all"

    @property
    def workflow_id(self) -> str:
        return workflow_id(self.name)


def workflow_id(name: str) -> str:
    """The channel's workflow (workflows/sync.py)."""
    return f"sync-{name}"


def default_name(url: str) -> str:
    """The URL's host[:port], as a channel name: `127.0.0.1-8080`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    raw = f"{host}-{parts.port}" if parts.port is not None else host
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")[:64]
    if not safe:
        raise ValidationError("the URL names no host to name the channel after", field="url")
    return safe


def check_url(url: str) -> None:
    _check_text(url, "url", MAX_URL)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port only raises when read
    except ValueError as exc:
        raise ValidationError(f"{url!r} is not a URL: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"{url!r} is not an http(s) URL of a reactor's API (http://host:port)", field="url"
        )


def check_channel(channel: Channel) -> None:
    """What every store checks before it writes a channel's configuration."""
    if not NAME_RE.match(channel.name):
        raise ValidationError(
            f"{channel.name!r} is not a channel name: 1 to 64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit",
            field="name",
        )
    check_url(channel.url)
    if channel.token is not None:
        _check_text(channel.token, "token", MAX_URL * 8)
    for field, value in (
        ("document_type", channel.document_type),
        ("document_id", channel.document_id),
    ):
        if value is not None:
            _check_text(value, field, MAX_FILTER)
    if channel.document_type is not None and channel.document_id is not None:
        raise ValidationError(
            "a channel filters by a document type or by one document, not both",
            field="document_id",
        )


def _check_text(value: str, field: str, limit: int) -> None:
    if not value:
        raise ValidationError("must not be empty", field=field)
    if len(value) > limit:
        raise ValidationError(f"{len(value):,} characters, over the limit of {limit}", field=field)
    problem = text_problem(value)
    if problem is not None:
        raise ValidationError(f"the text {problem}", field=field)


def _taken(name: str) -> ValidationError:
    return ValidationError(
        f"a channel named {name!r} exists: `reactor sync remove {name}` first, "
        "or choose another --name",
        field="name",
    )


def _error_text(error: str) -> str:
    return error if len(error) <= MAX_ERROR_MESSAGE else error[: MAX_ERROR_MESSAGE - 1] + "…"


class ChannelStore(Protocol):
    async def add(self, channel: Channel) -> Channel:
        """Stores a new channel (ValidationError naming the field: a name
        taken, a bad URL, both filters)."""
        ...

    async def configure(self, channel: Channel) -> Channel:
        """Adds the channel, or updates an existing one's url, token and
        filter (its cursors restart when the url or filter changed)."""
        ...

    async def get(self, name: str) -> Channel | None: ...

    async def list(self) -> builtins.list[Channel]: ...

    async def remove(self, name: str) -> bool: ...

    async def advance_pull(
        self, name: str, position: Position, count: int, remote_id: str
    ) -> bool: ...

    async def advance_push(self, name: str, position: Position, count: int) -> bool: ...

    async def succeeded(self, name: str) -> bool: ...

    async def failed(self, name: str, error: str) -> int:
        """Failed rounds in a row, this one included (0: no such channel)."""
        ...


class PostgresChannelStore:
    def __init__(self, db: Database):
        self._db = db

    async def add(self, channel: Channel) -> Channel:
        check_channel(channel)
        row = await self._db.pool.fetchrow(_INSERT, *_config(channel))
        if row is None:
            raise _taken(channel.name)
        return _channel(row)

    async def configure(self, channel: Channel) -> Channel:
        check_channel(channel)
        row = await self._db.pool.fetchrow(_CONFIGURE, *_config(channel))
        assert row is not None
        return _channel(row)

    async def get(self, name: str) -> Channel | None:
        row = await self._db.pool.fetchrow(_GET, name)
        return None if row is None else _channel(row)

    async def list(self) -> builtins.list[Channel]:
        return await stored_channels(self._db.pool)

    async def remove(self, name: str) -> bool:
        return bool(await self._db.pool.execute(_REMOVE, name) == "DELETE 1")

    async def advance_pull(self, name: str, position: Position, count: int, remote_id: str) -> bool:
        status = await self._db.pool.execute(
            _ADVANCE_PULL, name, str(position.tx_id), position.ordinal, count, remote_id
        )
        return bool(status == "UPDATE 1")

    async def advance_push(self, name: str, position: Position, count: int) -> bool:
        status = await self._db.pool.execute(
            _ADVANCE_PUSH, name, str(position.tx_id), position.ordinal, count
        )
        return bool(status == "UPDATE 1")

    async def succeeded(self, name: str) -> bool:
        return bool(await self._db.pool.execute(_SUCCEEDED, name) == "UPDATE 1")

    async def failed(self, name: str, error: str) -> int:
        attempts = await self._db.pool.fetchval(_FAILED, name, _error_text(error))
        return int(attempts or 0)


async def stored_channels(conn: asyncpg.Connection | asyncpg.Pool) -> list[Channel]:
    """Every channel, by name, over a connection of any kind (`reactor
    doctor` has one of its own)."""
    return [_channel(r) for r in await conn.fetch(_LIST)]


def _config(channel: Channel) -> tuple[str, str, str | None, str | None, str | None]:
    return (
        channel.name,
        channel.url,
        channel.token,
        channel.document_type,
        channel.document_id,
    )


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        name=row["name"],
        url=row["url"],
        token=row["token"],
        document_type=row["document_type"],
        document_id=row["document_id"],
        remote_id=row["remote_id"],
        pull=Position(row["pull_tx"], row["pull_ordinal"]),
        push=Position(row["push_tx"], row["push_ordinal"]),
        pulled=row["pulled"],
        pushed=row["pushed"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        last_success_at=row["last_success_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class InMemoryChannelStore:
    """The same contract over a dict, for unit tests and tools without a
    database."""

    def __init__(self) -> None:
        self._rows: dict[str, Channel] = {}

    async def add(self, channel: Channel) -> Channel:
        check_channel(channel)
        if channel.name in self._rows:
            raise _taken(channel.name)
        now = datetime.now(UTC)
        return self._put(_config_only(channel).model_copy(update={"created_at": now}))

    async def configure(self, channel: Channel) -> Channel:
        check_channel(channel)
        old = self._rows.get(channel.name)
        if old is None:
            return await self.add(channel)
        update: dict[str, object] = {
            "url": channel.url,
            "token": channel.token,
            "document_type": channel.document_type,
            "document_id": channel.document_id,
        }
        if old.url != channel.url:
            update["remote_id"] = None
        if (old.url, old.document_type, old.document_id) != (
            channel.url,
            channel.document_type,
            channel.document_id,
        ):
            update.update(pull=Position(), push=Position())
        return self._put(old.model_copy(update=update))

    async def get(self, name: str) -> Channel | None:
        return self._rows.get(name)

    async def list(self) -> builtins.list[Channel]:
        return [self._rows[n] for n in sorted(self._rows)]

    async def remove(self, name: str) -> bool:
        return self._rows.pop(name, None) is not None

    async def advance_pull(self, name: str, position: Position, count: int, remote_id: str) -> bool:
        old = self._rows.get(name)
        if old is None:
            return False
        self._put(
            old.model_copy(
                update={"pull": position, "pulled": old.pulled + count, "remote_id": remote_id}
            )
        )
        return True

    async def advance_push(self, name: str, position: Position, count: int) -> bool:
        old = self._rows.get(name)
        if old is None:
            return False
        self._put(old.model_copy(update={"push": position, "pushed": old.pushed + count}))
        return True

    async def succeeded(self, name: str) -> bool:
        old = self._rows.get(name)
        if old is None:
            return False
        self._put(
            old.model_copy(
                update={
                    "status": ChannelState.SUCCEEDED,
                    "attempts": 0,
                    "last_error": None,
                    "last_success_at": datetime.now(UTC),
                }
            )
        )
        return True

    async def failed(self, name: str, error: str) -> int:
        old = self._rows.get(name)
        if old is None:
            return 0
        new = self._put(
            old.model_copy(
                update={
                    "status": ChannelState.FAILED,
                    "attempts": old.attempts + 1,
                    "last_error": _error_text(error),
                }
            )
        )
        return new.attempts

    def _put(self, channel: Channel) -> Channel:
        stored = channel.model_copy(update={"updated_at": datetime.now(UTC)})
        self._rows[channel.name] = stored
        return stored


def _config_only(channel: Channel) -> Channel:
    """What a new row keeps of the channel it was given: its configuration."""
    return Channel(
        name=channel.name,
        url=channel.url,
        token=channel.token,
        document_type=channel.document_type,
        document_id=channel.document_id,
    )


__all__ = [
    "Channel",
    "ChannelState",
    "ChannelStore",
    "InMemoryChannelStore",
    "PostgresChannelStore",
    "check_channel",
    "check_url",
    "default_name",
    "stored_channels",
    "workflow_id",
]
