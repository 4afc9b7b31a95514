"""What a request may hold: size limits, and the values PostgreSQL and the
state hash can store.

Every value of a request ends up in a `text` or `jsonb` column and in the
canonical JSON that hashes states (reactor/domain/hashing.py, orjson).
Neither stores a NUL character; a lone surrogate is not UTF-8; orjson writes
integers of at most 64 bits and turns NaN and infinities into `null`; deep
nesting costs recursion in every serializer on the way. A value that one of
them refuses fails on every retry, so it is refused here, before anything is
written, with the path of the offending value.

The walk is iterative (an input nested 100,000 deep is one error, never a
RecursionError) and visits each value once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from reactor.domain.errors import ValidationError

# Signed 64-bit: what orjson writes and reads back exactly (it also takes
# unsigned 64-bit integers, which PostgreSQL's bigint does not).
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
# Containers within containers, the input object itself being level 1.
MAX_DEPTH = 64

# Lone surrogates and NUL; ASCII strings only need the NUL test.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
# orjson refuses integers past 53 bits with this option: rare enough to walk.
_STRICT = orjson.OPT_STRICT_INTEGER


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, checked where it arrives (`execute_batch`, and
    the CLI for the file it reads), before anything is written.

    `max_request_bytes` counts the request's JSON (for a request given as a
    mapping: its compact JSON; for a `BatchRequest` object: the JSON of its
    action inputs); `max_input_bytes` the JSON of one action input as stored.
    """

    max_request_bytes: int = 16 * 1024 * 1024
    max_jobs_per_batch: int = 10_000
    max_actions_per_job: int = 10_000
    max_input_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_request_bytes",
            "max_jobs_per_batch",
            "max_actions_per_job",
            "max_input_bytes",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS = Limits()


def too_big(what: str, value: int, limit: int, unit: str = "") -> str:
    """The message of a violated limit: both numbers, so the user can see by
    how much and what to change."""
    return f"{what} is {value:,}{unit}, over the limit of {limit:,}{unit}"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if text.isascii():  # O(1) in CPython
        return "contains a NUL character (\\u0000)" if "\x00" in text else None
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000)"
    return f"contains a lone surrogate (\\u{ord(found.group()):04x}), which is not UTF-8"


def check_text(text: str, *, job: str | None, field: str) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise ValidationError(f"the text {problem}", job=job, field=field)


def _scalar_problem(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        problem = text_problem(value)
        return None if problem is None else f"the text {problem}"
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return None
        return (
            f"the integer {_describe_int(value)} is out of range "
            f"({MIN_INT} .. {MAX_INT}, signed 64-bit)"
        )
    if kind is float:
        return None if math.isfinite(value) else f"{value} is not a finite number"
    # Anything else (None, bool, and whatever orjson writes natively, such as
    # datetimes a model turns into text) is orjson's to accept or refuse.
    return None


def _describe_int(value: int) -> str:
    # str() of an integer over 4,300 digits raises ValueError.
    bits = value.bit_length()
    return str(value) if bits <= 256 else f"of {bits:,} bits"


def _key_text(key: str) -> str:
    return f".{key}" if _PLAIN_KEY.match(key) else f"[{key!r}]"


def find_unstorable(
    value: Any, max_depth: int = MAX_DEPTH, *, above: int = 0
) -> tuple[str, str] | None:
    """The first value inside `value` that cannot be stored, as (path
    relative to `value`, reason), or None. `value` is a JSON-like tree
    (mappings with str keys, lists/tuples, scalars). Depth counts from the
    containers `above` levels down (a request's inputs, say), so the same
    value nests as deep wherever it is checked from."""
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        if isinstance(value, Mapping):
            value = dict(value)
        else:
            problem = _scalar_problem(value)
            return None if problem is None else ("", problem)
    # One frame per open container: its iterator, whether it is a mapping,
    # and where it sits.
    iters: list[Any] = [_items(value)]
    maps: list[bool] = [isinstance(value, Mapping)]
    path: list[str] = [""]
    while iters:
        step = next(iters[-1], None)
        if step is None:
            iters.pop()
            maps.pop()
            path.pop()
            continue
        key, child = step
        if not maps[-1]:
            where = f"[{key}]"
        elif type(key) is str:
            where = _key_text(key)
            problem = text_problem(key)
            if problem is not None:
                return "".join(path) + where, f"the key {problem}"
        else:
            return "".join(path), f"a key of type {type(key).__name__} (keys must be strings)"
        kind = type(child)
        if kind is dict or kind is list or kind is tuple or isinstance(child, Mapping):
            if len(iters) >= max_depth + above:
                return (
                    "".join(path) + where,
                    f"nested more than {max_depth} levels deep (the limit is {max_depth})",
                )
            iters.append(_items(child))
            maps.append(kind is dict or isinstance(child, Mapping))
            path.append(where)
            continue
        if kind is str:
            problem = text_problem(child)
            if problem is not None:
                return "".join(path) + where, f"the text {problem}"
            continue
        problem = _scalar_problem(child)
        if problem is not None:
            return "".join(path) + where, problem
    return None


def _items(container: Any) -> Any:
    if type(container) is dict:
        return iter(container.items())
    if isinstance(container, Mapping):
        return iter(dict(container).items())
    return enumerate(container)


def check_storable(value: Any, *, job: str | None, field: str, max_depth: int = MAX_DEPTH) -> bytes:
    """The compact JSON of `value` (what its size is measured on), or
    ValidationError naming `job` and the path under `field` of the first
    value that cannot be stored.

    orjson proves most of it at C speed: it refuses lone surrogates,
    integers past 53 bits (with OPT_STRICT_INTEGER), keys that are not
    strings, other types and nesting past 254. What it lets through shows in
    its output, or may: NUL as `\\u0000`, NaN and infinities as `null`,
    nesting past `max_depth` as more brackets than that. Only then (or when
    orjson refuses) is the value walked, for the verdict and the path; a
    refused integer of 54 to 64 bits is fine, and the output is written again
    without the option."""
    try:
        out = orjson.dumps(value, option=_STRICT)
    except TypeError as exc:
        refused = str(exc)
    else:
        # A container takes at least 2 bytes: a short output is shallow.
        shallow = len(out) <= 2 * max_depth or out.count(b"[") + out.count(b"{") <= max_depth
        if shallow and b"\\u0000" not in out and b"null" not in out:
            return out
        refused = "integer exceeds 64-bit range"
    found = find_unstorable(value, max_depth)
    if found is not None:
        sub, reason = found
        raise ValidationError(reason, job=job, field=f"{field}{sub}")
    try:
        return orjson.dumps(value)
    except TypeError:
        raise ValidationError(f"not JSON: {refused}", job=job, field=field) from None


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH",
    "MAX_INT",
    "MIN_INT",
    "Limits",
    "check_storable",
    "check_text",
    "find_unstorable",
    "text_problem",
    "too_big",
]
