"""One way to connect to Temporal: the connection settings every process
shares (TLS, mTLS, API key), the pydantic data converter with the payload
codec when keys are configured, and OpenTelemetry tracing (workers built from
the client inherit its data converter and interceptors)."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
)
from temporalio.service import RPCError

from reactor.domain.errors import ReactorError
from reactor.runtime.codec import PayloadKeys, ReactorPayloadConverter
from reactor.runtime.connection import TemporalConnection
from reactor.runtime.connection_errors import explain
from reactor.runtime.settings import temporal_from_env


class TemporalConnectionError(ReactorError):
    """Temporal refused or could not take the connection. `kind` is one of
    certificate, key, namespace, permission, unreachable; `fix` says what to
    change."""

    def __init__(self, connection: TemporalConnection, kind: str, detail: str, fix: str):
        self.kind = kind
        self.detail = detail
        self.fix = fix
        self.auth = connection.auth()
        super().__init__(
            f"cannot connect to Temporal at {connection.address} "
            f"(namespace {connection.namespace!r}, {self.auth}): {kind}: {detail}; fix: {fix}"
        )


def data_converter(keys: PayloadKeys | None) -> DataConverter:
    """With keys, failures' messages and stack traces go through the codec
    too: an error quoting a job's input would otherwise sit in the history in
    plaintext. Their type, and whether they retry, stay readable: Temporal's
    retry policy needs them."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=ReactorPayloadConverter,
        payload_codec=keys.codec() if keys is not None else None,
        failure_converter_class=(
            DefaultFailureConverterWithEncodedAttributes
            if keys is not None
            else pydantic_data_converter.failure_converter_class
        ),
    )


async def connect(target: str | TemporalConnection, namespace: str | None = None) -> Client:
    """`target` is a TemporalConnection, or an address whose TLS, API key and
    payload keys come from the REACTOR_* variables."""
    conn = (
        target
        if isinstance(target, TemporalConnection)
        else temporal_from_env(address=target, namespace=namespace)
    )
    tls = conn.tls_config()  # a bad setting fails here, named, before any network
    try:
        # The interceptor's tracer comes from the global provider, resolved
        # when a span starts: a no-op until reactor.observability.tracing
        # installs one.
        return await Client.connect(
            conn.address,
            namespace=conn.namespace,
            tls=tls,
            api_key=conn.api_key.get_secret_value() if conn.api_key else None,
            data_converter=data_converter(conn.payload_keys),
            interceptors=[TracingInterceptor()],
        )
    except (RuntimeError, RPCError) as exc:  # how the core SDK reports them
        kind, detail, fix = explain(exc, conn)
        raise TemporalConnectionError(conn, kind, detail, fix) from exc
