"""Replays a batch workflow history against the current workflow code."""

from __future__ import annotations

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from workflows.batch import BatchWorkflow


async def replay(history: WorkflowHistory, converter: DataConverter) -> None:
    result = await Replayer(workflows=[BatchWorkflow], data_converter=converter).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{history.workflow_id}: {result.replay_failure!r}"
