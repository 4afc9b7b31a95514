"""The HTTP API's authentication matrix on live servers: no handler
(loopback only, said in the ready line); HS256 tokens valid, missing,
malformed, expired, for another audience or issuer, badly signed; RS256
with a public key; ES256 from a JWKS a local server publishes; 403 from the
document-type claim; public reads; and the writer's subject in the log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reactor.api.http import JwtHandler
from reactor.api.http.server import check_bind
from reactor.api.reactor import Reactor
from reactor.domain.errors import ValidationError
from reactor.runtime.settings import api_auth_from_env
from tests.conftest import ROOT, Stack
from tests.support.http_api import DRIVE, TODO, add, create, served, todo_job
from tests.support.rows import row_counts

SECRET = "a-test-secret-of-at-least-32-bytes!!"
AUDIENCE = "reactor-api"
ISSUER = "https://issuer.test"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 600, **extra}


def hs256(**extra: Any) -> str:
    return jwt.encode(claims(**extra), SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def hs_handler(**options: Any) -> JwtHandler:
    return JwtHandler(secret=SECRET, audience=AUDIENCE, issuer=ISSUER, **options)


async def created(api: httpx.AsyncClient, token: str, doc: str, kind: str = TODO) -> None:
    answer = await api.post(
        "/v1/batches",
        params={"wait": "true"},
        json={"jobs": [create(doc, kind)]},
        headers=bearer(token),
    )
    assert answer.status_code == 200, answer.text
    assert {j["status"] for j in answer.json()["jobs"].values()} == {"READ_READY"}


def test_without_authentication_only_loopback_may_be_served() -> None:
    check_bind("127.0.0.1", authenticated=False)
    check_bind("0.0.0.0", authenticated=True)
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(ValidationError) as info:
            check_bind(host, authenticated=False)
        assert info.value.field == "host"
        assert "without authentication" in str(info.value)


def test_reactor_serve_refuses_another_host_without_authentication() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_JWT")}
    env.pop("REACTOR_JWKS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "reactor.cli.main", "serve", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve on '0.0.0.0' without authentication" in done.stderr


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unauthenticated", "hs256"])
async def test_reactor_serve_says_how_it_authenticates_and_answers(
    secret: str | None, stack: Stack, database_url: str, task_queue: str, tmp_path: Any
) -> None:
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_JWT", "REACTOR_JWKS"))
        },
        "REACTOR_DATABASE_URL": database_url,
        "REACTOR_TEMPORAL_ADDRESS": stack.temporal_address,
        "REACTOR_TASK_QUEUE": task_queue,
        "REACTOR_HOME": str(tmp_path / "home"),
        **({"REACTOR_JWT_SECRET": secret} if secret else {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reactor.cli.main",
        "serve",
        "--port",
        "0",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = ""
        while "api=" not in line:
            raw = await asyncio.wait_for(proc.stdout.readline(), 90)
            assert raw, "reactor serve exited before its ready line"
            line = raw.decode()
        assert "worker=on" in line, line
        assert ("UNAUTHENTICATED" in line) is (secret is None), line
        assert ("auth=JWT (HS256)" in line) is (secret is not None), line
        url = line.split("api=", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        headers = {}
        async with httpx.AsyncClient(base_url=url, timeout=60) as api:
            if secret is not None:
                refused = await api.post("/v1/batches", json={"jobs": [create("served")]})
                assert refused.status_code == 401, refused.text
                token = jwt.encode({"sub": "carol", "exp": int(time.time()) + 60}, secret)
                headers = bearer(token)
            answer = await api.post(
                "/v1/batches",
                params={"wait": "true"},
                json={"jobs": [create("served")]},
                headers=headers,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["jobs"]["create-served"]["status"] == "READ_READY"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0


@pytest.mark.usefixtures("worker")
async def test_hs256_tokens_valid_missing_malformed_expired_wrong_audience_issuer_or_signature(
    reactor: Reactor, database_url: str
) -> None:
    async with served(reactor, hs_handler()) as api:
        await created(api, hs256(), "l1")
        assert (await api.get("/v1/documents/l1", headers=bearer(hs256()))).status_code == 200
        before = await row_counts(database_url)
        refused = {
            "missing": {},
            "not bearer": {"authorization": "Basic YWxpY2U6cHc="},
            "empty bearer": {"authorization": "Bearer"},
            "malformed": bearer("not.a.jwt"),
            "expired": bearer(hs256(exp=int(time.time()) - 3600)),
            "no expiry": bearer(
                jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET)
            ),
            "wrong audience": bearer(hs256(aud="someone-else")),
            "wrong issuer": bearer(hs256(iss="https://evil.test")),
            "bad signature": bearer(jwt.encode(claims(), "another-secret-of-32-bytes-or-more!!")),
            "alg none": bearer(jwt.encode(claims(), None, algorithm="none")),
        }
        for name, headers in refused.items():
            for method, path, body in (
                ("POST", "/v1/batches", {"jobs": [create(f"x-{len(name)}")]}),
                ("GET", "/v1/documents/l1", None),
                ("GET", "/v1/documents", None),
            ):
                answer = await api.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (name, path, answer.text)
                assert answer.headers["www-authenticate"].startswith("Bearer"), name
                assert answer.json()["error"]["field"] == "authorization", name
        assert await row_counts(database_url) == before


@pytest.mark.usefixtures("worker")
async def test_rs256_tokens_are_checked_with_a_public_key(reactor: Reactor) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    handler = JwtHandler(public_key=pem, audience=AUDIENCE, issuer=ISSUER)
    async with served(reactor, handler) as api:
        await created(api, jwt.encode(claims(), key, algorithm="RS256"), "r1")
        for token in (
            jwt.encode(claims(), other, algorithm="RS256"),  # another key
            confused(claims(), pem),  # the public key as an HMAC secret
            hs256(),
        ):
            answer = await api.get("/v1/documents/r1", headers=bearer(token))
            assert answer.status_code == 401, answer.text


def confused(payload: dict[str, Any], secret: str) -> str:
    """An HS256 token keyed with a public key's PEM (the algorithm-confusion
    attack), made by hand: PyJWT refuses to make one."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signed = part(b'{"alg":"HS256","typ":"JWT"}') + b"." + part(json.dumps(payload).encode())
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return (signed + b"." + part(mac)).decode()


@pytest.fixture
def jwks() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    """A JWKS document with one ES256 key (kid "k1"), served on loopback."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", key
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("worker")
async def test_es256_tokens_are_checked_against_a_jwks(
    reactor: Reactor, jwks: tuple[str, ec.EllipticCurvePrivateKey]
) -> None:
    url, key = jwks
    handler = JwtHandler(jwks_url=url, audience=AUDIENCE, issuer=ISSUER)
    async with served(reactor, handler) as api:
        await created(
            api, jwt.encode(claims(), key, algorithm="ES256", headers={"kid": "k1"}), "e1"
        )
        stranger = ec.generate_private_key(ec.SECP256R1())
        for token in (
            jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": "k1"}),
            jwt.encode(claims(), key, algorithm="ES256", headers={"kid": "unknown"}),
        ):
            answer = await api.get("/v1/documents/e1", headers=bearer(token))
            assert answer.status_code == 401, answer.text


@pytest.mark.usefixtures("worker")
async def test_a_token_limited_to_document_types_gets_403_elsewhere_and_writes_nothing(
    reactor: Reactor, database_url: str
) -> None:
    async with served(reactor, hs_handler()) as api:
        await created(api, hs256(), "todo-1")
        drives_only = hs256(document_types=[DRIVE])
        await created(api, drives_only, "drive-1", DRIVE)
        before = await row_counts(database_url)
        forbidden = [
            ("POST", "/v1/batches", {"jobs": [create("todo-2")]}, "document_type"),
            (
                "POST",
                "/v1/batches",
                {"jobs": [todo_job("todo-1", add("1"), key="a")]},
                "document_type",
            ),
            ("POST", "/v1/documents/todo-1/actions", {"actions": [add("1")]}, "document_type"),
            ("GET", "/v1/documents/todo-1", None, "document_type"),
            ("GET", "/v1/documents/todo-1/operations", None, "document_type"),
            ("GET", "/v1/documents", None, "type"),
            ("GET", f"/v1/documents?type={TODO}", None, "document_type"),
        ]
        for method, path, body, field in forbidden:
            answer = await api.request(method, path, json=body, headers=bearer(drives_only))
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["error"]["field"] == field, (path, answer.text)
        assert await row_counts(database_url) == before
        found = await api.get(f"/v1/documents?type={DRIVE}", headers=bearer(drives_only))
        assert [d["header"]["id"] for d in found.json()["results"]] == ["drive-1"]
        assert (
            await api.get("/v1/documents/drive-1", headers=bearer(drives_only))
        ).status_code == 200


@pytest.mark.usefixtures("worker")
async def test_public_reads_need_no_token_but_writes_do(reactor: Reactor) -> None:
    async with served(reactor, hs_handler(public_reads=True)) as api:
        await created(api, hs256(), "pub")
        assert (await api.get("/v1/documents/pub")).status_code == 200
        assert (await api.get("/v1/documents/pub/operations")).status_code == 200
        write = await api.post("/v1/batches", json={"jobs": [create("nope")]})
        assert write.status_code == 401, write.text
        # A token given to a public read is still checked.
        assert (await api.get("/v1/documents/pub", headers=bearer("x.y.z"))).status_code == 401


@pytest.mark.usefixtures("worker")
async def test_the_writers_subject_is_recorded_in_every_operation_it_wrote(
    reactor: Reactor,
) -> None:
    async with served(reactor, hs_handler()) as api:
        await created(api, hs256(sub="alice"), "signed")
        forged = {**add("1"), "context": {"sub": "mallory", "note": "kept"}}
        answer = await api.post(
            "/v1/documents/signed/actions",
            params={"wait": "true"},
            json={"actions": [forged, add("2")]},
            headers=bearer(hs256(sub="bob")),
        )
        assert answer.status_code == 200 and answer.json()["status"] == "READ_READY", answer.text
        nameless = await api.post(
            "/v1/batches",
            json={"jobs": [create("anon")]},
            headers=bearer(jwt.encode({k: v for k, v in claims().items() if k != "sub"}, SECRET)),
        )
        assert nameless.status_code == 403, nameless.text
        ops = (await api.get("/v1/documents/signed/operations", headers=bearer(hs256()))).json()
        written = [(o["scope"], o["index"], o["action"]["context"]) for o in ops["results"]]
        assert written == [
            ("document", 0, {"sub": "alice"}),
            ("global", 0, {"sub": "bob", "note": "kept"}),
            ("global", 1, {"sub": "bob"}),
        ]
    # The same log read through the Python API.
    page = await reactor.get_operations("signed")
    assert [o.action.context["sub"] for o in page.results] == ["alice", "bob", "bob"]


def test_the_environment_configures_one_key_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("REACTOR_JWT_SECRET", "REACTOR_JWT_PUBLIC_KEY", "REACTOR_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert not api_auth_from_env().configured
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    path = tmp_path / "key.pem"
    path.write_text(pem)
    monkeypatch.setenv("REACTOR_JWT_PUBLIC_KEY", str(path))
    monkeypatch.setenv("REACTOR_JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("REACTOR_API_PUBLIC_READS", "1")
    auth = api_auth_from_env()
    assert (auth.configured, auth.public_key, auth.audience, auth.public_reads) == (
        True,
        pem,
        AUDIENCE,
        True,
    )
    assert JwtHandler.from_settings(auth).public_reads
    monkeypatch.setenv("REACTOR_JWT_SECRET", SECRET)
    with pytest.raises(Exception, match="set one of"):
        api_auth_from_env()
