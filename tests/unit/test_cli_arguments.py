"""The command line's argument types, its echo cap, and what counts as a
lost stack."""

from __future__ import annotations

import argparse

import pytest
from temporalio.service import RPCError, RPCStatusCode

from reactor.cli.arguments import cap_echoes, positive_int, positive_seconds
from reactor.cli.stack_lost import StackLostError, connection_lost
from reactor.domain.errors import ValidationError


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "-1", "1e300", "x", ""])
def test_positive_seconds_refuses_what_no_timeout_can_be(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_seconds(text)


def test_positive_seconds_and_int_take_ordinary_values() -> None:
    assert positive_seconds("0.5") == 0.5 and positive_int("3") == 3


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "many"])
def test_positive_int_refuses_zero_negative_and_non_integers(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)


def test_a_long_argument_is_echoed_as_its_first_80_characters_and_its_length() -> None:
    arg = "a" * 1000
    args = argparse.Namespace(job_id=arg + ":0")
    capped = cap_echoes(f"job {arg + ':0'!r} not found (no batch {arg!r})", args)
    assert capped == (
        f"job '{'a' * 80}'… (1,002 characters) not found (no batch '{'a' * 80}'… (1,000 characters))"
    )
    assert cap_echoes("short 'x'", args) == "short 'x'"


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("while waiting") from inner
    except RuntimeError as outer:
        return outer


def test_connection_errors_count_as_a_lost_stack_through_their_causes() -> None:
    unreachable = RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b"")
    assert connection_lost(_raised_from(unreachable)) is unreachable
    refused = ConnectionRefusedError(111, "refused")
    assert connection_lost(_raised_from(refused)) is refused
    lost = StackLostError("b1", unreachable)
    assert "`reactor status b1:0`" in str(lost) and "RPCError: tcp connect error" in str(lost)


def test_an_answer_from_the_stack_is_not_a_lost_stack() -> None:
    assert connection_lost(RPCError("no", RPCStatusCode.NOT_FOUND, b"")) is None
    assert connection_lost(ValidationError("bad", field="job_id")) is None
    assert connection_lost(ValueError("bad")) is None
