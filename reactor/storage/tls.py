"""TLS to PostgreSQL from REACTOR_DATABASE_SSLMODE / _SSLROOTCERT / _SSLCERT /
_SSLKEY (libpq's modes and meanings), as asyncpg keyword arguments: the pool,
the LISTEN connection, migrations and `reactor doctor` all connect through
`connect_kwargs()` (given the environment by reactor.runtime.settings), so
they cannot differ. Without these variables a DSN's
own `sslmode=...&sslrootcert=...` parameters apply (asyncpg reads them)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reactor.domain.errors import ReactorError

ENV = {
    "sslmode": "REACTOR_DATABASE_SSLMODE",
    "sslrootcert": "REACTOR_DATABASE_SSLROOTCERT",
    "sslcert": "REACTOR_DATABASE_SSLCERT",
    "sslkey": "REACTOR_DATABASE_SSLKEY",
}
MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class DatabaseTLSError(ReactorError):
    """The PostgreSQL TLS settings are inconsistent or unreadable."""


def connect_kwargs(env: Mapping[str, str]) -> dict[str, Any]:
    """`{"ssl": ...}` for asyncpg.connect / create_pool, or {} when no
    REACTOR_DATABASE_SSL* variable is set."""
    values = {name: env.get(var) or None for name, var in ENV.items()}
    if not any(values.values()):
        return {}
    rootcert, cert, key = values["sslrootcert"], values["sslcert"], values["sslkey"]
    # A CA given means it should be checked: libpq's `prefer` default would not.
    mode = (values["sslmode"] or ("verify-full" if rootcert else "require")).strip().lower()
    if mode not in MODES:
        raise DatabaseTLSError(f"{ENV['sslmode']}={mode!r}: expected one of {', '.join(MODES)}")
    if (cert is None) != (key is None):
        missing = ENV["sslkey"] if cert else ENV["sslcert"]
        raise DatabaseTLSError(f"a client certificate needs its key and vice versa: set {missing}")
    if mode in ("disable", "allow", "prefer"):
        if cert or rootcert:
            raise DatabaseTLSError(
                f"{ENV['sslmode']}={mode} does not verify or present certificates: "
                "use require, verify-ca or verify-full"
            )
        return {"ssl": mode}
    if mode in ("verify-ca", "verify-full") and rootcert is None:
        raise DatabaseTLSError(f"{ENV['sslmode']}={mode} needs {ENV['sslrootcert']} (the CA file)")
    try:
        context = ssl.create_default_context(
            cafile=_readable(ENV["sslrootcert"], rootcert) if rootcert else None
        )
    except ssl.SSLError as exc:
        raise DatabaseTLSError(f"{ENV['sslrootcert']}={rootcert}: not a CA file ({exc})") from None
    if mode == "require" and rootcert is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # encrypted, unauthenticated: libpq's `require`
    elif mode != "verify-full":  # verify-ca, or require with a CA (libpq: verify-ca)
        context.check_hostname = False
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(_readable(ENV["sslcert"], cert), _readable(ENV["sslkey"], key))
        except ssl.SSLError as exc:
            raise DatabaseTLSError(
                f"{ENV['sslcert']} and {ENV['sslkey']} do not form a certificate and its key "
                f"({exc.reason})"
            ) from None
    return {"ssl": context}


def describe(env: Mapping[str, str]) -> str:
    """The TLS settings in words, for `reactor doctor`."""
    given = [f"{var}={env[var]}" for var in ENV.values() if env.get(var)]
    return ", ".join(given) if given else "TLS per the DSN (asyncpg's default: prefer)"


def _readable(var: str, path: str) -> str:
    if not Path(path).expanduser().is_file():
        raise DatabaseTLSError(f"{var}={path}: no such file")
    return str(Path(path).expanduser())
