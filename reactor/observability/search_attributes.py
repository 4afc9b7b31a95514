"""Typed search attributes of batch workflows, for the Temporal UI and the
visibility API (`reactor batches`).

Set when a batch workflow starts (batch id, document ids and types, job
count, status RUNNING) and upserted when it ends (status COMPLETED or
COMPLETED_WITH_FAILURES, failed job count). Temporal limits the size of one
search attribute value (2 KiB by default), so the keyword lists hold at most
the first MAX_KEYWORDS values (in submission order) and at most
MAX_KEYWORD_LIST_BYTES of them: a huge batch is found by the documents it
starts with, not by every document it touches.

Imported by the (sandboxed) batch workflow: no I/O at import time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

from reactor.runtime.settings import SEARCH_ATTRIBUTES

BATCH_ID = SearchAttributeKey.for_keyword("ReactorBatchId")
DOCUMENT_IDS = SearchAttributeKey.for_keyword_list("ReactorDocumentIds")
DOCUMENT_TYPES = SearchAttributeKey.for_keyword_list("ReactorDocumentTypes")
JOB_COUNT = SearchAttributeKey.for_int("ReactorJobCount")
FAILED_JOB_COUNT = SearchAttributeKey.for_int("ReactorFailedJobCount")
STATUS = SearchAttributeKey.for_keyword("ReactorStatus")

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
COMPLETED_WITH_FAILURES = "COMPLETED_WITH_FAILURES"

MAX_KEYWORDS = 100
MAX_KEYWORD_LIST_BYTES = 1800  # below the server's 2 KiB per-value default

# settings.SEARCH_ATTRIBUTES spelling -> the operator API's enum
_INDEXED: dict[str, IndexedValueType.ValueType] = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


def capped_keywords(values: Iterable[str]) -> list[str]:
    """Distinct values in first-seen order, at most MAX_KEYWORDS of them and
    at most MAX_KEYWORD_LIST_BYTES as the JSON list Temporal stores."""
    out: list[str] = []
    seen: set[str] = set()
    size = 2  # "[]"
    for value in values:
        if value in seen:
            continue
        cost = len(json.dumps(value).encode()) + (1 if out else 0)
        if len(out) >= MAX_KEYWORDS or size + cost > MAX_KEYWORD_LIST_BYTES:
            break
        seen.add(value)
        out.append(value)
        size += cost
    return out


def batch_start_attributes(
    batch_id: str, document_ids: Iterable[str], document_types: Iterable[str], job_count: int
) -> TypedSearchAttributes:
    """What a batch workflow starts with."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(BATCH_ID, batch_id),
            SearchAttributePair(DOCUMENT_IDS, capped_keywords(document_ids)),
            SearchAttributePair(DOCUMENT_TYPES, capped_keywords(document_types)),
            SearchAttributePair(JOB_COUNT, job_count),
            SearchAttributePair(STATUS, RUNNING),
        ]
    )


def batch_end_updates(failed: int) -> list[SearchAttributeUpdate]:
    """What a batch workflow upserts when its last job finished."""
    return [
        STATUS.value_set(COMPLETED_WITH_FAILURES if failed else COMPLETED),
        FAILED_JOB_COUNT.value_set(failed),
    ]


# -- the cluster side ---------------------------------------------------------


async def registered(client: Client, namespace: str) -> dict[str, str]:
    """The namespace's custom search attributes: name -> type (e.g. "Keyword")."""
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    names = {v: k for k, v in _INDEXED.items()}
    return {
        name: names.get(kind, IndexedValueType.Name(kind))
        for name, kind in resp.custom_attributes.items()
    }


def problems(found: dict[str, str]) -> tuple[list[str], list[str]]:
    """(missing names, names registered with another type) among ours."""
    missing = [n for n in SEARCH_ATTRIBUTES if n not in found]
    wrong = [
        f"{n} is {found[n]}, expected {t}"
        for n, t in SEARCH_ATTRIBUTES.items()
        if n in found and found[n] != t
    ]
    return missing, wrong


async def register(client: Client, namespace: str) -> dict[str, str]:
    """Registers the reactor's search attributes that are missing (idempotent).
    Returns name -> "registered" | "already registered". Raises ValueError if
    one exists with another type (Temporal cannot change a type)."""
    found = await registered(client, namespace)
    missing, wrong = problems(found)
    if wrong:
        raise ValueError("; ".join(wrong))
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={n: _INDEXED[SEARCH_ATTRIBUTES[n]] for n in missing},
            )
        )
    return {n: ("registered" if n in missing else "already registered") for n in SEARCH_ATTRIBUTES}


REACTING = "REACTING"


def reaction_start_attributes(name: str, document_types: Iterable[str]) -> TypedSearchAttributes:
    """What a reaction workflow starts with: findable by status and by the
    document types it reacts to (empty: all types)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(STATUS, REACTING),
            SearchAttributePair(DOCUMENT_TYPES, capped_keywords(document_types)),
            SearchAttributePair(BATCH_ID, f"reaction:{name}"),
        ]
    )
