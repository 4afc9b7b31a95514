"""A document model with an upgrade manifest, importable by worker and CLI
processes (REACTOR_MODELS=tests.support.versioned_counter). Its pieces also
build the same model under other document types (`counter_model`), for
tests that need one of their own."""

from __future__ import annotations

import types
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


def labelled(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "label": f"count={state['count']}"}


def tenfold(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "count": state["count"] * 10}


upgrade_manifest = UpgradeManifest.of(
    document_type,
    3,
    [UpgradeStep(2, {"global": labelled}), UpgradeStep(3, {"global": tenfold})],
)


def counter_model(document_type: str) -> types.ModuleType:
    """This model as a module of another document type."""
    module = types.ModuleType(document_type.replace("/", "_"))
    module.document_type = document_type  # type: ignore[attr-defined]
    module.GlobalState = GlobalState  # type: ignore[attr-defined]
    module.actions = actions  # type: ignore[attr-defined]
    module.reducer = reducer  # type: ignore[attr-defined]
    return module
