"""Trusted keys from the environment (reactor/runtime/settings.py) and the
fingerprint a worker's identity carries (reactor/domain/signing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor.domain.errors import ReactorError
from reactor.domain.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    keys_fingerprint,
    parse_public_key,
    verification_fingerprint,
)
from reactor.observability.health import check_verification, verification_of
from reactor.runtime.settings import trusted_keys_from_env

A, B, C = (Ed25519Signer().public_key() for _ in range(3))


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REACTOR_TRUSTED_KEYS", raising=False)
    monkeypatch.delenv("REACTOR_TRUSTED_KEYS_FILE", raising=False)


def test_no_keys_configured_means_no_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    assert trusted_keys_from_env() is None
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS", " , ")
    assert trusted_keys_from_env() is None


def test_keys_from_the_variable_and_the_file_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team one\n{B}  # laptop\n\n{C},{A}\n")
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS", f" {A} ,{B}")
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS_FILE", str(path))
    assert trusted_keys_from_env() == {A, B, C}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"{A},QUFB", "REACTOR_TRUSTED_KEYS: key 2: 'QUFB'… is 3 bytes"),
        ("%%%", "REACTOR_TRUSTED_KEYS: key 1"),
        ("kéy", "is not base64"),
    ],
)
def test_a_malformed_key_names_its_source_and_position(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS", value)
    with pytest.raises(ReactorError, match=message.replace("(", r"\(")):
        trusted_keys_from_env()


def test_an_unreadable_key_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REACTOR_TRUSTED_KEYS_FILE", str(tmp_path / "missing"))
    with pytest.raises(ReactorError, match="REACTOR_TRUSTED_KEYS_FILE=.*cannot read it"):
        trusted_keys_from_env()


def test_a_key_in_standard_base64_reads_as_the_url_safe_form_signatures_carry() -> None:
    standard = A.replace("-", "+").replace("_", "/")
    assert parse_public_key(standard) == A


def test_the_fingerprint_names_the_key_set_whatever_its_order() -> None:
    assert keys_fingerprint([A, B]) == keys_fingerprint([B, A, B])
    assert keys_fingerprint([A, B]) != keys_fingerprint([A])
    assert len(keys_fingerprint([A])) == 8
    assert verification_fingerprint(None) == "off"
    assert verification_fingerprint(Ed25519Verifier()) == "any-key"
    assert verification_fingerprint(Ed25519Verifier({A, B})) == keys_fingerprint([A, B])


def test_doctor_reads_each_workers_verification_from_its_identity() -> None:
    assert verification_of("12@host;verify=off") == "off"
    assert verification_of("12@host;verify=1a2b3c4d") == "1a2b3c4d"
    assert verification_of("12@host") == "unknown"
    agree = check_verification("pollers", {"1@a;verify=1a2b3c4d", "2@b;verify=1a2b3c4d"})
    assert agree.ok and agree.fix is None
    mixed = check_verification("pollers", {"1@a;verify=1a2b3c4d", "2@b;verify=off"})
    assert not mixed.ok and mixed.fix is not None
    assert "verify=1a2b3c4d: 1@a;verify=1a2b3c4d; verify=off: 2@b;verify=off" in mixed.detail
    assert not check_verification("pollers", {"1@a;verify=off", "2@b"}).ok
