"""Everything a reactor process takes from its environment: every REACTOR_*
variable is read here, and nowhere else (the parsers of the Temporal
connection's, the payload keys' and PostgreSQL's TLS variables are given the
environment from here). Where the stack is comes from the variables first,
else the stack file that `reactor dev` writes under .reactor/."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.errors import ReactorError
from reactor.domain.limits import Limits
from reactor.domain.merge import DEFAULT_MAX_REWIND
from reactor.domain.model import DocumentModel
from reactor.domain.signing import parse_public_key
from reactor.runtime.codec import PayloadKeys
from reactor.runtime.connection import TemporalConnection
from reactor.runtime.gc_tuning import WORKER_THRESHOLDS
from reactor.storage import tls

# Installed packages declare their document models in this entry point group.
MODELS_ENTRY_POINT_GROUP = "reactor.models"

SEARCH_ATTRIBUTES: dict[str, str] = {
    "ReactorBatchId": "Keyword",
    "ReactorDocumentIds": "KeywordList",
    "ReactorDocumentTypes": "KeywordList",
    "ReactorJobCount": "Int",
    "ReactorFailedJobCount": "Int",
    "ReactorStatus": "Keyword",
}

# Per-hop latency on the dev server is bounded by this poll rate (default 20/s);
# eager start lets a reactor with a worker in its process skip a batch's first
# matching round trip (off by default in older servers).
DEV_SERVER_DYNAMIC_CONFIG = {
    "history.transferProcessorMaxPollRPS": "1000",
    "system.enableEagerWorkflowStart": "true",
}

GRACE_ENV = "REACTOR_SHUTDOWN_GRACE_S"
DEFAULT_GRACE_S = 30.0
CODEC_TOKEN_ENV = "REACTOR_CODEC_SERVER_TOKEN"
CODEC_ORIGINS_ENV = "REACTOR_CODEC_SERVER_ORIGINS"

# Where the stack is: the fields the stack file holds, and their variables.
STACK_VARIABLES = {
    "database_url": "REACTOR_DATABASE_URL",
    "temporal_address": "REACTOR_TEMPORAL_ADDRESS",
    "namespace": "REACTOR_TEMPORAL_NAMESPACE",
    "task_queue": "REACTOR_TASK_QUEUE",
}


class ApiAuth(BaseModel):
    """How the HTTP API checks bearer tokens (REACTOR_JWT_*): one key source
    (a secret for HS256, a public key PEM or a JWKS URL for RS256/ES256),
    the audience and issuer tokens must name, and whether reads are public
    (REACTOR_API_PUBLIC_READS=1). No key source: no authentication."""

    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    audience: str | None = None
    issuer: str | None = None
    public_reads: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.public_key or self.jwks_url)


class Settings(BaseModel):
    """Where the stack is (what the stack file holds) and, read by
    `from_env` only, how a worker process runs: the excluded fields never
    reach the stack file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    database_url: str
    temporal_address: str
    namespace: str = "default"
    task_queue: str = "reactor"
    ui_url: str | None = None
    # REACTOR_MODELS: importable modules of document models, besides the built-in ones.
    models: tuple[str, ...] = Field(default=(), exclude=True)
    # REACTOR_PROCESSORS / REACTOR_READ_MODELS: `module:attribute` each.
    processors: tuple[str, ...] = Field(default=(), exclude=True)
    read_models: tuple[str, ...] = Field(default=(), exclude=True)
    notify: bool = Field(default=True, exclude=True)  # REACTOR_NOTIFY=0 turns it off
    reaction_poll_s: float = Field(default=1.0, exclude=True)  # REACTOR_REACTION_POLL
    trusted_keys: frozenset[str] | None = Field(default=None, exclude=True)
    limits: Limits = Field(default_factory=Limits, exclude=True)
    shutdown_grace_s: float = Field(default=DEFAULT_GRACE_S, exclude=True)
    gc_thresholds: tuple[int, int, int] | None = Field(default=WORKER_THRESHOLDS, exclude=True)
    api_auth: ApiAuth = Field(default_factory=ApiAuth, exclude=True)
    # REACTOR_API_EVENTS_MAX_QUEUED; None: the event stream's default.
    api_events_max_queued: int | None = Field(default=None, exclude=True)
    # REACTOR_SYNC_MAX_REWIND: local operations a load may rewind to merge.
    sync_max_rewind: int = Field(default=DEFAULT_MAX_REWIND, exclude=True)

    @classmethod
    def from_env(cls) -> Settings:
        """The stack (see `load_settings`) and every worker setting."""
        return load_settings().with_worker_env()

    def with_worker_env(self) -> Settings:
        """This stack with every worker setting from the environment. A bad
        value of any of them fails here, named, before anything starts."""
        return self.model_copy(
            update={
                "models": _names("REACTOR_MODELS"),
                "processors": _names("REACTOR_PROCESSORS"),
                "read_models": _names("REACTOR_READ_MODELS"),
                "notify": os.environ.get("REACTOR_NOTIFY", "1") != "0",
                "reaction_poll_s": _seconds("REACTOR_REACTION_POLL", 1.0),
                "trusted_keys": trusted_keys_from_env(),
                "limits": limits_from_env(),
                "shutdown_grace_s": shutdown_grace(),
                "gc_thresholds": gc_thresholds_from_env(),
                "api_auth": api_auth_from_env(),
                "api_events_max_queued": api_events_max_queued_from_env(),
                "sync_max_rewind": sync_max_rewind_from_env(),
            }
        )

    def temporal_connection(self) -> TemporalConnection:
        """This stack's address and namespace, with TLS, the API key and the
        payload keys from the REACTOR_* variables."""
        return temporal_from_env(address=self.temporal_address, namespace=self.namespace)

    def model_modules(self) -> list[ModuleType | DocumentModel]:
        """The built-in models, those this process was given and the installed ones."""
        return _models(self.models)


def _names(variable: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(filter(None, (n.strip() for n in os.environ.get(variable, "").split(","))))


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ReactorError(f"{variable}={text!r}: expected a positive number of seconds")
    return value


def temporal_from_env(**overrides: Any) -> TemporalConnection:
    """The REACTOR_TEMPORAL_* and REACTOR_PAYLOAD_* variables, with
    `overrides` (those not None) on top."""
    return TemporalConnection.from_env(os.environ, **overrides)


def payload_keys_from_env() -> PayloadKeys | None:
    """REACTOR_PAYLOAD_KEY and REACTOR_PAYLOAD_KEYS; None when neither is set."""
    return PayloadKeys.from_env(os.environ)


def postgres_tls_from_env() -> dict[str, Any]:
    """asyncpg's TLS arguments from the REACTOR_DATABASE_SSL* variables
    (see reactor.storage.tls); {} when none is set."""
    return tls.connect_kwargs(os.environ)


def postgres_tls_described() -> str:
    """The REACTOR_DATABASE_SSL* settings in words, for `reactor doctor`."""
    return tls.describe(os.environ)


def stack_from_env() -> dict[str, str]:
    """The REACTOR_* variables naming the stack that are set, by field."""
    found = {field: os.environ.get(variable) for field, variable in STACK_VARIABLES.items()}
    return {field: value for field, value in found.items() if value}


def shutdown_grace() -> float:
    """Seconds in-flight activities get to finish once a stop is asked
    (REACTOR_SHUTDOWN_GRACE_S, default 30)."""
    raw = os.environ.get(GRACE_ENV, "")
    if not raw:
        return DEFAULT_GRACE_S
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{GRACE_ENV}={raw!r}: expected a number of seconds") from None
    if not 0 < value <= 3600:
        raise SystemExit(f"{GRACE_ENV}={raw!r}: expected seconds in (0, 3600]")
    return value


def gc_thresholds_from_env() -> tuple[int, int, int] | None:
    """A worker's collector thresholds (REACTOR_GC_THRESHOLDS="a,b,c", see
    reactor.runtime.gc_tuning); None, for "default", leaves the interpreter's."""
    raw = os.environ.get("REACTOR_GC_THRESHOLDS", "").strip()
    if not raw:
        return WORKER_THRESHOLDS
    if raw == "default":
        return None
    try:
        values = tuple(int(p) for p in raw.split(","))
    except ValueError:
        values = ()  # reported below
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(
            f"REACTOR_GC_THRESHOLDS={raw!r}: expected three non-negative integers "
            "'gen0,gen1,gen2' or 'default'"
        )
    return values[0], values[1], values[2]


def api_auth_from_env() -> ApiAuth:
    """REACTOR_JWT_SECRET, REACTOR_JWT_PUBLIC_KEY (PEM text, or the path of a
    PEM file), REACTOR_JWKS_URL, REACTOR_JWT_AUDIENCE, REACTOR_JWT_ISSUER
    and REACTOR_API_PUBLIC_READS."""

    def value(variable: str) -> str | None:
        return os.environ.get(variable, "").strip() or None

    public_key = value("REACTOR_JWT_PUBLIC_KEY")
    if public_key is not None and not public_key.startswith("-----BEGIN"):
        try:
            public_key = Path(public_key).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReactorError(
                f"REACTOR_JWT_PUBLIC_KEY={public_key!r}: neither PEM text nor a readable "
                f"file ({exc})"
            ) from None
    auth = ApiAuth(
        secret=value("REACTOR_JWT_SECRET"),
        public_key=public_key,
        jwks_url=value("REACTOR_JWKS_URL"),
        audience=value("REACTOR_JWT_AUDIENCE"),
        issuer=value("REACTOR_JWT_ISSUER"),
        public_reads=os.environ.get("REACTOR_API_PUBLIC_READS", "0").strip() == "1",
    )
    sources = [n for n in ("secret", "public_key", "jwks_url") if getattr(auth, n)]
    if len(sources) > 1:
        raise ReactorError(
            "set one of REACTOR_JWT_SECRET, REACTOR_JWT_PUBLIC_KEY and REACTOR_JWKS_URL, "
            f"not {len(sources)}"
        )
    return auth


def api_events_max_queued_from_env() -> int | None:
    """REACTOR_API_EVENTS_MAX_QUEUED: how many events a client of
    GET /v1/events may fall behind before its stream is ended."""
    text = os.environ.get("REACTOR_API_EVENTS_MAX_QUEUED", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ReactorError(
            f"REACTOR_API_EVENTS_MAX_QUEUED={text!r}: expected a positive whole number"
        )
    return int(text)


def sync_max_rewind_from_env() -> int:
    """REACTOR_SYNC_MAX_REWIND: how many local operations a load may rewind
    to merge before it fails with ExcessiveReshuffleError."""
    text = os.environ.get("REACTOR_SYNC_MAX_REWIND", "").strip()
    if not text:
        return DEFAULT_MAX_REWIND
    if not text.isdigit():
        raise ReactorError(f"REACTOR_SYNC_MAX_REWIND={text!r}: expected a whole number")
    return int(text)


def codec_server_from_env() -> tuple[list[str], str | None]:
    """The codec server's allowed UI origins (REACTOR_CODEC_SERVER_ORIGINS,
    comma-separated; empty for the default) and bearer token
    (REACTOR_CODEC_SERVER_TOKEN; None for no authentication)."""
    raw = os.environ.get(CODEC_ORIGINS_ENV, "")
    origins = [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
    return origins, os.environ.get(CODEC_TOKEN_ENV) or None


def home() -> Path:
    return Path(os.environ.get("REACTOR_HOME", ".reactor")).resolve()


def stack_file(base: Path | None = None) -> Path:
    return (base or home()) / "stack.json"


def load_settings() -> Settings:
    """Where the running stack is, for a client joining it (the worker
    settings keep their defaults: see `Settings.from_env`)."""
    data: dict[str, str | None] = {}
    path = stack_file()
    if path.exists():
        data.update(json.loads(path.read_text()))
    data.update(stack_from_env())
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


def model_modules() -> list[ModuleType | DocumentModel]:
    """The built-in models, any named in REACTOR_MODELS (comma-separated
    importable module names) and those installed packages declare as entry
    points, so workers and the CLI load a user's models."""
    return _models(_names("REACTOR_MODELS"))


def _models(names: tuple[str, ...]) -> list[ModuleType | DocumentModel]:
    from reactor.models import BUILTIN_MODELS

    found: list[ModuleType | DocumentModel] = []
    for model in (
        *BUILTIN_MODELS,
        *(importlib.import_module(name) for name in names),
        *entry_point_models(),
    ):
        # A package both installed and named in REACTOR_MODELS counts once.
        if not any(model is seen for seen in found):
            found.append(model)
    return found


def entry_point_models() -> list[ModuleType | DocumentModel]:
    """The models installed packages declare under
    `[project.entry-points."reactor.models"]`, each entry point naming a
    model module or a DocumentModel. One that cannot be loaded, or names
    something else, fails here, named, before anything starts."""
    found: list[ModuleType | DocumentModel] = []
    points = importlib.metadata.entry_points(group=MODELS_ENTRY_POINT_GROUP)
    for point in sorted(points, key=lambda p: (p.name, p.value)):
        package = f" of package {point.dist.name!r}" if point.dist is not None else ""
        where = f"entry point {point.name} = {point.value} in group {point.group!r}{package}"
        try:
            model = point.load()
        except Exception as exc:
            raise ReactorError(f"{where}: cannot load it ({type(exc).__name__}: {exc})") from exc
        if not isinstance(model, ModuleType | DocumentModel):
            raise ReactorError(
                f"{where}: names a {type(model).__name__}, not a model module or a DocumentModel"
            )
        try:
            DocumentModel.from_module(model)
        except TypeError as exc:
            raise ReactorError(f"{where}: {exc}") from None
        found.append(model)
    return found
