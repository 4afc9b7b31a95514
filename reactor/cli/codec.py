"""`reactor codec-server`: Temporal's remote codec endpoint for the payload
keys in REACTOR_PAYLOAD_KEY / REACTOR_PAYLOAD_KEYS, so the Temporal UI (start
it with `--ui-codec-endpoint http://HOST:PORT`, or set the endpoint in the
UI's data encoder settings) shows decrypted payloads."""

from __future__ import annotations

import argparse
import asyncio
import sys

from reactor.domain.errors import ReactorError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "codec-server",
        help="serve /encode and /decode for the Temporal UI with the payload keys",
        description=__doc__,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument(
        "--origin",
        action="append",
        dest="origins",
        help="a UI origin allowed by CORS (repeatable; default: REACTOR_CODEC_SERVER_ORIGINS, "
        "else the dev server's UI on port 8233)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from reactor.runtime.codec_server import DEFAULT_ORIGINS, codec_app, describe
    from reactor.runtime.settings import codec_server_from_env, payload_keys_from_env

    keys = payload_keys_from_env()
    if keys is None:
        raise ReactorError(
            "no payload key: set REACTOR_PAYLOAD_KEY (and REACTOR_PAYLOAD_KEYS for older keys)"
        )
    from_env, token = codec_server_from_env()
    given = [o.rstrip("/") for o in args.origins] if args.origins else from_env
    origins = given or list(DEFAULT_ORIGINS)
    app = codec_app(keys, origins=origins, token=token)
    print(
        f"codec server on http://{args.host}:{args.port} ({describe(keys.codec())}; "
        f"CORS: {', '.join(origins)}; auth: {'bearer token' if token else 'none'})",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    )
    asyncio.run(server.serve())
    return 0
