"""The payload codec on its own: AES-GCM round trips, key rotation, and the
named error (never garbage) for a payload this process cannot open."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from reactor.api.builder import ReactorBuilder
from reactor.runtime.codec import (
    ENCODING,
    KEY_ID,
    EncryptedPayloadError,
    PayloadKeyError,
    PayloadKeys,
    ReactorPayloadConverter,
    generate_key,
    key_fingerprint,
)
from reactor.runtime.connection import ENV, ConnectionConfigError, TemporalConnection
from reactor.runtime.temporal import data_converter

OLD = "2025:" + base64.b64encode(b"o" * 32).decode()
NEW = "2026:" + base64.b64encode(b"n" * 32).decode()
MARKER = b"MARKER-do-not-leak"


def plain(data: bytes = b'{"text":"' + MARKER + b'"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_round_trip_hides_the_data_and_names_the_key() -> None:
    codec = PayloadKeys.parse(NEW).codec()
    (sealed,) = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"2026"
    assert MARKER not in sealed.SerializeToString()
    (opened,) = await codec.decode([sealed])
    assert opened == plain()


async def test_same_input_encrypts_differently_each_time() -> None:
    codec = PayloadKeys.parse(NEW).codec()
    a, b = await codec.encode([plain(), plain()])
    assert a.data != b.data


async def test_rotation_old_key_still_decodes_new_key_encrypts() -> None:
    before = PayloadKeys.parse(OLD).codec()
    (old_payload,) = await before.encode([plain()])
    after = PayloadKeys.parse(NEW, OLD).codec()
    assert after.active == "2026"
    (new_payload,) = await after.encode([plain()])
    assert new_payload.metadata[KEY_ID] == b"2026"
    assert await after.decode([old_payload, new_payload]) == [plain(), plain()]


async def test_a_missing_key_id_is_a_named_error() -> None:
    (sealed,) = await PayloadKeys.parse(OLD).codec().encode([plain()])
    with pytest.raises(EncryptedPayloadError, match="encrypted with key '2025'") as err:
        await PayloadKeys.parse(NEW).codec().decode([sealed])
    assert err.value.key_id == "2025" and "REACTOR_PAYLOAD_KEYS" in str(err.value)


async def test_a_wrong_key_under_the_right_id_or_tampering_is_a_named_error() -> None:
    (sealed,) = await PayloadKeys.parse(OLD).codec().encode([plain()])
    impostor = "2025:" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(EncryptedPayloadError, match="does not open it"):
        await PayloadKeys.parse(impostor).codec().decode([sealed])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID] = b"2026"
    with pytest.raises(EncryptedPayloadError, match="does not open it"):
        await PayloadKeys.parse(NEW, OLD).codec().decode([relabelled])


async def test_plaintext_payloads_pass_through_decode() -> None:
    codec = PayloadKeys.parse(NEW).codec()
    assert await codec.decode([plain()]) == [plain()]


async def test_a_process_without_keys_refuses_encrypted_payloads_by_name() -> None:
    (sealed,) = await PayloadKeys.parse(NEW).codec().encode([plain()])
    converter = ReactorPayloadConverter()
    with pytest.raises(EncryptedPayloadError, match="has no payload key") as err:
        converter.from_payloads([sealed])
    assert err.value.key_id == "2026"
    # ...and still converts everything else as the pydantic converter does.
    assert converter.from_payloads(converter.to_payloads([{"a": 1}, None, b"x"])) == [
        {"a": 1},
        None,
        b"x",
    ]
    assert data_converter(None).payload_codec is None
    assert data_converter(PayloadKeys.parse(NEW)).payload_codec is not None


def test_key_formats() -> None:
    bare = generate_key()
    ring = PayloadKeys.parse(bare)
    assert ring.active == key_fingerprint(base64.b64decode(bare))
    assert bare not in ring.active and bare not in repr(ring)
    assert PayloadKeys.parse(None, f"{NEW},{OLD}").active == "2026"
    assert set(PayloadKeys.parse(NEW, f" {OLD} ,").keys) == {"2026", "2025"}
    with pytest.raises(PayloadKeyError, match="not base64"):
        PayloadKeys.parse("k:not*base64")
    with pytest.raises(PayloadKeyError, match="needs 16, 24 or 32"):
        PayloadKeys.parse("k:" + base64.b64encode(os.urandom(20)).decode())
    with pytest.raises(PayloadKeyError, match="given twice"):
        PayloadKeys.parse(NEW, "2026:" + base64.b64encode(b"z" * 32).decode())
    assert PayloadKeys.from_env({}) is None
    assert PayloadKeys.from_env({"REACTOR_PAYLOAD_KEY": NEW}) == PayloadKeys.parse(NEW)


def test_connection_from_env_and_its_auth_in_words() -> None:
    env = {
        "REACTOR_TEMPORAL_ADDRESS": "ns.tmprl.cloud:7233",
        "REACTOR_TEMPORAL_NAMESPACE": "ns.acct",
        "REACTOR_TEMPORAL_API_KEY": "secret-api-key",
        "REACTOR_PAYLOAD_KEY": NEW,
    }
    conn = TemporalConnection.from_env(env)
    assert (conn.address, conn.namespace, conn.uses_tls) == ("ns.tmprl.cloud:7233", "ns.acct", True)
    assert conn.tls_config() is True  # system roots
    assert conn.auth() == "API key over TLS (system CAs)"
    assert "secret-api-key" not in repr(conn)
    assert conn.payload_keys is not None and conn.payload_keys.active == "2026"
    assert TemporalConnection.from_env({}).auth() == "plaintext, no authentication"
    assert TemporalConnection.from_env(env, namespace="other").namespace == "other"
    with pytest.raises(ConnectionConfigError, match="expected 1/0"):
        TemporalConnection.from_env({"REACTOR_TEMPORAL_TLS": "maybe"})
    with pytest.raises(ConnectionConfigError, match="cannot read it"):
        TemporalConnection(tls_ca="/nonexistent/ca.pem").tls_config()
    with pytest.raises(ConnectionConfigError, match="REACTOR_TEMPORAL_TLS_CERT"):
        TemporalConnection(tls_key="/x.pem").tls_config()


def sealed_with(key: str, data: bytes) -> Payload:
    """A payload as the codec's envelope would carry it, holding `data`."""
    key_id = key.partition(":")[0]
    return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=data)


async def test_a_malformed_payload_is_a_named_error_not_a_raw_one() -> None:
    codec = PayloadKeys.parse(NEW).codec()
    for data in (b"", b"short", b"n" * 27):  # under a nonce and an authentication tag
        with pytest.raises(EncryptedPayloadError, match=f"malformed: {len(data)} bytes") as err:
            await codec.decode([sealed_with(NEW, data)])
        assert err.value.key_id == "2026" and "cut short or altered" in err.value.fix
    # Authentic under the key and its id, but not a serialized Payload.
    nonce = os.urandom(12)
    foreign = nonce + AESGCM(b"n" * 32).encrypt(nonce, b"\xff\xff\xff", b"2026")
    with pytest.raises(EncryptedPayloadError, match="not a serialized Temporal payload") as err:
        await codec.decode([sealed_with(NEW, foreign)])
    assert "something other than the reactor's codec" in err.value.fix


async def test_with_keys_failure_messages_and_stack_traces_are_encrypted() -> None:
    keyed = data_converter(PayloadKeys.parse(NEW))
    failure = Failure()
    try:
        raise ValueError(f"todo item {MARKER.decode()!r} does not exist")
    except ValueError as exc:
        await keyed.encode_failure(exc, failure)
    where = test_with_keys_failure_messages_and_stack_traces_are_encrypted.__name__
    assert MARKER not in failure.SerializeToString()  # the message
    assert where.encode() not in failure.SerializeToString()  # the stack trace
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    # The type stays readable: retry policies match on it.
    assert failure.application_failure_info.type == "ValueError"
    decoded = await keyed.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.type == "ValueError"
    assert decoded.message == f"todo item {MARKER.decode()!r} does not exist"
    assert decoded.failure is not None and where in decoded.failure.stack_trace
    # Without keys, nothing is encoded: failures read as before.
    plain_failure = Failure()
    await data_converter(None).encode_failure(ValueError("visible"), plain_failure)
    assert plain_failure.message == "visible"


def test_the_builder_takes_an_unset_namespace_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REACTOR_PAYLOAD_KEY", raising=False)
    monkeypatch.delenv("REACTOR_PAYLOAD_KEYS", raising=False)
    address = "temporal.internal:7233"

    def namespace(builder: ReactorBuilder) -> str:
        return builder._temporal_connection(address).namespace

    assert namespace(ReactorBuilder().with_temporal(address)) == "default"
    monkeypatch.setenv("REACTOR_TEMPORAL_NAMESPACE", "team-ns")
    assert namespace(ReactorBuilder().with_temporal(address)) == "team-ns"
    assert namespace(ReactorBuilder().with_temporal(address, "given")) == "given"
    assert namespace(ReactorBuilder().with_temporal(address, namespace="given")) == "given"
