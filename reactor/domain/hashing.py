"""The one definition of a state's hash.

An operation's `hash` is the sha256 of the canonical JSON of exactly the
state `Reactor.get()` returns after it, and replaying a document's log must
reproduce every stored hash. Hashes are compared across processes (a signer
signs over the hash it computed; another reactor loading these operations
recomputes them), so the write path, replay, signing and verification all
hash through `state_hash` here, and a model is always hashed as the JSON
value it is stored as: `model_dump(mode="json")`. Serializing a model from
its `__dict__` is faster, but no check short of a full walk proves it gives
those bytes for every instance: a bool put in an int field by
`model_copy(update=...)` would hash as `true` where the stored JSON holds 1,
and an instance missing a declared field while carrying an unknown attribute
would hash the attribute, which is stored nowhere. A writer holding the model
and one re-reading the stored JSON would then disagree.

Canonical JSON is json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False) encoded as UTF-8, so another implementation can
reproduce it with a standard library, except for two float spellings
(orjson writes 1e-7 where Python writes 1e-07, and NaN or infinities as
null); orjson writes it several times faster. A float's text is its
shortest round-trip form, so the JSON the view stores reads back to the
same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel

_SORTED = orjson.OPT_SORT_KEYS


def json_value(state: Any) -> Any:
    """What a state is stored as: a model's JSON dump, anything else as is."""
    if isinstance(state, BaseModel):
        return state.model_dump(mode="json")
    return state


def canonical_bytes(value: Any) -> bytes:
    return orjson.dumps(json_value(value), option=_SORTED)


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode()


def state_hash(state: Any) -> str:
    return hashlib.sha256(canonical_bytes(state)).hexdigest()
