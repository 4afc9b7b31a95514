"""Commands that talk to a running stack (found through .reactor/ or the
REACTOR_* environment variables)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reactor.api.builder import ReactorBuilder
from reactor.api.reactor import Reactor
from reactor.cli import render
from reactor.cli.stack_lost import StackLostError, connection_lost
from reactor.domain.errors import ValidationError
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.domain.limits import MAX_DEPTH, Limits, too_big
from reactor.runtime.settings import Settings, limits_from_env, load_settings, model_modules

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2
# How long a progress query still in flight when its batch ended may finish.
QUERY_GRACE_S = 1.0

console = Console()
err_console = Console(stderr=True)


@asynccontextmanager
async def open_reactor(settings: Settings | None = None) -> AsyncIterator[Reactor]:
    """A reactor on a running stack (found through .reactor/ or REACTOR_*)."""
    settings = settings or load_settings()
    reactor = await (
        ReactorBuilder()
        .with_document_models(model_modules())
        .with_database(settings.database_url)
        .with_temporal(settings.temporal_address, settings.namespace, settings.task_queue)
        .with_migration_strategy("none")
        .build()
    )
    try:
        yield reactor
    finally:
        await reactor.close()


def read_batch_file(path: str, limits: Limits | None = None) -> dict[str, Any]:
    """The batch in `path` ('-': stdin), or ValidationError saying in one
    line why it is not one: too big (checked on its bytes, before decoding),
    not UTF-8, not JSON, or nested too deep for a parser."""
    limits = limits or limits_from_env()
    try:
        if path == "-":
            data, size = _read_at_most(sys.stdin.buffer, limits.max_request_bytes)
        else:
            with open(path, "rb") as file:
                data, size = _read_at_most(file, limits.max_request_bytes)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    if size > limits.max_request_bytes:
        raise ValidationError(
            too_big(path, size, limits.max_request_bytes, " bytes")
            + " (REACTOR_MAX_REQUEST_BYTES): split the batch"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationError(
            f"{path} is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}) {exc.reason}"
        ) from None
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValidationError(
            f"{path}: JSON nested too deeply (values may nest at most {MAX_DEPTH} levels)"
        ) from None
    if not isinstance(request, dict):
        raise ValidationError(f"{path}: expected a JSON object with a 'jobs' list")
    return request


def _read_at_most(file: BinaryIO, limit: int) -> tuple[bytes, int]:
    """The file's bytes and its size; past `limit` only the size is kept,
    counted in chunks, so a huge file costs no memory to refuse."""
    data = file.read(limit + 1)
    size = len(data)
    if size <= limit:
        return data, size
    while chunk := file.read(1 << 20):
        size += len(chunk)
    return b"", size


def rejected(exc: ValidationError, *, as_json: bool) -> int:
    """A refused batch, file or request alike: a JSON object on stdout with
    --json, else one line on stderr."""
    if as_json:
        print(json.dumps({"error": str(exc), "job": exc.job, "field": exc.field}))
    else:
        # One line, whatever the terminal's width; the user's text is no markup.
        err_console.print(
            f"[bold red]rejected[/bold red] (nothing started): {escape(str(exc))}",
            soft_wrap=True,
        )
    return EXIT_REJECTED


async def submit(reactor: Reactor, request: dict[str, Any], *, wait: bool, as_json: bool) -> int:
    try:
        result = await reactor.execute_batch(request)
    except ValidationError as exc:
        return rejected(exc, as_json=as_json)
    jobs: list[JobInfo] = list(result.jobs.values())
    if wait:
        try:
            jobs = await wait_with_progress(reactor, result.batch_id, len(jobs), quiet=as_json)
        except Exception as exc:
            lost = connection_lost(exc)
            if lost is None:
                raise
            raise StackLostError(result.batch_id, lost) from exc
    if as_json:
        print(render.jobs_json(result.batch_id, jobs))
    elif wait:
        console.print(render.job_table(jobs, title=f"batch {result.batch_id}"))
    else:
        console.print(f"batch {result.batch_id} accepted")
        for job in jobs:
            console.print(f"{job.key}\t{job.id}")
    if wait and any(j.status is JobStatus.FAILED for j in jobs):
        return EXIT_FAILED
    return EXIT_OK


async def wait_with_progress(
    reactor: Reactor, batch_id: str, total: int, *, quiet: bool = False
) -> list[JobInfo]:
    """The batch's final jobs, with a progress bar on a terminal. The bar's
    summary queries never hold up the answer: a query waits for a worker
    to take it, and none may be polling while one restarts."""
    done_task = asyncio.ensure_future(reactor.wait_for_batch(batch_id))
    if quiet or not err_console.is_terminal:
        return await done_task
    with Progress(
        TextColumn("[bold]batch {task.fields[batch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total, batch=batch_id[:12], detail="")
        while not done_task.done():
            query = asyncio.ensure_future(reactor.batch_summary(batch_id))
            await asyncio.wait({done_task, query}, return_when=asyncio.FIRST_COMPLETED)
            if not query.done():
                # Answered in moments by a live worker; one cancelled under
                # it makes its SDK warn that the query had expired.
                await asyncio.wait({query}, timeout=QUERY_GRACE_S)
            if not query.done():
                query.cancel()
            elif query.exception() is None:  # the first workflow task may not have run yet
                summary = query.result()
                finished = summary.counts["READ_READY"] + summary.counts["FAILED"]
                detail = ", ".join(f"{k.lower()} {v}" for k, v in summary.counts.items() if v)
                progress.update(task, completed=finished, detail=detail)
            await asyncio.wait({done_task}, timeout=0.2)
    return await done_task


async def status(reactor: Reactor, job_id: str, as_json: bool) -> int:
    info = await reactor.get_job_status(job_id)
    if as_json:
        print(info.model_dump_json())
    else:
        console.print(render.job_table([info]))
    return EXIT_OK


async def get(reactor: Reactor, identifier: str, as_json: bool) -> int:
    doc = await reactor.get_by_id_or_slug(identifier)
    if as_json:
        print(doc.model_dump_json())
    else:
        console.print(render.document_panel(doc))
    return EXIT_OK


async def ops(reactor: Reactor, doc_id: str, scope: str | None, branch: str, as_json: bool) -> int:
    collected = []
    cursor = 0
    while True:
        page = await reactor.get_operations(
            doc_id, scope=scope, branch=branch, cursor=cursor, limit=500
        )
        collected.extend(page.results)
        if page.next_cursor is None:
            break
        cursor = int(page.next_cursor)
    if as_json:
        print(json.dumps([o.model_dump(mode="json") for o in collected]))
    else:
        console.print(render.operations_table(collected))
    return EXIT_OK


async def children(reactor: Reactor, doc_id: str, as_json: bool) -> int:
    ids = await reactor.get_children(doc_id)
    if as_json:
        print(json.dumps(ids))
    else:
        for child in ids:
            console.print(child)
    return EXIT_OK


async def find(reactor: Reactor, doc_type: str | None, parent: str | None, as_json: bool) -> int:
    docs = []
    cursor: str | None = None
    while True:
        page = await reactor.find(type=doc_type, parent_id=parent, cursor=cursor, limit=200)
        docs.extend(page.results)
        if page.next_cursor is None:
            break
        cursor = str(page.next_cursor)
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in docs]))
    else:
        table = render.Table()
        for col in ("id", "type", "name", "slug", "revision"):
            table.add_column(col)
        for d in docs:
            h = d.header
            table.add_row(
                h.id,
                h.document_type,
                h.name,
                h.slug or "",
                ", ".join(f"{k}={v}" for k, v in sorted(h.revision.items())),
            )
        console.print(table)
    return EXIT_OK
