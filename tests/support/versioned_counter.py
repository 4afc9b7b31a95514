"""A document model with an upgrade manifest, importable by worker and CLI
processes (REACTOR_MODELS=tests.support.versioned_counter)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action
from reactor.domain.upgrades import UpgradeManifest, UpgradeStep

document_type = "test/cli-counter"


class GlobalState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = 0
    label: str = ""


class AddInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


actions = {"ADD": AddInput}


def reducer(state: GlobalState, action: Action) -> GlobalState:
    return GlobalState(count=state.count + int(action.input["n"]), label=state.label)


def _labelled(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "label": f"count={state['count']}"}


def _tenfold(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "count": state["count"] * 10}


upgrade_manifest = UpgradeManifest.of(
    document_type,
    3,
    [UpgradeStep(2, {"global": _labelled}), UpgradeStep(3, {"global": _tenfold})],
)
