"""The embedded Temporal dev server keeps its state in a SQLite write-ahead
log, and a workflow it accepted survives the server being killed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from reactor.runtime.embedded import EmbeddedTemporal, free_port


def journal_mode(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return mode
    finally:
        conn.close()


async def test_an_accepted_workflow_survives_a_killed_dev_server(tmp_path: Path) -> None:
    folder = tmp_path / "temporal"
    first = EmbeddedTemporal(folder, port=free_port(), ui=False)
    await asyncio.to_thread(first.start)
    try:
        client = await Client.connect(first.address)
        # No worker polls this queue: the workflow stays running, so only the
        # server's own state says it exists.
        await client.start_workflow("NobodyRunsThis", id="accepted", task_queue="no-worker-here")
        assert journal_mode(folder / "temporal.db") == "wal"
        assert first.pid is not None
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.stop()

    second = EmbeddedTemporal(folder, port=free_port(), ui=False)
    await asyncio.to_thread(second.start)
    try:
        client = await Client.connect(second.address)
        description = await client.get_workflow_handle("accepted").describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        assert journal_mode(folder / "temporal.db") == "wal"
    finally:
        second.stop()


def test_a_server_that_cannot_start_is_tried_again_then_named_with_its_log(tmp_path: Path) -> None:
    """Its port held by another process, every attempt exits while starting:
    each one is logged, and the error quotes the log's last lines."""
    folder = tmp_path / "temporal"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused at once
        server = EmbeddedTemporal(folder, port=taken.getsockname()[1], ui=False)
        with pytest.raises(RuntimeError, match="exited with") as raised:
            server.start(timeout=60, attempts=2)
    log = (folder / "temporal.log").read_text()
    assert log.count("address already in use") >= 2, log[-2000:]
    assert "address already in use" in str(raised.value)
