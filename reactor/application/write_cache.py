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
    state: dict[str, Any] | None  # None when only the validated model is kept
    # The validated state model, so the next job skips validation. Safe
    # because reducers are pure (they return new states, never mutate).
    model: Any = None
    # The document's type, so a job can start from this entry without
    # reading the header (the fast path in reactor/application/apply.py).
    document_type: str | None = None


class WriteCache:
    """`max_documents` lanes, least recently used first out; per lane a ring
    of the last `ring_buffer_size` revisions."""

    def __init__(self, max_documents: int = 1000, ring_buffer_size: int = 1):
        self.max_documents = max_documents
        self.ring_buffer_size = ring_buffer_size
        self._entries: OrderedDict[LaneKey, list[CachedState]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: LaneKey, revision: int) -> CachedState | None:
        for entry in reversed(self._entries.get(key, [])):
            if entry.revision == revision:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        self.misses += 1
        return None

    def latest(self, key: LaneKey) -> CachedState | None:
        """The newest entry of a lane, whatever the current revision is (the
        caller's write must check it)."""
        ring = self._entries.get(key)
        if not ring:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return ring[-1]

    def put(self, key: LaneKey, entry: CachedState) -> None:
        ring = [e for e in self._entries.get(key, []) if e.revision < entry.revision]
        ring.append(entry)
        self._entries[key] = ring[-self.ring_buffer_size :]
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_documents:
            self._entries.popitem(last=False)

    def invalidate(self, key: LaneKey) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
