"""A document model whose inputs take numbers and free-form data, for tests
of values a model may accept but PostgreSQL and the state hash cannot store
(a float read from "NaN", an integer past 64 bits, a key with a NUL)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action

document_type = "test/meter"


class MeterState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    readings: int = 0


GlobalState = MeterState


class MeasureInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = 0.0
    count: int = 0
    data: Any = None


actions: dict[str, type[BaseModel]] = {"MEASURE": MeasureInput}


def reducer(state: MeterState, action: Action) -> MeterState:
    return MeterState(readings=state.readings + 1)
