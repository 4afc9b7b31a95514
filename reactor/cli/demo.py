"""The demo batch of `reactor dev --demo`: a drive, a todo list inside it,
and todo actions ordered with depends_on."""

from __future__ import annotations

import uuid
from typing import Any


def demo_batch() -> dict[str, Any]:
    drive, todo = f"drive-{uuid.uuid4().hex[:8]}", f"todo-{uuid.uuid4().hex[:8]}"
    return {
        "jobs": [
            {
                "key": "create-drive",
                "document_id": drive,
                "scope": "document",
                "actions": [
                    {
                        "type": "CREATE_DOCUMENT",
                        "input": {
                            "document_type": "powerhouse/document-drive",
                            "name": "Demo drive",
                        },
                    }
                ],
            },
            {
                "key": "create-list",
                "document_id": todo,
                "scope": "document",
                "actions": [
                    {
                        "type": "CREATE_DOCUMENT",
                        "input": {
                            "document_type": "powerhouse/todo-list",
                            "name": "Launch checklist",
                        },
                    }
                ],
            },
            {
                "key": "file-list-in-drive",
                "document_id": drive,
                "actions": [
                    {
                        "type": "ADD_FILE",
                        "input": {
                            "id": todo,
                            "name": "Launch checklist",
                            "document_type": "powerhouse/todo-list",
                        },
                    }
                ],
                "depends_on": ["create-drive", "create-list"],
            },
            {
                "key": "add-items",
                "document_id": todo,
                "actions": [
                    {"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "Start a worker"}},
                    {"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "Submit a batch"}},
                    {"type": "ADD_TODO_ITEM", "input": {"id": "3", "text": "Open the Temporal UI"}},
                ],
                "depends_on": ["create-list"],
            },
            {
                "key": "check-first",
                "document_id": todo,
                "actions": [{"type": "UPDATE_TODO_ITEM", "input": {"id": "1", "checked": True}}],
                "depends_on": ["add-items"],
            },
            {
                "key": "check-second",
                "document_id": todo,
                "actions": [{"type": "UPDATE_TODO_ITEM", "input": {"id": "2", "checked": True}}],
                "depends_on": ["check-first"],
            },
        ]
    }
