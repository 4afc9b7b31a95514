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
    return uuid4_texts(1)[0]


def uuid4_texts(count: int) -> list[str]:
    """`count` random (version 4) UUIDs from one read of the OS's random
    source: planning a batch names every action, and one read per action
    was one system call per action."""
    x = os.urandom(16 * count).hex()
    return [
        f"{x[i : i + 8]}-{x[i + 8 : i + 12]}-4{x[i + 13 : i + 16]}-"
        f"{_VARIANT[int(x[i + 16], 16) & 3]}{x[i + 17 : i + 20]}-{x[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


# The RFC 4122 variant puts 0b10 in the top bits of the clock-sequence octet.
_VARIANT = "89ab"


def uuid5_text(namespace: bytes, name: str) -> str:
    """The name-based (version 5, SHA-1) UUID of `name` in `namespace`."""
    return _text(hashlib.sha1(namespace + name.encode()).digest(), 5)
