"""Debian packages some tests need (nginx for a real TLS endpoint, a
PostgreSQL server built with OpenSSL), installed on first use where the
suite runs as root with apt-get, as it does in CI: the suite brings what it
needs instead of expecting it on the machine."""

from __future__ import annotations

import os
import shutil
import subprocess


def install(package: str, *, timeout: float = 900) -> None:
    """`apt-get install` of one package, when we may (root, apt-get present);
    a failure is left to the caller's check for what it needed."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", package], env=env, check=False, timeout=timeout
    )
