"""`reactor sync`: channels to remote reactors. `add URL` stores one and
starts its workflow `sync-<name>`; `list` shows them; `remove NAME` stops
the workflow and deletes the channel; `status [NAME]` shows a channel's row
and, while its workflow runs, what the workflow says of itself.
Exit 0 on success, 2 for a bad argument or a name no channel has."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from reactor.domain.errors import ValidationError
from reactor.runtime.settings import Settings, load_settings
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.sync_channels import Channel, PostgresChannelStore, workflow_id

EXIT_OK = 0
# A workflow whose worker is gone does not answer: the row is shown alone.
QUERY_TIMEOUT = timedelta(seconds=5)
STATUS_STYLE = {"PENDING": "yellow", "SUCCEEDED": "green", "FAILED": "bold red"}

console = Console()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sync", help="channels to remote reactors: add, list, remove, status", description=__doc__
    )
    actions = p.add_subparsers(dest="sync_action", required=True)

    add = actions.add_parser("add", help="add a channel and start its workflow")
    add.add_argument("url", help="the remote reactor's HTTP API (http://host:port)")
    only = add.add_mutually_exclusive_group()
    only.add_argument(
        "--type", dest="document_type", metavar="T", help="only documents of this type"
    )
    only.add_argument("--document", dest="document_id", metavar="ID", help="only this document")
    add.add_argument(
        "--name", metavar="N", help="the channel's name (default: the URL's host and port)"
    )
    add.add_argument("--token", metavar="JWT", help="a JWT the remote accepts")

    listing = actions.add_parser("list", help="every channel and how far it synced")
    listing.add_argument("--json", action="store_true")

    remove = actions.add_parser("remove", help="stop a channel's workflow and delete it")
    remove.add_argument("name")

    status = actions.add_parser("status", help="a channel's row and its workflow's status")
    status.add_argument("name", nargs="?", help="one channel (default: every one)")
    status.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.sync_action == "add":
        # Checked before anything connects.
        channel = Channel.declare(
            args.url,
            name=args.name,
            token=args.token,
            document_type=args.document_type,
            document_id=args.document_id,
        )
        return asyncio.run(add(channel))
    if args.sync_action == "list":
        return asyncio.run(list_channels(as_json=args.json))
    if args.sync_action == "remove":
        return asyncio.run(remove(args.name))
    return asyncio.run(status(args.name, as_json=args.json))


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[PostgresChannelStore]:
    db = await Database.connect(settings.database_url, max_size=1)
    try:
        yield PostgresChannelStore(db)
    finally:
        await db.close()


async def add(channel: Channel) -> int:
    from workflows.sync import start_channel

    settings = load_settings()
    # Temporal first: a channel is not stored when its workflow cannot start.
    client = await connect(settings.temporal_connection())
    async with _store(settings) as store:
        added = await store.add(channel)
        try:
            await start_channel(client, added.name, settings.task_queue)
        except BaseException:
            await store.remove(added.name)
            raise
    console.print(
        f"added channel [bold]{escape(added.name)}[/bold] to {escape(added.url)} "
        f"({escape(added.filter)}): workflow {escape(added.workflow_id)} started on "
        f"task queue {escape(settings.task_queue)}"
    )
    return EXIT_OK


async def list_channels(*, as_json: bool) -> int:
    async with _store(load_settings()) as store:
        channels = await store.list()
    if as_json:
        print(json.dumps([_row(c) for c in channels]))
        return EXIT_OK
    table = Table(title="sync channels")
    for col in ("name", "url", "filter", "status"):
        table.add_column(col, overflow="fold")
    table.add_column("pulled", justify="right")
    table.add_column("pushed", justify="right")
    table.add_column("last error", overflow="fold")
    for c in channels:
        table.add_row(
            escape(c.name),
            escape(c.url),
            escape(c.filter),
            _status(c),
            str(c.pulled),
            str(c.pushed),
            escape(c.last_error or ""),
        )
    console.print(table)
    failed = [c.name for c in channels if c.status == "FAILED"]
    if failed:
        console.print(
            f"{len(failed)} failing channel(s): check the remote; "
            + ", ".join(f"`reactor sync status {escape(n)}`" for n in failed)
        )
    return EXIT_OK


async def remove(name: str) -> int:
    settings = load_settings()
    async with _store(settings) as store:
        if await store.get(name) is None:
            raise await _unknown(store, name)
        client = await connect(settings.temporal_connection())
        # Stopped first: a round in flight would otherwise write to a row
        # that is about to go.
        stopped = await _terminate(client, workflow_id(name))
        await store.remove(name)
    console.print(
        f"removed channel {escape(name)}"
        + (f"; stopped workflow {escape(workflow_id(name))}" if stopped else "")
    )
    return EXIT_OK


async def status(name: str | None, *, as_json: bool) -> int:
    settings = load_settings()
    async with _store(settings) as store:
        if name is not None:
            one = await store.get(name)
            if one is None:
                raise await _unknown(store, name)
            channels = [one]
        else:
            channels = await store.list()
    client = await connect(settings.temporal_connection())
    found = [(c, await workflow_state(client, c.name)) for c in channels]
    if as_json:
        print(json.dumps([{**_row(c), "workflow": wf} for c, wf in found], default=str))
        return EXIT_OK
    if not found:
        console.print("no sync channels: `reactor sync add URL` adds one")
    for c, wf in found:
        console.print(_status_table(c, wf))
    return EXIT_OK


async def workflow_state(client: Client, name: str) -> dict[str, Any]:
    """The channel's workflow: its Temporal status and, while it runs, the
    answer to its `status` query (None when it does not answer)."""
    handle = client.get_workflow_handle(workflow_id(name))
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return {"id": handle.id, "status": "NOT_FOUND", "query": None}
    state = described.status.name if described.status is not None else "UNKNOWN"
    answer: Any = None
    error: str | None = None
    if described.status == WorkflowExecutionStatus.RUNNING:
        try:
            answer = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    out: dict[str, Any] = {"id": handle.id, "status": state, "query": answer}
    if error is not None:
        out["query_error"] = error
    return out


async def _terminate(client: Client, wid: str) -> bool:
    try:
        await client.get_workflow_handle(wid).terminate("reactor sync remove")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # not running: nothing to stop
            raise
        return False
    return True


async def _unknown(store: PostgresChannelStore, name: str) -> ValidationError:
    names = ", ".join(c.name for c in await store.list()) or "none yet"
    return ValidationError(f"no channel named {name!r} (channels: {names})", field="name")


def _row(c: Channel) -> dict[str, Any]:
    """A channel as JSON, without its token (a secret)."""
    row = c.model_dump(mode="json", exclude={"token", "pull", "push"})
    row["token"] = c.token is not None
    row["pull"] = [c.pull.tx_id, c.pull.ordinal]
    row["push"] = [c.push.tx_id, c.push.ordinal]
    row["filter"] = c.filter
    return row


def _status(c: Channel) -> str:
    text = c.status + (f" ({c.attempts}× in a row)" if c.status == "FAILED" else "")
    return f"[{STATUS_STYLE[c.status]}]{text}[/]"


def _status_table(c: Channel, wf: dict[str, Any]) -> Table:
    table = Table(title=f"sync channel {escape(c.name)}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    rows: list[tuple[str, str]] = [
        ("url", escape(c.url)),
        ("filter", escape(c.filter)),
        ("token", "set" if c.token is not None else "none"),
        ("remote reactor", escape(c.remote_id or "not known yet")),
        ("status", _status(c)),
        ("last error", escape(c.last_error or "")),
        ("last success", f"{c.last_success_at:%Y-%m-%d %H:%M:%S %Z}" if c.last_success_at else ""),
        ("pulled", f"{c.pulled} (remote log up to {c.pull.tx_id}/{c.pull.ordinal})"),
        ("pushed", f"{c.pushed} (this log up to {c.push.tx_id}/{c.push.ordinal})"),
        ("workflow", f"{escape(wf['id'])}: {wf['status']}"),
    ]
    query = wf.get("query")
    if isinstance(query, dict):
        rows += [(f"  {k}", escape(str(v))) for k, v in query.items() if k != "name"]
    elif "query_error" in wf:
        rows.append(("  status query", escape(f"no answer: {wf['query_error']}")))
    for key, value in rows:
        table.add_row(key, value)
    return table
