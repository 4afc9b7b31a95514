"""How to reach Temporal: address, namespace, TLS / mTLS, an API key and the
payload keys, parsed from the same REACTOR_TEMPORAL_* / REACTOR_PAYLOAD_*
variables (given by reactor.runtime.settings) for the worker, the client in
`Reactor`, every CLI command and `reactor doctor`, so none of them can
disagree on them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr
from temporalio.service import TLSConfig

from reactor.domain.errors import ReactorError
from reactor.runtime.codec import PayloadKeys

ENV = {
    "address": "REACTOR_TEMPORAL_ADDRESS",
    "namespace": "REACTOR_TEMPORAL_NAMESPACE",
    "tls": "REACTOR_TEMPORAL_TLS",
    "tls_ca": "REACTOR_TEMPORAL_TLS_CA",
    "tls_cert": "REACTOR_TEMPORAL_TLS_CERT",
    "tls_key": "REACTOR_TEMPORAL_TLS_KEY",
    "server_name": "REACTOR_TEMPORAL_SERVER_NAME",
    "api_key": "REACTOR_TEMPORAL_API_KEY",
}

_PEM = "-----BEGIN"
DEFAULT_NAMESPACE = "default"


class ConnectionConfigError(ReactorError):
    """The Temporal connection settings are inconsistent or unreadable."""


class TemporalConnection(BaseModel):
    """`tls_ca`, `tls_cert` and `tls_key` are file paths or PEM text. TLS is
    on when asked (`tls=True`) or implied by any of the TLS settings or the
    API key (Temporal Cloud only accepts API keys over TLS)."""

    model_config = ConfigDict(frozen=True)

    address: str = "127.0.0.1:7233"
    namespace: str = DEFAULT_NAMESPACE
    tls: bool | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    server_name: str | None = None
    api_key: SecretStr | None = None
    payload_keys: PayloadKeys | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> TemporalConnection:
        """The REACTOR_* variables of `env`, with `overrides` (those not None)
        on top: the one place an unset setting, the namespace among them,
        falls back to its variable and then to its default."""
        data: dict[str, Any] = {f: env[v] for f, v in ENV.items() if env.get(v)}
        if "tls" in data:
            data["tls"] = _flag(ENV["tls"], data["tls"])
        data["payload_keys"] = PayloadKeys.from_env(env)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    @property
    def uses_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return any((self.tls_ca, self.tls_cert, self.tls_key, self.server_name, self.api_key))

    def tls_config(self) -> TLSConfig | bool:
        """What temporalio's `Client.connect(tls=...)` takes."""
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = (
                ("certificate", "REACTOR_TEMPORAL_TLS_KEY")
                if self.tls_cert
                else ("key", "REACTOR_TEMPORAL_TLS_CERT")
            )
            raise ConnectionConfigError(
                f"mTLS needs a client certificate and its key: a client {given} is set but "
                f"{missing} is not"
            )
        if not self.uses_tls:
            if self.tls_cert or self.tls_ca:
                raise ConnectionConfigError(
                    "REACTOR_TEMPORAL_TLS=0 contradicts the TLS certificates that are set"
                )
            return False
        if not (self.tls_ca or self.tls_cert or self.server_name):
            return True  # the system's roots, as Temporal Cloud with an API key needs
        return TLSConfig(
            server_root_ca_cert=_pem("REACTOR_TEMPORAL_TLS_CA", self.tls_ca),
            client_cert=_pem("REACTOR_TEMPORAL_TLS_CERT", self.tls_cert),
            client_private_key=_pem("REACTOR_TEMPORAL_TLS_KEY", self.tls_key),
            domain=self.server_name,
        )

    def auth(self) -> str:
        """Which authentication this connection uses, in words (no secrets)."""
        if not self.uses_tls:
            return "plaintext, no authentication" + (
                " (API key set but TLS is off)" if self.api_key else ""
            )
        roots = f"server CA {_describe(self.tls_ca)}" if self.tls_ca else "system CAs"
        parts = [
            f"TLS ({roots}" + (f", server name {self.server_name})" if self.server_name else ")")
        ]
        if self.tls_cert:
            parts.insert(0, f"mTLS client certificate {_describe(self.tls_cert)}")
        if self.api_key:
            parts.insert(0, "API key")
        return " over ".join(parts)


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConnectionConfigError(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


def _pem(name: str, value: str | None) -> bytes | None:
    if value is None:
        return None
    if value.lstrip().startswith(_PEM):
        return value.encode()
    try:
        data = Path(value).expanduser().read_bytes()
    except OSError as exc:
        raise ConnectionConfigError(f"{name}={value}: cannot read it ({exc.strerror})") from None
    if _PEM.encode() not in data:
        raise ConnectionConfigError(f"{name}={value}: not a PEM file")
    return data


def _describe(value: str) -> str:
    return "(inline PEM)" if value.lstrip().startswith(_PEM) else value
