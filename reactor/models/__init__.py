"""Document models shipped with the reactor; registered unless told otherwise."""

from __future__ import annotations

from types import ModuleType

from reactor.models import document_drive, todo_list

BUILTIN_MODELS: list[ModuleType] = [todo_list, document_drive]

__all__ = ["BUILTIN_MODELS", "document_drive", "todo_list"]
