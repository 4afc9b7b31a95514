"""A document model whose HANG action never returns: its reducer sleeps in a
loop, synchronously, so whatever runs it (the worker's event loop, or a
thread) is held for good and cancellation never reaches it. Load it with
REACTOR_MODELS=tests.support.stuck_model; with STUCK_MODEL_MARKER set, the
reducer creates that file once it is stuck, for a test to wait on."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action
from reactor.domain.errors import ReducerError

document_type = "test/stuck"


class StuckState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    touched: int = 0


GlobalState = StuckState


class HangInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TouchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


actions: dict[str, type[BaseModel]] = {"HANG": HangInput, "TOUCH": TouchInput}


def reducer(state: StuckState, action: Action) -> StuckState:
    if action.type == "TOUCH":
        return StuckState(touched=state.touched + 1)
    if action.type == "HANG":
        marker = os.environ.get("STUCK_MODEL_MARKER")
        if marker:
            Path(marker).touch()
        while True:  # no await, no return: only the end of the process stops it
            time.sleep(0.2)
    raise ReducerError(f"unknown action type {action.type!r} for {document_type}")
