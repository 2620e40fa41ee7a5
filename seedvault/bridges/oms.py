"""OpenSSF model signing (OMS v1.0) bundles: sign a model, verify one, export and import.

The format, as the `model-signing` package (1.1.1) and the Go client write it: a Sigstore
bundle v0.3 (JSON) whose DSSE envelope holds an in-toto Statement v1 with predicate type
https://model_signing/signature/v1.0. The predicate lists every file as `{name, algorithm:
sha256, digest}`, sorted by name in code point order; the one subject is `{name: <model
name>, digest: {sha256: <root>}}`, the root being SHA-256 over the raw file digests in
listed order. The signature is DER ECDSA (P-256, P-384 or P-521, each over its own hash)
over the DSSE PAE. Who signed is in `verificationMaterial`: `publicKey.hint` (hex SHA-256
of the key's PEM; `rawBytes`, the PEM itself, before v1.1) for the key method, or
`x509CertificateChain` for the certificate method (oms_x509). Keyless Sigstore bundles
need the public Sigstore service and are refused by name.

Verification agrees with `model_signing verify` on purpose: only `signatures[0]` counts,
the model must hold exactly the signed files (after the ignore paths, see oms_files), and
symlinks are refused. Bundles of every released format verify: v0.2's (file digests as
subjects, predicate https://model_signing/Digests/v0.1, signed over a mis-encoded PAE),
v0.3 to v1.0's (`rawBytes`, no ignore_paths) and v1.1's. Where it parts ways, it is in the
messages (digests in hex, a reason for every refusal) and in checking certificates now.
This module needs only `cryptography`: `model-signing` is a test dependency.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from seedvault import hashing, licenses
from seedvault._json import load_object
from seedvault._text import listing, quote, show
from seedvault.bridges._files import copy_hashed, write_atomic
from seedvault.bridges.oms_files import (
    GIT_PATHS,
    SINGLE_FILE,
    compare,
    file_of,
    ignored,
    model_files,
    single_file_name,
    skipped,
)
from seedvault.bridges.oms_x509 import chain_material, parse_chain, verify_chain
from seedvault.client import Admitted, Client, Progress
from seedvault.errors import ManifestError, SignatureError, UnsafePathError, UsageError
from seedvault.manifest import PAYLOAD_TYPE, STATEMENT_TYPE
from seedvault.settings import DEFAULT_PIECE_LENGTH, MAX_ENVELOPE_BYTES, MAX_FILES_PER_MANIFEST
from seedvault.signing import PrivateKey, PublicKey, pae
from seedvault.signing.dsse import b64_field
from seedvault.signing.keys import OMS_KEY_TYPES

__all__ = ["GIT_PATHS", "CertificateTrust", "KeyTrust", "OmsExport", "OmsSigned", "OmsStatement", "OmsVerdict",
           "build_statement", "compare", "export_oms", "import_oms", "key_hint", "model_files", "read_bundle",
           "root_digest", "sign_bundle", "sign_model", "verify_model", "verify_oms"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# model_signing v0.2's predicate: the files are the subjects. Verified, never written (OMS v1.0, 11.2).
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"


def key_hint(key: PublicKey) -> str:
    """OMS's public key identifier: hex SHA-256 of the key's PEM text (not seedvault's key id)."""
    return hashlib.sha256(key.pem().encode()).hexdigest()


def _require_oms_key(key: PublicKey, what: str) -> None:
    if key.key_type not in OMS_KEY_TYPES:
        raise UsageError(
            f"{what}: OpenSSF model signing uses ECDSA keys only; expected a P-256, P-384 or P-521 key, "
            f"found {key.algorithm.label}",
            hint="make one with `seedvault keygen --type p256`",
        )


def root_digest(digests: Sequence[str]) -> str:
    """The subject digest: SHA-256 over the raw (not hex) file digests, in listed order."""
    h = hashlib.sha256()
    for d in digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


# ---- the statement ---------------------------------------------------------------------


def build_statement(
    model_name: str, files: Mapping[str, str], ignore_paths: Sequence[str] = GIT_PATHS,
    annotations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An OMS v1.0 statement for `files` (path -> SHA-256 hex): resources and ignore paths
    sorted by code point, so the same files always give the same statement bytes."""
    ordered = sorted(files)
    subject: dict[str, Any] = {"name": model_name, "digest": {"sha256": root_digest([files[p] for p in ordered])}}
    if annotations:
        subject["annotations"] = dict(annotations)  # in-toto's place for extras; OMS verifiers skip it
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": OMS_PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files", "hash_type": "sha256", "allow_symlinks": False,
                "ignore_paths": sorted(set(ignore_paths)),
            },
            "resources": [{"name": p, "algorithm": "sha256", "digest": files[p]} for p in ordered],
        },
    }


def key_material(key: PublicKey) -> dict[str, Any]:
    return {"publicKey": {"hint": key_hint(key)}, "tlogEntries": []}


def sign_bundle(statement: Mapping[str, Any], key: PrivateKey, material: Mapping[str, Any] | None = None) -> bytes:
    """A Sigstore bundle v0.3 (JSON bytes) holding `statement`, signed by an ECDSA key;
    `material` (default: the key's hint) says who signed."""
    _require_oms_key(key.public, "signing key")
    payload = json.dumps(statement, indent=2).encode()
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": dict(material or key_material(key.public)),
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            # DER-encoded ECDSA, the only form OMS verifiers accept (raw r||s fails).
            "signatures": [{"sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2).encode() + b"\n"


# ---- who signed: a key, or a certificate chained to a trusted root -----------------------


@dataclass(frozen=True)
class Signer:
    key: PublicKey
    by: str  # in people's words: "ECDSA P-384 key <id>" or "certificate 'CN=...' (root 'CN=...')"


class OmsTrust(Protocol):
    """What a verifier trusts; it finds the signer's key in a bundle's verificationMaterial."""

    def signer(self, material: Mapping[str, Any], source: str) -> Signer: ...


def _material_kind(material: Mapping[str, Any]) -> str:
    if "x509CertificateChain" in material:
        return "a certificate chain (verify it with the certificate method)"
    if "certificate" in material:
        return "a Sigstore keyless certificate (it needs the public Sigstore service, which seedvault does not use)"
    if "publicKey" in material:
        return "a public key (verify it with the key method)"
    return "no signer at all"


@dataclass(frozen=True)
class KeyTrust:
    """The key method: the user names the signer's public key."""

    public_key: PublicKey

    def signer(self, material: Mapping[str, Any], source: str) -> Signer:
        key = self.public_key
        _require_oms_key(key, "public key")
        named = material.get("publicKey")
        if not isinstance(named, dict):
            raise SignatureError(f"{source}: expected a bundle signed with a key (verificationMaterial.publicKey), "
                                 f"found {_material_kind(material)}")
        hint, raw = named.get("hint"), named.get("rawBytes")
        if hint is not None and not isinstance(hint, str):
            raise ManifestError(f"{source}.verificationMaterial.publicKey.hint: expected hex text, found {quote(hint)}")
        if hint and hint != key_hint(key):
            raise SignatureError(
                f"{source}: signed by the key with hint {hint}; the public key given has hint {key_hint(key)} "
                f"(key id {key.key_id})",
                hint="verify with the signer's public key; the hint is the SHA-256 of its PEM text",
            )
        if not hint and raw is not None:  # bundles before v1.1 carry the key itself
            named_key = _raw_key(b64_field(raw, f"{source}.verificationMaterial.publicKey.rawBytes"), source)
            if named_key.key_id != key.key_id:
                raise SignatureError(
                    f"{source}: signed by the key {named_key.key_id} (in publicKey.rawBytes); the public key given "
                    f"is {key.key_id}", hint="verify with the signer's public key")
        # With neither, the signature alone decides (as model_signing does).
        return Signer(key, f"{key.algorithm.label} key {key.key_id} (OMS hint {key_hint(key)})")


def _raw_key(raw: bytes, source: str) -> PublicKey:
    """publicKey.rawBytes: the PEM text (model_signing, Go before v1.1), or DER."""
    try:
        loaded = (serialization.load_pem_public_key(raw) if raw.lstrip().startswith(b"-----")
                  else serialization.load_der_public_key(raw))
    except (ValueError, UnsupportedAlgorithm):
        raise ManifestError(f"{source}.verificationMaterial.publicKey.rawBytes: expected a public key, "
                            "found bytes that do not parse") from None
    return PublicKey.from_key(loaded, f"{source}.verificationMaterial.publicKey.rawBytes", OMS_KEY_TYPES)


@dataclass(frozen=True)
class CertificateTrust:
    """The certificate method: the user names the root certificates they trust."""

    roots: tuple[x509.Certificate, ...]
    now: datetime | None = None  # the time to check validity at; None: when verifying

    def signer(self, material: Mapping[str, Any], source: str) -> Signer:
        if "x509CertificateChain" not in material:
            raise SignatureError(f"{source}: expected a bundle signed with a certificate "
                                 f"(verificationMaterial.x509CertificateChain), found {_material_kind(material)}")
        certified = verify_chain(parse_chain(material, f"{source}.verificationMaterial"), self.roots,
                                 source, self.now)
        return Signer(certified.key, f"certificate {quote(certified.leaf)} ({certified.key.algorithm.label} key "
                                     f"{certified.key.key_id}), chained to the trusted root {quote(certified.root)}")


# ---- reading a bundle ------------------------------------------------------------------


@dataclass(frozen=True)
class OmsStatement:
    """What a verified bundle says: the model's files and what to leave out when comparing."""

    model_name: str
    root: str
    files: dict[str, str]  # path -> SHA-256 hex, in listed order
    ignore_paths: tuple[str, ...]
    signer: Signer
    bundle_sha256: str
    legacy: bool = False  # the v0.2 format (predicate Digests/v0.1)


def _json(raw: bytes, where: str) -> dict[str, Any]:
    return load_object(raw, where)  # the one strict reader: unique names, no NaN, ...


# What `_field` expects, in JSON's words ("expected an object, found null").
_JSON_KINDS: Mapping[type, str] = {dict: "an object", list: "an array", str: "a non-empty string"}


def _field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ManifestError(f"{where}.{key}: expected {_JSON_KINDS.get(kind, 'a value')}, found {show(value)}")
    return value


def _legacy_pae(payload: bytes) -> bytes:
    """The PAE model_signing v0.2 signed: 'DSSEV1', and the payload as Python's repr of bytes
    (a bug it shipped with); accepted for v0.2 bundles only."""
    return f"DSSEV1 {len(PAYLOAD_TYPE)} {PAYLOAD_TYPE} {len(payload)} {payload!r}".encode()


def _legacy_verifies(key: PublicKey, sig: bytes, payload: bytes) -> bool:
    """v0.2 signatures: the legacy PAE, hashed with the curve's hash or (v0.2's other bug)
    always SHA-256."""
    if not isinstance(key.key, ec.EllipticCurvePublicKey):
        return False
    for digest in (key.algorithm.name, "p256"):
        h = {"p256": hashes.SHA256(), "p384": hashes.SHA384(), "p521": hashes.SHA512()}[digest]
        try:
            key.key.verify(sig, _legacy_pae(payload), ec.ECDSA(h))
            return True
        except InvalidSignature:
            continue
    return False


def _predicate_type(payload: bytes) -> object:
    """The payload's predicateType, read before the signature is checked only to pick the
    legacy encoding; nothing in it is trusted until a signature verifies."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data.get("predicateType") if isinstance(data, dict) else None


def read_bundle(raw: bytes, trust: OmsTrust | PublicKey, source: str = "OMS bundle") -> OmsStatement:
    """Find the signer under `trust`, check the signature, then parse the statement.

    Nothing in the statement is read before the signature over it verifies.
    """
    trust = KeyTrust(trust) if isinstance(trust, PublicKey) else trust
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise ManifestError(f"{source}: expected at most {MAX_ENVELOPE_BYTES} bytes, found {len(raw)}")
    if not raw.strip():
        raise ManifestError(f"{source}: expected an OMS bundle (JSON), found an empty file")
    bundle = _json(raw, source)
    media = bundle.get("mediaType")
    if media != BUNDLE_MEDIA_TYPE:
        raise ManifestError(f"{source}: expected mediaType {quote(BUNDLE_MEDIA_TYPE)}, found {quote(media)}")
    material = _field(bundle, "verificationMaterial", dict, source)
    envelope = _field(bundle, "dsseEnvelope", dict, source)
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise ManifestError(f"{source}: expected payloadType {quote(PAYLOAD_TYPE)}, "
                            f"found {quote(envelope.get('payloadType'))}")
    payload = b64_field(envelope.get("payload"), f"{source}.dsseEnvelope.payload")
    sigs = _field(envelope, "signatures", list, f"{source}.dsseEnvelope")
    if not sigs or not isinstance(sigs[0], dict):
        raise SignatureError(f"{source}: expected a signature in dsseEnvelope.signatures, found none")
    signer = trust.signer(material, source)
    # Like model_signing, only the first signature counts; a co-signature after it is not checked.
    sig = b64_field(sigs[0].get("sig"), f"{source}.dsseEnvelope.signatures[0].sig")
    legacy = _predicate_type(payload) == LEGACY_PREDICATE_TYPE
    if not signer.key.verify(sig, pae(PAYLOAD_TYPE, payload)) and not (
        legacy and _legacy_verifies(signer.key, sig, payload)
    ):
        raise SignatureError(
            f"{source}: signature does not verify with the {signer.by}; "
            "the statement was changed after signing, or another key signed it",
            hint="do not use the model; get the bundle again from its publisher",
        )
    return _statement(_json(payload, f"{source} statement"), source, signer, hashlib.sha256(raw).hexdigest())


def _statement(data: Mapping[str, Any], source: str, signer: Signer, bundle_sha256: str) -> OmsStatement:
    where = f"{source} statement"
    if data.get("_type") != STATEMENT_TYPE:
        raise ManifestError(f"{where}._type: expected {quote(STATEMENT_TYPE)}, found {quote(data.get('_type'))}")
    subjects = _field(data, "subject", list, where)
    if data.get("predicateType") == LEGACY_PREDICATE_TYPE:
        # v0.2: each file is a subject; no serialization (files, sha256, default ignores).
        files = _resources([{"name": s.get("name"), "algorithm": "sha256", "digest": (s.get("digest") or {})
                            .get("sha256")} if isinstance(s, dict) else s for s in subjects], f"{where}.subject")
        return OmsStatement("", root_digest(list(files.values())), files, (), signer, bundle_sha256, legacy=True)
    if data.get("predicateType") != OMS_PREDICATE_TYPE:
        raise ManifestError(
            f"{where}.predicateType: expected {quote(OMS_PREDICATE_TYPE)}, found {quote(data.get('predicateType'))}"
        )
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ManifestError(f"{where}.subject: expected exactly one subject (the model), found {len(subjects)}")
    name = _field(subjects[0], "name", str, f"{where}.subject[0]")
    root = _field(_field(subjects[0], "digest", dict, f"{where}.subject[0]"), "sha256", str,
                  f"{where}.subject[0].digest")
    predicate = _field(data, "predicate", dict, where)
    ser = _field(predicate, "serialization", dict, f"{where}.predicate")
    if (ser.get("method"), ser.get("hash_type")) != ("files", "sha256"):
        raise ManifestError(
            f"{where}.predicate.serialization: expected method 'files' with hash_type 'sha256', found "
            f"method {quote(ser.get('method'))} with hash_type {quote(ser.get('hash_type'))}",
            hint="re-sign the model with model_signing's default (files, sha256) serialization",
        )
    ignore = ser.get("ignore_paths", [])  # absent before v1.1: only the defaults apply
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ManifestError(f"{where}.predicate.serialization.ignore_paths: expected a list of paths, "
                            f"found {quote(ignore)}")
    files = _resources(_field(predicate, "resources", list, f"{where}.predicate"), f"{where}.predicate.resources")
    computed = root_digest(list(files.values()))
    if computed != root:
        raise ManifestError(
            f"{where}: expected the subject digest to be the root of the listed file digests, {computed}; found {root}"
        )
    return OmsStatement(name, root, files, tuple(ignore), signer, bundle_sha256)


def _check_name(name: object, where: str, only: bool) -> str:
    """A resource name as OMS v1.0 6.1.2 has them: relative, '/'-separated, canonical; "."
    only as the one file of a single-file model."""
    if not isinstance(name, str) or not name:
        raise UnsafePathError(f"{where}: expected a relative path, found {show(name)}")
    if name == SINGLE_FILE and only:
        return name
    parts = name.split("/")
    if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"{where}: expected a relative path inside the model, found {quote(name)}, which "
                              + ("is absolute" if name.startswith("/") else "contains NUL" if "\x00" in name
                                 else "has an empty, '.' or '..' component"))
    if any("\ud800" <= c <= "\udfff" for c in name):
        raise UnsafePathError(f"{where}: expected a path in valid Unicode, found {quote(name)}")
    return name


def _resources(items: list[Any], where: str) -> dict[str, str]:
    if not items or len(items) > MAX_FILES_PER_MANIFEST:
        raise ManifestError(f"{where}: expected 1 to {MAX_FILES_PER_MANIFEST} files, found {len(items)}")
    files: dict[str, str] = {}
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{at}: expected an object with name, algorithm and digest, found {quote(item)}")
        path = _check_name(item.get("name"), f"{at}.name", only=len(items) == 1)
        if item.get("algorithm") != "sha256":
            raise ManifestError(f"{at}.algorithm: expected 'sha256', found {quote(item.get('algorithm'))}")
        digest = _field(item, "digest", str, at)
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ManifestError(f"{at}.digest: expected 64 lowercase hex characters, found {quote(digest)}")
        if path in files:
            raise UnsafePathError(f"{where}: expected each file once, found {quote(path)} twice")
        files[path] = digest
    return files


# ---- signing and verifying a model -----------------------------------------------------


def model_name(model: Path) -> str:
    """The subject name: the model directory's or file's name (OMS v1.0 6.5)."""
    return Path(model).absolute().name or "model"


@dataclass(frozen=True)
class OmsSigned:
    model: Path
    signature: Path
    root: str
    files: tuple[str, ...]
    ignore_paths: tuple[str, ...]
    signer: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": str(self.model), "signature": str(self.signature), "root_digest": self.root,
                "files": list(self.files), "ignore_paths": list(self.ignore_paths), "signer": self.signer}


def sign_model(
    model: Path, key: PrivateKey, out: Path, *, ignore: Sequence[str] = (),
    certificate: tuple[x509.Certificate, Sequence[x509.Certificate]] | None = None,
) -> OmsSigned:
    """Sign MODEL (a directory or one file) as an OMS v1.0 bundle written to OUT.

    `ignore`: paths relative to the model root to leave out (with the git paths and OUT
    itself when it lies inside the model). With `certificate` (leaf, chain), the bundle
    carries the chain instead of the key's hint (the certificate method).
    """
    model, out = Path(model), Path(out)
    _require_oms_key(key.public, "signing key")
    files = model_files(model, ignore, out)
    if not files:
        raise UsageError(f"{model}: expected at least one file to sign, found none"
                         + (f" outside the ignored paths ({listing(skipped(model, ignore, out))})"),
                         hint="an empty model cannot be signed (OMS v1.0 6.1)")
    digests = {f: hashing.sha256_file(file_of(model, f), f) for f in files}
    left_out = skipped(model, ignore, out) if model.is_dir() else sorted(GIT_PATHS)
    statement = build_statement(model_name(model), digests, left_out)
    if certificate is None:
        material, signer = key_material(key.public), f"{key.public.algorithm.label} key {key.key_id}"
    else:
        material = chain_material(certificate[0], certificate[1], key)
        signer = f"certificate {quote(certificate[0].subject.rfc4514_string())}"
    write_atomic(out, sign_bundle(statement, key, material))
    return OmsSigned(model, out, statement["subject"][0]["digest"]["sha256"], tuple(sorted(files)),
                     tuple(left_out), signer)


@dataclass(frozen=True)
class OmsVerdict:
    directory: Path
    model_name: str
    root: str
    files: dict[str, str]
    key_id: str  # seedvault's key id: SHA-256 of the public key's DER SubjectPublicKeyInfo
    key_hint: str  # OMS's: SHA-256 of its PEM text
    bundle_sha256: str
    signer: str = ""  # who signed, in people's words (a key, or a certificate and its root)

    def evidence(self) -> str:
        """One line for a manifest's origin notes: which OMS signature vouched for the files."""
        return (f"Verified before import against an OpenSSF model-signing (OMS v1.0) bundle with SHA-256 "
                f"{self.bundle_sha256}, signed by {self.signer}; root digest {self.root} over {len(self.files)} files.")

    def origin_record(self) -> dict[str, Any]:
        """The same evidence as structured data, signed into the manifest's origin (`oms`)."""
        return {"format": "OMS v1.0", "bundle_sha256": self.bundle_sha256, "key_id": self.key_id,
                "key_hint": self.key_hint, "root_digest": self.root, "model_name": self.model_name}

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "model_name": self.model_name, "root_digest": self.root,
                "files": self.files, "key_id": self.key_id, "key_hint": self.key_hint,
                "bundle_sha256": self.bundle_sha256, "signer": self.signer}


def _read_signature(signature: Path) -> bytes:
    try:
        return Path(signature).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"signature file {signature} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"signature file {signature}: expected a file, found a directory") from None


def _present(model: Path, st: OmsStatement, ignore: Sequence[str], signature: Path,
             ignore_unsigned: bool) -> dict[str, Path]:
    """The model's files to compare, by resource name: all of them, or with
    `ignore_unsigned` only those the statement lists."""
    files = model_files(model, [*st.ignore_paths, *ignore], signature)
    if files == [SINGLE_FILE]:
        return {single_file_name(st.files, model): model}
    return {f: file_of(model, f) for f in files if not ignore_unsigned or f in st.files}


def _verdict(model: Path, st: OmsStatement, found: Mapping[str, str], ignore_unsigned: bool) -> OmsVerdict:
    compare(st.files, found, model, ignore_unsigned=ignore_unsigned)
    key = st.signer.key
    return OmsVerdict(model, st.model_name, st.root, dict(st.files), key.key_id, key_hint(key), st.bundle_sha256,
                      st.signer.by)


def verify_model(model: Path, signature: Path, trust: OmsTrust | PublicKey, *, ignore: Sequence[str] = (),
                 ignore_unsigned: bool = False) -> OmsVerdict:
    """Verify MODEL (a directory or one file) against an OMS bundle, as `model_signing verify` does.

    `ignore`: more paths (relative to the model root) to leave out, besides the statement's;
    `ignore_unsigned`: tolerate files present but not signed."""
    model = Path(model)
    st = read_bundle(_read_signature(signature), trust, str(signature))
    present = _present(model, st, ignore, signature, ignore_unsigned)
    found = {name: hashing.sha256_file(path, name) for name, path in present.items()}
    return _verdict(model, st, found, ignore_unsigned)


def verify_oms(directory: Path, signature: Path, public_key: PublicKey) -> OmsVerdict:
    """Verify a model against an OMS bundle signed with a key (`model_signing verify key`)."""
    return verify_model(directory, signature, KeyTrust(public_key))


# ---- the vault: export a release, import a verified model ----------------------------


@dataclass(frozen=True)
class OmsExport:
    ref: str
    digest: str
    signature: Path
    directory: Path  # the verified snapshot the bundle covers: pass it to `model_signing verify key`
    root: str
    key_hint: str

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "signature": str(self.signature),
                "directory": str(self.directory), "root_digest": self.root, "key_hint": self.key_hint}


def export_oms(client: Client, ref: str, key: PrivateKey, out: Path) -> OmsExport:
    """Sign a verified release's snapshot as an OMS bundle that `model_signing verify key` accepts.

    Every file is re-hashed first (a full verification): a new signature vouches for the
    bytes now, not for whatever was checked at import. (A release with files under .git*
    paths needs `model_signing verify ... --no-ignore-git-paths`, which otherwise skips them.)
    """
    _require_oms_key(key.public, "signing key")
    verdict = client.verify(ref)
    manifest = verdict.manifest
    snapshot = client.vault.snapshot_dir(manifest)
    if Path(out).absolute().is_relative_to(snapshot.absolute()):
        raise UsageError(f"{out}: the signature cannot go inside the vault's snapshot {snapshot}",
                         hint="write it elsewhere and pass it to the verifier with --signature")
    covered = [f.path for f in manifest.files]
    ignore = [p for p in GIT_PATHS if not any(ignored(c, [p]) for c in covered)]
    statement = build_statement(
        snapshot.name, {f.path: f.sha256 for f in manifest.files}, ignore,
        # A pointer back to the release, for readers of the bundle; OMS verifiers skip subject annotations.
        annotations={"seedvault": {"ref": manifest.ref, "manifest_digest": verdict.digest,
                                   "license": manifest.license.spdx}},
    )
    write_atomic(Path(out), sign_bundle(statement, key))
    root = statement["subject"][0]["digest"]["sha256"]
    return OmsExport(manifest.ref, verdict.digest, Path(out), snapshot, root, key_hint(key.public))


def import_oms(
    client: Client,
    directory: Path,
    signature: Path,
    trust: OmsTrust | PublicKey,
    *,
    name: str,
    version: str,
    key: PrivateKey,
    license: str,
    ignore: Sequence[str] = (),
    ignore_unsigned: bool = False,
    publisher: str = "",
    source_url: str | None = None,
    notes: str | None = None,
    expires: datetime | None = None,
    allow_pickle: bool = False,
    piece_length: int = DEFAULT_PIECE_LENGTH,
    progress: Progress | None = None,
) -> tuple[Admitted, OmsVerdict]:
    """Verify an OMS-signed model (as `verify_model` does, same arguments), then publish
    exactly the verified bytes as NAME@VERSION.

    The signed files are copied into private staging while hashed and the signature is
    checked against that copy, which is then what gets published: nothing can change in
    between, and unsigned files (with `ignore_unsigned`) are never copied. The OMS evidence
    (bundle digest, signer, root digest) is signed into the origin, as structured data
    under `oms` and as a sentence in the notes.
    """
    license = licenses.normalize(license, "--license")  # before the copy, not after
    directory = Path(directory)
    st = read_bundle(_read_signature(signature), trust, str(signature))
    present = _present(directory, st, ignore, signature, ignore_unsigned)
    with client.vault.staging("import-oms") as staged:
        found, copied = {}, []
        for rel, src in present.items():
            dst = staged / (directory.name if rel == SINGLE_FILE else rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            found[rel] = copy_hashed(src, dst, rel=rel).sha256
            copied.append(dst.relative_to(staged).as_posix())
        verdict = _verdict(directory, st, found, ignore_unsigned)
        # Exactly the files the OMS signature covers (also under .git/ or .cache/, which a plain
        # publish leaves out), linked from this private copy: no third copy.
        admitted = client.publish(
            staged, name=name, version=version, license=license, key=key, publisher=publisher,
            source_url=source_url, notes=" ".join(filter(None, [verdict.evidence(), notes])),
            origin_extra={"oms": verdict.origin_record()},
            expires=expires, allow_pickle=allow_pickle, piece_length=piece_length, progress=progress,
            store="link", files=copied,
        )
    return admitted, verdict
