"""`reactor`: run the stack, submit batches, inspect jobs and documents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from reactor.cli import codec as codec_cli
from reactor.cli import serve as serve_cli
from reactor.cli import sync as sync_cli
from reactor.cli import upgrade as upgrade_cli
from reactor.cli import verify as verify_cli
from reactor.cli.arguments import (
    argument_problem,
    cap_echoes,
    positive_int,
    positive_seconds,
)
from reactor.cli.stack_lost import connection_lost, quiet_outages
from reactor.domain.errors import (
    DocumentNotFoundError,
    JobNotFoundError,
    ReactorError,
    ValidationError,
)
from reactor.runtime.process import exit_now
from reactor.storage.errors import one_line

# 1 is a job that failed (`submit --wait`), an unhealthy check (`doctor`) or a
# document whose log does not reproduce its hashes (`verify`);
# 2 an argument or input that is wrong, or names nothing that exists;
# 3 the stack: not configured, unreachable, or lost while waiting.
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
# Arguments that are file names, which need not be UTF-8.
PATH_ARGUMENTS = ("file",)
# Commands that run the stack rather than talk to it, and log what they retry.
SERVING = ("dev", "worker", "codec-server", "serve")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reactor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run PostgreSQL, Temporal and a worker (embedded by default)")
    dev.add_argument("--demo", action="store_true", help="also submit a demo batch and show it")
    dev.add_argument("--no-ui", action="store_true", help="start the Temporal dev server headless")
    dev.add_argument("--task-queue", default="reactor")
    dev.add_argument("--namespace", default="default")
    dev.add_argument(
        "--trace", action="store_true", help="print OpenTelemetry spans to stderr (one per line)"
    )
    dev.add_argument(
        "--api-port",
        type=int,
        default=8080,
        help="the HTTP API's port on 127.0.0.1 (default 8080; 0, or a taken port: a free one)",
    )

    sub.add_parser(
        "worker", help="run a worker against REACTOR_DATABASE_URL / REACTOR_TEMPORAL_ADDRESS"
    )
    sub.add_parser("migrate", help="apply database migrations and exit")

    submit = sub.add_parser("submit", help="submit a batch file (JSON; '-' for stdin)")
    submit.add_argument("file")
    submit.add_argument("--wait", action="store_true", help="wait for every job, show progress")
    submit.add_argument("--json", action="store_true", help="print one JSON object")

    status = sub.add_parser("status", help="a job's status")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")

    get = sub.add_parser("get", help="a document: header and state per scope")
    get.add_argument("id_or_slug")
    get.add_argument("--json", action="store_true")

    ops = sub.add_parser("ops", help="a document's operations")
    ops.add_argument("doc_id")
    ops.add_argument("--scope")
    ops.add_argument("--branch", default="main")
    ops.add_argument("--json", action="store_true")

    children = sub.add_parser("children", help="ids of a document's children")
    children.add_argument("doc_id")
    children.add_argument("--json", action="store_true")

    find = sub.add_parser("find", help="documents by type and/or parent")
    find.add_argument("--type", dest="doc_type")
    find.add_argument("--parent")
    find.add_argument("--json", action="store_true")

    # reactor.cli.operate: operating a deployment
    batches = sub.add_parser("batches", help="list batches (Temporal visibility), newest first")
    batches.add_argument("--document", metavar="ID", help="only batches touching this document")
    batches.add_argument("--failed", action="store_true", help="only batches with failed jobs")
    batches.add_argument("--limit", type=positive_int, default=50)
    batches.add_argument("--json", action="store_true")

    doctor = sub.add_parser("doctor", help="check database, Temporal and workers; say how to fix")
    doctor.add_argument("--quiet", action="store_true", help="no output when healthy (exit code)")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument(
        "--timeout", type=positive_seconds, default=5.0, help="seconds per check (at most 3600)"
    )

    setup = sub.add_parser(
        "setup-search-attributes",
        help="register the reactor's search attributes on a Temporal cluster (idempotent)",
    )
    setup.add_argument("--address", help="Temporal frontend (default: REACTOR_TEMPORAL_ADDRESS)")
    setup.add_argument("--namespace", help="default: REACTOR_TEMPORAL_NAMESPACE or 'default'")

    reactions = sub.add_parser("reactions", help="reaction streams; `reactions unblock NAME DOC`")
    reactions.add_argument("action", nargs="?", choices=["list", "unblock"], default="list")
    reactions.add_argument("name", nargs="?", help="reaction name (filter, or the one to unblock)")
    reactions.add_argument("document_id", nargs="?", help="the blocked stream's document (unblock)")
    reactions.add_argument("--blocked", action="store_true", help="only blocked streams")
    reactions.add_argument("--json", action="store_true")
    codec_cli.register(sub)
    verify_cli.register(sub)
    serve_cli.register(sub)
    upgrade_cli.register(sub)
    sync_cli.register(sub)

    read_models = sub.add_parser("read-models", help="read models; `read-models unblock NAME`")
    read_models.add_argument("action", nargs="?", choices=["list", "unblock"], default="list")
    read_models.add_argument("name", nargs="?", help="the read model to unblock")
    read_models.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    cli = parser()
    args = cli.parse_args(argv)
    problem = argument_problem(cli, args, paths=PATH_ARGUMENTS)
    if problem is not None:
        _say(f"rejected: {problem}", args)
        exit_now(EXIT_USAGE)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.command not in SERVING:
        quiet_outages(logging.getLogger().handlers[0])
    try:
        rc = _dispatch(args)
    except (DocumentNotFoundError, JobNotFoundError) as exc:
        _say(str(exc), args)
        rc = EXIT_USAGE
    except ValidationError as exc:
        _say(f"rejected: {exc}", args)
        rc = EXIT_USAGE
    except ReactorError as exc:
        _say(str(exc), args)
        rc = EXIT_ENVIRONMENT
    except Exception as exc:
        lost = connection_lost(exc)
        if lost is None or args.command in SERVING:
            raise
        _say(
            f"lost the connection to the stack ({cap_echoes(one_line(lost), args)}): "
            "`reactor doctor` says what is down",
            args,
        )
        rc = EXIT_ENVIRONMENT
    exit_now(rc)


def _say(message: str, args: argparse.Namespace) -> None:
    """One line on stderr; a long argument the message repeats is cut."""
    print(f"reactor: {cap_echoes(message, args)}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    if "run" in args:  # subcommands that register their own handler
        return int(args.run(args))
    if args.command == "read-models":
        from reactor.cli.read_models import read_models

        if args.action == "unblock" and not args.name:
            raise ValidationError("usage: reactor read-models unblock NAME")
        return asyncio.run(
            read_models(as_json=args.json, unblock=args.name if args.action == "unblock" else None)
        )
    if args.command == "reactions":
        from reactor.cli.reactions import reactions

        if args.action == "unblock" and not (args.name and args.document_id):
            raise ValidationError("usage: reactor reactions unblock NAME DOCUMENT_ID")
        return asyncio.run(
            reactions(
                args.name,
                blocked_only=args.blocked,
                as_json=args.json,
                unblock=(args.name, args.document_id) if args.action == "unblock" else None,
            )
        )
    if args.command == "dev":
        from reactor.cli.dev import dev

        return dev(
            demo=args.demo,
            ui=not args.no_ui,
            task_queue=args.task_queue,
            namespace=args.namespace,
            trace=args.trace,
            api_port=args.api_port,
        )
    if args.command == "worker":
        from reactor.observability.tracing import configure_tracing
        from reactor.runtime.settings import Settings
        from reactor.runtime.worker import run_worker

        logging.getLogger().setLevel(logging.INFO)
        configure_tracing(console=False)  # OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
        asyncio.run(run_worker(Settings.from_env()))
        return 0
    if args.command == "migrate":
        return asyncio.run(_migrate())
    if args.command in ("batches", "doctor", "setup-search-attributes"):
        return asyncio.run(_operate_command(args))
    return asyncio.run(_client_command(args))


async def _migrate() -> int:
    from reactor.runtime.settings import load_settings
    from reactor.storage.database import Database
    from reactor.storage.migrate import migrate

    db = await Database.connect(load_settings().database_url, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            ran = await migrate(conn)
        print(f"applied {len(ran)} migration(s){': ' + ', '.join(ran) if ran else ''}")
        return 0
    finally:
        await db.close()


async def _operate_command(args: argparse.Namespace) -> int:
    from reactor.cli import operate

    if args.command == "batches":
        return await operate.batches(
            document=args.document, failed=args.failed, as_json=args.json, limit=args.limit
        )
    if args.command == "doctor":
        return await operate.doctor(quiet=args.quiet, as_json=args.json, timeout=args.timeout)
    return await operate.setup_search_attributes(address=args.address, namespace=args.namespace)


async def _client_command(args: argparse.Namespace) -> int:
    from reactor.cli import client
    from reactor.domain.jobs import parse_job_id
    from reactor.observability.tracing import configure_tracing

    configure_tracing(console=False)  # a submitted batch's trace starts here (OTLP if set)

    commands: dict[str, Callable[..., Awaitable[int]]] = {}
    # Arguments are checked before anything connects.
    request = None
    if args.command == "submit":
        try:
            request = client.read_batch_file(args.file)
        except ValidationError as exc:
            return client.rejected(exc, as_json=args.json)
    if args.command == "status":
        parse_job_id(args.job_id)
    async with client.open_reactor() as reactor:
        if request is not None:
            return await client.submit(reactor, request, wait=args.wait, as_json=args.json)
        commands = {
            "status": lambda: client.status(reactor, args.job_id, args.json),
            "get": lambda: client.get(reactor, args.id_or_slug, args.json),
            "ops": lambda: client.ops(reactor, args.doc_id, args.scope, args.branch, args.json),
            "children": lambda: client.children(reactor, args.doc_id, args.json),
            "find": lambda: client.find(reactor, args.doc_type, args.parent, args.json),
        }
        return await commands[args.command]()


if __name__ == "__main__":
    main()
