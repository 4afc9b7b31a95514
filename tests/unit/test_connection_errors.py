"""How a refused Temporal connection is explained: the kinds that need a
real cluster to provoke (permission, namespace) from the status Temporal
returns, the TLS ones from the core SDK's text as it reads."""

from __future__ import annotations

from pydantic import SecretStr
from temporalio.service import RPCError, RPCStatusCode

from reactor.runtime.connection import TemporalConnection
from reactor.runtime.connection_errors import explain

MTLS = TemporalConnection(
    address="ns.acct.tmprl.cloud:7233", namespace="ns.acct", tls_cert="c", tls_key="k"
)


def test_a_namespace_the_certificate_may_not_use_is_a_permission_problem() -> None:
    kind, detail, fix = explain(
        RPCError("Request unauthorized.", RPCStatusCode.PERMISSION_DENIED, b""), MTLS
    )
    assert kind == "permission" and "'ns.acct'" in detail and "certificate filters" in fix


def test_an_unknown_namespace_names_how_to_create_it() -> None:
    kind, _, fix = explain(
        RPCError("Namespace ns.acct is not found.", RPCStatusCode.NOT_FOUND, b""), MTLS
    )
    assert kind == "namespace" and "temporal operator namespace create" in fix


def test_an_api_key_refused_is_a_permission_problem() -> None:
    conn = TemporalConnection(address="x:7233", api_key=SecretStr("k"))
    kind, detail, fix = explain(RPCError("unauthorized", RPCStatusCode.UNAUTHENTICATED, b""), conn)
    assert kind == "permission" and "API key" in detail and "REACTOR_TEMPORAL_API_KEY" in fix


def test_an_expired_server_certificate_is_a_certificate_problem() -> None:
    text = "Failed client connect: tonic::transport::Error(Transport, ConnectError(Custom { kind: InvalidData, error: InvalidCertificate(Expired) }))"
    kind, detail, _ = explain(RuntimeError(text), MTLS)
    assert kind == "certificate" and "Expired" in detail
