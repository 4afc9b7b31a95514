"""`reactor doctor`'s checks: is the stack a reactor can run on healthy, and
if not, what to do about it. Each check says what it found and, when it
failed, how to fix it."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import asdict, dataclass
from datetime import UTC, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    GetSystemInfoRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from reactor.application.read_models import ReadModelState, read_model_states
from reactor.domain.errors import ReactorError
from reactor.observability import search_attributes
from reactor.runtime.connection import ConnectionConfigError
from reactor.runtime.connection_errors import explain
from reactor.runtime.settings import Settings, postgres_tls_described, postgres_tls_from_env
from reactor.runtime.temporal import TemporalConnectionError, connect
from reactor.storage.migrate import available, pending
from reactor.storage.sync_channels import Channel, stored_channels
from reactor.storage.tls import DatabaseTLSError

# Temporal keeps a poller listed for a few minutes after its last poll; a
# worker long-polls about once a minute, so older than this means gone.
POLLER_MAX_AGE_S = 120.0

_SSL_IN_USE = "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"

_SETTINGS_FIX = (
    "correct the REACTOR_TEMPORAL_* / REACTOR_PAYLOAD_* variables named above "
    "(README: Production connections)"
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def diagnose(settings: Settings, *, timeout: float = 5.0) -> list[Check]:
    database, temporal = await asyncio.gather(
        check_database(settings.database_url, timeout=timeout),
        check_temporal(settings, timeout=timeout),
    )
    return [*database, *temporal]


async def check_database(url: str, *, timeout: float = 5.0) -> list[Check]:
    try:
        conn = await asyncpg.connect(url, timeout=timeout, **postgres_tls_from_env())
    except (ssl.SSLError, DatabaseTLSError) as exc:
        return [
            Check(
                "database",
                False,
                f"TLS to {redact(url)} failed ({postgres_tls_described()}): {_reason(exc)}",
                "set REACTOR_DATABASE_SSLROOTCERT to the CA that signed the server's "
                "certificate (verify-full also needs the host name in it), and "
                "REACTOR_DATABASE_SSLCERT/REACTOR_DATABASE_SSLKEY where the server asks for "
                "a client certificate",
            )
        ]
    except Exception as exc:  # refused, unknown host, auth, missing database...
        return [
            Check(
                "database",
                False,
                f"cannot connect to {redact(url)}: {_reason(exc)}",
                "start PostgreSQL, or set REACTOR_DATABASE_URL to a database you can log "
                "in to (`reactor dev` runs one locally)",
            )
        ]
    try:
        version = await conn.fetchval("SHOW server_version")
        tls = await conn.fetchval(_SSL_IN_USE)
        todo = await pending(conn)
        # The blocking columns come with a migration: only once it ran.
        read_models = None if todo else await read_model_states(conn)
        channels = [] if todo else await stored_channels(conn)
    finally:
        await conn.close()
    checks = [Check("database", True, f"{redact(url)} (PostgreSQL {version}; TLS: {tls or 'off'})")]
    if todo:
        checks.append(
            Check(
                "migrations",
                False,
                f"{len(todo)} pending: {', '.join(todo)}",
                "run `reactor migrate` (a starting `reactor worker` applies them too)",
            )
        )
    else:
        checks.append(Check("migrations", True, f"all {len(available())} applied"))
    if read_models is not None:
        checks.append(check_read_models(read_models))
    checks.extend(check_sync_channel(c) for c in channels)
    return checks


def check_read_models(states: list[ReadModelState]) -> Check:
    blocked = [s for s in states if s.blocked]
    if not blocked:
        return Check("read models", True, f"{len(states)} tracked, none blocked")
    return Check(
        "read models",
        False,
        "; ".join(
            f"{s.name!r} blocked since {s.blocked_at:%Y-%m-%d %H:%M:%S %Z} after "
            f"{s.attempts} failed attempts: {s.blocked_error}"
            for s in blocked
        ),
        "its jobs end WRITE_READY until it indexes them: fix the read model, restart the "
        "workers, then " + ", ".join(f"`reactor read-models unblock {s.name}`" for s in blocked),
    )


def check_sync_channel(channel: Channel) -> Check:
    """One line per channel: a failing one is retrying with backoff, and
    blocks nothing else, but the documents it carries are not converging."""
    name = f"sync {channel.name}"
    moved = f"{channel.pulled} pulled, {channel.pushed} pushed"
    where = f"{redact(channel.url)} ({channel.filter})"
    if channel.status != "FAILED":
        return Check(name, True, f"{where}: {channel.status}, {moved}")
    since = (
        f"last success {channel.last_success_at:%Y-%m-%d %H:%M:%S %Z}"
        if channel.last_success_at
        else "never succeeded"
    )
    return Check(
        name,
        False,
        f"{where}: FAILED {channel.attempts}× in a row ({since}; {moved}): {channel.last_error}",
        f"check the remote (is it up, does it accept the channel's token?); "
        f"`reactor sync status {channel.name}`",
    )


async def check_temporal(settings: Settings, *, timeout: float = 5.0) -> list[Check]:
    rpc_timeout = timedelta(seconds=timeout)
    address, namespace = settings.temporal_address, settings.namespace
    try:
        conn = settings.temporal_connection()
        auth = conn.auth()
    except ReactorError as exc:  # a malformed TLS or payload key setting
        return [Check("temporal", False, f"bad connection settings: {exc}", _SETTINGS_FIX)]
    try:
        client = await asyncio.wait_for(connect(conn), timeout)
        info = await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=rpc_timeout
        )
    except TemporalConnectionError as exc:
        return [
            Check(
                "temporal",
                False,
                f"cannot connect to {address} with {exc.auth}: {exc.kind}: {exc.detail}",
                exc.fix,
            )
        ]
    except ConnectionConfigError as exc:
        return [Check("temporal", False, f"{auth}: {exc}", _SETTINGS_FIX)]
    except Exception as exc:
        return [
            Check(
                "temporal",
                False,
                f"cannot reach Temporal at {address}: {_reason(exc)}",
                "start the Temporal server, or set REACTOR_TEMPORAL_ADDRESS to its frontend "
                "(host:7233); `reactor dev` runs a dev server",
            )
        ]
    checks = [
        Check("temporal", True, f"{address} (server {info.server_version or '?'}; auth: {auth})")
    ]

    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=rpc_timeout
        )
    except RPCError as exc:
        if exc.status not in (
            RPCStatusCode.NOT_FOUND,
            RPCStatusCode.PERMISSION_DENIED,
            RPCStatusCode.UNAUTHENTICATED,
        ):
            raise
        kind, detail, fix = explain(exc, conn)
        checks.append(Check("namespace", False, f"{kind}: {detail}", fix))
        return checks
    checks.append(Check("namespace", True, namespace))

    found = await search_attributes.registered(client, namespace)
    missing, wrong = search_attributes.problems(found)
    if wrong:
        checks.append(
            Check(
                "search attributes",
                False,
                "registered with another type: " + "; ".join(wrong),
                "a search attribute's type cannot change: remove it (`temporal operator "
                "search-attribute remove --name NAME`), then run `reactor setup-search-attributes`",
            )
        )
    elif missing:
        checks.append(
            Check(
                "search attributes",
                False,
                f"not registered in {namespace!r}: {', '.join(missing)}",
                "run `reactor setup-search-attributes` (once per namespace)",
            )
        )
    else:
        checks.append(Check("search attributes", True, f"{len(found)} custom, ours all present"))

    checks.append(await check_pollers(client, namespace, settings.task_queue, rpc_timeout))
    return checks


async def check_pollers(
    client: Client, namespace: str, task_queue: str, rpc_timeout: timedelta
) -> Check:
    counts: dict[str, int] = {}
    identities: set[str] = set()
    now = time.time()
    for label, kind in (
        ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    ):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
            ),
            timeout=rpc_timeout,
        )
        live = [
            p
            for p in resp.pollers
            if not p.HasField("last_access_time")
            or now - p.last_access_time.ToDatetime(tzinfo=UTC).timestamp() < POLLER_MAX_AGE_S
        ]
        counts[label] = len(live)
        identities.update(p.identity for p in live)
    detail = (
        f"task queue {task_queue!r}: {counts['workflow']} workflow and "
        f"{counts['activity']} activity pollers"
        + (f" ({', '.join(sorted(identities))})" if identities else "")
    )
    if counts["workflow"] and counts["activity"]:
        return check_verification(detail, identities)
    return Check(
        "workers",
        False,
        detail,
        f"start a worker on this task queue: `reactor worker` with REACTOR_TASK_QUEUE={task_queue}",
    )


def verification_of(identity: str) -> str:
    """How a worker verifies signatures, from its Temporal identity
    (`...;verify=off`, `verify=<8 hex of its trusted keys>`, see
    reactor/runtime/worker.py); `unknown` for a worker that does not say."""
    _, found, mode = identity.rpartition(";verify=")
    return mode if found and mode else "unknown"


def check_verification(detail: str, identities: set[str]) -> Check:
    """The task queue's workers must agree on signature verification: each
    chunk is verified by whichever worker takes it, so a mixed queue checks
    some jobs and not others."""
    modes: dict[str, list[str]] = {}
    for identity in sorted(identities):
        modes.setdefault(verification_of(identity), []).append(identity)
    if len(modes) <= 1:
        return Check("workers", True, detail)
    return Check(
        "workers",
        False,
        detail
        + "; they disagree on signature verification: "
        + "; ".join(f"verify={mode}: {', '.join(ids)}" for mode, ids in sorted(modes.items())),
        "give every worker on this task queue the same REACTOR_TRUSTED_KEYS (or "
        "REACTOR_TRUSTED_KEYS_FILE) and restart them; until then a job's signatures are "
        "checked or not depending on which worker takes it (a worker stopped in the last "
        "two minutes may still be listed)",
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = "timed out"
    return text.splitlines()[0][:300]
