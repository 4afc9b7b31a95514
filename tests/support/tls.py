"""TLS for the tests: a throwaway CA with server and client certificates
(made with `cryptography`), and nginx from Debian's packages terminating
(m)TLS in front of the Temporal dev server with `grpc_pass`. nginx is a real
TLS/gRPC proxy, the kind a self-hosted cluster puts in front of Temporal."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import debian

NGINX_PATHS = ("/usr/sbin/nginx", "/usr/bin/nginx")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class CertificateAuthority:
    """A CA that lives for one test session."""

    def __init__(self, folder: Path, name: str = "reactor test CA"):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert = folder / "ca.pem"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, common_name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.folder / f"{stem}.pem", self.folder / f"{stem}-key.pem")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key)
        return issued


def nginx_binary() -> str | None:
    """nginx, installed from Debian's packages when missing and we may."""
    for path in NGINX_PATHS:
        if os.access(path, os.X_OK):
            return path
    debian.install("nginx-light")
    return next((p for p in NGINX_PATHS if os.access(p, os.X_OK)), None)


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
{client_auth}
        ssl_protocols TLSv1.2 TLSv1.3;
        # Temporal long-polls for about a minute.
        grpc_read_timeout 300s;
        grpc_send_timeout 300s;
        client_max_body_size 0;
        # A refused client certificate (495) or none at all (496) answers as
        # gRPC does, UNAUTHENTICATED, rather than with an HTML page.
        error_page 495 496 = @unauthenticated;
        error_page 401 = @unauthenticated;
        location / {{
{api_key_check}
            grpc_pass grpc://{upstream};
        }}
        location @unauthenticated {{
            default_type application/grpc;
            add_header grpc-status 16 always;
            add_header grpc-message "credentials missing or not accepted" always;
            return 200;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Nginx:
    """An nginx terminating TLS on 127.0.0.1 and passing gRPC to `upstream`;
    it requires a client certificate signed by `client_ca` (mTLS), or the
    `Authorization: Bearer <api_key>` header Temporal Cloud checks."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        upstream: str,
        server: Issued,
        client_ca: Path | None = None,
        api_key: str | None = None,
    ):
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(
                dir=folder,
                port=self.port,
                server_cert=server.cert,
                server_key=server.key,
                client_auth=(
                    f"        ssl_client_certificate {client_ca};\n        ssl_verify_client on;"
                    if client_ca is not None
                    else ""
                ),
                api_key_check=(
                    f'            if ($http_authorization != "Bearer {api_key}") {{ return 401; }}'
                    if api_key is not None
                    else ""
                ),
                upstream=upstream,
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.folder / "stderr.log", "ab")  # noqa: SIM115 - the child owns it
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf), "-p", str(self.folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {self._proc.returncode}: "
                    + (self.folder / "stderr.log").read_text()
                    + (self.folder / "error.log").read_text()
                )
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"nginx did not listen on {self.address}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
