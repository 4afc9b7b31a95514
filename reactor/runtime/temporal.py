"""One way to connect to Temporal: the pydantic data converter and
OpenTelemetry tracing everywhere (workers built from the client inherit its
interceptors)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter


async def connect(address: str, namespace: str = "default") -> Client:
    # The interceptor's tracer comes from the global provider, resolved when a
    # span starts: a no-op until reactor.observability.tracing installs one.
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        interceptors=[TracingInterceptor()],
    )
