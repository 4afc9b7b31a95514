"""`reactor verify DOC`: replays a document from its first operation and
compares every stored hash, keyframe and the view's head with the replay.
Exit 0 when they all match, 1 naming the first operation that differs."""

from __future__ import annotations

import argparse
import asyncio
import json

from reactor.application.verify import Verification

EXIT_MATCHES, EXIT_DIFFERS = 0, 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="replay a document and report the first operation whose hash differs",
        description=__doc__,
    )
    p.add_argument("doc_id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args.doc_id, args.json))


async def _verify(document_id: str, as_json: bool) -> int:
    from reactor.cli.client import open_reactor

    async with open_reactor() as reactor:
        result = await reactor.verify(document_id)
    print(json.dumps(result.model_dump(mode="json")) if as_json else describe(result))
    return EXIT_MATCHES if result.ok else EXIT_DIFFERS


def describe(result: Verification) -> str:
    if result.difference is None:
        return (
            f"{result.document_id}: {result.operations} operation(s) replayed, every hash matches"
        )
    return f"{result.document_id}: {result.difference.describe()}"
