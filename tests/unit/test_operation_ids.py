"""Operation ids are UUIDv5 of `job/position/action id`: the fast
construction in reactor/application/apply.py must give exactly what
uuid.uuid5 gives, or a retried job written by a newer worker would not
match the operations an older one recorded."""

from __future__ import annotations

import random
import string
import uuid

import pytest

from reactor.application.apply import OPERATION_NAMESPACE, operation_id, uuid5_text
from reactor.domain.actions import Action

ALPHABET = string.ascii_letters + string.digits + "/:-_ éü漢字🙂\x00"


@pytest.mark.parametrize("seed", range(5))
def test_uuid5_text_matches_uuid5(seed: int) -> None:
    rng = random.Random(seed)
    namespace = uuid.UUID(int=rng.getrandbits(128))
    for _ in range(400):
        name = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 80)))
        assert uuid5_text(namespace.bytes, name) == str(uuid.uuid5(namespace, name))


def test_operation_id_is_the_uuid5_of_job_position_and_action() -> None:
    action = Action(type="ADD_TODO_ITEM", input={"id": "a", "text": "t"})
    got = operation_id("batch-1:7", action, 3)
    assert got == str(uuid.uuid5(OPERATION_NAMESPACE, f"batch-1:7/3/{action.id}"))
    assert uuid.UUID(got).version == 5
    assert operation_id("batch-1:7", action, 4) != got
