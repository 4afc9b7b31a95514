"""`reactor upgrade --type T [--to N]`: upgrades every document of type T
below version N (default: the type's latest) with UPGRADE_DOCUMENT jobs,
submitted as batch workflows (resumable, visible in the Temporal UI) with
progress. Documents already at N are left alone, so a second run submits
nothing. Exit 0 when every job succeeded (or nothing was to do), 1 when one
failed, 2 for a type or version the model cannot upgrade to."""

from __future__ import annotations

import argparse
import asyncio
import json

from reactor.cli.arguments import positive_int
from reactor.domain.errors import ValidationError
from reactor.domain.upgrades import latest_version

EXIT_OK, EXIT_FAILED = 0, 1
# Jobs per submitted batch: one page of documents.
PAGE = 500


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "upgrade",
        help="upgrade every document of a type to a model version, as batches",
        description=__doc__,
    )
    p.add_argument("--type", dest="doc_type", required=True, help="the document type")
    p.add_argument("--to", type=positive_int, help="the version (default: the latest)")
    p.add_argument("--json", action="store_true", help="print JSON: one object per batch")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(upgrade(args.doc_type, args.to, as_json=args.json))


async def upgrade(document_type: str, to: int | None, *, as_json: bool) -> int:
    from reactor.cli.client import console, open_reactor, submit
    from reactor.storage.document_view import DocumentView

    async with open_reactor() as reactor:
        model = reactor.registry.get(document_type)
        target = to or latest_version(model.upgrades)
        supported = model.upgrades.supported_versions if model.upgrades else {1}
        if target not in supported:
            raise ValidationError(
                f"{document_type} has no version {target} (supported: {sorted(supported)})",
                field="--to",
            )
        view = DocumentView(reactor.db)
        # Pages by id: a document upgraded meanwhile drops out of later
        # pages, and a failed one is not read again in this run.
        after, submitted, failed = "", 0, False
        while ids := await view.below_version(document_type, target, after, PAGE):
            after = ids[-1]
            request = {
                "jobs": [
                    {
                        "key": f"upgrade-{n}",
                        "document_id": doc,
                        "scope": "document",
                        "actions": [{"type": "UPGRADE_DOCUMENT", "input": {"to_version": target}}],
                    }
                    for n, doc in enumerate(ids)
                ]
            }
            submitted += len(ids)
            rc = await submit(reactor, request, wait=True, as_json=as_json)
            failed = failed or rc != EXIT_OK
    if submitted == 0:
        message = f"nothing to upgrade: every {document_type} document is at version >= {target}"
        if as_json:
            print(json.dumps({"document_type": document_type, "to": target, "submitted": 0}))
        else:
            console.print(message)
    return EXIT_FAILED if failed else EXIT_OK
