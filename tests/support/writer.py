"""A separate writer process: submits a batch (JSON in argv[1]) and prints
each job's consistency token as soon as the job has one."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from reactor.api.builder import ReactorBuilder
from reactor.models import BUILTIN_MODELS


async def main() -> None:
    reactor = await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_migration_strategy("none")
        .with_notifications(False)
        .build()
    )
    try:
        result = await reactor.execute_batch(json.loads(sys.argv[1]))
        out: dict[str, Any] = {}
        for key, job in result.jobs.items():
            while True:
                info = await reactor.get_job_status(job.id)
                if info.consistency_token is not None or info.status.done:
                    break
                await asyncio.sleep(0.005)
            out[key] = {
                "status": info.status.value,
                "token": info.consistency_token.model_dump(mode="json")
                if info.consistency_token
                else None,
            }
        print(json.dumps(out), flush=True)
    finally:
        await reactor.close()


if __name__ == "__main__":
    asyncio.run(main())
