"""Why a Temporal connection failed, in terms a person can act on: the core
SDK reports TLS and transport failures as text, so they are recognised by
the markers rustls, tonic and gRPC put in it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from temporalio.service import RPCError, RPCStatusCode

if TYPE_CHECKING:
    from reactor.runtime.connection import TemporalConnection

_CLIENT_CERT = "REACTOR_TEMPORAL_TLS_CERT and REACTOR_TEMPORAL_TLS_KEY"
# A TLS server answering a plaintext HTTP/2 preface: an alert read as a
# frame, or the connection dropped at once.
_PLAINTEXT_TO_TLS_MARKERS = ("FRAME_SIZE_ERROR", "h2 protocol error", "connection closed")
_REFUSED_MARKERS = (
    "Unauthenticated",
    "BadCertificate",
    "CertificateRequired",
    "UnknownCA",
    "AccessDenied",
    "certificate missing or not trusted",
    "400 Bad Request",
)


def explain(exc: BaseException, conn: TemporalConnection) -> tuple[str, str, str]:
    """(kind, what happened, the fix); kind is one of certificate, key,
    namespace, permission, tls or unreachable."""
    text = str(exc)
    status = exc.status if isinstance(exc, RPCError) else None
    if "InconsistentKeys" in text or "KeyMismatch" in text or "private key" in text.lower():
        return (
            "key",
            "the client key does not belong to the client certificate",
            "set REACTOR_TEMPORAL_TLS_KEY to the private key of REACTOR_TEMPORAL_TLS_CERT",
        )
    if "NotValidForName" in text:
        expected = re.search(r'expected: DnsName\("([^"]+)"\)', text)
        name = expected.group(1) if expected else conn.server_name or conn.address
        return (
            "certificate",
            f"the server's certificate is not valid for the name {name!r}",
            "set REACTOR_TEMPORAL_SERVER_NAME to a name the server's certificate carries, "
            "or connect through that name",
        )
    if "InvalidCertificate" in text:
        why = re.search(r"InvalidCertificate\((\w+)", text)
        return (
            "certificate",
            f"the server's certificate is not trusted ({why.group(1) if why else 'invalid'})",
            "set REACTOR_TEMPORAL_TLS_CA to the CA that signed the server's certificate "
            "(leave it unset for Temporal Cloud, whose certificates public CAs sign)",
        )
    if status == RPCStatusCode.UNAUTHENTICATED or any(m in text for m in _REFUSED_MARKERS):
        if conn.api_key is not None and conn.tls_cert is None:
            return (
                "permission",
                "the server refused the API key",
                "set REACTOR_TEMPORAL_API_KEY to a valid, unexpired key for this namespace",
            )
        if conn.tls_cert is None:
            return (
                "certificate",
                "the server requires a client certificate (mTLS) and none was presented",
                f"set {_CLIENT_CERT} to a certificate the server's client CA signed",
            )
        return (
            "certificate",
            "the server refused the client certificate",
            f"set {_CLIENT_CERT} to a certificate signed by the CA the server trusts for "
            "clients (and not expired)",
        )
    if status == RPCStatusCode.PERMISSION_DENIED or "PermissionDenied" in text:
        return (
            "permission",
            f"this identity may not use namespace {conn.namespace!r}",
            "grant the client certificate or API key access to the namespace (Temporal "
            "Cloud: the namespace's CA / certificate filters, or the API key's role)",
        )
    if status == RPCStatusCode.NOT_FOUND or "not found" in text.lower():
        return (
            "namespace",
            f"namespace {conn.namespace!r} does not exist",
            f"create it (`temporal operator namespace create --namespace {conn.namespace}`), "
            "or set REACTOR_TEMPORAL_NAMESPACE to an existing one",
        )
    if "InvalidContentType" in text or "InvalidMessage" in text:
        return (
            "tls",
            "the server does not speak TLS",
            "set REACTOR_TEMPORAL_TLS=0 and unset the REACTOR_TEMPORAL_TLS_* variables, "
            "or point REACTOR_TEMPORAL_ADDRESS at the TLS endpoint",
        )
    if not conn.uses_tls and any(m in text for m in _PLAINTEXT_TO_TLS_MARKERS):
        return (
            "tls",
            "the server expects TLS and this client spoke plaintext",
            "set REACTOR_TEMPORAL_TLS=1 (and REACTOR_TEMPORAL_TLS_CA for a private CA, "
            f"{_CLIENT_CERT} for mTLS)",
        )
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return (
        "unreachable",
        first,
        "start the Temporal server, or set REACTOR_TEMPORAL_ADDRESS to its frontend (host:7233); "
        "`reactor dev` runs a dev server",
    )
