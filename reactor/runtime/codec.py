"""Encrypted payloads: an AES-GCM `PayloadCodec` with a key ring (one active
key encrypts, every listed key decrypts, so keys rotate without stranding
running workflows), and a payload converter that refuses encrypted payloads
by name in a process that has no key at all, instead of failing on an unknown
encoding or handing garbage on.

Temporal indexes search attributes, so they never pass through a codec and
stay plaintext; workflow/activity inputs and results, query results, memos
and failure details do pass through it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from pydantic import BaseModel, ConfigDict, SecretBytes
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter, PayloadCodec

from reactor.domain.errors import ReactorError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
TAG_BYTES = 16
SEALED_MIN_BYTES = NONCE_BYTES + TAG_BYTES
KEY_SIZES = (16, 24, 32)


class PayloadKeyError(ReactorError):
    """A payload key in the configuration is malformed."""


MISSING_KEY_FIX = (
    "set REACTOR_PAYLOAD_KEY (or list it in REACTOR_PAYLOAD_KEYS) on every worker and "
    "client of this namespace"
)
MALFORMED_FIX = "it was cut short or altered after it was encrypted; no key can decode it"


class EncryptedPayloadError(ReactorError):
    """An encrypted payload this process cannot decode: a key it does not
    have, a key that does not open it, or bytes that are no sealed payload.
    Raised instead of decoding it into garbage; `fix` says what to do."""

    def __init__(self, key_id: str, reason: str, fix: str = MISSING_KEY_FIX):
        self.key_id = key_id
        self.fix = fix
        super().__init__(f"payload is encrypted with key {key_id!r}, {reason}: {fix}")


class PayloadKeys(BaseModel):
    """The key ring: `active` encrypts, every key in `keys` decrypts."""

    model_config = ConfigDict(frozen=True)

    active: str
    keys: dict[str, SecretBytes]

    @classmethod
    def parse(cls, active: str | None, others: str | None = None) -> PayloadKeys:
        """`active` is one key, `others` comma-separated keys kept for
        decoding; each is `ID:BASE64` or a bare base64 key (its id is then
        derived from its fingerprint). Without `active`, the first of
        `others` is active."""
        ring: dict[str, bytes] = {}
        order: list[str] = []
        for spec in [active or "", *(others or "").split(",")]:
            spec = spec.strip()
            if not spec:
                continue
            key_id, key = _parse_key(spec)
            if key_id in ring and ring[key_id] != key:
                raise PayloadKeyError(f"payload key id {key_id!r} is given twice, with two keys")
            ring.setdefault(key_id, key)
            order.append(key_id)
        if not order:
            raise PayloadKeyError("no payload key given")
        return cls(active=order[0], keys={k: SecretBytes(v) for k, v in ring.items()})

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PayloadKeys | None:
        """REACTOR_PAYLOAD_KEY (active) and REACTOR_PAYLOAD_KEYS (also
        accepted for decoding); None when neither is set."""
        active, others = env.get("REACTOR_PAYLOAD_KEY"), env.get("REACTOR_PAYLOAD_KEYS")
        if not (active or others):
            return None
        return cls.parse(active, others)

    def codec(self) -> EncryptionCodec:
        return EncryptionCodec(self)


def generate_key() -> str:
    """A fresh 256-bit key in the REACTOR_PAYLOAD_KEY form (bare base64)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def key_fingerprint(key: bytes) -> str:
    """The id of a key given without one: stable, and says nothing of the key."""
    return "k" + hashlib.sha256(b"reactor-payload-key\0" + key).hexdigest()[:10]


def _parse_key(spec: str) -> tuple[str, bytes]:
    key_id, sep, encoded = spec.rpartition(":")
    if not sep:
        key_id, encoded = "", spec
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeyError(
            f"payload key {key_id or '(no id)'!r} is not base64 (generate one with "
            '`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`)'
        ) from None
    if len(key) not in KEY_SIZES:
        raise PayloadKeyError(
            f"payload key {key_id or '(no id)'!r} has {len(key)} bytes; AES-GCM needs 16, 24 or 32"
        )
    return key_id.strip() or key_fingerprint(key), key


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each serialized payload. The key id travels in the
    payload's metadata (so a rotated-out key still opens old histories) and is
    the associated data (so a payload cannot be relabelled to another key)."""

    def __init__(self, keys: PayloadKeys):
        self.keys = keys
        self.active = keys.active
        self._ciphers = {kid: AESGCM(k.get_secret_value()) for kid, k in keys.keys.items()}
        self._active_cipher = self._ciphers[keys.active]
        self._active_id = keys.active.encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._active_cipher.encrypt(nonce, payload.SerializeToString(), self._active_id)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._active_id}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptedPayloadError(key_id, "which this process does not have")
        data = payload.data
        if len(data) < SEALED_MIN_BYTES:
            # AES-GCM would refuse the nonce with a bare ValueError.
            raise EncryptedPayloadError(
                key_id,
                f"but it is malformed: {len(data)} bytes, fewer than the {SEALED_MIN_BYTES} "
                "of a nonce and an authentication tag",
                MALFORMED_FIX,
            )
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise EncryptedPayloadError(
                key_id, "but the key with that id does not open it (wrong key, or tampered)"
            ) from None
        out = Payload()
        try:
            out.ParseFromString(plain)
        except DecodeError as exc:
            # Authentic, so sealed with this key, but not by this codec.
            raise EncryptedPayloadError(
                key_id,
                f"but what it holds is not a serialized Temporal payload ({exc})",
                "it was encrypted with this key by something other than the reactor's codec; "
                "decode it with what encrypted it",
            ) from None
        return out


class RefuseEncrypted(EncodingPayloadConverter):
    """Last in the converter chain, never chosen to encode: it only names the
    problem when an encrypted payload reaches a process without the codec."""

    @property
    def encoding(self) -> str:
        return ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        raise EncryptedPayloadError(key_id, "and this process has no payload key")


class ReactorPayloadConverter(PydanticPayloadConverter):
    """Pydantic JSON, plus the refusal of encrypted payloads."""

    def __init__(self) -> None:
        super().__init__()
        self._set_converters(*self.converters.values(), RefuseEncrypted())
