"""ProcessorManager: the registered reactions and their admin calls."""

from __future__ import annotations

from reactor.reactions.processor import Processor
from reactor.reactions.store import ReactionStore, StreamState
from reactor.storage.database import Database


class ProcessorManager:
    def __init__(self, db: Database, processors: list[Processor]):
        self.processors = {p.name: p for p in processors}
        self.store = ReactionStore(db)

    async def setup(self) -> None:
        for name in self.processors:
            await self.store.ensure(name)

    async def streams(
        self, name: str | None = None, *, blocked_only: bool = False
    ) -> list[StreamState]:
        return await self.store.streams(name, blocked_only=blocked_only)

    async def blocked(self, name: str | None = None) -> list[StreamState]:
        return await self.store.streams(name, blocked_only=True)

    async def unblock(self, name: str, document_id: str) -> bool:
        """Lets a blocked stream retry from where it stopped. False if it was not blocked."""
        return await self.store.unblock(name, document_id)
