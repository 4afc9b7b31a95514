"""Batches whose workflow histories cover the batch workflow's paths: inline
jobs with a rejected action and its dependent, and a stored batch whose
chunk is large enough to run as a regular, heartbeating activity, and a
job with more actions than a local activity takes."""

from __future__ import annotations

from typing import Any


def create_list(key: str, doc: str) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": doc,
        "scope": "document",
        "actions": [
            {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
        ],
    }


def add_item(key: str, doc: str, item: str, deps: list[str] | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": doc,
        "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": item, "text": f"item {item}"}}],
        "depends_on": deps or [],
    }


def check_missing_item(key: str, doc: str, deps: list[str] | None = None) -> dict[str, Any]:
    """Rejected by the todo-list reducer: the item does not exist."""
    return {
        "key": key,
        "document_id": doc,
        "actions": [{"type": "UPDATE_TODO_ITEM", "input": {"id": "missing", "checked": True}}],
        "depends_on": deps or [],
    }


def inline_with_failures(prefix: str) -> dict[str, Any]:
    doc = f"{prefix}-list"
    return {
        "jobs": [
            create_list("create", doc),
            add_item("add", doc, "1", ["create"]),
            check_missing_item("bad", doc, ["create"]),
            add_item("child", doc, "2", ["bad"]),
            add_item("other", doc, "3", ["add"]),
        ]
    }


def stored(prefix: str, n: int) -> dict[str, Any]:
    """`n` + 2 jobs on two lists: stored in PostgreSQL (too many to travel
    inline), one chunk of more than 100 jobs (a regular activity)."""
    docs = [f"{prefix}-a", f"{prefix}-b"]
    jobs = [create_list(f"c{i}", d) for i, d in enumerate(docs)]
    jobs += [add_item(f"j{i}", docs[i % 2], str(i)) for i in range(n)]
    return {"jobs": jobs}


def many_actions(prefix: str, n: int) -> dict[str, Any]:
    """A list and one job of `n` actions on it: more actions than a local
    activity takes, so its chunk runs as a regular activity."""
    doc = f"{prefix}-big"
    return {
        "jobs": [
            create_list("create", doc),
            {
                "key": "big",
                "document_id": doc,
                "depends_on": ["create"],
                "actions": [
                    {"type": "ADD_TODO_ITEM", "input": {"id": str(i), "text": f"item {i}"}}
                    for i in range(n)
                ],
            },
        ]
    }
