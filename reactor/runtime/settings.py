"""Where the stack is: environment variables first, else the stack file that
`reactor dev` writes under .reactor/ in the current folder."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from reactor.domain.errors import ReactorError
from reactor.domain.limits import Limits
from reactor.domain.signing import parse_public_key
from reactor.runtime.connection import TemporalConnection

SEARCH_ATTRIBUTES: dict[str, str] = {
    "ReactorBatchId": "Keyword",
    "ReactorDocumentIds": "KeywordList",
    "ReactorDocumentTypes": "KeywordList",
    "ReactorJobCount": "Int",
    "ReactorFailedJobCount": "Int",
    "ReactorStatus": "Keyword",
}

# Per-hop latency on the dev server is bounded by this poll rate (default 20/s).
DEV_SERVER_DYNAMIC_CONFIG = {"history.transferProcessorMaxPollRPS": "1000"}


class Settings(BaseModel):
    database_url: str
    temporal_address: str
    namespace: str = "default"
    task_queue: str = "reactor"
    ui_url: str | None = None

    def temporal_connection(self) -> TemporalConnection:
        """This stack's address and namespace, with TLS, the API key and the
        payload keys from the REACTOR_* variables."""
        return TemporalConnection.from_env(address=self.temporal_address, namespace=self.namespace)


def home() -> Path:
    return Path(os.environ.get("REACTOR_HOME", ".reactor")).resolve()


def stack_file(base: Path | None = None) -> Path:
    return (base or home()) / "stack.json"


def load_settings() -> Settings:
    """Settings for a client or worker joining a running stack."""
    data: dict[str, str | None] = {}
    path = stack_file()
    if path.exists():
        data.update(json.loads(path.read_text()))
    env = {
        "database_url": os.environ.get("REACTOR_DATABASE_URL"),
        "temporal_address": os.environ.get("REACTOR_TEMPORAL_ADDRESS"),
        "namespace": os.environ.get("REACTOR_TEMPORAL_NAMESPACE"),
        "task_queue": os.environ.get("REACTOR_TASK_QUEUE"),
    }
    data.update({k: v for k, v in env.items() if v})
    missing = [k for k in ("database_url", "temporal_address") if not data.get(k)]
    if missing:
        raise ReactorError(
            f"no running reactor found ({path} does not exist and "
            f"{', '.join('REACTOR_' + m.upper() for m in missing)} not set): "
            "start `reactor dev` in this folder, or set REACTOR_DATABASE_URL and "
            "REACTOR_TEMPORAL_ADDRESS"
        )
    return Settings.model_validate({k: v for k, v in data.items() if v is not None})


# Request limits (reactor/domain/limits.py), each overriding its default.
LIMIT_VARIABLES = {
    "REACTOR_MAX_REQUEST_BYTES": "max_request_bytes",
    "REACTOR_MAX_JOBS_PER_BATCH": "max_jobs_per_batch",
    "REACTOR_MAX_ACTIONS_PER_JOB": "max_actions_per_job",
    "REACTOR_MAX_INPUT_BYTES": "max_input_bytes",
}


def limits_from_env() -> Limits:
    """The request limits, with those set in REACTOR_MAX_* replacing the
    defaults."""
    values: dict[str, int] = {}
    for variable, name in LIMIT_VARIABLES.items():
        text = os.environ.get(variable, "").strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ReactorError(f"{variable}={text!r}: expected a positive whole number")
        values[name] = value
    return Limits(**values)


def trusted_keys_from_env() -> frozenset[str] | None:
    """The public keys whose signatures a worker accepts: REACTOR_TRUSTED_KEYS
    (comma-separated) and the file named by REACTOR_TRUSTED_KEYS_FILE (one
    per line or comma-separated; `#` starts a comment), each the base64 of a
    raw Ed25519 public key as `Ed25519Signer.public_key()` prints it. None
    when neither names a key: the worker does not verify. A malformed key
    stops the worker before it starts, naming where it came from."""
    sources: list[tuple[str, str]] = [
        ("REACTOR_TRUSTED_KEYS", os.environ.get("REACTOR_TRUSTED_KEYS", ""))
    ]
    path = os.environ.get("REACTOR_TRUSTED_KEYS_FILE", "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReactorError(
                f"REACTOR_TRUSTED_KEYS_FILE={path!r}: cannot read it ({exc})"
            ) from None
        lines = (line.partition("#")[0] for line in text.splitlines())
        sources.append((f"REACTOR_TRUSTED_KEYS_FILE={path!r}", ",".join(lines)))
    keys: set[str] = set()
    for where, text in sources:
        for n, item in enumerate(filter(None, (k.strip() for k in text.split(","))), 1):
            try:
                keys.add(parse_public_key(item))
            except ValueError as exc:
                raise ReactorError(f"{where}: key {n}: {exc}") from None
    return frozenset(keys) or None


def model_modules() -> list[ModuleType]:
    """The built-in models plus any named in REACTOR_MODELS (comma-separated
    importable module names), so workers and the CLI load a user's models."""
    from reactor.models import BUILTIN_MODELS

    modules: list[ModuleType] = list(BUILTIN_MODELS)
    for name in filter(None, (n.strip() for n in os.environ.get("REACTOR_MODELS", "").split(","))):
        modules.append(importlib.import_module(name))
    return modules
