"""Deterministic hashing of states: the same state always hashes the same,
whichever process, Python version or dict order produced it (keys sorted,
compact separators, UTF-8: byte-identical to json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False), several times faster).

Every operation stores the hash of the state it produced, so on the write
path a state is serialized once per action. For "plain" pydantic models
(see `plain_json_model`) the model is serialized by orjson straight from the
instances' `__dict__`, which is about 3x faster than `model_dump(mode="json")`
and yields exactly the same bytes; anything else takes the `model_dump` path.

The fast path trusts what validation guarantees: a field holds a value of its
declared type, and an instance holds its declared fields. Values of undeclared
types, extra attributes and datetimes all take the slow path; two ways around
validation still give bytes model_dump would not (tests/unit/
test_hashing_fast_path.py shows both): a bool put in an int field
(model_copy(update=...), model_construct, assignment) hashes as `true` where
model_dump writes 1, and an instance missing a declared field *and* carrying an
unknown attribute hashes that attribute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel

_SORTED = orjson.OPT_SORT_KEYS

# Core-schema node types whose serialized form is the Python value itself
# (orjson writes it exactly as model_dump(mode="json") + orjson would).
# Not float: an int stored in a float field without validation (model_copy,
# assignment) dumps as 3.0 through pydantic, as 3 through orjson.
_SCALARS = frozenset({"str", "int", "bool", "none"})
# Node types that only wrap another schema (validators don't change how a
# value serializes unless the node carries its own `serialization`).
_WRAPPERS = frozenset({"nullable", "default", "function-after", "function-before", "function-wrap"})
# Keys a model field may carry without changing its serialized form.
_FIELD_KEYS = frozenset({"type", "schema", "metadata", "validation_alias", "frozen"})


def canonical_bytes(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        return model_json(value, sort_keys=True)
    return orjson.dumps(value, option=_SORTED)


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode()


def state_hash(state: Any) -> str:
    return hashlib.sha256(canonical_bytes(state)).hexdigest()


def model_json(model: BaseModel, *, sort_keys: bool = False) -> bytes:
    """`orjson.dumps(model.model_dump(mode="json"))`, byte for byte, faster
    when the model class is plain. Unsorted keys keep the model's field order
    (what the document view stores, for people reading it)."""
    option = (_SORTED if sort_keys else 0) | orjson.OPT_PASSTHROUGH_DATETIME
    default = _fields_of(type(model))
    if default is not None:
        try:
            return orjson.dumps(model, default=default, option=option)
        except TypeError:
            pass  # a value this schema does not declare: serialize it the slow way
    return orjson.dumps(model.model_dump(mode="json"), option=option)


@lru_cache(maxsize=256)
def _fields_of(cls: type[BaseModel]) -> Callable[[Any], dict[str, Any]] | None:
    classes = plain_json_model(cls)
    if not classes:
        return None

    sizes = {c: len(c.model_fields) for c in classes}

    def fields(obj: Any) -> dict[str, Any]:
        # Anything but the declared fields in __dict__ (a cached_property,
        # model_copy(update=) with an unknown key) would be written out.
        values: dict[str, Any] = obj.__dict__
        if sizes.get(type(obj)) == len(values):
            return values
        raise TypeError(type(obj).__name__)

    return fields


@lru_cache(maxsize=256)
def plain_json_model(cls: type[BaseModel]) -> frozenset[type[BaseModel]]:
    """The model classes reachable from `cls` when every field, at any depth,
    is a JSON scalar, a list/tuple, a str-keyed dict, a literal, a union of
    those or another such model, with no custom serializer, computed field,
    excluded field, alias or extra fields: then a model's `__dict__` is
    exactly what `model_dump(mode="json")` returns for it. Empty when not."""
    classes: set[type[BaseModel]] = set()
    try:
        schema = cls.__pydantic_core_schema__
    except AttributeError:
        return frozenset()
    definitions: dict[str, Any] = {}
    seen_refs: set[str] = set()
    if not _plain(schema, classes, definitions, seen_refs) or not classes:
        return frozenset()
    # A subclass instance in a field declared as its base dumps as the base;
    # its __dict__ would carry the subclass's fields too.
    if any(a is not b and issubclass(a, b) for a in classes for b in classes):
        return frozenset()
    return frozenset(classes)


def _plain(
    node: Any, classes: set[type[BaseModel]], definitions: dict[str, Any], seen: set[str]
) -> bool:
    if not isinstance(node, dict) or "serialization" in node:
        return False
    kind = node.get("type")
    if kind in _SCALARS:
        return True
    if kind in _WRAPPERS:
        return _plain(node.get("schema"), classes, definitions, seen)
    if kind == "definitions":
        for d in node.get("definitions", []):
            definitions[d["ref"]] = d
        return _plain(node.get("schema"), classes, definitions, seen)
    if kind == "definition-ref":
        ref = node.get("schema_ref")
        if ref in seen:
            return True
        target = definitions.get(ref) if isinstance(ref, str) else None
        return target is not None and _plain(target, classes, definitions, seen)
    if kind == "list":
        return "items_schema" in node and _plain(node["items_schema"], classes, definitions, seen)
    if kind == "tuple":
        items = node.get("items_schema")
        return isinstance(items, list) and all(_plain(i, classes, definitions, seen) for i in items)
    if kind == "dict":
        keys = node.get("keys_schema")
        return (
            isinstance(keys, dict)
            and keys.get("type") == "str"
            and "serialization" not in keys
            and "values_schema" in node
            and _plain(node["values_schema"], classes, definitions, seen)
        )
    if kind == "literal":
        return all(type(v) in (str, int, bool, type(None)) for v in node.get("expected", []))
    if kind == "union":
        return all(
            _plain(c[0] if isinstance(c, tuple) else c, classes, definitions, seen)
            for c in node.get("choices", [])
        )
    if kind == "tagged-union":
        return all(_plain(c, classes, definitions, seen) for c in node.get("choices", {}).values())
    if kind == "model":
        return _plain_model(node, classes, definitions, seen)
    return False


def _plain_model(
    node: dict[str, Any], classes: set[type[BaseModel]], definitions: dict[str, Any], seen: set[str]
) -> bool:
    ref = node.get("ref")
    if ref is not None:
        if ref in seen:
            return True
        seen.add(ref)
    cls = node.get("cls")
    config = node.get("config", {})
    inner = node.get("schema", {})
    if (
        not isinstance(cls, type)
        or not issubclass(cls, BaseModel)
        or node.get("root_model")
        or config.get("extra_fields_behavior") == "allow"
        or config.get("serialize_by_alias")
        or not isinstance(inner, dict)
        or inner.get("type") != "model-fields"
        or inner.get("computed_fields")
        or "serialization" in inner
        # __dict__ holds the fields in declaration order; the dump does too.
        or list(inner.get("fields", {})) != list(cls.model_fields)
    ):
        return False
    for field in inner.get("fields", {}).values():
        if not set(field) <= _FIELD_KEYS or not _plain(
            field.get("schema"), classes, definitions, seen
        ):
            return False
    classes.add(cls)
    return True
