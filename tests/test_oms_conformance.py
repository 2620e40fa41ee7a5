"""OpenSSF model signing (OMS v1.0) as the conformance suite checks it, against the real
`model_signing` 1.1.1 both ways: P-256, P-384 and P-521 keys, a certificate chain made here
(root, intermediate, leaf), single files, ignore paths, unsigned files, deterministic
statements, older bundle formats, and `seedvault oms sign-model / verify-model` as the
conformance adapter protocol runs them."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ok, refused
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from model_signing import signing as ms_signing
from model_signing import verifying as ms_verifying

from seedvault.bridges.oms import CertificateTrust, KeyTrust, import_oms, read_bundle, sign_model, verify_model
from seedvault.client import Client
from seedvault.errors import IntegrityError, SignatureError, UnsafePathError, UsageError
from seedvault.signing import PrivateKey, PublicKey, TrustedKey
from seedvault.signing.keys import OMS_KEY_TYPES, KeyType

BIN = Path(sys.executable).parent
CURVES: tuple[KeyType, ...] = ("p256", "p384", "p521")


# ---- material made here: models, keys, a certificate chain ------------------------------


def make_model(root: Path) -> Path:
    """A model with what trips implementations: a subdirectory, a name with a space (code
    point order differs from path-component order), a dotfile, unicode, an empty file, git paths."""
    files = {"weights.bin": b"\x00\x01" * 5000, "config.json": b'{"layers": 2}\n', "a b/x.bin": b"space",
             "a/x.bin": b"slash", ".env.example": b"K=V\n", "模型.bin": b"unicode", "empty.bin": b"",
             ".git/HEAD": b"ref: refs/heads/main\n", ".gitattributes": b"*.bin lfs\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


SIGNED = sorted(["weights.bin", "config.json", "a b/x.bin", "a/x.bin", ".env.example", "模型.bin", "empty.bin"])


@dataclass(frozen=True)
class KeyPair:
    key: PrivateKey
    private: Path
    public: Path


def key_pair(tmp: Path, key_type: KeyType) -> KeyPair:
    key = PrivateKey.generate(key_type)
    path = tmp / f"{key_type}-{key.key_id[:8]}.pem"
    return KeyPair(key, path, key.save(path))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(subject: str, key: Any, issuer: tuple[str, Any] | None, *, ca: bool,
          usage: x509.KeyUsage | None = None, days: tuple[int, int] = (-1, 365)) -> x509.Certificate:
    """A certificate for KEY, signed by ISSUER (name, private key), self-signed without one."""
    now = datetime.now(UTC)
    signer_name, signer_key = issuer or (subject, key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(signer_name))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + timedelta(days=days[0])).not_valid_after(now + timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
                              critical=False))
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
    if usage is None:
        usage = x509.KeyUsage(**{**flags, "key_cert_sign": True, "crl_sign": True} if ca
                              else {**flags, "digital_signature": True})
    builder = builder.add_extension(usage, critical=True)
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return builder.sign(signer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    root: Path
    intermediate: Path
    leaf: Path
    leaf_key: PrivateKey
    leaf_key_path: Path
    issue_leaf: Callable[..., Path]  # more leaves from the same intermediate


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """Root (RSA) -> intermediate (P-256) -> leaf (P-384), as a CA would issue them."""
    d = tmp_path / "pki"
    d.mkdir()
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    int_key = ec.generate_private_key(ec.SECP256R1())
    root = issue("test root CA", root_key, None, ca=True)
    intermediate = issue("test intermediate CA", int_key, ("test root CA", root_key), ca=True)

    def issue_leaf(name: str, **kw: Any) -> Path:
        cert = issue(name, leaf.key.key, ("test intermediate CA", int_key), ca=False, **kw)
        return write_pem(d / f"{name}.pem", cert)

    leaf = key_pair(d, "p384")
    return Pki(write_pem(d / "root.pem", root), write_pem(d / "intermediate.pem", intermediate),
               issue_leaf("model signer"), leaf.key, leaf.private, issue_leaf)


def ms_sign_key(model: Path, sig: Path, private: Path, ignore: list[Path] | None = None) -> None:
    hashing = ms_signing.Config().use_elliptic_key_signer(private_key=private)
    if ignore:
        hashing.set_hashing_config(ms_signing.hashing.Config().set_ignored_paths(paths=ignore))
    hashing.sign(model, sig)


def ms_verify_key(model: Path, sig: Path, public: Path, *, ignore_unsigned: bool = False) -> None:
    ms_verifying.Config().use_elliptic_key_verifier(public_key=public).set_ignore_unsigned_files(
        ignore_unsigned).verify(model, sig)


def statement_of(sig: Path) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]))


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))


# ---- keys: P-256, P-384, P-521, both ways ----------------------------------------------


@pytest.mark.parametrize("key_type", CURVES)
def test_model_signing_bundle_verifies_here(tmp_path: Path, key_type: KeyType) -> None:
    model, sig, pair = make_model(tmp_path / "model"), tmp_path / "model.sig", key_pair(tmp_path, key_type)
    ms_sign_key(model, sig, pair.private)
    verdict = verify_model(model, sig, KeyTrust(PublicKey.load(pair.public, accept=OMS_KEY_TYPES)))
    assert sorted(verdict.files) == SIGNED and key_type.upper()[1:] in verdict.signer
    flip(model / "weights.bin")
    with pytest.raises(IntegrityError, match=r"weights.bin: expected sha256"):
        verify_model(model, sig, KeyTrust(pair.key.public))


@pytest.mark.parametrize("key_type", CURVES)
def test_seedvault_bundle_verifies_with_model_signing(tmp_path: Path, key_type: KeyType) -> None:
    model, sig, pair = make_model(tmp_path / "model"), tmp_path / "model.sig", key_pair(tmp_path, key_type)
    signed = sign_model(model, pair.key, sig)
    assert list(signed.files) == SIGNED
    ms_verify_key(model, sig, pair.public)  # raises on any mismatch
    statement = statement_of(sig)
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == sorted(names) and names.index("a b/x.bin") < names.index("a/x.bin")  # code point order
    bundle = json.loads(sig.read_bytes())
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(pair.public.read_bytes()).hexdigest()
    (model / "extra.bin").write_bytes(b"added")
    with pytest.raises(ValueError, match=r"extra.bin"):
        ms_verify_key(model, sig, pair.public)


def test_same_model_signed_twice_same_statement(tmp_path: Path) -> None:
    model, pair = make_model(tmp_path / "model"), key_pair(tmp_path, "p256")
    sign_model(model, pair.key, tmp_path / "one.sig", ignore=["a"])
    sign_model(model, pair.key, tmp_path / "two.sig", ignore=["a"])
    one, two = statement_of(tmp_path / "one.sig"), statement_of(tmp_path / "two.sig")
    assert one == two and json.dumps(one) == json.dumps(two)
    assert one["predicate"]["serialization"]["ignore_paths"] == [".git", ".gitattributes", ".github", ".gitignore",
                                                                 "a"]


def test_wrong_key_and_unknown_key_types_refused_by_name(tmp_path: Path) -> None:
    model, sig, pair = make_model(tmp_path / "model"), tmp_path / "model.sig", key_pair(tmp_path, "p384")
    sign_model(model, pair.key, sig)
    with pytest.raises(SignatureError, match="hint"):
        verify_model(model, sig, KeyTrust(PrivateKey.generate("p384").public))
    with pytest.raises(UsageError, match="expected a P-256, P-384 or P-521 key, found Ed25519"):
        sign_model(model, PrivateKey.generate("ed25519"), tmp_path / "ed.sig")
    k1 = tmp_path / "k1.pem"
    k1.write_bytes(ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(UsageError, match="found an ECDSA secp256k1 key"):
        PrivateKey.load(k1, accept=OMS_KEY_TYPES)
    # seedvault's own manifests keep Ed25519 and P-256 (manifests/README.md): P-384 refused, by name.
    with pytest.raises(UsageError, match=r"found an ECDSA P-384 key .*manifests only with Ed25519 or P-256"):
        PublicKey.load(pair.public)
    with pytest.raises(UsageError, match="found an ECDSA P-384 key"):
        PrivateKey.load(pair.private)


# ---- certificates ----------------------------------------------------------------------


def test_certificate_chain_both_ways(tmp_path: Path, pki: Pki) -> None:
    model = make_model(tmp_path / "model")
    theirs, ours = tmp_path / "theirs.sig", tmp_path / "ours.sig"
    ms_signing.Config().use_certificate_signer(
        private_key=pki.leaf_key_path, signing_certificate=pki.leaf, certificate_chain=[pki.intermediate],
    ).sign(model, theirs)
    roots = CertificateTrust(tuple(x509.load_pem_x509_certificates(pki.root.read_bytes())))
    verdict = verify_model(model, theirs, roots)
    assert "model signer" in verdict.signer and "test root CA" in verdict.signer
    leaf = x509.load_pem_x509_certificate(pki.leaf.read_bytes())
    chain = x509.load_pem_x509_certificates(pki.intermediate.read_bytes())
    sign_model(model, pki.leaf_key, ours, certificate=(leaf, chain))
    ms_verifying.Config().use_certificate_verifier(certificate_chain=[pki.root]).verify(model, ours)
    assert verify_model(model, ours, roots).files == verdict.files
    # A key bundle is not a certificate bundle, and the other way round.
    with pytest.raises(SignatureError, match="expected a bundle signed with a key"):
        verify_model(model, ours, KeyTrust(pki.leaf_key.public))


def test_untrusted_expired_and_non_signing_certificates_refused(tmp_path: Path, pki: Pki) -> None:
    model = make_model(tmp_path / "model")
    chain = x509.load_pem_x509_certificates(pki.intermediate.read_bytes())
    roots = CertificateTrust(tuple(x509.load_pem_x509_certificates(pki.root.read_bytes())))

    def signed_with(leaf: Path, name: str) -> Path:
        sig = tmp_path / name
        sign_model(model, pki.leaf_key, sig, certificate=(x509.load_pem_x509_certificate(leaf.read_bytes()), chain))
        return sig

    good = signed_with(pki.leaf, "good.sig")
    other_root = issue("other root", rsa.generate_private_key(public_exponent=65537, key_size=2048), None, ca=True)
    with pytest.raises(SignatureError, match="does not chain to any trusted root"):
        verify_model(model, good, CertificateTrust((other_root,)))
    expired = signed_with(pki.issue_leaf("expired signer", days=(-30, -1)), "expired.sig")
    with pytest.raises(SignatureError, match="not valid now"):
        verify_model(model, expired, roots)
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
    no_sign = signed_with(pki.issue_leaf("encryption only", usage=x509.KeyUsage(**{**flags,
                                                                                      "key_encipherment": True})),
                          "nosign.sig")
    with pytest.raises(SignatureError, match="digitalSignature"):
        verify_model(model, no_sign, roots)
    with pytest.raises(UsageError, match="expected it to certify the private key given"):
        sign_model(model, PrivateKey.generate("p384"), tmp_path / "x.sig",
                   certificate=(x509.load_pem_x509_certificate(pki.leaf.read_bytes()), chain))


# ---- what is covered: single files, ignore paths, unsigned files ---------------------------


def test_single_file_model_both_ways(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"weights" * 100)
    pair = key_pair(tmp_path, "p521")
    sign_model(weights, pair.key, tmp_path / "ours.sig")
    ms_verify_key(weights, tmp_path / "ours.sig", pair.public)
    ms_sign_key(weights, tmp_path / "theirs.sig", pair.private)
    ours, theirs = statement_of(tmp_path / "ours.sig"), statement_of(tmp_path / "theirs.sig")
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]  # named "." by both
    assert ours["subject"] == theirs["subject"]
    assert verify_model(weights, tmp_path / "theirs.sig", KeyTrust(pair.key.public)).files.keys() == {"."}
    weights.write_bytes(b"other")
    with pytest.raises(IntegrityError, match="expected sha256"):
        verify_model(weights, tmp_path / "theirs.sig", KeyTrust(pair.key.public))


def test_ignore_paths_and_unsigned_files(tmp_path: Path) -> None:
    model, pair = make_model(tmp_path / "model"), key_pair(tmp_path, "p256")
    (model / "cache").mkdir()
    (model / "cache" / "tmp.bin").write_bytes(b"scratch")
    sig = model / "model.sig"  # inside the model: left out of its own signature
    signed = sign_model(model, pair.key, sig, ignore=["cache"])
    assert "cache/tmp.bin" not in signed.files and "model.sig" in signed.ignore_paths
    ms_verify_key(model, sig, pair.public)
    (model / "cache" / "tmp.bin").write_bytes(b"changed: still ignored")
    verify_model(model, sig, KeyTrust(pair.key.public))
    (model / "notes.txt").write_bytes(b"added after signing")
    with pytest.raises(IntegrityError, match=r"present but not signed: notes.txt"):
        verify_model(model, sig, KeyTrust(pair.key.public))
    verify_model(model, sig, KeyTrust(pair.key.public), ignore=["notes.txt"])
    verify_model(model, sig, KeyTrust(pair.key.public), ignore_unsigned=True)
    ms_verify_key(model, sig, pair.public, ignore_unsigned=True)
    (model / "config.json").unlink()
    with pytest.raises(IntegrityError, match=r"signed but missing: config.json"):
        verify_model(model, sig, KeyTrust(pair.key.public), ignore_unsigned=True)


def test_model_signing_ignore_paths_honoured(tmp_path: Path) -> None:
    model, sig, pair = make_model(tmp_path / "model"), tmp_path / "m.sig", key_pair(tmp_path, "p384")
    ms_sign_key(model, sig, pair.private, ignore=[Path("a")])
    flip(model / "a" / "x.bin")
    assert "a/x.bin" not in verify_model(model, sig, KeyTrust(pair.key.public)).files


def test_empty_model_and_symlinks_refused(tmp_path: Path) -> None:
    pair = key_pair(tmp_path, "p256")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".gitignore").write_text("*\n")
    with pytest.raises(UsageError, match="expected at least one file to sign, found none"):
        sign_model(empty, pair.key, tmp_path / "e.sig")
    assert not (tmp_path / "e.sig").exists()
    model = make_model(tmp_path / "model")
    (model / "link").symlink_to(model / "config.json")
    with pytest.raises(UnsafePathError, match="found a symlink"):
        sign_model(model, pair.key, tmp_path / "s.sig")


# ---- bundles from older releases --------------------------------------------------------


def _bundle(statement: dict[str, Any], sig: bytes, material: dict[str, Any]) -> bytes:
    payload = json.dumps(statement).encode()
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial":
                       material, "dsseEnvelope": {"payload": base64.b64encode(payload).decode(), "payloadType":
                                                  "application/vnd.in-toto+json", "signatures": [
                                                      {"sig": base64.b64encode(sig).decode(), "keyid": None}]}}
                      ).encode()


def test_v0_2_and_v1_0_bundles_verify(tmp_path: Path) -> None:
    """v0.2: files as subjects (Digests/v0.1), signed over its mis-encoded PAE with SHA-256
    whatever the curve; v1.0: `rawBytes` (the PEM) instead of a hint, no ignore_paths."""
    model = make_model(tmp_path / "model")
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    trust = KeyTrust(PublicKey.from_pem(pem, accept=OMS_KEY_TYPES))
    digests = {p: hashlib.sha256((model / p).read_bytes()).hexdigest() for p in SIGNED}
    legacy = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://model_signing/Digests/v0.1",
              "subject": [{"name": p, "digest": {"sha256": d}} for p, d in digests.items()],
              "predicate": {"unused": "Unused, just passed due to API requirements"}}
    body = json.dumps(legacy).encode()
    mis_encoded = f"DSSEV1 28 application/vnd.in-toto+json {len(body)} {body!r}".encode()
    (tmp_path / "v02.sig").write_bytes(_bundle(legacy, key.sign(mis_encoded, ec.ECDSA(hashes.SHA256())),
                                               {"publicKey": {"rawBytes": base64.b64encode(pem).decode()}}))
    assert verify_model(model, tmp_path / "v02.sig", trust).files == digests
    # The mis-encoded PAE counts for v0.2 statements only.
    current = json.loads(json.dumps(legacy))
    current["predicateType"] = "https://model_signing/signature/v1.0"
    body = json.dumps(current).encode()
    (tmp_path / "bad.sig").write_bytes(_bundle(current, key.sign(
        f"DSSEV1 28 application/vnd.in-toto+json {len(body)} {body!r}".encode(), ec.ECDSA(hashes.SHA256())),
        {"publicKey": {}}))
    with pytest.raises(SignatureError, match="does not verify"):
        read_bundle((tmp_path / "bad.sig").read_bytes(), trust)
    # v1.0 with rawBytes naming another key than the one given: refused before the signature.
    other = PrivateKey.generate("p384")
    (tmp_path / "raw.sig").write_bytes((tmp_path / "v02.sig").read_bytes().replace(
        base64.b64encode(pem), base64.b64encode(other.public.pem().encode())))
    with pytest.raises(SignatureError, match=r"in publicKey.rawBytes"):
        verify_model(model, tmp_path / "raw.sig", trust)


# ---- the commands, as the conformance adapter protocol runs them -------------------------


def test_cli_adapter_protocol(tmp_path: Path, pki: Pki) -> None:
    model, pair = make_model(tmp_path / "model"), key_pair(tmp_path, "p384")
    (model / "ignore-me").write_bytes(b"not signed")
    home, sig = tmp_path / "home", tmp_path / "model.sig"
    signed = ok(home, "oms", "sign-model", "--method", "key", "--model-path", model, "--output-bundle", sig,
                "--private-key", pair.private, "--ignore-paths", model / "ignore-me", "--json").json()
    assert "ignore-me" in signed["ignore_paths"] and not home.exists()  # no vault made
    ok(home, "oms", "verify-model", "--method", "key", "--model-path", model, "--bundle", sig,
       "--public-key", pair.public)
    flip(model / "config.json")
    r = refused(home, 3, "oms", "verify-model", "--method", "key", "--model-path", model, "--bundle", sig,
                "--public-key", pair.public)
    assert "config.json: expected sha256" in r.err
    flip(model / "config.json")
    cert_sig = tmp_path / "cert.sig"
    ok(home, "oms", "sign-model", "--method", "certificate", "--model-path", model, "--output-bundle", cert_sig,
       "--private-key", pki.leaf_key_path, "--signing-cert", pki.leaf, "--cert-chain", pki.intermediate)
    ok(home, "oms", "verify-model", "--method", "certificate", "--model-path", model, "--bundle", cert_sig,
       "--cert-chain", pki.root, "--ignore-unsigned-files")
    r = refused(home, 3, "oms", "verify-model", "--method", "certificate", "--model-path", model, "--bundle",
                cert_sig, "--cert-chain", write_pem(tmp_path / "other.pem", issue(
                    "other root", ec.generate_private_key(ec.SECP256R1()), None, ca=True)))
    assert "does not chain to any trusted root" in r.err
    r = refused(home, 2, "oms", "verify-model", "--method", "certificate", "--model-path", model, "--bundle",
                cert_sig, "--cert-chain", pair.public)
    assert "expected a PEM certificate" in r.err and "found a key" in r.err
    r = refused(home, 2, "oms", "sign-model", "--method", "sigstore", "--model-path", model, "--output-bundle",
                tmp_path / "s.sig")
    assert "Sigstore service" in r.err
    # The installed console script, as the suite runs it: exit codes only, no traceback.
    proc = subprocess.run([str(BIN / "seedvault"), "oms", "verify-model", "--method", "key", "--model-path",
                           str(model), "--bundle", str(cert_sig), "--public-key", str(pair.public)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "found a certificate chain" in proc.stderr and "Traceback" not in proc.stderr


def test_import_oms_accepts_what_verify_model_accepts(tmp_path: Path, pki: Pki) -> None:
    """A P-384 certificate bundle over one file, and a P-521 key bundle with unsigned extras."""
    client = Client(tmp_path / "home")
    publisher = PrivateKey.generate("ed25519")
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    sig = tmp_path / "w.sig"
    ms_signing.Config().use_certificate_signer(
        private_key=pki.leaf_key_path, signing_certificate=pki.leaf, certificate_chain=[pki.intermediate],
    ).sign(weights, sig)
    roots = CertificateTrust(tuple(x509.load_pem_x509_certificates(pki.root.read_bytes())))
    admitted, _ = import_oms(client, weights, sig, roots, name="acme/one", version="1", key=publisher,
                                   license="MIT")
    assert [f.path for f in admitted.verdict.manifest.files] == ["weights.safetensors"]
    assert "model signer" in admitted.verdict.manifest.origin.notes  # type: ignore[operator]
    model, pair = make_model(tmp_path / "model"), key_pair(tmp_path, "p521")
    shutil.rmtree(model / ".git")
    (model / ".gitattributes").unlink()
    ms_sign_key(model, tmp_path / "m.sig", pair.private)
    (model / "unsigned.txt").write_bytes(b"not part of the release")
    with pytest.raises(IntegrityError, match="present but not signed"):
        import_oms(client, model, tmp_path / "m.sig", KeyTrust(pair.key.public), name="acme/two", version="1",
                   key=publisher, license="MIT")
    admitted, _ = import_oms(client, model, tmp_path / "m.sig", KeyTrust(pair.key.public), name="acme/two",
                             version="1", key=publisher, license="MIT", ignore_unsigned=True,
                             allow_pickle=True)  # make_model's .bin files are not safetensors
    assert sorted(f.path for f in admitted.verdict.manifest.files) == SIGNED


def test_import_oms_keeps_signed_files_a_plain_publish_leaves_out(tmp_path: Path) -> None:
    """A file under .cache/ that the OMS signature covers is part of that release here too,
    and the release verifies (the manifest lists it, so verify keeps it)."""
    client = Client(tmp_path / "home")
    publisher = PrivateKey.generate("ed25519")
    client.save_policy(client.policy.with_key(TrustedKey(publisher.public, "publisher", ("acme/*",))))
    model, pair = make_model(tmp_path / "model"), key_pair(tmp_path, "p256")
    shutil.rmtree(model / ".git")
    (model / ".gitattributes").unlink()
    (model / ".cache").mkdir()
    (model / ".cache" / "tokenizer-state.json").write_text("{}")
    ms_sign_key(model, tmp_path / "m.sig", pair.private)
    admitted, _ = import_oms(client, model, tmp_path / "m.sig", KeyTrust(pair.key.public), name="acme/cached",
                             version="1", key=publisher, license="MIT", allow_pickle=True)
    assert ".cache/tokenizer-state.json" in [f.path for f in admitted.verdict.manifest.files]
    client.verify("acme/cached@1", fast=False)
