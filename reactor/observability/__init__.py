"""Seeing and operating a running reactor: OpenTelemetry tracing, the
Temporal search attributes of batch workflows, and health checks."""
