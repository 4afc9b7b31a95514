"""Deterministic hashing of states: the same state always hashes the same,
whichever process, Python version or dict order produced it (keys sorted,
compact separators, UTF-8: byte-identical to json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False), several times faster)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel


def canonical_bytes(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode()


def state_hash(state: Any) -> str:
    return hashlib.sha256(canonical_bytes(state)).hexdigest()
