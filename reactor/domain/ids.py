"""UUID strings built straight from bytes: ids are made per action when a
batch is planned and per operation when it is applied, and `uuid.UUID`
objects cost a few microseconds each there. The text is exactly what
`str(uuid.uuid4())` / `str(uuid.uuid5(...))` give (tests/unit/test_ids.py)."""

from __future__ import annotations

import hashlib
import os


def _text(raw: bytes, version: int) -> str:
    b = bytearray(raw[:16])
    b[6] = (b[6] & 0x0F) | (version << 4)
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def uuid4_text() -> str:
    """A random (version 4) UUID."""
    return _text(os.urandom(16), 4)


def uuid5_text(namespace: bytes, name: str) -> str:
    """The name-based (version 5, SHA-1) UUID of `name` in `namespace`."""
    return _text(hashlib.sha1(namespace + name.encode()).digest(), 5)
