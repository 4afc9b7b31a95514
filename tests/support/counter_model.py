"""A document model for failure tests: a counter whose reducer can grow it
past what the state hash can hold, and actions whose reducer or state
cannot be stored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action

document_type = "test/counter"


class CounterState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: int = 1


GlobalState = CounterState


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


actions: dict[str, type[BaseModel]] = {"DOUBLE": NoInput, "CRASH": NoInput}


def reducer(state: CounterState, action: Action) -> CounterState:
    if action.type == "CRASH":
        raise KeyError("a bug in the model")
    return CounterState(value=state.value * 2)
