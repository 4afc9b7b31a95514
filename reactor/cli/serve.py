"""`reactor serve [--host H] [--port P]`: the reactor over HTTP (OpenAPI at
/openapi.json, docs at /docs), with a worker in the same process unless
`--no-worker`. Without REACTOR_JWT_* it is unauthenticated and serves
127.0.0.1 only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from reactor.cli.arguments import positive_int

DEFAULT_PORT = 8080


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the reactor over HTTP", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    p.add_argument("--no-worker", action="store_true", help="run no worker in this process")
    p.set_defaults(run=run)


def _port(text: str) -> int:
    value = positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0..65535)")
    return value


def run(args: argparse.Namespace) -> int:
    from reactor.api.http.server import check_bind, serve_reactor
    from reactor.observability.tracing import configure_tracing
    from reactor.runtime.settings import Settings, api_auth_from_env

    check_bind(args.host, api_auth_from_env().configured)  # before anything else
    settings = Settings.from_env()
    logging.getLogger().setLevel(logging.INFO)
    configure_tracing(console=False)

    def ready(line: str) -> None:
        print(line, flush=True)

    asyncio.run(
        serve_reactor(
            settings, host=args.host, port=args.port, worker=not args.no_worker, ready=ready
        )
    )
    print("reactor serve: stopped", file=sys.stderr, flush=True)
    return 0
