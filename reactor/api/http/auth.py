"""Bearer tokens: JWTs checked by PyJWT, with a shared secret (HS256) or a
public key given as PEM or found in a JWKS document (RS256, ES256).

A token that cannot be trusted (missing, malformed, expired, for another
audience or issuer, badly signed) is `Unauthenticated` (401); a trusted
token's claims decide what it may touch (`Principal.allows`, 403 when not)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from reactor.runtime.settings import ApiAuth

# Asymmetric algorithms a public key or a JWKS may sign with; HS256 with a secret.
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
SECRET_ALGORITHMS = ("HS256",)
# The claim listing the document types a token may read and write (absent: all).
DOCUMENT_TYPES_CLAIM = "document_types"
# Seconds of clock difference tolerated on exp/nbf/iat.
LEEWAY_S = 5.0


class Unauthenticated(Exception):
    """No token, or one that cannot be trusted."""


@dataclass(frozen=True)
class Principal:
    subject: str | None
    claims: dict[str, Any] = field(default_factory=dict)
    document_types: frozenset[str] | None = None

    def allows(self, document_type: str) -> bool:
        return self.document_types is None or document_type in self.document_types


class JwtHandler:
    """Checks tokens against exactly one key source. `public_reads` lets
    reads through without a token (writes always need one)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        public_reads: bool = False,
    ):
        given = [
            name
            for name, v in (("secret", secret), ("public key", public_key), ("JWKS URL", jwks_url))
            if v
        ]
        if len(given) != 1:
            raise ValueError(
                "a JWT handler needs exactly one of a secret, a public key or a JWKS URL"
                + (f" (given: {', '.join(given)})" if given else "")
            )
        self.audience = audience
        self.issuer = issuer
        self.public_reads = public_reads
        self._key: Any = None
        self._jwks: jwt.PyJWKClient | None = None
        self.algorithms: tuple[str, ...]
        if secret:
            self._key, self.algorithms = secret, SECRET_ALGORITHMS
        elif public_key:
            self._key, self.algorithms = _public_key(public_key), PUBLIC_KEY_ALGORITHMS
        else:
            assert jwks_url is not None
            self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True)
            self.algorithms = PUBLIC_KEY_ALGORITHMS

    @classmethod
    def from_settings(cls, auth: ApiAuth) -> JwtHandler:
        return cls(
            secret=auth.secret,
            public_key=auth.public_key,
            jwks_url=auth.jwks_url,
            audience=auth.audience,
            issuer=auth.issuer,
            public_reads=auth.public_reads,
        )

    @property
    def scheme(self) -> str:
        """What the ready line says about how tokens are checked."""
        kind = "JWKS" if self._jwks is not None else "/".join(self.algorithms)
        reads = ", public reads" if self.public_reads else ""
        return f"JWT ({kind}{reads})"

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization: Bearer <jwt>` header value."""
        if not authorization:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <jwt>)")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <jwt>'")
        token = token.strip()
        try:
            key = self._key
            if self._jwks is not None:
                # PyJWKClient fetches with urllib (blocking); keys are cached.
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"no key for this token: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        return principal_of(claims)


def _public_key(pem: str) -> Any:
    """The key of a PEM text: a malformed one stops the server at start,
    not every request later."""
    try:
        return load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"the JWT public key is not a PEM public key: {exc}") from None


def principal_of(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    types = claims.get(DOCUMENT_TYPES_CLAIM)
    allowed: frozenset[str] | None = None
    if types is not None:
        names: Iterable[Any] = [types] if isinstance(types, str) else types
        allowed = (
            frozenset(str(t) for t in names) if isinstance(names, list | tuple) else frozenset()
        )
    return Principal(
        subject=str(subject) if subject is not None else None, claims=claims, document_types=allowed
    )
