"""Model versions (reactor/domain/upgrades.py): upgrade chains, their named
errors, and what UPGRADE_DOCUMENT reduces to, in the document scope and in
a model scope's lane, through the pure reduction and replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document_scope import document_version
from reactor.domain.hashing import state_hash
from reactor.domain.history import Replayer
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import (
    Head,
    HeaderUpdated,
    NewOperation,
    ScopeUpgraded,
    initial_head,
    reduce_job,
)
from reactor.domain.rejection import JobRejected
from reactor.domain.upgrades import (
    UpgradeError,
    UpgradeManifest,
    UpgradeStep,
    check_upgrade,
    upgrade_state,
)
from tests.support.versioned_counter import counter_model, labelled, tenfold

MANIFEST = UpgradeManifest.of(
    "test/counter",
    3,
    [UpgradeStep(2, {"global": labelled}), UpgradeStep(3, {"global": tenfold})],
)
_module = counter_model("test/counter")
REGISTRY = ModelRegistry([DocumentModel.from_module(_module)], manifests=[MANIFEST])
MODEL = REGISTRY.get("test/counter")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _job(scope: str, actions: list[Action]) -> PlannedJob:
    return PlannedJob(
        index=0,
        key="j",
        document_id="doc",
        document_type=MODEL.document_type,
        scope=scope,
        branch="main",
        deps=[],
        after=None,
        actions=actions,
    )


def _action(type_: str, input_: dict[str, Any], n: int = 0, **context: Any) -> Action:
    return Action(
        type=type_,
        input=input_,
        timestamp=START + timedelta(seconds=n),
        context=context or None,
    )


def test_registry_joins_a_manifest_to_its_model() -> None:
    assert MODEL.upgrades is MANIFEST
    assert ModelRegistry([DocumentModel.from_module(_module)]).get("test/counter").upgrades is None


def test_a_chain_applies_every_step_in_order_and_scopes_without_a_step_keep_their_state() -> None:
    state = {"count": 4, "label": ""}
    assert upgrade_state(MANIFEST, "test/counter", "global", state, 1, 2) == {
        "count": 4,
        "label": "count=4",
    }
    # label first (at v2), then the count's tenfold meaning (at v3)
    assert upgrade_state(MANIFEST, "test/counter", "global", state, 1, 3) == {
        "count": 40,
        "label": "count=4",
    }
    assert upgrade_state(MANIFEST, "test/counter", "global", state, 2, 3)["count"] == 40
    assert upgrade_state(MANIFEST, "test/counter", "local", {}, 1, 3) == {}
    assert state == {"count": 4, "label": ""}  # steps are pure


@pytest.mark.parametrize(
    ("current", "to", "error_type"),
    [
        (2, 2, "UpgradeNotHigher"),
        (3, 2, "UpgradeNotHigher"),
        (1, 4, "UnsupportedVersion"),
    ],
)
def test_upgrades_the_manifest_does_not_make_are_named(
    current: int, to: int, error_type: str
) -> None:
    with pytest.raises(UpgradeError) as raised:
        check_upgrade(MANIFEST, "test/counter", current, to)
    assert raised.value.error_type == error_type


def test_a_type_without_manifest_supports_only_version_one() -> None:
    with pytest.raises(UpgradeError) as raised:
        check_upgrade(None, "test/plain", 1, 2)
    assert raised.value.error_type == "UnsupportedVersion"


def test_a_missing_step_is_named() -> None:
    gap = UpgradeManifest.of("test/counter", 3, [UpgradeStep(3, {"global": tenfold})])
    with pytest.raises(UpgradeError) as raised:
        upgrade_state(gap, "test/counter", "global", {"count": 1}, 1, 3)
    assert raised.value.error_type == "MissingUpgradeStep"
    assert "version 2" in str(raised.value)


def test_a_step_that_raises_is_named() -> None:
    def broken(state: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("gone")

    bad = UpgradeManifest.of("test/counter", 2, [UpgradeStep(2, {"global": broken})])
    with pytest.raises(UpgradeError) as raised:
        upgrade_state(bad, "test/counter", "global", {"count": 1}, 1, 2)
    assert raised.value.error_type == "UpgradeStepFailed"
    assert "KeyError" in str(raised.value)


def test_a_manifest_refuses_steps_outside_its_versions() -> None:
    with pytest.raises(ValueError, match="outside"):
        UpgradeManifest.of("t", 2, [UpgradeStep(3)])
    with pytest.raises(ValueError, match="two steps"):
        UpgradeManifest.of("t", 3, [UpgradeStep(2), UpgradeStep(2)])
    with pytest.raises(ValueError, match="supported"):
        UpgradeManifest.of("t", 3, [UpgradeStep(2), UpgradeStep(3)], supported_versions={2})


def _document_head(version: int) -> Head:
    state: dict[str, Any] = {
        "document_type": "test/counter",
        "slug": None,
        "name": "",
        "deleted": False,
        "children": [],
        "model_version": version,
    }
    return Head(1, state_hash(state), state)


def test_upgrade_document_raises_the_version_and_upgrades_each_model_scope() -> None:
    reduced = reduce_job(
        _job("document", [_action("UPGRADE_DOCUMENT", {"to_version": 3})]),
        "b:0",
        _document_head(1),
        MODEL,
        registry=REGISTRY,
        keyframe_interval=100,
    )
    assert reduced.head.state is not None
    assert document_version(reduced.head.state) == 3
    scoped = [c for c in reduced.header_changes if isinstance(c, ScopeUpgraded)]
    assert [c.scope for c in scoped] == ["global", "local"]
    assert all(c.action.input == {"from_version": 1, "to_version": 3} for c in scoped)
    assert len({c.operation_id for c in scoped}) == 2
    header = [c for c in reduced.header_changes if isinstance(c, HeaderUpdated)]
    assert header[-1].model_version == 3


@pytest.mark.parametrize(
    ("at", "to", "error_type"),
    [(3, 3, "UpgradeNotHigher"), (2, 1, "UpgradeNotHigher"), (1, 5, "UnsupportedVersion")],
)
def test_a_refused_upgrade_rejects_the_job_with_its_name(at: int, to: int, error_type: str) -> None:
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            _job("document", [_action("UPGRADE_DOCUMENT", {"to_version": to})]),
            "b:0",
            _document_head(at),
            MODEL,
            registry=REGISTRY,
            keyframe_interval=100,
        )
    assert raised.value.error_type == error_type


def test_an_action_written_for_a_newer_version_is_rejected() -> None:
    job = _job("global", [_action("ADD", {"n": 1}, model_version=3)])
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            job,
            "b:0",
            initial_head(MODEL, "global"),
            MODEL,
            registry=REGISTRY,
            keyframe_interval=100,
            document_version=2,
        )
    assert raised.value.error_type == "ActionVersionTooNew"
    reduced = reduce_job(
        job,
        "b:0",
        initial_head(MODEL, "global"),
        MODEL,
        registry=REGISTRY,
        keyframe_interval=100,
        document_version=3,
    )
    assert reduced.head.validated is not None and reduced.head.validated.count == 1


def _upgrade(from_version: int, to_version: int, n: int) -> Action:
    return _action("UPGRADE_DOCUMENT", {"from_version": from_version, "to_version": to_version}, n)


def test_a_lane_replays_through_its_upgrade_operation() -> None:
    """Hashes as the write path stores them: the state after each operation,
    the upgrade's being the stepped state; a replay reproduces each."""
    actions = [_action("ADD", {"n": 2}, 0), _upgrade(1, 3, 1), _action("ADD", {"n": 1}, 2)]
    lane = LaneReducer.initial(MODEL, "global")
    stored = [lane.apply(a) for a in actions]
    assert lane.state() == {"count": 21, "label": "count=2"}
    assert stored[1] == state_hash({"count": 20, "label": "count=2"})
    log = [
        NewOperation(f"op{i}", i, a.timestamp, h, a)
        for i, (a, h) in enumerate(zip(actions, stored, strict=True))
    ]
    replayer = Replayer(MODEL, "global", LaneReducer.initial(MODEL, "global"))
    assert [replayer.apply(op) for op in log] == stored


def test_undo_stops_at_an_upgrade() -> None:
    head = initial_head(MODEL, "global")
    lane = LaneReducer.initial(MODEL, "global")
    actions = [_action("ADD", {"n": 2}, 0), _upgrade(1, 2, 1)]
    log = [NewOperation(f"op{i}", i, a.timestamp, lane.apply(a), a) for i, a in enumerate(actions)]
    head = Head(2, log[-1].hash, lane.state())
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            _job("global", [_action("UNDO", {}, 2)]),
            "b:0",
            head,
            MODEL,
            registry=REGISTRY,
            keyframe_interval=100,
            history=log,
            document_version=2,
        )
    assert raised.value.error_type == "NothingToUndo"


def _upgraded_lane() -> tuple[Head, list[NewOperation]]:
    """ADD 2, the upgrade to version 2, ADD 1."""
    lane = LaneReducer.initial(MODEL, "global")
    actions = [_action("ADD", {"n": 2}, 0), _upgrade(1, 2, 1), _action("ADD", {"n": 1}, 2)]
    log = [NewOperation(f"op{i}", i, a.timestamp, lane.apply(a), a) for i, a in enumerate(actions)]
    return Head(3, log[-1].hash, lane.state()), log


def _prune(start: int, end: int) -> Any:
    head, log = _upgraded_lane()
    return reduce_job(
        _job("global", [_action("PRUNE", {"start": start, "end": end}, 3)]),
        "b:0",
        head,
        MODEL,
        registry=REGISTRY,
        keyframe_interval=100,
        history=log,
        document_version=2,
    )


def test_prune_keeps_an_upgrade_only_in_a_state_after_it() -> None:
    with pytest.raises(JobRejected) as raised:
        _prune(0, 1)  # the state at 1 is the one before the upgrade
    assert raised.value.error_type == "InvalidPruneRange"
    assert "upgrade at index 1" in str(raised.value)
    # collapsing through the upgrade into a state after it keeps the upgraded state
    reduced = _prune(0, 2)
    assert reduced.head.validated is not None
    assert reduced.head.validated.model_dump() == {"count": 2, "label": "count=2"}
    # a range after the upgrade is not concerned
    assert _prune(2, 3).head.validated is not None
