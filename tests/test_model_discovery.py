"""Where document models come from besides `with_document_models`: loaders
the builder is given, and installed packages' entry points in group
`reactor.models`, which workers and the CLI find without REACTOR_MODELS. A
type none of them knows is named in one message saying where models come
from."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from reactor.api.module import ReactorModule
from reactor.domain.batch import BatchRequest, plan_batch
from reactor.domain.errors import ReactorError, ValidationError
from reactor.domain.jobs import JobStatus
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import model_for
from reactor.domain.rejection import JobRejected
from reactor.models import BUILTIN_MODELS, todo_list
from reactor.runtime.settings import entry_point_models, model_modules
from tests.conftest import ROOT, Stack, spawn_worker, wait_polling, worker_env

NOTES_TYPE = "acme/notes"

NOTES_SOURCE = f'''
"""{NOTES_TYPE}: a list of notes, the model an installed package ships."""

from pydantic import BaseModel, ConfigDict

document_type = "{NOTES_TYPE}"


class GlobalState(BaseModel):
    notes: list[str] = []


class AddNoteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


actions = {{"ADD_NOTE": AddNoteInput}}


def reducer(state, action):
    return GlobalState(notes=[*state.notes, AddNoteInput.model_validate(action.input).text])
'''


def install(site: Path, package: str, module: str, source: str, points: dict[str, str]) -> None:
    """`package` as an installer leaves it in `site`: the module and a
    .dist-info whose entry_points.txt declares `points` in group
    reactor.models (importlib.metadata finds it on sys.path)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{package.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in points.items())
    (info / "entry_points.txt").write_text(f"[reactor.models]\n{lines}")
    (info / "RECORD").write_text("")


@pytest.fixture
def notes_site(tmp_path: Path) -> Path:
    """A folder holding an installed `acme-notes` package declaring its model."""
    site = tmp_path / "site"
    install(site, "acme-notes", "acme_notes", NOTES_SOURCE, {"notes": "acme_notes"})
    return site


def notes_module(name: str) -> ModuleType:
    module = ModuleType(name)
    exec(compile(textwrap.dedent(NOTES_SOURCE), name, "exec"), module.__dict__)
    return module


def create_notes(key: str, document_id: str) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": document_id,
        "scope": "document",
        "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": NOTES_TYPE}}],
    }


def add_note(key: str, document_id: str, text: str, depends_on: str) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": document_id,
        "depends_on": [depends_on],
        "actions": [{"type": "ADD_NOTE", "input": {"text": text}}],
    }


def assert_names_the_sources(message: str) -> None:
    for source in ("with_document_models", "REACTOR_MODELS", "'reactor.models'", "loader"):
        assert source in message, message


# --- the registry and its loaders -----------------------------------------------------


def test_a_loader_is_asked_for_an_unregistered_type_once_and_its_model_kept() -> None:
    asked: list[str] = []
    notes = notes_module("loaded_notes")

    def loader(document_type: str) -> ModuleType | None:
        asked.append(document_type)
        return notes if document_type == NOTES_TYPE else None

    registry = ModelRegistry([DocumentModel.from_module(todo_list)], [loader])
    assert registry.get(todo_list.document_type).document_type == todo_list.document_type
    assert asked == []  # registered types never reach a loader
    first = registry.get(NOTES_TYPE)
    assert NOTES_TYPE in registry and registry.get(NOTES_TYPE) is first
    assert asked == [NOTES_TYPE]
    assert registry.types() == sorted([todo_list.document_type, NOTES_TYPE])
    assert "acme/other" not in registry
    assert "acme/other" not in registry  # a miss is asked again: the model may appear
    assert asked == [NOTES_TYPE, "acme/other", "acme/other"]


def test_loaders_are_asked_in_order_and_may_return_a_document_model() -> None:
    model = DocumentModel.from_module(notes_module("ordered_notes"))
    registry = ModelRegistry(
        [], [lambda t: None, lambda t: model if t == NOTES_TYPE else None, lambda t: 1 / 0]
    )
    assert registry.get(NOTES_TYPE) is model


def test_a_loader_answering_with_another_type_is_refused_naming_both() -> None:
    registry = ModelRegistry([], [lambda t: todo_list])
    with pytest.raises(ValueError, match=f"{todo_list.document_type!r} when asked for 'acme/x'"):
        registry.get("acme/x")


def test_an_unknown_type_is_one_message_naming_it_and_where_models_come_from() -> None:
    registry = ModelRegistry([DocumentModel.from_module(m) for m in BUILTIN_MODELS])
    message = registry.unknown("acme/nothing")
    assert message.startswith("unknown document type 'acme/nothing'")
    assert todo_list.document_type in message  # what is registered
    assert_names_the_sources(message)

    with pytest.raises(ValidationError) as planned:
        plan_batch(
            BatchRequest.model_validate({"jobs": [create_notes("c", "n1")]}),
            registry,
            existing={},
        )
    assert planned.value.reason.endswith(message.replace("'acme/nothing'", f"'{NOTES_TYPE}'"))

    with pytest.raises(JobRejected) as reduced:
        model_for(registry, "acme/nothing")
    assert reduced.value.error_type == "UnknownDocumentType"
    assert str(reduced.value) == message


def test_a_batch_on_a_loaded_type_is_planned() -> None:
    registry = ModelRegistry([], [lambda t: notes_module("planned_notes")])
    jobs = [create_notes("c", "n1"), add_note("a", "n1", "hello", "c")]
    plan = plan_batch(BatchRequest.model_validate({"jobs": jobs}), registry, existing={})
    assert [j.key for j in plan.jobs] == ["c", "a"]
    with pytest.raises(ValidationError, match="Field required"):
        bad = [
            create_notes("c", "n1"),
            {**add_note("a", "n1", "x", "c"), "actions": [{"type": "ADD_NOTE", "input": {}}]},
        ]
        plan_batch(BatchRequest.model_validate({"jobs": bad}), registry, existing={})


# --- entry points ---------------------------------------------------------------------


def test_installed_entry_points_are_found_beside_reactor_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    install(site, "acme-found", "acme_found", NOTES_SOURCE, {"notes": "acme_found"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "acme_found", raising=False)
    found = entry_point_models()
    assert [getattr(m, "__name__", None) for m in found] == ["acme_found"]

    monkeypatch.setenv("REACTOR_MODELS", "acme_found,tests.support.stuck_model")
    names = [getattr(m, "__name__", None) for m in model_modules()]
    # The built-in ones, REACTOR_MODELS, then the installed ones; each once.
    assert names == [
        *(m.__name__ for m in BUILTIN_MODELS),
        "acme_found",
        "tests.support.stuck_model",
    ]
    monkeypatch.delitem(sys.modules, "acme_found")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("acme_missing_module", "cannot load it (ModuleNotFoundError"),
        ("acme_broken:nothing_here", "cannot load it (AttributeError"),
        ("acme_broken:NOT_A_MODEL", "names a int, not a model module or a DocumentModel"),
        ("acme_broken", "lacks required attribute 'document_type'"),
    ],
)
def test_a_broken_entry_point_is_an_error_naming_it(
    target: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    install(site, "acme-broken", "acme_broken", "NOT_A_MODEL = 1\n", {"broken": target})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "acme_broken", raising=False)
    with pytest.raises(ReactorError) as raised:
        model_modules()
    message = str(raised.value)
    assert message.startswith(
        f"entry point broken = {target} in group 'reactor.models' of package 'acme-broken': "
    )
    assert expected in message
    monkeypatch.delitem(sys.modules, "acme_broken", raising=False)


# --- end to end -----------------------------------------------------------------------


async def test_a_reactor_with_a_loader_runs_a_batch_on_a_loaded_type(
    module_factory: Callable[..., Awaitable[ReactorModule]],
) -> None:
    notes = notes_module("builder_notes")
    asked: list[str] = []

    def loader(document_type: str) -> ModuleType | None:
        asked.append(document_type)
        return notes if document_type == NOTES_TYPE else None

    module = await module_factory(lambda b: b.with_document_model_loader(loader))
    reactor = module.reactor
    jobs = [create_notes("c", "loaded-notes"), add_note("a", "loaded-notes", "hi", "c")]
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await reactor.wait_for_batch(result.batch_id)
    assert [(i.key, i.status) for i in infos] == [
        ("c", JobStatus.READ_READY),
        ("a", JobStatus.READ_READY),
    ]
    doc = await reactor.get("loaded-notes")
    assert doc.state["global"] == {"notes": ["hi"]}
    assert asked.count(NOTES_TYPE) == 1  # kept after the first lookup


REACTOR = [sys.executable, "-m", "reactor.cli.main"]


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *REACTOR,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(errors="backslashreplace")


async def test_an_installed_model_runs_on_a_worker_and_the_cli_without_reactor_models(
    notes_site: Path, stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    env = worker_env(stack, database_url, task_queue)
    env.pop("REACTOR_MODELS", None)
    path = tmp_path / "batch.json"
    path.write_text(
        json.dumps(
            {"jobs": [create_notes("c", "pkg-notes"), add_note("a", "pkg-notes", "hi", "c")]}
        )
    )

    # Not installed: the CLI refuses the batch, naming the type and the sources.
    rc, _, err = await cli(env, "submit", str(path), "--wait")
    assert rc == 2, err
    refusal = " ".join(err.split())
    assert f"unknown document type '{NOTES_TYPE}'" in refusal
    assert_names_the_sources(refusal)

    installed = {**env, "PYTHONPATH": f"{notes_site}:{ROOT}"}
    # Installed: the CLI validates the batch with the package's model...
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "jobs": [
                    create_notes("c", "bad-notes"),
                    {
                        **add_note("a", "bad-notes", "x", "c"),
                        "actions": [{"type": "ADD_NOTE", "input": {}}],
                    },
                ]
            }
        )
    )
    rc, _, err = await cli(installed, "submit", str(bad), "--wait")
    assert rc == 2 and "actions[0].input.text" in err, err

    # ...and a worker finds it too, with REACTOR_MODELS unset.
    log = tmp_path / "worker.log"
    worker = spawn_worker(stack, database_url, task_queue, log, extra_env=installed)
    try:
        await wait_polling(log)
        rc, out, err = await cli(installed, "submit", str(path), "--wait", "--json")
        assert rc == 0, err + log.read_text()[-3000:]
        jobs = json.loads(out)["jobs"]
        assert {k: j["status"] for k, j in jobs.items()} == {"c": "READ_READY", "a": "READ_READY"}
        rc, out, err = await cli(installed, "get", "pkg-notes", "--json")
        assert rc == 0, err
        assert json.loads(out)["state"]["global"] == {"notes": ["hi"]}
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 60)


async def test_a_worker_with_a_broken_entry_point_stops_naming_it(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    install(site, "acme-broken", "acme_broken", "NOT_A_MODEL = 1\n", {"gone": "acme_gone"})
    env = {**worker_env(stack, database_url, task_queue), "PYTHONPATH": f"{site}:{ROOT}"}
    env.pop("REACTOR_MODELS", None)
    log = tmp_path / "worker.log"
    worker = spawn_worker(stack, database_url, task_queue, log, extra_env=env)
    rc = await asyncio.to_thread(worker.wait, 60)
    named = (
        "entry point gone = acme_gone in group 'reactor.models' of package 'acme-broken': "
        "cannot load it (ModuleNotFoundError"
    )
    assert rc != 0
    assert named in log.read_text()

    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"jobs": [create_notes("c", "n")]}))
    rc, out, err = await cli(env, "submit", str(path))
    assert rc == 3 and out == ""
    assert err.strip().splitlines() == [err.strip()] and named in err
