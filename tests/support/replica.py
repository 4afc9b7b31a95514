"""An in-memory lane of one reactor, written and loaded through the same
pure functions as the apply path (`reduce_job`, `reduce_load`), and synced
with another by the channel's rules: each side sends the operations after
its cursor, in runs, leaving out those it received verbatim from the peer.
Used by the merge's property test and the merge benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, Field

from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document import Operation
from reactor.domain.history import effective_indexes
from reactor.domain.loading import reduce_load
from reactor.domain.merge import DEFAULT_MAX_REWIND, dead_covered
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import Head, initial_head, needs_history, reduce_job
from reactor.domain.signing import SignatureVerifier, Signer, sign_action
from reactor.domain.sync import LoadedOp, LoadSpec, OperationRef, SyncOperation

DOCUMENT_TYPE = "test/entries"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class EntriesState(BaseModel):
    entries: list[str] = Field(default_factory=list)


class AppendInput(BaseModel):
    value: str


def _reduce(state: EntriesState, action: Action) -> EntriesState:
    if action.type == "APPEND":
        return EntriesState(entries=[*state.entries, str(action.input["value"])])
    return state


ENTRIES = DocumentModel.from_module(
    SimpleNamespace(  # type: ignore[arg-type]
        document_type=DOCUMENT_TYPE,
        GlobalState=EntriesState,
        actions={"APPEND": AppendInput},
        reducer=_reduce,
    )
)
REGISTRY = ModelRegistry([ENTRIES])


class Replica:
    """One reactor's `global` lane of one document (order-sensitive state)."""

    def __init__(
        self,
        name: str,
        *,
        max_rewind: int = DEFAULT_MAX_REWIND,
        verifier: SignatureVerifier | None = None,
        signer: Signer | None = None,
    ):
        self.name = name
        self.max_rewind = max_rewind
        self.verifier = verifier  # checks what it loads (and writes)
        self.signer = signer  # signs what it writes
        self.log: list[Operation] = []
        self.head: Head = initial_head(ENTRIES, "global")
        self.received_from: dict[str, str] = {}  # op id -> peer it came from verbatim
        self.cursors: dict[str, int] = {}  # peer -> index of ours sent up to
        self._jobs = 0

    # -- local writes ------------------------------------------------------

    def write(self, action_type: str, data: dict[str, Any], at: datetime, action_id: str) -> bool:
        """One local job of one action; False when the reducer refuses it
        (nothing to undo or redo)."""
        action = Action(id=action_id, type=action_type, input=data, timestamp=at)
        if self.signer is not None:
            action = sign_action(self.signer, action, "doc", self.head.hash)
        job = self._job([action])
        try:
            reduced = reduce_job(
                job,
                self._job_id(),
                self.head,
                ENTRIES,
                registry=REGISTRY,
                keyframe_interval=10_000,
                history=self.log if needs_history(job) else None,
            )
        except Exception:
            return False
        self._append(reduced.ops, reduced.head, None)
        return True

    # -- sync -----------------------------------------------------------------

    def outgoing(self, peer: str) -> list[tuple[OperationRef | None, list[SyncOperation]]]:
        """Runs of our operations the peer has not been sent, without those
        it sent us verbatim."""
        start = self.cursors.get(peer, 0)
        runs: list[tuple[OperationRef | None, list[SyncOperation]]] = []
        current: list[SyncOperation] = []
        for op in self.log[start:]:
            if self.received_from.get(op.id) == peer:
                if current:
                    runs.append((self._ref(current[0].index), current))
                    current = []
                continue
            current.append(SyncOperation.of(op, dead_covered(self.log, op.index)))
        if current:
            runs.append((self._ref(current[0].index), current))
        return runs

    def sent(self, peer: str) -> None:
        self.cursors[peer] = len(self.log)

    def load(self, origin: str, after: OperationRef | None, ops: Sequence[SyncOperation]) -> int:
        """Loads a run; the number of operations it appended."""
        job = self._job(
            [op.action for op in ops],
            LoadSpec(
                after=after,
                ops=[
                    LoadedOp(id=o.id, index=o.index, skip=o.skip, hash=o.hash, dead=o.dead)
                    for o in ops
                ],
            ),
        )
        reduced = reduce_load(
            job,
            self._job_id(),
            self.log,
            self.head,
            ENTRIES,
            registry=REGISTRY,
            keyframe_interval=10_000,
            verifier=self.verifier,
            max_rewind=self.max_rewind,
        )
        if reduced is None:
            return 0
        verbatim = {o.id for o in ops}
        self._append(reduced.ops, reduced.head, (origin, verbatim))
        return len(reduced.ops)

    # -- what a test compares ----------------------------------------------

    def effective(self) -> list[str]:
        """Action ids of the effective operations, in order."""
        return [self.log[i].action.id for i in effective_indexes(self.log, len(self.log))]

    def held(self) -> set[str]:
        return {op.action.id for op in self.log}

    def state(self) -> list[str]:
        validated = self.head.validated
        if validated is not None:
            return list(validated.entries)
        assert self.head.state is not None
        return list(self.head.state["entries"])

    # -- internals -----------------------------------------------------------

    def _ref(self, index: int) -> OperationRef | None:
        if index == 0:
            return None
        op = self.log[index - 1]
        return OperationRef(id=op.id, action_id=op.action.id, index=op.index, hash=op.hash)

    def _job(self, actions: list[Action], load: LoadSpec | None = None) -> PlannedJob:
        return PlannedJob(
            index=0,
            key="job",
            document_id="doc",
            document_type=DOCUMENT_TYPE,
            scope="global",
            branch="main",
            deps=[],
            after=None,
            actions=actions,
            load=load,
        )

    def _job_id(self) -> str:
        self._jobs += 1
        return f"{self.name}-{self._jobs}:0"

    def _append(self, ops: Any, head: Head, received: tuple[str, set[str]] | None) -> None:
        for op in ops:
            self.log.append(
                Operation(
                    id=op.id,
                    index=op.index,
                    skip=op.skip,
                    timestamp=op.timestamp,
                    hash=op.hash,
                    action=op.action,
                    document_id="doc",
                    scope="global",
                    branch="main",
                )
            )
            if received is not None and op.id in received[1]:
                self.received_from[op.id] = received[0]
        self.head = head


def sync(sender: Replica, receiver: Replica) -> int:
    """Sends everything `sender` has not sent `receiver`; operations appended."""
    appended = 0
    for after, ops in sender.outgoing(receiver.name):
        appended += receiver.load(sender.name, after, ops)
    sender.sent(receiver.name)
    return appended


def quiesce(a: Replica, b: Replica, rounds: int = 8) -> int:
    """Syncs both ways until neither side appends; the rounds it took."""
    for n in range(1, rounds + 1):
        moved = sync(a, b) + sync(b, a)
        if moved == 0 and not a.outgoing(b.name) and not b.outgoing(a.name):
            return n
    raise AssertionError(f"{a.name} and {b.name} still exchanging after {rounds} rounds")


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)
