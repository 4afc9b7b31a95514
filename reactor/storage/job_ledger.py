"""Batch payloads (stored by reference) and the ledger of decided jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from reactor.domain.actions import Action
from reactor.domain.batch import BatchPlan, PlanEntry, PlannedJob
from reactor.domain.errors import ValidationError
from reactor.domain.sync import LoadSpec
from reactor.storage.database import Database

# Actions go to and come from PostgreSQL as JSON text, parsed and written by
# pydantic-core in one call per job (a worker loads every action it applies).
_ACTIONS = TypeAdapter(list[Action])

INSERT_JOBS = """
INSERT INTO reactor_batch_jobs
    (batch_id, idx, key, document_id, document_type, scope, branch, deps, after_idx, actions,
     load)
SELECT $1, j.idx, j.key, j.document_id, j.document_type, j.scope, j.branch,
       (SELECT coalesce(array_agg(x::int), '{}') FROM jsonb_array_elements_text(j.deps::jsonb) x),
       j.after_idx, j.actions::jsonb, j.load::jsonb
FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::int[], $10::text[], $11::text[])
     AS j(idx, key, document_id, document_type, scope, branch, deps, after_idx, actions, load)
"""


DECIDED_MANY = """
SELECT job_id, status, coordinates, error FROM reactor_applied_jobs WHERE job_id = ANY($1::text[])
"""


@dataclass(frozen=True)
class BatchRows:
    """A planned batch as the rows `store_batch` writes, one column per field:
    strings and numbers, no models. A submission keeps these, not the plan,
    while it waits on PostgreSQL and Temporal (see `Reactor.execute_batch`)."""

    batch_id: str
    digest: str  # `BatchPlan.request_hash()`
    columns: tuple[list[Any], ...]

    @property
    def job_count(self) -> int:
        return len(self.columns[0])

    @classmethod
    def of(cls, plan: BatchPlan, digest: str) -> BatchRows:
        """One row per job, every action serialized: call it with the
        collector paused, as `Submission.of` is."""
        cols: tuple[list[Any], ...] = tuple([] for _ in range(10))
        for j in plan.jobs:
            row = (
                j.index,
                j.key,
                j.document_id,
                j.document_type,
                j.scope,
                j.branch,
                json.dumps(j.deps),
                j.after,
                _ACTIONS.dump_json(j.actions).decode(),
                None if j.load is None else j.load.model_dump_json(),
            )
            for col, v in zip(cols, row, strict=True):
                col.append(v)
        return cls(plan.batch_id, digest, cols)


class JobLedger:
    def __init__(self, db: Database):
        self.db = db

    async def store_batch(self, rows: BatchRows) -> bool:
        """Stores the batch; False if the same batch was stored before. A
        different request under a used batch_id is rejected."""
        async with self.db.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO reactor_batches (batch_id, request_hash, job_count) "
                "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
                rows.batch_id,
                rows.digest,
                rows.job_count,
            )
            if not inserted:
                existing = await conn.fetchval(
                    "SELECT request_hash FROM reactor_batches WHERE batch_id = $1", rows.batch_id
                )
                if existing != rows.digest:
                    raise ValidationError(
                        f"batch_id {rows.batch_id!r} was already used for a different request",
                        field="batch_id",
                    )
                return False
            await conn.execute(INSERT_JOBS, rows.batch_id, *rows.columns)
        return True

    async def load_jobs(self, batch_id: str, indices: list[int]) -> list[PlannedJob]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT idx, key, document_id, document_type, scope, branch, deps, after_idx, "
                "actions::text AS actions, load::text AS load FROM reactor_batch_jobs "
                "WHERE batch_id = $1 AND idx = ANY($2) "
                "ORDER BY idx",
                batch_id,
                indices,
            )
        return [
            PlannedJob(
                index=r["idx"],
                key=r["key"],
                document_id=r["document_id"],
                document_type=r["document_type"],
                scope=r["scope"],
                branch=r["branch"],
                deps=list(r["deps"]),
                after=r["after_idx"],
                actions=_ACTIONS.validate_json(r["actions"]),
                load=None if r["load"] is None else LoadSpec.model_validate_json(r["load"]),
            )
            for r in rows
        ]

    async def load_entries(self, batch_id: str, offset: int, limit: int) -> list[PlanEntry]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT key, document_id, document_type, deps, after_idx, "
                "jsonb_array_length(actions) AS n FROM reactor_batch_jobs "
                "WHERE batch_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
                batch_id,
                offset,
                limit,
            )
        return [
            PlanEntry(
                key=r["key"],
                document_id=r["document_id"],
                document_type=r["document_type"],
                deps=list(r["deps"]),
                after=r["after_idx"],
                actions=r["n"],
            )
            for r in rows
        ]

    @staticmethod
    async def decided(conn: asyncpg.Connection, job_id: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT status, coordinates, error FROM reactor_applied_jobs WHERE job_id = $1", job_id
        )

    @staticmethod
    async def record(
        conn: asyncpg.Connection,
        job_id: str,
        status: str,
        coordinates: list[dict[str, Any]],
        error: dict[str, Any] | None,
        applied_by: str | None = None,
    ) -> bool:
        """False if another attempt already recorded this job."""
        return bool(
            await conn.fetchval(
                "INSERT INTO reactor_applied_jobs (job_id, status, coordinates, error, applied_by) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                job_id,
                status,
                coordinates,
                error,
                applied_by,
            )
        )

    async def outcome(self, job_id: str) -> asyncpg.Record | None:
        async with self.db.pool.acquire() as conn:
            return await self.decided(conn, job_id)

    async def outcomes(self, job_ids: list[str]) -> dict[str, asyncpg.Record]:
        """The decided jobs among `job_ids`, in one round trip."""
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(DECIDED_MANY, job_ids)
        return {row["job_id"]: row for row in rows}
