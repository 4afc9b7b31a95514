"""Static checks of the deployment files: docker-compose.yml, Dockerfile,
.dockerignore and the Temporal dynamic config.

No Docker engine is needed: the files are parsed and their content asserted.
The one thing that is executed is the temporal-setup shell script, run by
/bin/sh against a stub `temporal` CLI.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import stat
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

EXPECTED_SERVICES = {"postgres", "temporal", "temporal-ui", "temporal-setup", "migrate", "worker"}

EXPECTED_SEARCH_ATTRIBUTES = {
    "ReactorBatchId": "Keyword",
    "ReactorDocumentIds": "KeywordList",
    "ReactorDocumentTypes": "KeywordList",
    "ReactorJobCount": "Int",
    "ReactorFailedJobCount": "Int",
    "ReactorStatus": "Keyword",
}

TEMPORAL_WORKDIR = PurePosixPath("/etc/temporal")  # auto-setup image's WORKDIR


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose.get("services")
    assert isinstance(svcs, dict) and svcs
    return svcs


def env_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a dict, for both the map and list syntax."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out: dict[str, str | None] = {}
        for item in env:
            key, sep, value = str(item).partition("=")
            out[key] = value if sep else None
        return out
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def depends_on_of(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {target: condition}; the short list form means service_started."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """Split an image reference into (repository, tag, digest)."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag, digest
    return ref, None, digest


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test)
    return str(test or "")


def parse_duration(value: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(host_ip, host_port, container_port, protocol) for every published port."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is None:
                continue
            out.append(
                (
                    str(entry.get("host_ip", "0.0.0.0")),
                    int(entry["published"]),
                    int(entry["target"]),
                    str(entry.get("protocol", "tcp")),
                )
            )
            continue
        spec, _, proto = str(entry).partition("/")
        fields = spec.rsplit(":", 2)
        if len(fields) == 1:  # container port only: host port is ephemeral
            continue
        host_ip = fields[0] if len(fields) == 3 else "0.0.0.0"
        host, container = fields[-2], fields[-1]
        assert "-" not in host, f"port ranges not expected: {entry!r}"
        out.append((host_ip, int(host), int(container), proto or "tcp"))
    return out


def container_ports(service: dict[str, Any]) -> set[int]:
    return {container for _, _, container, _ in published_ports(service)}


def setup_script(service: dict[str, Any]) -> str:
    """The temporal-setup command as the shell sees it (after compose's $$ -> $)."""
    command = service["command"]
    raw = command[-1] if isinstance(command, list) else command
    return str(raw).replace("$$", "$")


def search_attribute_creates(script: str) -> list[list[str]]:
    """Every `temporal operator search-attribute create ...` invocation, tokenised."""
    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        for i in range(len(tokens) - 3):
            if tokens[i : i + 4] == ["temporal", "operator", "search-attribute", "create"]:
                calls.append(tokens[i + 4 :])
    return calls


def flag_values(tokens: list[str], flag: str) -> list[str]:
    values = []
    for i, tok in enumerate(tokens):
        if tok == flag and i + 1 < len(tokens):
            values.append(tokens[i + 1])
        elif tok.startswith(flag + "="):
            values.append(tok.split("=", 1)[1])
    return values


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    out = []
    for text in logical:
        instr, _, args = text.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def copy_sources() -> set[str]:
    sources: set[str] = set()
    for instr, args in dockerfile_instructions():
        if instr not in ("COPY", "ADD"):
            continue
        tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
        tokens = [t for t in tokens if not t.startswith("--")]
        for src in tokens[:-1]:
            sources.add(str(PurePosixPath(src)))
    return sources


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: last matching pattern wins; a match on a parent dir counts."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        pat = str(PurePosixPath(pat))
        alternatives = {pat}
        while "**/" in pat:
            pat = pat.replace("**/", "", 1)
            alternatives.add(pat)
        for cand in candidates:
            for alt in alternatives:
                if fnmatch.fnmatchcase(cand, alt) or (
                    alt.startswith("**") and fnmatch.fnmatchcase(cand, alt[2:].lstrip("/"))
                ):
                    ignored = not negate
    return ignored


# --------------------------------------------------------------------------- compose: shape


def test_compose_file_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_compose_defines_exactly_the_expected_services(services: dict[str, Any]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_every_image_is_pinned_to_a_non_latest_tag(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name} has neither image nor build"
        if "build" in svc:
            continue
        repo, tag, digest = split_image(svc["image"])
        assert digest or tag, f"{name}: image {svc['image']!r} has no tag"
        assert tag != "latest", f"{name}: image {svc['image']!r} uses :latest"
        assert "$" not in svc["image"], f"{name}: image tag must not come from the environment"


def test_third_party_images_are_the_expected_ones_with_version_tags(
    services: dict[str, Any],
) -> None:
    expected_repos = {
        "postgres": "postgres",
        "temporal": "temporalio/auto-setup",
        "temporal-ui": "temporalio/ui",
        "temporal-setup": "temporalio/admin-tools",
    }
    for name, repo in expected_repos.items():
        got_repo, tag, _ = split_image(services[name]["image"])
        assert got_repo == repo, name
        assert tag and re.match(r"^\d+\.\d+(\.\d+)?", tag), f"{name}: {tag!r} is not a version"
    _, pg_tag, _ = split_image(services["postgres"]["image"])
    assert re.fullmatch(r"16\.\d+", pg_tag or ""), "postgres must be 16 pinned to a minor"


def test_every_depends_on_target_exists_with_a_valid_condition(services: dict[str, Any]) -> None:
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        for target, condition in depends_on_of(svc).items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert target != name
            assert condition in valid, f"{name} -> {target}: {condition!r}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), (
                    f"{name} waits for {target} to be healthy but it has no healthcheck"
                )


def test_named_volumes_used_by_services_are_declared(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            source = vol["source"] if isinstance(vol, dict) else str(vol).split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).resolve().exists() or source.startswith("/"), (
                    f"{name}: bind mount source {source!r} does not exist"
                )
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared"


def test_published_host_ports_do_not_collide(services: dict[str, Any]) -> None:
    seen: dict[tuple[int, str], str] = {}
    for name, svc in services.items():
        for host_ip, host_port, _, proto in published_ports(svc):
            key = (host_port, proto)
            assert key not in seen, f"{name} and {seen[key]} both publish {host_port}/{proto}"
            seen[key] = name
            assert host_ip in ("0.0.0.0", "127.0.0.1", "::", "")


def test_only_postgres_temporal_and_ui_publish_host_ports(services: dict[str, Any]) -> None:
    publishing = {
        name: sorted(host for _, host, _, _ in published_ports(svc))
        for name, svc in services.items()
        if published_ports(svc)
    }
    assert publishing == {"postgres": [5432], "temporal": [7233], "temporal-ui": [8080]}


# --------------------------------------------------------------------------- compose: postgres


def test_postgres_has_pg_isready_healthcheck(services: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert "pg_isready" in healthcheck_text(pg)
    env = env_of(pg)
    assert env["POSTGRES_USER"] in healthcheck_text(pg)


def test_postgres_sets_credentials_and_database_and_persists_to_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    pg = services["postgres"]
    env = env_of(pg)
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert env.get(key), f"postgres: {key} unset"
    mounts = [str(v) for v in pg.get("volumes") or []]
    data_mounts = [m for m in mounts if m.split(":")[1] == "/var/lib/postgresql/data"]
    assert len(data_mounts) == 1
    assert data_mounts[0].split(":")[0] in (compose.get("volumes") or {})
    assert container_ports(pg) == {5432}


# --------------------------------------------------------------------------- compose: temporal


def test_temporal_has_cluster_health_healthcheck(services: dict[str, Any]) -> None:
    text = healthcheck_text(services["temporal"])
    assert re.search(r"(tctl .*cluster health|temporal operator cluster health)", text)
    assert "temporal:7233" in text


def test_temporal_persists_to_the_postgres_service(services: dict[str, Any]) -> None:
    temporal, pg = services["temporal"], services["postgres"]
    env, pg_env = env_of(temporal), env_of(pg)
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgres"
    assert env["POSTGRES_SEEDS"] in services
    assert int(env["DB_PORT"] or 0) == 5432
    assert int(env["DB_PORT"] or 0) in container_ports(pg)
    assert env["POSTGRES_USER"] == pg_env["POSTGRES_USER"]
    assert env["POSTGRES_PWD"] == pg_env["POSTGRES_PASSWORD"]
    assert depends_on_of(temporal) == {"postgres": "service_healthy"}
    assert container_ports(temporal) == {7233}


def test_temporal_mounts_dynamic_config_that_sets_transfer_processor_poll_rps(
    services: dict[str, Any],
) -> None:
    temporal = services["temporal"]
    path = PurePosixPath(env_of(temporal)["DYNAMIC_CONFIG_FILE_PATH"] or "")
    target = path if path.is_absolute() else TEMPORAL_WORKDIR / path
    mounted_from = None
    for vol in temporal.get("volumes") or []:
        source, container, *_ = str(vol).split(":")
        if PurePosixPath(container) == target:
            mounted_from = source
    assert mounted_from is not None, f"nothing is mounted at {target}"
    host_file = (ROOT / mounted_from).resolve()
    assert host_file == (ROOT / "deploy" / "temporal-dynamic-config.yaml").resolve()

    config = yaml.safe_load(host_file.read_text())
    entries = config["history.transferProcessorMaxPollRPS"]
    assert isinstance(entries, list) and len(entries) == 1
    assert entries[0]["value"] == 1000
    assert entries[0].get("constraints") == {}


def test_dynamic_config_file_uses_temporal_key_to_value_list_format() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "temporal-dynamic-config.yaml").read_text())
    assert isinstance(config, dict) and config
    for key, entries in config.items():
        assert isinstance(entries, list) and entries, key
        for entry in entries:
            assert set(entry) <= {"value", "constraints"} and "value" in entry, key
            assert isinstance(entry.get("constraints", {}), dict), key


def test_temporal_ui_points_at_temporal_frontend(services: dict[str, Any]) -> None:
    ui = services["temporal-ui"]
    assert env_of(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "temporal" in depends_on_of(ui)
    assert container_ports(ui) == {8080}


# --------------------------------------------------------------------------- compose: temporal-setup


def test_temporal_setup_is_one_shot_after_temporal_is_healthy(services: dict[str, Any]) -> None:
    setup = services["temporal-setup"]
    assert setup["restart"] == "no"
    assert depends_on_of(setup) == {"temporal": "service_healthy"}
    assert not setup.get("ports")


def test_temporal_setup_registers_exactly_the_reactor_search_attributes(
    services: dict[str, Any],
) -> None:
    calls = search_attribute_creates(setup_script(services["temporal-setup"]))
    assert calls, "no `temporal operator search-attribute create` in temporal-setup"
    registered: dict[str, str] = {}
    for tokens in calls:
        names, types = flag_values(tokens, "--name"), flag_values(tokens, "--type")
        assert len(names) == len(types) and names
        assert flag_values(tokens, "--namespace") == ["default"]
        assert flag_values(tokens, "--address") == ["temporal:7233"]
        for name, type_ in zip(names, types, strict=True):
            assert name not in registered, f"{name} registered twice"
            registered[name] = type_
    assert registered == EXPECTED_SEARCH_ATTRIBUTES


def test_temporal_setup_script_escapes_every_dollar_from_compose_interpolation(
    services: dict[str, Any],
) -> None:
    command = services["temporal-setup"]["command"]
    raw = command[-1] if isinstance(command, list) else command
    # Compose would substitute any single `$VAR` with the host's value (or "").
    assert "$" not in str(raw).replace("$$", "")


_STUB_CLI = """#!/bin/sh
echo "$*" >> "$STUB_LOG"
case "$*" in
  *"search-attribute create"*)
    case "$STUB_MODE" in
      fresh) echo "Search attributes have been added"; exit 0 ;;
      exists) echo "Error: unable to add search attributes: search attribute already exists" >&2; exit 1 ;;
      conflict) echo "Error: search attribute X already exists and has different type Keyword" >&2; exit 1 ;;
      unreachable) echo "Error: failed reaching server: connection refused" >&2; exit 1 ;;
    esac ;;
esac
exit 0
"""


@pytest.mark.parametrize(
    ("mode", "should_succeed"),
    [("fresh", True), ("exists", True), ("conflict", False), ("unreachable", False)],
)
def test_temporal_setup_script_tolerates_only_already_exists_errors(
    services: dict[str, Any], tmp_path: Path, mode: str, should_succeed: bool
) -> None:
    setup = services["temporal-setup"]
    entrypoint = setup["entrypoint"]
    assert entrypoint[0] in ("/bin/sh", "sh", "/bin/bash", "bash") and entrypoint[1:] == ["-c"]

    stub = tmp_path / "temporal"
    stub.write_text(_STUB_CLI)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "STUB_LOG": str(log),
        "STUB_MODE": mode,
    }
    proc = subprocess.run(
        ["/bin/sh", "-c", setup_script(setup)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode == 0) is should_succeed, proc.stdout + proc.stderr

    creates = [line for line in log.read_text().splitlines() if "search-attribute create" in line]
    if should_succeed:
        called = {}
        for line in creates:
            tokens = line.split()
            called.update(
                zip(flag_values(tokens, "--name"), flag_values(tokens, "--type"), strict=True)
            )
        assert called == EXPECTED_SEARCH_ATTRIBUTES
    else:
        assert len(creates) == 1, "the script must stop at the first real error"


# --------------------------------------------------------------------------- compose: migrate/worker


def _builds_from_repo_root(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, dict):
        return build.get("context") == "." and build.get("dockerfile", "Dockerfile") == "Dockerfile"
    return build == "."


def test_worker_and_migrate_build_from_this_repos_dockerfile(services: dict[str, Any]) -> None:
    assert DOCKERFILE.is_file()
    for name in ("worker", "migrate"):
        assert _builds_from_repo_root(services[name]), name


def test_migrate_is_one_shot_reactor_migrate_after_postgres_is_healthy(
    services: dict[str, Any],
) -> None:
    migrate = services["migrate"]
    command = migrate["command"]
    assert (command if isinstance(command, list) else shlex.split(command)) == [
        "reactor",
        "migrate",
    ]
    assert depends_on_of(migrate) == {"postgres": "service_healthy"}
    assert migrate.get("restart", "no") == "no"
    assert (
        env_of(migrate)["REACTOR_DATABASE_URL"]
        == env_of(services["worker"])["REACTOR_DATABASE_URL"]
    )


def test_worker_runs_reactor_worker(services: dict[str, Any]) -> None:
    command = services["worker"]["command"]
    assert (command if isinstance(command, list) else shlex.split(command)) == ["reactor", "worker"]


def test_worker_is_scalable_without_container_name_or_published_ports(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "hostname" not in worker


def test_worker_waits_for_healthy_infra_and_completed_one_shots(services: dict[str, Any]) -> None:
    assert depends_on_of(services["worker"]) == {
        "postgres": "service_healthy",
        "temporal": "service_healthy",
        "migrate": "service_completed_successfully",
        "temporal-setup": "service_completed_successfully",
    }


def test_worker_stops_gracefully_on_sigterm_and_restarts_unless_stopped(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    assert parse_duration(worker["stop_grace_period"]) == 30
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert worker["restart"] == "unless-stopped"


def test_worker_healthcheck_if_any_runs_reactor_doctor_quiet(services: dict[str, Any]) -> None:
    check = services["worker"].get("healthcheck")
    if check is None:
        pytest.skip("worker has no healthcheck (optional)")
    assert "reactor doctor --quiet" in healthcheck_text(services["worker"])


def test_worker_database_url_points_at_postgres_with_its_credentials(
    services: dict[str, Any],
) -> None:
    url = urlsplit(env_of(services["worker"])["REACTOR_DATABASE_URL"] or "")
    pg_env = env_of(services["postgres"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "postgres" and url.hostname in services
    assert (url.port or 5432) in container_ports(services["postgres"])
    assert url.username == pg_env["POSTGRES_USER"]
    assert url.password == pg_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_worker_temporal_settings_point_at_temporal_service(services: dict[str, Any]) -> None:
    env = env_of(services["worker"])
    host, _, port = (env["REACTOR_TEMPORAL_ADDRESS"] or "").rpartition(":")
    assert host == "temporal" and host in services
    assert int(port) in container_ports(services["temporal"])
    assert env.get("REACTOR_TEMPORAL_NAMESPACE", "default") == "default"
    assert env.get("REACTOR_TASK_QUEUE", "reactor") == "reactor"
    # optional: passed through from the host only when set there
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") in (None, "") or "://" in str(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    )


def test_worker_and_migrate_pass_the_production_connection_variables_through(
    services: dict[str, Any],
) -> None:
    """The names the code reads (one source each), unset unless the host sets them."""
    from reactor.runtime.connection import ENV as TEMPORAL_ENV
    from reactor.storage.tls import ENV as DATABASE_TLS_ENV

    names = {
        *(v for k, v in TEMPORAL_ENV.items() if k not in ("address", "namespace")),
        "REACTOR_PAYLOAD_KEY",
        "REACTOR_PAYLOAD_KEYS",
        *DATABASE_TLS_ENV.values(),
    }
    for service in ("worker", "migrate"):
        env = env_of(services[service])
        assert {name: env.get(name, "missing") for name in names} == dict.fromkeys(names), service
    assert (
        env_of(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"] == "${TEMPORAL_CODEC_ENDPOINT:-}"
    )


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_from_is_pinned_python_311_slim() -> None:
    froms = [args for instr, args in dockerfile_instructions() if instr == "FROM"]
    assert froms
    image = froms[-1].split()[0]
    _, tag, digest = split_image(image)
    assert tag != "latest"
    assert image.startswith("python:")
    assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag or ""), f"{image} is not a pinned 3.11 slim"
    assert digest is None or digest.startswith("sha256:")


def test_dockerfile_installs_the_project_with_pip_no_cache() -> None:
    runs = [args for instr, args in dockerfile_instructions() if instr == "RUN"]
    installs = [r for r in runs if re.search(r"\bpip install\b", r)]
    assert installs, "no RUN pip install"
    assert any(
        "--no-cache-dir" in r and re.search(r"pip install(\s+--?[\w-]+)*\s+\.(\s|$)", r)
        for r in installs
    ), installs


def test_dockerfile_copies_everything_pyproject_builds_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml"}
    readme = project["project"].get("readme")
    if isinstance(readme, str):
        needed.add(readme)
    setuptools = project.get("tool", {}).get("setuptools", {})
    needed |= {f"{mod}.py" for mod in setuptools.get("py-modules", [])}
    for pattern in setuptools.get("packages", {}).get("find", {}).get("include", []):
        needed.add(pattern.rstrip("*").rstrip("."))
    assert {"reactor", "workflows", "activities", "worker.py", "README.md"} <= needed
    missing = needed - copy_sources()
    assert not missing, f"Dockerfile does not COPY {sorted(missing)}"


def test_dockerfile_default_cmd_is_reactor_worker_with_sigterm_stop_signal() -> None:
    instructions = dockerfile_instructions()
    cmds = [args for instr, args in instructions if instr == "CMD"]
    assert cmds and json.loads(cmds[-1]) == ["reactor", "worker"]
    # No ENTRYPOINT, so compose's `command: [reactor, migrate]` replaces the whole argv.
    assert not [args for instr, args in instructions if instr == "ENTRYPOINT"]
    signals = [args for instr, args in instructions if instr == "STOPSIGNAL"]
    assert signals and signals[-1] == "SIGTERM"


def test_dockerfile_runs_as_a_created_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [(i, args) for i, (instr, args) in enumerate(instructions) if instr == "USER"]
    assert users, "no USER instruction"
    index, user = users[-1]
    name = user.split(":")[0]
    assert name not in ("root", "0")
    install_at = max(
        i
        for i, (instr, args) in enumerate(instructions)
        if instr == "RUN" and "pip install" in args
    )
    assert index > install_at, "USER must come after the install (which needs root)"
    creates = " ".join(args for instr, args in instructions if instr == "RUN" and "useradd" in args)
    if name.isdigit():
        assert re.search(rf"--uid\s+{name}\b", creates), f"uid {name} is never created"
    else:
        assert re.search(rf"\buseradd\b.*\b{re.escape(name)}\b", creates), f"{name} never created"


def test_dockerignore_excludes_local_state_but_not_build_inputs() -> None:
    patterns = dockerignore_patterns()
    for path in (".git", ".venv", ".venv/bin/python", "reactor/__pycache__/x.pyc", "tests/unit"):
        assert is_dockerignored(path, patterns), f"{path} should be excluded from the context"
    for src in copy_sources():
        assert not is_dockerignored(src, patterns), f".dockerignore hides COPY source {src}"
    assert not is_dockerignored("reactor/storage/migrations/0001.sql", patterns)
