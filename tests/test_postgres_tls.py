"""PostgreSQL over TLS: a PostgreSQL server with ssl=on on a TCP port,
refusing plaintext and requiring a client certificate (pg_hba `hostssl ...
cert`). The reactor connects with sslmode=verify-full
through REACTOR_DATABASE_SSL* or the DSN, the same way for the pool, the
LISTEN connection and migrations."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from reactor.api.builder import ReactorBuilder
from reactor.domain.jobs import JobStatus
from reactor.models import BUILTIN_MODELS
from reactor.runtime.settings import postgres_tls_from_env
from reactor.storage.database import Database
from reactor.storage.migrate import migrate, pending
from reactor.storage.notify import NotifyListener
from reactor.storage.tls import DatabaseTLSError, connect_kwargs
from tests.conftest import Stack, free_port, wait_until
from tests.support import debian
from tests.support.tls import CertificateAuthority, Issued

SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = $1"
HBA = """\
local all all trust
hostssl all all 127.0.0.1/32 cert
hostnossl all all 127.0.0.1/32 reject
"""


@dataclass(frozen=True)
class TlsPostgres:
    url: str  # TCP, no TLS parameters
    ca: Path
    client: Issued  # CN=postgres: `cert` authentication maps it to that role
    rogue_ca: Path

    def env(self, mode: str = "verify-full") -> dict[str, str]:
        return {
            "REACTOR_DATABASE_SSLMODE": mode,
            "REACTOR_DATABASE_SSLROOTCERT": str(self.ca),
            "REACTOR_DATABASE_SSLCERT": str(self.client.cert),
            "REACTOR_DATABASE_SSLKEY": str(self.client.key),
        }

    def dsn(self, database: str = "postgres") -> str:
        return (
            self.url.rsplit("/", 1)[0]
            + f"/{database}"
            + f"?sslmode=verify-full&sslrootcert={self.ca}"
            + f"&sslcert={self.client.cert}&sslkey={self.client.key}"
        )


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (built with OpenSSL), installed
    when missing and we may."""

    def found() -> Path | None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        return versions[-1].parent if versions else None

    if found() is None:
        debian.install("postgresql")
    return found()


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[TlsPostgres]:
    # The pgserver wheel's PostgreSQL is built without SSL ("SSL is not
    # supported by this build"), so TLS needs Debian's server.
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server built with SSL, and apt-get could not install one")
    folder = Path(tempfile.mkdtemp(prefix="rxpgtls"))
    folder.chmod(0o755)
    pgdata, sockets = folder / "pg", folder / "sock"
    ca = CertificateAuthority(folder / "ca")
    issued = ca.issue("server", "localhost", server=True)
    client = ca.issue("client", "postgres", server=False)
    rogue = CertificateAuthority(folder / "rogue-ca", "rogue CA")
    # PostgreSQL refuses to run as root: as root, run it as the package's user.
    user = "postgres" if os.geteuid() == 0 else None
    owner = pwd.getpwnam(user) if user else None
    for d in (pgdata, sockets):
        d.mkdir(mode=0o700)
        if owner is not None:
            os.chown(d, owner.pw_uid, owner.pw_gid)

    def run(*args: str) -> None:
        subprocess.run(
            [str(bin_dir / args[0]), *args[1:]],
            check=True,
            user=user,
            timeout=120,
            capture_output=True,
        )

    run("initdb", "-D", str(pgdata), "--auth=trust", "-U", "postgres", "--encoding=utf8")
    for src, name in ((issued.cert, "server.crt"), (issued.key, "server.key"), (ca.cert, "ca.crt")):
        target = pgdata / name
        target.write_bytes(src.read_bytes())
        target.chmod(0o600)
        if owner is not None:
            os.chown(target, owner.pw_uid, owner.pw_gid)
    port = free_port()
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(
            f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            "ssl_ca_file = 'ca.crt'\n"
        )
    (pgdata / "pg_hba.conf").write_text(HBA)
    run("pg_ctl", "-D", str(pgdata), "-w", "-l", str(pgdata / "server.log"), "start")
    try:
        yield TlsPostgres(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", ca.cert, client, rogue.cert
        )
    finally:
        run("pg_ctl", "-D", str(pgdata), "-w", "-m", "fast", "stop")
        if not os.environ.get("REACTOR_KEEP_TEST_STATE"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def tls_database(tls_postgres: TlsPostgres, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the TLS server; REACTOR_DATABASE_SSL* set for the test."""
    for var, value in tls_postgres.env().items():
        monkeypatch.setenv(var, value)
    name = "tls_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(tls_postgres.url, **postgres_tls_from_env())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return tls_postgres.url.rsplit("/", 1)[0] + f"/{name}"


async def test_plaintext_and_certificate_less_connections_are_refused(
    tls_postgres: TlsPostgres,
) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(tls_postgres.url, ssl=False)
    no_cert = {**tls_postgres.env(), "REACTOR_DATABASE_SSLCERT": "", "REACTOR_DATABASE_SSLKEY": ""}
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="certificate"):
        await asyncpg.connect(tls_postgres.url, **connect_kwargs(no_cert))


async def test_pool_migrations_and_listen_all_use_verified_tls(tls_database: str) -> None:
    db = await Database.connect(tls_database)
    try:
        async with db.pool.acquire() as conn:
            assert await pending(conn)
            await migrate(conn)  # migrations over the pool's TLS connection
            assert await pending(conn) == []
            assert await conn.fetchval(SSL_IN_USE, conn.get_server_pid()) is True
        listener = NotifyListener(tls_database, ["tls_probe"])
        heard: list[dict[str, object]] = []
        listener.add_handler(lambda _channel, payload: heard.append(payload))
        await listener.start()
        try:
            async with db.pool.acquire() as conn:
                assert await conn.fetchval(SSL_IN_USE, listener.backend_pid) is True
                await conn.execute("SELECT pg_notify('tls_probe', $1)", json.dumps({"n": 1}))

            async def arrived() -> bool:
                return heard == [{"n": 1}]

            await wait_until(arrived, 10, "the notification over the TLS LISTEN connection")
        finally:
            await listener.stop()
    finally:
        await db.close()


async def test_a_reactor_runs_a_batch_on_postgres_over_tls(
    stack: Stack, tls_database: str, task_queue: str
) -> None:
    module = await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(tls_database)  # "auto": the builder migrates it
        .with_temporal(stack.temporal_address, task_queue=task_queue)
        .build_module()
    )
    worker = module.create_worker()
    await worker.__aenter__()
    try:
        assert module.listener is not None
        result = await module.reactor.execute_batch(
            {
                "jobs": [
                    {
                        "key": "create",
                        "document_id": "tls-doc",
                        "scope": "document",
                        "actions": [
                            {
                                "type": "CREATE_DOCUMENT",
                                "input": {"document_type": "powerhouse/todo-list"},
                            }
                        ],
                    }
                ]
            }
        )
        (job,) = await module.reactor.wait_for_batch(result.batch_id)
        assert job.status is JobStatus.READ_READY
        async with module.database.pool.acquire() as conn:
            assert await conn.fetchval(SSL_IN_USE, module.listener.backend_pid) is True
            assert await conn.fetchval(SSL_IN_USE, conn.get_server_pid()) is True
    finally:
        await worker.__aexit__(None, None, None)
        await module.close()


async def test_the_dsn_parameters_work_without_the_variables(tls_postgres: TlsPostgres) -> None:
    conn = await asyncpg.connect(tls_postgres.dsn(), **connect_kwargs({}))
    try:
        assert await conn.fetchval(SSL_IN_USE, conn.get_server_pid()) is True
    finally:
        await conn.close()


async def test_doctor_names_the_tls_failure_and_its_fix(
    tls_postgres: TlsPostgres, tls_database: str
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
    env = {**base, **tls_postgres.env(), "REACTOR_DATABASE_URL": tls_database}
    env["REACTOR_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"  # only the database matters

    async def doctor(env: dict[str, str]) -> dict[str, dict[str, str]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reactor.cli.main",
            "doctor",
            "--json",
            "--timeout",
            "3",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return {c["name"]: c for c in json.loads(out)["checks"]}

    good = (await doctor(env))["database"]
    assert good["ok"] and "TLS: TLSv1.3" in good["detail"]

    rogue = (await doctor({**env, "REACTOR_DATABASE_SSLROOTCERT": str(tls_postgres.rogue_ca)}))[
        "database"
    ]
    assert not rogue["ok"] and "certificate verify failed" in rogue["detail"]
    assert "REACTOR_DATABASE_SSLROOTCERT" in rogue["fix"]


def test_settings_are_checked_before_connecting(tmp_path: Path) -> None:
    assert connect_kwargs({}) == {}
    assert connect_kwargs({"REACTOR_DATABASE_SSLMODE": "disable"}) == {"ssl": "disable"}
    with pytest.raises(DatabaseTLSError, match="expected one of"):
        connect_kwargs({"REACTOR_DATABASE_SSLMODE": "always"})
    with pytest.raises(DatabaseTLSError, match="needs REACTOR_DATABASE_SSLROOTCERT"):
        connect_kwargs({"REACTOR_DATABASE_SSLMODE": "verify-full"})
    with pytest.raises(DatabaseTLSError, match="no such file"):
        connect_kwargs({"REACTOR_DATABASE_SSLROOTCERT": str(tmp_path / "missing.pem")})
    with pytest.raises(DatabaseTLSError, match="set REACTOR_DATABASE_SSLKEY"):
        connect_kwargs({"REACTOR_DATABASE_SSLMODE": "require", "REACTOR_DATABASE_SSLCERT": "x"})
