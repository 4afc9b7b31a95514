"""A bounded in-process cache of head states on the write path.

An entry is only used when its revision equals the revision read under the
document lock, so a write by another worker simply makes it a miss."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

LaneKey = tuple[str, str, str]  # document_id, scope, branch


@dataclass(frozen=True)
class CachedState:
    revision: int
    hash: str
    state: dict[str, Any]


class WriteCache:
    def __init__(self, max_documents: int = 1000):
        self.max_documents = max_documents
        self._entries: OrderedDict[LaneKey, CachedState] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: LaneKey, revision: int) -> CachedState | None:
        entry = self._entries.get(key)
        if entry is None or entry.revision != revision:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: LaneKey, entry: CachedState) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_documents:
            self._entries.popitem(last=False)

    def invalidate(self, key: LaneKey) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
