"""Signed actions. A signer signs what an action means where it applies: the
document, the scope, the action type, its canonical input, and the hash of
the state it applies to. The signature travels in `action.context` and is
stored with the operation; a verifier (if configured) checks it when the job
is applied, so a tampered or replayed action fails the job and writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reactor.domain.actions import Action
from reactor.domain.errors import ReactorError
from reactor.domain.hashing import canonical_json


class SignatureError(ReactorError):
    pass


def signing_message(
    document_id: str, scope: str, action_type: str, input: dict[str, Any], previous_hash: str
) -> bytes:
    return canonical_json([document_id, scope, action_type, input, previous_hash]).encode()


class Signer(Protocol):
    def public_key(self) -> str: ...

    def sign(self, message: bytes) -> str: ...


class SignatureVerifier(Protocol):
    def verify(self, action: Action, document_id: str, previous_hash: str) -> None:
        """Raises SignatureError when the action's signature is missing,
        malformed or wrong."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


class Ed25519Signer:
    def __init__(self, key: Ed25519PrivateKey | None = None):
        self._key = key or Ed25519PrivateKey.generate()

    def public_key(self) -> str:
        return _b64(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> str:
        return _b64(self._key.sign(message))


def sign_action(signer: Signer, action: Action, document_id: str, previous_hash: str) -> Action:
    """A copy of `action` carrying its signature in context['signature']."""
    message = signing_message(document_id, action.scope, action.type, action.input, previous_hash)
    context = dict(action.context or {})
    context["signature"] = {
        "algorithm": "ed25519",
        "public_key": signer.public_key(),
        "previous_state_hash": previous_hash,
        "signature": signer.sign(message),
    }
    return action.model_copy(update={"context": context})


class Ed25519Verifier:
    """Accepts actions signed by any of `trusted_keys` (base64 public keys),
    or by any key when `trusted_keys` is None."""

    def __init__(self, trusted_keys: set[str] | None = None):
        self.trusted_keys = trusted_keys

    def verify(self, action: Action, document_id: str, previous_hash: str) -> None:
        sig = (action.context or {}).get("signature")
        if not isinstance(sig, dict):
            raise SignatureError(f"{action.type}: action is not signed")
        try:
            key_b64, sig_b64 = str(sig["public_key"]), str(sig["signature"])
            key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(key_b64))
            raw = base64.urlsafe_b64decode(sig_b64)
        except (KeyError, ValueError, TypeError) as exc:
            raise SignatureError(f"{action.type}: malformed signature ({exc})") from None
        if self.trusted_keys is not None and key_b64 not in self.trusted_keys:
            raise SignatureError(f"{action.type}: signed by an untrusted key {key_b64[:12]}…")
        if sig.get("previous_state_hash") != previous_hash:
            raise SignatureError(
                f"{action.type}: signed for previous state {str(sig.get('previous_state_hash'))[:12]}…"
                f" but the document is at {previous_hash[:12]}…"
            )
        message = signing_message(
            document_id, action.scope, action.type, action.input, previous_hash
        )
        try:
            key.verify(raw, message)
        except InvalidSignature:
            raise SignatureError(
                f"{action.type}: signature does not match the action (tampered?)"
            ) from None


def parse_public_key(text: str) -> str:
    """A trusted key as configured (the base64 of a raw Ed25519 public key,
    as `Ed25519Signer.public_key()` gives it), checked and in the form
    signatures carry. Raises ValueError naming what is wrong."""
    key = text.strip()
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{key[:16]!r}… is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{key[:16]!r}… is {len(raw)} bytes, not an Ed25519 public key's 32")
    return _b64(
        Ed25519PublicKey.from_public_bytes(raw).public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def keys_fingerprint(keys: Iterable[str]) -> str:
    """8 hex digits naming a set of trusted keys, whatever their order."""
    return hashlib.sha256(",".join(sorted(set(keys))).encode()).hexdigest()[:8]


def verification_fingerprint(verifier: SignatureVerifier | None) -> str:
    """How a worker verifies signatures, short enough for its Temporal
    identity (`reactor doctor` compares the workers of a task queue):
    `off`, `any-key` (any valid signature), the trusted keys' fingerprint,
    or `custom` for a verifier of another kind."""
    if verifier is None:
        return "off"
    if isinstance(verifier, Ed25519Verifier):
        keys = verifier.trusted_keys
        return "any-key" if keys is None else keys_fingerprint(keys)
    return "custom"
