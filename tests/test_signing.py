"""Keys, DSSE envelopes, the trust policy (TOML) and the verdict it gives."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import build_manifest, sign_payload
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedvault.errors import (
    ExpiredError,
    ManifestError,
    NotFoundError,
    OversizeError,
    PolicyError,
    SignatureError,
    UsageError,
    VerificationError,
)
from seedvault.manifest import FileEntry
from seedvault.signing import Envelope, PrivateKey, PublicKey, Signature, TrustedKey, TrustPolicy, evaluate, pae


def _manifest_payload(name: str = "acme/tiny", **kw: object) -> bytes:
    files = [FileEntry("model.safetensors", 100, "a" * 64, "b" * 64)]
    return build_manifest(files, name=name, **kw).to_payload()  # type: ignore[arg-type]


# ---- keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ed25519", "p256"])
def test_key_save_load_sign_verify(tmp_path: Path, key_type: str) -> None:
    key = PrivateKey.generate(key_type)  # type: ignore[arg-type]
    pub_path = key.save(tmp_path / "k")
    assert pub_path == tmp_path / "k.pub"
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    loaded = PrivateKey.load(tmp_path / "k")
    public = PublicKey.load(pub_path)
    assert loaded.key_id == key.key_id == public.key_id
    assert public.key_type == key_type
    sig = loaded.sign(b"data")
    assert public.verify(sig, b"data")
    assert not public.verify(sig, b"datA")
    assert not PrivateKey.generate(key_type).public.verify(sig, b"data")  # type: ignore[arg-type]


def test_key_id_is_sha256_of_spki_der(pub_key: PrivateKey, p256_key: PrivateKey) -> None:
    for key in (pub_key, p256_key):
        der = serialization.load_pem_public_key(key.public.pem().encode()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert key.key_id == hashlib.sha256(der).hexdigest()


def test_encrypted_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    key.save(tmp_path / "k", passphrase=b"correct horse")
    assert b"ENCRYPTED" in (tmp_path / "k").read_bytes()
    assert PrivateKey.load(tmp_path / "k", b"correct horse").key_id == key.key_id
    with pytest.raises(UsageError, match="encrypted and no passphrase was given"):
        PrivateKey.load(tmp_path / "k")
    with pytest.raises(UsageError, match="wrong passphrase"):
        PrivateKey.load(tmp_path / "k", b"wrong")


def test_key_save_refuses_to_overwrite(tmp_path: Path) -> None:
    PrivateKey.generate().save(tmp_path / "k")
    before = (tmp_path / "k").read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        PrivateKey.generate().save(tmp_path / "k")
    assert (tmp_path / "k").read_bytes() == before


def test_unreadable_and_unsupported_keys_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        PrivateKey.load(tmp_path / "missing")
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(UsageError, match="expected a PEM private key"):
        PrivateKey.load(tmp_path / "junk")
    with pytest.raises(UsageError, match="expected a PEM public key"):
        PublicKey.load(tmp_path / "junk")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(UsageError, match="expected Ed25519 or ECDSA P-256"):
        PrivateKey.load(tmp_path / "rsa")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(UsageError, match="Ed25519 or ECDSA P-256 public key"):
        PublicKey.from_pem(p384.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(UsageError, match="key type"):
        PrivateKey.generate("rsa")  # type: ignore[arg-type]


# ---- DSSE ---------------------------------------------------------------------------


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_envelope_json_round_trip_and_digest(pub_key: PrivateKey, p256_key: PrivateKey) -> None:
    payload = _manifest_payload()
    env = sign_payload(payload, pub_key, p256_key)
    assert env.digest == hashlib.sha256(payload).hexdigest()
    again = Envelope.from_json(env.to_json())
    assert again == env
    raw = json.loads(env.to_json())
    assert base64.b64decode(raw["payload"]) == payload
    assert [s["keyid"] for s in raw["signatures"]] == [pub_key.key_id, p256_key.key_id]
    # The signature is over PAE(type, payload): checkable with nothing but the public key.
    sig = base64.b64decode(raw["signatures"][0]["sig"])
    assert pub_key.public.verify(sig, pae("application/vnd.in-toto+json", payload))


def test_signing_twice_with_one_key_keeps_one_signature(p256_key: PrivateKey) -> None:
    env = Envelope(b"x").sign(p256_key).sign(p256_key)
    assert len(env.signatures) == 1


def test_merge_adds_countersignatures_once(pub_key: PrivateKey, approver_key: PrivateKey) -> None:
    a = Envelope(b"x").sign(pub_key)
    b = Envelope(b"x").sign(approver_key)
    merged = a.merge(b).merge(b).merge(a)
    assert [s.keyid for s in merged.signatures] == [pub_key.key_id, approver_key.key_id]
    with pytest.raises(SignatureError, match=f"same payload .digest {a.digest}., found digest "
                                             f"{Envelope(b'y').digest}"):
        a.merge(Envelope(b"y").sign(pub_key))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"payloadType": "text/plain", "payload": "", "signatures": []}', "expected payloadType"),
        (b'{"payloadType": "application/vnd.in-toto+json", "payload": "!!", "signatures": []}', "base64"),
        (b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": {}}', "expected a list"),
        (b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": [{"keyid": 1}]}',
         "keyid: expected a string"),
    ],
)
def test_malformed_envelope_refused(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Envelope.from_json(raw)


def test_oversized_envelope_refused() -> None:
    with pytest.raises(OversizeError, match="expected an envelope of at most 16777216 bytes, found 16777217"):
        Envelope.from_json(b" " * (16 * 1024 * 1024 + 1))


# ---- policy -------------------------------------------------------------------------


def test_policy_toml_round_trip(tmp_path: Path, pub_key: PrivateKey, p256_key: PrivateKey,
                                approver_key: PrivateKey) -> None:
    policy = TrustPolicy(
        keys=(
            TrustedKey(pub_key.public, "publisher", ("acme/*", "other/model"), "Acme release"),
            TrustedKey(p256_key.public, "publisher", ("*",)),
            TrustedKey(approver_key.public, "approver", ("acme/*",), "Security team"),
        ),
        revoked=frozenset({"ab" * 32}),
        publisher_threshold=2,
        required_approvals=1,
        allowed_licenses=("Apache-2.0", "MIT"),
    )
    path = tmp_path / "config" / "policy.toml"
    policy.save(path)
    assert TrustPolicy.load(path) == policy
    assert not list(path.parent.glob(".*.tmp"))  # written via a temporary file, then renamed


def test_missing_policy_file_trusts_nothing(tmp_path: Path) -> None:
    assert TrustPolicy.load(tmp_path / "none.toml") == TrustPolicy()


def _policy_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_policy_unknown_role_refused(tmp_path: Path, pub_key: PrivateKey) -> None:
    pem = pub_key.public.pem()
    path = _policy_toml(tmp_path, f'[[keys]]\nrole = "owner"\npublic_key = """{pem}"""\n')
    with pytest.raises(UsageError, match="expected role publisher, approver or timestamp, found 'owner'"):
        TrustPolicy.load(path)
    path = _policy_toml(tmp_path, f'[[keys]]\npublic_key = """{pem}"""\n')
    with pytest.raises(UsageError, match="found null"):
        TrustPolicy.load(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('id = "' + "0" * 64 + '"\n', "does not match its public key"),
        ('scopes = ["acme/tiny/x"]\n', "scope: expected"),
        ("scopes = []\n", "non-empty list of scopes"),
    ],
)
def test_policy_malformed_key_entry_refused(tmp_path: Path, pub_key: PrivateKey, extra: str, message: str) -> None:
    pem = pub_key.public.pem()
    path = _policy_toml(tmp_path, f'[[keys]]\nrole = "publisher"\n{extra}public_key = """{pem}"""\n')
    with pytest.raises(UsageError, match=message):
        TrustPolicy.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("publisher_threshold = 0\n", "at least 1"),
        ("required_approvals = -1\n", "integer >= 0, found -1"),
        ("required_approvals = true\n", "integer >= 0, found true"),
        ("version = 2\n", "expected policy version 1, found 2"),
        ("keys = [", "expected TOML"),
        ("keys = [1]\n", "expected a table"),
        ('keys = "all"\n', "expected keys to be a list of tables"),
        ("requird_approvals = 1\n", "unknown field requird_approvals; expected some of version"),
        ('revoked = ["abc"]\n', "revoked: expected key ids \\(64 lowercase hex digits\\), found 'abc'"),
    ],
)
def test_policy_malformed_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TrustPolicy.load(_policy_toml(tmp_path, text))


@pytest.mark.parametrize(
    ("allowed", "expression", "ok"),
    [
        (None, "Anything-1.0", True),
        (("MIT",), "MIT", True),
        (("MIT",), "Apache-2.0", False),
        (("MIT", "Apache-2.0"), "MIT OR Apache-2.0", True),
        (("MIT",), "MIT OR Apache-2.0", True),  # a choice: the user takes it under MIT
        (("MIT",), "MIT AND Apache-2.0", False),
        (("GPL-2.0-only WITH Classpath-exception-2.0",), "GPL-2.0-only WITH Classpath-exception-2.0", True),
        ((), "MIT", False),
    ],
)
def test_license_allowed(allowed: tuple[str, ...] | None, expression: str, ok: bool) -> None:
    assert TrustPolicy(allowed_licenses=allowed).license_allowed(expression) is ok


def test_scope_matching(pub_key: PrivateKey) -> None:
    k = TrustedKey(pub_key.public, "publisher", ("acme/*", "other/one"))
    assert k.covers("acme/tiny") and k.covers("other/one")
    assert not k.covers("acme-evil/tiny")
    assert not k.covers("Acme/tiny")
    assert not k.covers("other/two")


# ---- the verdict ------------------------------------------------------------------------


def _policy(*entries: tuple[PrivateKey, str, tuple[str, ...]], **kw: object) -> TrustPolicy:
    policy = TrustPolicy(**kw)  # type: ignore[arg-type]
    for key, role, scopes in entries:
        policy = policy.with_key(TrustedKey(key.public, role, scopes))  # type: ignore[arg-type]
    return policy


def test_verdict_reports_signers_and_roles(pub_key: PrivateKey, approver_key: PrivateKey,
                                           stranger_key: PrivateKey) -> None:
    env = sign_payload(_manifest_payload(), pub_key, approver_key, stranger_key)
    policy = _policy((pub_key, "publisher", ("acme/*",)), (approver_key, "approver", ("*",)),
                     required_approvals=1)
    verdict = evaluate(env, policy)
    assert (verdict.publishers, verdict.approvers) == (1, 1)
    assert verdict.digest == env.digest
    assert [(s.key_id, s.status, s.role) for s in verdict.signers] == [
        (pub_key.key_id, "valid", "publisher"),
        (approver_key.key_id, "valid", "approver"),
        (stranger_key.key_id, "untrusted", None),
    ]
    assert verdict.to_dict()["signers"][2]["status"] == "untrusted"


def test_empty_policy_trusts_nothing(pub_key: PrivateKey) -> None:
    with pytest.raises(SignatureError, match="trust policy has no keys"):
        evaluate(sign_payload(_manifest_payload(), pub_key), TrustPolicy())


def test_unsigned_envelope_refused(pub_key: PrivateKey) -> None:
    with pytest.raises(SignatureError, match="expected at least one signature, found none"):
        evaluate(Envelope(_manifest_payload()), _policy((pub_key, "publisher", ("*",))))


def test_approver_signature_alone_is_not_a_publisher(approver_key: PrivateKey) -> None:
    env = sign_payload(_manifest_payload(), approver_key)
    with pytest.raises(PolicyError, match=r"expected 1 valid signature.*found 0.*counted as approver"):
        evaluate(env, _policy((approver_key, "approver", ("*",))))


def test_signature_with_forged_keyid_is_invalid(pub_key: PrivateKey, stranger_key: PrivateKey) -> None:
    """A stranger's signature relabelled with the trusted key's id does not verify."""
    payload = _manifest_payload()
    forged = Envelope(payload, signatures=(Signature(pub_key.key_id, stranger_key.sign(pae(
        "application/vnd.in-toto+json", payload))),))
    with pytest.raises(SignatureError, match="signature does not verify"):
        evaluate(forged, _policy((pub_key, "publisher", ("*",))))


def test_p256_publisher_accepted(p256_key: PrivateKey) -> None:
    verdict = evaluate(sign_payload(_manifest_payload(), p256_key), _policy((p256_key, "publisher", ("acme/*",))))
    assert verdict.publishers == 1


def test_expiry_is_judged_at_the_given_time(pub_key: PrivateKey) -> None:
    end = datetime(2030, 1, 1, tzinfo=UTC)
    env = sign_payload(_manifest_payload(expires=end), pub_key)
    policy = _policy((pub_key, "publisher", ("*",)))
    assert evaluate(env, policy, now=end - timedelta(seconds=1)).publishers == 1
    with pytest.raises(ExpiredError, match="expired at 2030-01-01T00:00:00Z; it is now 2030-01-01T00:00:00Z"):
        evaluate(env, policy, now=end)


def test_threshold_of_two_needs_two_distinct_keys(pub_key: PrivateKey, p256_key: PrivateKey) -> None:
    policy = replace(_policy((pub_key, "publisher", ("*",)), (p256_key, "publisher", ("*",))),
                     publisher_threshold=2)
    assert evaluate(sign_payload(_manifest_payload(), pub_key, p256_key), policy).publishers == 2
    with pytest.raises(PolicyError, match=r"expected 2 valid signature.*found 1"):
        evaluate(sign_payload(_manifest_payload(), pub_key), policy)


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"payload": ' + b"9" * 5000 + b"}"],
                         ids=["deeply-nested", "5000-digit-number"])
def test_hostile_envelope_is_a_manifest_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises(ManifestError, match=r"^envelope: expected "):
        Envelope.from_json(raw)


# ---- fuzz: sign, change one thing, verification must refuse ------------------------------

_FUZZ_KEY = PrivateKey.generate()
_FUZZ_P256 = PrivateKey.generate("p256")
_FUZZ_POLICY = (TrustPolicy().with_key(TrustedKey(_FUZZ_KEY.public, "publisher", ("acme/*",)))
                .with_key(TrustedKey(_FUZZ_P256.public, "publisher", ("acme/*",))))
_FUZZ_PAYLOAD = build_manifest([FileEntry("model.safetensors", 20000, "a" * 64, "b" * 64)]).to_payload()
# Signed once: ECDSA signatures are randomized, and hypothesis needs the same input each run.
_FUZZ_GOOD = {False: sign_payload(_FUZZ_PAYLOAD, _FUZZ_KEY), True: sign_payload(_FUZZ_PAYLOAD, _FUZZ_P256)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), p256=st.booleans(), target=st.sampled_from(["payload", "sig", "payload_type"]))
def test_any_single_byte_change_is_refused(data: st.DataObject, p256: bool, target: str) -> None:
    """Flip one bit anywhere in the payload, the signature or the payload type of a valid
    envelope: verification refuses with a VerificationError, never another exception."""
    good = _FUZZ_GOOD[p256]
    assert evaluate(good, _FUZZ_POLICY).publishers == 1
    sig = good.signatures[0]
    raw = {"payload": good.payload, "sig": sig.sig, "payload_type": good.payload_type.encode()}[target]
    index = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    mutated = bytearray(raw)
    mutated[index] ^= 1 << bit
    if target == "payload":
        forged = Envelope(bytes(mutated), good.payload_type, good.signatures)
    elif target == "sig":
        forged = Envelope(good.payload, good.payload_type, (Signature(sig.keyid, bytes(mutated)),))
    else:
        try:
            payload_type = mutated.decode()
        except UnicodeDecodeError:
            return  # not representable as a payload type at all
        forged = Envelope(good.payload, payload_type, good.signatures)
    with pytest.raises(VerificationError):
        evaluate(forged, _FUZZ_POLICY)
