"""Replays a workflow history against the current workflow code."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, WorkflowReplayResult

from workflows.batch import BatchWorkflow
from workflows.reaction import ReactionWorkflow
from workflows.sync import SyncWorkflow

WORKFLOWS: Sequence[type] = (BatchWorkflow, ReactionWorkflow, SyncWorkflow)


async def replayed(
    history: WorkflowHistory, converter: DataConverter, workflows: Sequence[type] = WORKFLOWS
) -> WorkflowReplayResult:
    replayer = Replayer(workflows=workflows, data_converter=converter)
    return await replayer.replay_workflow(history, raise_on_replay_failure=False)


async def replay(history: WorkflowHistory, converter: DataConverter) -> None:
    result = await replayed(history, converter)
    assert result.replay_failure is None, f"{history.workflow_id}: {result.replay_failure!r}"
