"""OpenSSF model signing (OMS v1.0) bundles: export one, verify one, import through one.

The format, as the `model-signing` package (1.1.1) writes and checks it with keys: a
Sigstore bundle v0.3 (JSON) whose DSSE envelope holds an in-toto Statement v1 with
predicate type https://model_signing/signature/v1.0. The predicate lists every file as
`{name, algorithm: sha256, digest}`; the one subject is `{name: <directory name>, digest:
{sha256: <root>}}`, the root being SHA-256 over the raw file digests in listed order. The
signature is DER ECDSA over the DSSE PAE; `verificationMaterial.publicKey.hint` is the hex
SHA-256 of the signer's public key in PEM.

Only ECDSA P-256 keys are used here (the curve seedvault also signs with; the OMS
verifier refuses Ed25519). This module needs only `cryptography`: `model-signing` is a
test dependency, used to check that both tools accept and refuse the same things.

Verification agrees with `model_signing verify key` on purpose: only `signatures[0]`
counts, the directory must hold exactly the signed files (after the statement's
`ignore_paths`, the git files it ignores by default, and the signature file itself), and
symlinks are refused. Where it parts ways, it is in the messages: digests in hex, and a
reason for every refusal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from seedvault import hashing, licenses
from seedvault._json import load_object
from seedvault._text import MAX_LIST_ITEMS, cut, listing, quote, show
from seedvault.bridges._files import copy_hashed, write_atomic
from seedvault.client import Admitted, Client, Progress, scan_model_dir
from seedvault.errors import IntegrityError, ManifestError, SignatureError, UnsafePathError, UsageError
from seedvault.manifest import PAYLOAD_TYPE, STATEMENT_TYPE, check_relative_path
from seedvault.settings import DEFAULT_PIECE_LENGTH, MAX_ENVELOPE_BYTES, MAX_FILES_PER_MANIFEST
from seedvault.signing import PrivateKey, PublicKey, pae
from seedvault.signing.dsse import b64_field

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# What `model_signing` ignores unless told not to (--ignore-git-paths is its default).
GIT_PATHS = (".gitignore", ".gitattributes", ".git", ".github")


def key_hint(key: PublicKey) -> str:
    """OMS's public key identifier: hex SHA-256 of the key's PEM text (not seedvault's key id)."""
    return hashlib.sha256(key.pem().encode()).hexdigest()


def _require_p256(key: PublicKey, what: str) -> None:
    if key.key_type != "p256":
        raise UsageError(
            f"{what}: OpenSSF model signing verifies ECDSA keys only; expected a P-256 key, found {key.key_type}",
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
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An OMS v1.0 statement for `files` (path -> SHA-256 hex), sorted by path components."""
    ordered = sorted(files, key=lambda p: PurePosixPath(p).parts)
    resources = [{"name": p, "algorithm": "sha256", "digest": files[p]} for p in ordered]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest([files[p] for p in ordered])}}],
        "predicateType": OMS_PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files", "hash_type": "sha256", "allow_symlinks": False,
                "ignore_paths": list(ignore_paths),
            },
            "resources": resources,
            # Verifiers ignore other predicate keys (measured with model_signing 1.1.1).
            **(extra or {}),
        },
    }


def sign_bundle(statement: Mapping[str, Any], key: PrivateKey) -> bytes:
    """A Sigstore bundle v0.3 (JSON bytes) holding `statement`, signed by a P-256 key."""
    _require_p256(key.public, "signing key")
    payload = json.dumps(statement, indent=2).encode()
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            # DER-encoded ECDSA, the only form OMS verifiers accept (raw r||s fails).
            "signatures": [{"sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2).encode() + b"\n"


@dataclass(frozen=True)
class OmsStatement:
    """What a verified bundle says: the model's files and what to leave out when comparing."""

    model_name: str
    root: str
    files: dict[str, str]  # path -> SHA-256 hex, in listed order
    ignore_paths: tuple[str, ...]
    hint: str  # the bundle's public key hint ("" when absent)
    bundle_sha256: str


def _json(raw: bytes, where: str) -> dict[str, Any]:
    return load_object(raw, where)  # the one strict reader: unique names, no NaN, ...


# What `_field` expects, in JSON's words ("expected an object, found null").
_JSON_KINDS: Mapping[type, str] = {dict: "an object", list: "an array", str: "a non-empty string"}


def _field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ManifestError(f"{where}.{key}: expected {_JSON_KINDS.get(kind, 'a value')}, found {show(value)}")
    return value


def read_bundle(raw: bytes, public_key: PublicKey, source: str = "OMS bundle") -> OmsStatement:
    """Check a bundle's key hint and signature with `public_key`, then parse its statement.

    Nothing in the statement is read before the signature over it verifies.
    """
    _require_p256(public_key, "public key")
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise ManifestError(f"{source}: expected at most {MAX_ENVELOPE_BYTES} bytes, found {len(raw)}")
    bundle = _json(raw, source)
    media = bundle.get("mediaType")
    if media != BUNDLE_MEDIA_TYPE:
        raise ManifestError(f"{source}: expected mediaType {quote(BUNDLE_MEDIA_TYPE)}, found {quote(media)}")
    material = _field(bundle, "verificationMaterial", dict, source)
    named = material.get("publicKey")
    hint = named.get("hint") if isinstance(named, dict) else None
    if hint is not None and not isinstance(hint, str):
        raise ManifestError(f"{source}.verificationMaterial.publicKey.hint: expected hex text, found {quote(hint)}")
    hint = hint or ""  # bundles from before the hint existed have none; the signature still decides
    expected_hint = key_hint(public_key)
    if hint and hint != expected_hint:
        raise SignatureError(
            f"{source}: signed by the key with hint {hint}; the public key given has hint {expected_hint} "
            f"(key id {public_key.key_id})",
            hint="verify with the signer's public key; the hint is the SHA-256 of its PEM text",
        )
    envelope = _field(bundle, "dsseEnvelope", dict, source)
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise ManifestError(f"{source}: expected payloadType {quote(PAYLOAD_TYPE)}, "
                            f"found {quote(envelope.get('payloadType'))}")
    payload = b64_field(envelope.get("payload"), f"{source}.dsseEnvelope.payload")
    sigs = _field(envelope, "signatures", list, f"{source}.dsseEnvelope")
    if not sigs or not isinstance(sigs[0], dict):
        raise SignatureError(f"{source}: expected a signature in dsseEnvelope.signatures, found none")
    # Like model_signing, only the first signature counts; a co-signature after it is not checked.
    sig = b64_field(sigs[0].get("sig"), f"{source}.dsseEnvelope.signatures[0].sig")
    if not public_key.verify(sig, pae(PAYLOAD_TYPE, payload)):
        raise SignatureError(
            f"{source}: signature does not verify with key {expected_hint} (hint) / {public_key.key_id} (key id); "
            "the statement was changed after signing, or another key signed it",
            hint="do not use the model; get the bundle again from its publisher",
        )
    return _statement(_json(payload, f"{source} statement"), source, hint, hashlib.sha256(raw).hexdigest())


def _statement(data: Mapping[str, Any], source: str, hint: str, bundle_sha256: str) -> OmsStatement:
    where = f"{source} statement"
    if data.get("_type") != STATEMENT_TYPE:
        raise ManifestError(f"{where}._type: expected {quote(STATEMENT_TYPE)}, found {quote(data.get('_type'))}")
    if data.get("predicateType") != OMS_PREDICATE_TYPE:
        raise ManifestError(
            f"{where}.predicateType: expected {quote(OMS_PREDICATE_TYPE)}, found {quote(data.get('predicateType'))}"
        )
    subjects = _field(data, "subject", list, where)
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
    ignore = ser.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ManifestError(f"{where}.predicate.serialization.ignore_paths: expected a list of paths, "
                            f"found {quote(ignore)}")
    files = _resources(_field(predicate, "resources", list, f"{where}.predicate"), f"{where}.predicate.resources")
    computed = root_digest(list(files.values()))
    if computed != root:
        raise ManifestError(
            f"{where}: expected the subject digest to be the root of the listed file digests, {computed}; found {root}"
        )
    return OmsStatement(name, root, files, tuple(ignore), hint, bundle_sha256)


def _resources(items: list[Any], where: str) -> dict[str, str]:
    if not items or len(items) > MAX_FILES_PER_MANIFEST:
        raise ManifestError(f"{where}: expected 1 to {MAX_FILES_PER_MANIFEST} files, found {len(items)}")
    files: dict[str, str] = {}
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{at}: expected an object with name, algorithm and digest, found {quote(item)}")
        path = check_relative_path(item.get("name"), f"{at}.name")
        if item.get("algorithm") != "sha256":
            raise ManifestError(f"{at}.algorithm: expected 'sha256', found {quote(item.get('algorithm'))}")
        digest = _field(item, "digest", str, at)
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ManifestError(f"{at}.digest: expected 64 lowercase hex characters, found {quote(digest)}")
        if path in files:
            raise UnsafePathError(f"{where}: expected each file once, found {quote(path)} twice")
        files[path] = digest
    return files


# ---- comparing a directory ------------------------------------------------------------


def _ignored(rel: str, ignore: Sequence[str]) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in ignore)


def _clean_ignores(paths: Sequence[str]) -> list[str]:
    """The ignore entries that name something inside the model directory, normalized.

    Others (absolute, '..', '.') cannot cover a model file the way model_signing applies
    them, and are dropped, so a file they would seem to cover counts as unsigned: an entry
    like '.' must not wave the whole directory through.
    """
    out = []
    for p in paths:
        parts = PurePosixPath(p).parts
        if parts and not PurePosixPath(p).is_absolute() and ".." not in parts and parts != (".",):
            out.append(PurePosixPath(*parts).as_posix())
    return out


def _refuse_symlink(directory: Path, rel: str) -> None:
    if (directory / rel).is_symlink():
        raise UnsafePathError(f"{rel}: expected a regular file or directory, found a symlink "
                              "(OMS signatures are made with allow_symlinks false)")


def model_files(directory: Path, ignore: Sequence[str], signature: Path | None = None) -> list[str]:
    """The files under `directory` an OMS verifier compares: all but the ignored and the signature."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: expected a model directory, found " + ("a file" if directory.exists()
                                                                               else "nothing"))
    skip = _clean_ignores([*ignore, *GIT_PATHS])
    sig_rel = None
    if signature is not None and signature.absolute().is_relative_to(directory.absolute()):
        sig_rel = signature.absolute().relative_to(directory.absolute()).as_posix()
    found = []
    for root, dirs, names in os.walk(directory):
        base = Path(root).relative_to(directory)
        dirs[:] = [d for d in dirs if not _ignored((base / d).as_posix(), skip)]  # never descend into ignored trees
        for d in dirs:
            _refuse_symlink(directory, (base / d).as_posix())
        for name in names:
            rel = (base / name).as_posix()
            if rel == sig_rel or _ignored(rel, skip):
                continue
            _refuse_symlink(directory, rel)
            if not (directory / rel).is_file():
                raise UnsafePathError(f"{rel}: expected a regular file, found a special file")
            found.append(rel)
    return sorted(found, key=lambda p: PurePosixPath(p).parts)


def compare(expected: Mapping[str, str], found: Mapping[str, str], directory: Path) -> None:
    """Refuse any difference between signed and present files, naming each, digests in hex."""
    problems = []
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"signed but missing: {listing(missing)}")
    if extra:
        problems.append(f"present but not signed: {listing(extra)}")
    changed = [p for p in expected if p in found and found[p] != expected[p]]
    for p in changed[:MAX_LIST_ITEMS]:
        problems.append(f"{cut(p)}: expected sha256 {expected[p]}, found {found[p]}")
    if len(changed) > MAX_LIST_ITEMS:
        problems.append(f"{len(changed) - MAX_LIST_ITEMS:,} more files with another sha256")
    if problems:
        first = changed[0] if changed else None
        raise IntegrityError(
            f"{directory}: the files do not match the OMS signature; " + "; ".join(problems),
            path=first, expected=expected[first] if first else None, found=found[first] if first else None,
            hint="the model was changed after signing; do not use it",
        )


# ---- the three operations -------------------------------------------------------------


@dataclass(frozen=True)
class OmsVerdict:
    directory: Path
    model_name: str
    root: str
    files: dict[str, str]
    key_id: str  # seedvault's key id: SHA-256 of the public key's DER SubjectPublicKeyInfo
    key_hint: str  # OMS's: SHA-256 of its PEM text
    bundle_sha256: str

    def evidence(self) -> str:
        """One line for a manifest's origin notes: which OMS signature vouched for the files."""
        return (f"Verified before import against an OpenSSF model-signing (OMS v1.0) bundle with SHA-256 "
                f"{self.bundle_sha256}, signed by ECDSA P-256 key {self.key_id} (OMS hint {self.key_hint}); "
                f"root digest {self.root} over {len(self.files)} files.")

    def origin_record(self) -> dict[str, Any]:
        """The same evidence as structured data, signed into the manifest's origin (`oms`)."""
        return {"format": "OMS v1.0", "bundle_sha256": self.bundle_sha256, "key_id": self.key_id,
                "key_hint": self.key_hint, "root_digest": self.root, "model_name": self.model_name}

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "model_name": self.model_name, "root_digest": self.root,
                "files": self.files, "key_id": self.key_id, "key_hint": self.key_hint,
                "bundle_sha256": self.bundle_sha256}


def _read_signature(signature: Path) -> bytes:
    try:
        return Path(signature).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"signature file {signature} does not exist") from None


def _verdict(directory: Path, st: OmsStatement, key: PublicKey, found: Mapping[str, str]) -> OmsVerdict:
    compare(st.files, found, directory)
    return OmsVerdict(directory, st.model_name, st.root, dict(st.files), key.key_id, key_hint(key), st.bundle_sha256)


def verify_oms(directory: Path, signature: Path, public_key: PublicKey) -> OmsVerdict:
    """Verify a model directory against an OMS bundle (as `model_signing verify key` does)."""
    st = read_bundle(_read_signature(signature), public_key, str(signature))
    files = model_files(directory, st.ignore_paths, signature)
    found = {p: hashing.sha256_file(directory / p) for p in files}
    return _verdict(directory, st, public_key, found)


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
    _require_p256(key.public, "signing key")
    verdict = client.verify(ref)
    manifest = verdict.manifest
    snapshot = client.vault.snapshot_dir(manifest)
    if Path(out).absolute().is_relative_to(snapshot.absolute()):
        raise UsageError(f"{out}: the signature cannot go inside the vault's snapshot {snapshot}",
                         hint="write it elsewhere and pass it to the verifier with --signature")
    covered = [f.path for f in manifest.files]
    ignore = [p for p in GIT_PATHS if not any(_ignored(c, [p]) for c in covered)]
    statement = build_statement(
        snapshot.name, {f.path: f.sha256 for f in manifest.files}, ignore,
        # A pointer back to the release, for readers of the bundle; OMS verifiers skip it.
        extra={"seedvault": {"ref": manifest.ref, "manifest_digest": verdict.digest,
                             "license": manifest.license.spdx}},
    )
    write_atomic(Path(out), sign_bundle(statement, key))
    root = statement["subject"][0]["digest"]["sha256"]
    return OmsExport(manifest.ref, verdict.digest, Path(out), snapshot, root, key_hint(key.public))


def import_oms(
    client: Client,
    directory: Path,
    signature: Path,
    public_key: PublicKey,
    *,
    name: str,
    version: str,
    key: PrivateKey,
    license: str,
    publisher: str = "",
    source_url: str | None = None,
    notes: str | None = None,
    expires: datetime | None = None,
    allow_pickle: bool = False,
    piece_length: int = DEFAULT_PIECE_LENGTH,
    progress: Progress | None = None,
) -> tuple[Admitted, OmsVerdict]:
    """Verify an OMS-signed directory, then publish exactly the verified bytes as NAME@VERSION.

    The files are copied into private staging while hashed and the signature is checked
    against that copy, which is then what gets published: nothing can change in between.
    The OMS evidence (bundle digest, signer key, root digest) is signed into the origin, as
    structured data under `oms` and as a sentence in the notes.
    """
    license = licenses.normalize(license, "--license")  # before the copy, not after
    st = read_bundle(_read_signature(signature), public_key, str(signature))
    files = model_files(directory, st.ignore_paths, signature)
    with client.vault.staging("import-oms") as staged:
        found = {}
        for rel in files:
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            found[rel] = copy_hashed(directory / rel, staged / rel, rel=rel).sha256
        verdict = _verdict(directory, st, public_key, found)
        publishing = set(scan_model_dir(staged))
        if publishing != set(files):
            raise UsageError(
                f"{directory}: the OMS signature covers {listing(sorted(set(files) - publishing))}, which seedvault "
                "does not publish (.git, .cache and root .gitignore/.gitattributes are left out of releases)",
                hint="re-sign the model without those files",
            )
        admitted = client.publish(
            staged, name=name, version=version, license=license, key=key, publisher=publisher,
            source_url=source_url, notes=" ".join(filter(None, [verdict.evidence(), notes])),
            origin_extra={"oms": verdict.origin_record()},
            expires=expires, allow_pickle=allow_pickle, piece_length=piece_length, progress=progress,
        )
    return admitted, verdict
