"""Settings.from_env: every variable a worker process reads, in one place,
and only where the stack is reaches the stack file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reactor.api.builder import ReactorBuilder
from reactor.domain.errors import ReactorError
from reactor.domain.limits import Limits
from reactor.domain.signing import Ed25519Signer
from reactor.runtime.gc_tuning import WORKER_THRESHOLDS
from reactor.runtime.settings import DEFAULT_GRACE_S, Settings, stack_file

WORKER_VARIABLES = (
    "REACTOR_MODELS",
    "REACTOR_PROCESSORS",
    "REACTOR_READ_MODELS",
    "REACTOR_NOTIFY",
    "REACTOR_REACTION_POLL",
    "REACTOR_TRUSTED_KEYS",
    "REACTOR_TRUSTED_KEYS_FILE",
    "REACTOR_MAX_JOBS_PER_BATCH",
    "REACTOR_SHUTDOWN_GRACE_S",
    "REACTOR_GC_THRESHOLDS",
    "REACTOR_TEMPORAL_NAMESPACE",
    "REACTOR_TASK_QUEUE",
)


@pytest.fixture(autouse=True)
def stack_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REACTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REACTOR_DATABASE_URL", "postgresql://db/reactor")
    monkeypatch.setenv("REACTOR_TEMPORAL_ADDRESS", "temporal:7233")


def test_unset_variables_give_the_documented_defaults() -> None:
    settings = Settings.from_env()
    assert (settings.database_url, settings.temporal_address) == (
        "postgresql://db/reactor",
        "temporal:7233",
    )
    assert (settings.namespace, settings.task_queue) == ("default", "reactor")
    assert settings.models == settings.processors == settings.read_models == ()
    assert settings.notify is True and settings.reaction_poll_s == 1.0
    assert settings.trusted_keys is None and settings.limits == Limits()
    assert settings.shutdown_grace_s == DEFAULT_GRACE_S
    assert settings.gc_thresholds == WORKER_THRESHOLDS
    assert settings.sync_max_rewind == 1000


def test_every_worker_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519Signer().public_key()
    monkeypatch.setenv("REACTOR_TEMPORAL_NAMESPACE", "prod")
    monkeypatch.setenv("REACTOR_TASK_QUEUE", "writes")
    monkeypatch.setenv("REACTOR_MODELS", "pkg.one, pkg.two")
    monkeypatch.setenv("REACTOR_PROCESSORS", "pkg.reactions:ALL")
    monkeypatch.setenv("REACTOR_READ_MODELS", "pkg.views:Stats,pkg.views:Other")
    monkeypatch.setenv("REACTOR_NOTIFY", "0")
    monkeypatch.setenv("REACTOR_REACTION_POLL", "0.25")
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS", key)
    monkeypatch.setenv("REACTOR_MAX_JOBS_PER_BATCH", "7")
    monkeypatch.setenv("REACTOR_SHUTDOWN_GRACE_S", "12")
    monkeypatch.setenv("REACTOR_GC_THRESHOLDS", "default")
    monkeypatch.setenv("REACTOR_SYNC_MAX_REWIND", "50")
    settings = Settings.from_env()
    assert (settings.namespace, settings.task_queue) == ("prod", "writes")
    assert settings.models == ("pkg.one", "pkg.two")
    assert settings.processors == ("pkg.reactions:ALL",)
    assert settings.read_models == ("pkg.views:Stats", "pkg.views:Other")
    assert settings.notify is False and settings.reaction_poll_s == 0.25
    assert settings.trusted_keys == {key}
    assert settings.limits.max_jobs_per_batch == 7
    assert settings.shutdown_grace_s == 12
    assert settings.gc_thresholds is None
    assert settings.sync_max_rewind == 50
    plain = settings.model_copy(update={"models": (), "processors": (), "read_models": ()})
    assert ReactorBuilder.from_settings(plain)._worker.max_rewind == 50


@pytest.mark.parametrize("bad", ["many", "-1", "1.5"])
def test_a_bad_sync_max_rewind_is_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("REACTOR_SYNC_MAX_REWIND", bad)
    with pytest.raises(ReactorError, match="REACTOR_SYNC_MAX_REWIND"):
        Settings.from_env()


@pytest.mark.parametrize("bad", ["soon", "0", "-1"])
def test_a_bad_reaction_poll_is_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("REACTOR_REACTION_POLL", bad)
    with pytest.raises(ReactorError, match="REACTOR_REACTION_POLL"):
        Settings.from_env()


def test_the_stack_file_holds_where_the_stack_is_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS", Ed25519Signer().public_key())
    settings = Settings.from_env()
    assert set(settings.model_dump()) == {
        "database_url",
        "temporal_address",
        "namespace",
        "task_queue",
        "ui_url",
    }
    # and a client finds the stack from that file alone
    path = stack_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(settings.model_dump()))
    monkeypatch.delenv("REACTOR_DATABASE_URL")
    monkeypatch.delenv("REACTOR_TEMPORAL_ADDRESS")
    assert Settings.from_env().database_url == "postgresql://db/reactor"
