"""Ids built from bytes (reactor/domain/ids.py) must be exactly what the
uuid module gives: operation ids are recomputed when a job is retried, so a
newer worker has to produce the operations an older one recorded."""

from __future__ import annotations

import random
import string
import uuid

import pytest

from reactor.domain.actions import Action
from reactor.domain.ids import uuid4_text, uuid4_texts, uuid5_text
from reactor.domain.reduction import OPERATION_NAMESPACE, operation_id

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
    assert operation_id("batch-1:7", action, 4) != got


def test_uuid4_text_is_a_canonical_random_uuid() -> None:
    ids = [uuid4_text() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case, dashed: the canonical form
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_actions_get_distinct_uuid4_ids() -> None:
    a, b = Action(type="X"), Action(type="X")
    assert a.id != b.id
    assert uuid.UUID(a.id).version == 4


@pytest.mark.parametrize("count", [0, 1, 7, 3000])
def test_uuid4_texts_are_canonical_distinct_random_uuids(count: int) -> None:
    ids = uuid4_texts(count)
    assert len(ids) == count
    assert len(set(ids)) == count
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_uuid4_texts_use_every_variant_digit() -> None:
    """The variant digit keeps two random bits: 8, 9, a and b all occur."""
    assert {t[19] for t in uuid4_texts(400)} == set("89ab")
