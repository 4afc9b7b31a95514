"""The signal-floor workflow (its own module: only deterministic imports)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="SignalProbeWorkflow")
class SignalProbeWorkflow:
    def __init__(self) -> None:
        self._refs: list[str] = []

    @workflow.signal
    def ping(self, ref: str) -> None:
        self._refs.append(ref)

    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._refs))
            ref = self._refs.pop(0)
            await workflow.execute_local_activity(
                "record_signal", ref, start_to_close_timeout=timedelta(seconds=10)
            )
