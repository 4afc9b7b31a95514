"""The reactor over mTLS: nginx (Debian's package, installed by the set-up
when missing) terminates TLS in front of the Temporal dev server, verifies
client certificates against a throwaway CA and passes gRPC on. A worker
process and the CLI reach Temporal only through it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from reactor.runtime.connection import ConnectionConfigError, TemporalConnection
from reactor.runtime.temporal import TemporalConnectionError, connect
from tests.conftest import Stack, spawn_worker, wait_polling, worker_env
from tests.support.cli import run_reactor
from tests.support.tls import CertificateAuthority, Issued, Nginx, nginx_binary


@dataclass(frozen=True)
class TlsEndpoint:
    address: str
    ca: Path
    client: Issued
    rogue: Issued  # signed by a CA the endpoint does not trust
    nginx: Nginx

    def env(self, client: Issued | None = None) -> dict[str, str]:
        client = client or self.client
        return {
            "REACTOR_TEMPORAL_ADDRESS": self.address,
            "REACTOR_TEMPORAL_TLS_CA": str(self.ca),
            "REACTOR_TEMPORAL_TLS_CERT": str(client.cert),
            "REACTOR_TEMPORAL_TLS_KEY": str(client.key),
        }


@pytest.fixture(scope="module")
def mtls(stack: Stack) -> Iterator[TlsEndpoint]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed and apt-get could not install it (needs root)")
    folder = stack.folder / "mtls"
    ca = CertificateAuthority(folder / "ca")
    rogue_ca = CertificateAuthority(folder / "rogue-ca", "rogue CA")
    server = ca.issue("server", "localhost", server=True)
    nginx = Nginx(binary, folder / "nginx", stack.temporal_address, server, ca.cert)
    nginx.start()
    try:
        yield TlsEndpoint(
            nginx.address,
            ca.cert,
            ca.issue("client", "reactor-worker", server=False),
            rogue_ca.issue("rogue", "intruder", server=False),
            nginx,
        )
    finally:
        nginx.stop()


CREATE = {
    "key": "create",
    "document_id": "tls-list",
    "scope": "document",
    "actions": [
        {
            "type": "CREATE_DOCUMENT",
            "input": {"document_type": "powerhouse/todo-list", "slug": "over-mtls"},
        }
    ],
}
ADD = {
    "key": "add",
    "document_id": "tls-list",
    "depends_on": ["create"],
    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "sealed"}}],
}


async def test_worker_and_cli_run_a_batch_over_mtls(
    stack: Stack, database_url: str, task_queue: str, mtls: TlsEndpoint, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = spawn_worker(stack, database_url, task_queue, log, mtls.env())
    try:
        await wait_polling(log)
        env = {**worker_env(stack, database_url, task_queue), **mtls.env()}
        batch = tmp_path / "batch.json"
        batch.write_text(json.dumps({"jobs": [CREATE, ADD]}))
        rc, out, err = await run_reactor(env, "submit", str(batch), "--wait", "--json")
        assert rc == 0, err
        jobs = json.loads(out)["jobs"]
        assert {k: j["status"] for k, j in jobs.items()} == {
            "create": "READ_READY",
            "add": "READ_READY",
        }

        rc, out, err = await run_reactor(env, "doctor", "--json")
        checks = {c["name"]: c for c in json.loads(out)["checks"]}
        assert rc == 0, out + err
        assert checks["temporal"]["ok"] is True
        assert "mTLS client certificate" in checks["temporal"]["detail"]
        assert str(mtls.client.cert) in checks["temporal"]["detail"]
        assert checks["workers"]["ok"] is True
    finally:
        worker.terminate()
        worker.wait(30)
    # The worker's polls and the CLI's calls went through the TLS endpoint.
    access = (mtls.nginx.folder / "access.log").read_text()
    assert "PollWorkflowTaskQueue" in access and "PollActivityTaskQueue" in access
    assert "StartWorkflowExecution" in access


async def test_a_certificate_from_another_ca_gets_the_named_error(
    stack: Stack, database_url: str, task_queue: str, mtls: TlsEndpoint
) -> None:
    rogue = TemporalConnection(
        address=mtls.address,
        tls_ca=str(mtls.ca),
        tls_cert=str(mtls.rogue.cert),
        tls_key=str(mtls.rogue.key),
    )
    with pytest.raises(TemporalConnectionError) as refused:
        await connect(rogue)
    assert refused.value.kind == "certificate"
    assert "refused the client certificate" in refused.value.detail
    assert "REACTOR_TEMPORAL_TLS_CERT" in refused.value.fix

    no_cert = TemporalConnection(address=mtls.address, tls_ca=str(mtls.ca))
    with pytest.raises(TemporalConnectionError) as missing:
        await connect(no_cert)
    assert missing.value.kind == "certificate" and "none was presented" in missing.value.detail

    mismatched = rogue.model_copy(update={"tls_cert": str(mtls.client.cert)})
    with pytest.raises(TemporalConnectionError) as wrong_key:
        await connect(mismatched)
    assert wrong_key.value.kind == "key"

    untrusted_server = rogue.model_copy(
        update={
            "tls_ca": str(mtls.rogue.cert),
            "tls_cert": str(mtls.client.cert),
            "tls_key": str(mtls.client.key),
        }
    )
    with pytest.raises(TemporalConnectionError) as server:
        await connect(untrusted_server)
    assert server.value.kind == "certificate" and "REACTOR_TEMPORAL_TLS_CA" in server.value.fix

    # The CLI reports the same, with the auth it used and the fix.
    env = {**worker_env(stack, database_url, task_queue), **mtls.env(mtls.rogue)}
    rc, out, _ = await run_reactor(env, "doctor", "--json")
    assert rc == 1
    temporal = {c["name"]: c for c in json.loads(out)["checks"]}["temporal"]
    assert temporal["ok"] is False
    assert "certificate: the server refused the client certificate" in temporal["detail"]
    assert str(mtls.rogue.cert) in temporal["detail"]
    assert "REACTOR_TEMPORAL_TLS_CERT" in temporal["fix"]

    rc, _, err = await run_reactor(env, "status", "no-such-batch:0")
    assert rc == 3
    assert "TemporalConnection" not in err and "refused the client certificate" in err


@pytest.fixture(scope="module")
def api_key_endpoint(stack: Stack, mtls: TlsEndpoint) -> Iterator[tuple[Nginx, str]]:
    """TLS plus an API key checked as Temporal Cloud does (bearer header)."""
    folder = stack.folder / "api-key"
    ca = CertificateAuthority(folder / "ca")
    key = "tmprl-" + uuid.uuid4().hex
    nginx = Nginx(
        mtls.nginx.binary,
        folder / "nginx",
        stack.temporal_address,
        ca.issue("server", "localhost", server=True),
        api_key=key,
    )
    nginx.start()
    try:
        yield nginx, str(ca.cert)
    finally:
        nginx.stop()


async def test_an_api_key_is_sent_as_temporal_cloud_expects(
    api_key_endpoint: tuple[Nginx, str], stack: Stack, database_url: str, task_queue: str
) -> None:
    nginx, ca = api_key_endpoint
    key = nginx.conf.read_text().split("Bearer ")[1].split('"')[0]
    client = await connect(TemporalConnection(address=nginx.address, tls_ca=ca, api_key=key))
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version
    env = {
        **worker_env(stack, database_url, task_queue),
        "REACTOR_TEMPORAL_ADDRESS": nginx.address,
        "REACTOR_TEMPORAL_TLS_CA": ca,
        "REACTOR_TEMPORAL_API_KEY": key,
    }
    rc, out, _ = await run_reactor(env, "doctor", "--json")
    temporal = {c["name"]: c for c in json.loads(out)["checks"]}["temporal"]
    assert temporal["ok"] is True and "auth: API key over TLS" in temporal["detail"]
    assert key not in out

    with pytest.raises(TemporalConnectionError) as refused:
        await connect(TemporalConnection(address=nginx.address, tls_ca=ca, api_key="revoked"))
    assert refused.value.kind == "permission" and "REACTOR_TEMPORAL_API_KEY" in refused.value.fix


async def test_plaintext_to_the_tls_endpoint_and_half_configured_mtls(
    mtls: TlsEndpoint,
) -> None:
    with pytest.raises(TemporalConnectionError) as plain:
        await connect(TemporalConnection(address=mtls.address))
    assert plain.value.kind == "tls" and "REACTOR_TEMPORAL_TLS=1" in plain.value.fix

    with pytest.raises(ConnectionConfigError, match="REACTOR_TEMPORAL_TLS_KEY"):
        await connect(TemporalConnection(address=mtls.address, tls_cert=str(mtls.client.cert)))
