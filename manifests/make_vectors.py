#!/usr/bin/env python
"""Generate the signed test vectors of manifest format v1 into manifests/vectors/.

Run from anywhere:  python manifests/make_vectors.py

Deterministic inputs: fixed private keys (manifests/vectors/keys/*.pem, derived from fixed
labels the first time and loaded from the PEM files afterwards), a fixed `created` time,
fixed evaluation times, and small synthetic files described by byte patterns (no real model
files). Ed25519 signatures are deterministic; ECDSA P-256 signatures use RFC 6979
deterministic nonces when the installed `cryptography` supports them, and random nonces
otherwise. Either way the vectors are generated once and committed: consumers check
verdicts, never byte equality with a fresh run.

Every vector declares its expected verdict here, by intent; the generator then runs
`seedvault.signing.evaluate` on it and refuses to write anything if the implementation
disagrees, so a regression never silently becomes the expected result.

THE PRIVATE KEYS IN vectors/keys/ ARE PUBLIC TEST KEYS. NEVER TRUST THEM FOR ANYTHING.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from seedvault import errors, hashing
from seedvault.manifest import (
    PIECES_ROOT_KEY,
    FileEntry,
    License,
    LineageLink,
    Manifest,
    Origin,
    TorrentBinding,
    info_hash_v2,
    parse_time,
    torrent_name,
)
from seedvault.settings import MERKLE_BLOCK_SIZE
from seedvault.signing import Envelope, PrivateKey, Signature, TrustedKey, TrustPolicy, evaluate
from seedvault.signing.policy import Role
from seedvault.weights import header_from_buffer

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors"
KEYS = VECTORS / "keys"

NAME = "acme/tiny-llm"
VERSION = "1.0.0"
CREATED = "2026-01-15T12:00:00Z"
EXPIRES = "2027-01-15T12:00:00Z"
NOW = "2026-02-01T00:00:00Z"
PIECE_LENGTH = 64 * 1024  # 4 leaves of 16 KiB per piece: exercises every padding rule
NOTES = "Synthetic test vector; not a real model."

# ---- keys ------------------------------------------------------------------------------

KEY_SPECS: dict[str, str] = {
    "publisher-ed25519": "ed25519",
    "publisher-p256": "p256",
    "approver-p256": "p256",
    "stranger-ed25519": "ed25519",
}


def _derive(label: str, key_type: str) -> PrivateKey:
    seed = hashlib.sha256(f"seedvault manifest v1 test vector key: {label}".encode()).digest()
    if key_type == "ed25519":
        return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    order = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
    return PrivateKey(ec.derive_private_key(int.from_bytes(seed, "big") % (order - 1) + 1, ec.SECP256R1()))


def load_keys() -> dict[str, PrivateKey]:
    """The fixed test keys: loaded from their PEM files, created from fixed labels if absent."""
    KEYS.mkdir(parents=True, exist_ok=True)
    keys = {}
    for label, key_type in KEY_SPECS.items():
        path = KEYS / f"{label}.pem"
        if not path.exists():
            key = _derive(label, key_type)
            path.write_bytes(key.pem())
            (KEYS / f"{label}.pub.pem").write_text(key.public.pem())
        keys[label] = PrivateKey.load(path)
        if keys[label].public.key_type != key_type:
            raise SystemExit(f"{path}: expected a {key_type} key")
    return keys


P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def raw_sign(key: PrivateKey, data: bytes) -> bytes:
    """Ed25519, or ECDSA P-256 over SHA-256 (DER) with an RFC 6979 nonce when available."""
    if isinstance(key.key, ec.EllipticCurvePrivateKey):
        try:
            return key.key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        except (TypeError, UnsupportedAlgorithm):  # older cryptography or OpenSSL: random nonce
            pass
    return key.sign(data)


def malleate(der: bytes) -> bytes:
    """The other valid ECDSA signature over the same data: (r, n - s)."""
    r, s = decode_dss_signature(der)
    return encode_dss_signature(r, P256_ORDER - s)


def sign(payload: bytes, *signers: PrivateKey, payload_type: str | None = None) -> Envelope:
    env = Envelope(payload) if payload_type is None else Envelope(payload, payload_type)
    sigs = tuple(Signature(k.key_id, raw_sign(k, env.signed_bytes())) for k in signers)
    return Envelope(env.payload, env.payload_type, sigs)


# ---- synthetic files -------------------------------------------------------------------

Segment = tuple[bytes, int]  # a byte pattern repeated and cut to this many bytes


def materialize(segments: Iterable[Segment]) -> bytes:
    out = bytearray()
    for pattern, size in segments:
        out += (pattern * (size // len(pattern) + 1))[:size]
    return bytes(out)


def safetensors_segments(tensors: list[tuple[str, str, list[int]]], pattern: bytes) -> list[Segment]:
    """A valid safetensors file: 8-byte length, JSON header padded to 8 bytes, pattern data."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape in tensors:
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    head = struct.pack("<Q", len(raw)) + raw
    return [(head, len(head)), (pattern, offset)]


@dataclass(frozen=True)
class SynthFile:
    path: str
    segments: list[Segment]
    safetensors: bool = False  # a real safetensors file: the manifest gets its summary

    @property
    def content(self) -> bytes:
        return materialize(self.segments)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"repeat_hex": p.hex(), "size": n} for p, n in self.segments]


def text(path: str, body: str) -> SynthFile:
    raw = body.encode()
    return SynthFile(path, [(raw, len(raw))] if raw else [])


LICENSE_TEXT = "Apache License, Version 2.0 (stand-in text for a test vector)\n"

BASE_FILES = [
    text("LICENSE", LICENSE_TEXT),
    text("config.json", '{"architectures": ["TinyLM"], "hidden_size": 4, "vocab_size": 9000}\n'),
    text("empty.txt", ""),
    # 3 pieces of 64 KiB; the last piece is partial (2 of 4 leaves): zero-leaf padding
    # inside the piece, and a pad hash of a full zero piece at the piece layer.
    SynthFile(
        "model-00001-of-00002.safetensors",
        safetensors_segments(
            [("model.embed.weight", "F32", [9000, 4]), ("model.norm.weight", "BF16", [3000])],
            bytes(range(251)),
        ),
        safetensors=True,
    ),
    # Shorter than one piece but longer than one leaf: the BEP 52 short-file rule
    # (leaves padded to the next power of two, 2, not to a whole piece, 4).
    SynthFile(
        "model-00002-of-00002.safetensors",
        safetensors_segments([("lm_head.weight", "F16", [14000])], bytes((i * 7 + 3) % 256 for i in range(257))),
        safetensors=True,
    ),
    # One leaf: the pieces root is the SHA-256 of the bytes.
    text("tokenizer/tokenizer.json", '{"model": {"type": "WordLevel", "vocab": {"<unk>": 0}}}\n'),
]


def check_coverage() -> None:
    """BASE_FILES must keep exercising every pieces-root case the spec describes."""
    blocks_per_piece = PIECE_LENGTH // MERKLE_BLOCK_SIZE
    sizes = [len(f.content) for f in BASE_FILES]
    leaves = [-(-n // MERKLE_BLOCK_SIZE) for n in sizes]
    last_piece_leaves = [-(-(n - (n - 1) // PIECE_LENGTH * PIECE_LENGTH) // MERKLE_BLOCK_SIZE) for n in sizes]
    cases = {
        "empty file": 0 in sizes,
        "one leaf": 1 in leaves,
        "short file, several leaves": any(1 < n < blocks_per_piece for n in leaves),
        "several pieces, partial last piece": any(
            n > PIECE_LENGTH and k < blocks_per_piece for n, k in zip(sizes, last_piece_leaves, strict=True)
        ),
        "piece count not a power of two": any(-(-n // PIECE_LENGTH) == 3 for n in sizes),
        "file in a subdirectory": any("/" in f.path for f in BASE_FILES),
    }
    missing = [name for name, ok in cases.items() if not ok]
    if missing:
        raise SystemExit(f"BASE_FILES no longer cover: {missing}")


def digest_files(files: list[SynthFile], piece_length: int) -> list[FileEntry]:
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(files):
            path = Path(tmp) / f"f{i}"
            content = f.content
            path.write_bytes(content)
            d = hashing.hash_file(path, piece_length)
            summary = None
            if f.safetensors:
                summary = header_from_buffer(content, f.path).summary()
            entries.append(FileEntry(f.path, d.size, d.sha256, d.pieces_root, summary))
    return entries


# ---- statements ------------------------------------------------------------------------


def statement(
    files: list[SynthFile] | None = None,
    *,
    name: str = NAME,
    version: str = VERSION,
    license_spdx: str = "Apache-2.0",
    license_file: str | None = "LICENSE",
    expires: str | None = EXPIRES,
    allow_pickle: bool = False,
    piece_length: int = PIECE_LENGTH,
) -> dict[str, Any]:
    """A statement dict whose digests and info-hash are computed from the files."""
    files = BASE_FILES if files is None else files
    entries = digest_files(files, piece_length)
    by_path = {e.path: e for e in entries}
    manifest = Manifest(
        name=name,
        version=version,
        created=parse_time(CREATED, "created"),
        files=tuple(entries),
        license=License(license_spdx, license_file, by_path[license_file].sha256 if license_file else None),
        origin=Origin(
            publisher="Acme Research",
            source_url="https://example.com/acme/tiny-llm",
            source_revision="3f2a9c1e5b7d4a6f8e0c2b4d6f8a0c2e4b6d8f0a",
            notes=NOTES,
        ),
        torrent=TorrentBinding(piece_length, info_hash_v2(torrent_name(name, version), entries, piece_length)),
        lineage=(
            LineageLink(
                "fine-tuned-from",
                "acme/tiny-base@0.9.0",
                hashlib.sha256(b"payload of acme/tiny-base@0.9.0 (test vector)").hexdigest(),
            ),
        ),
        expires=parse_time(expires, "expires") if expires else None,
        allow_pickle=allow_pickle,
    )
    return manifest.to_dict()


def payload_of(stmt: dict[str, Any]) -> bytes:
    """Serialized exactly as Manifest.to_payload does (any bytes would do: DSSE signs bytes)."""
    return json.dumps(stmt, indent=2, sort_keys=False, ensure_ascii=False).encode()


def with_paths(*paths: str) -> dict[str, Any]:
    """A minimal statement over small files at these paths (info-hash computed from them)."""
    return statement([text(p, f"content of {p}\n") for p in paths], license_file=None)


def set_path(stmt: dict[str, Any], index: int, path: str) -> dict[str, Any]:
    out = copy.deepcopy(stmt)
    out["subject"][index]["name"] = path
    out["predicate"]["files"][index]["path"] = path
    return out


# ---- policies --------------------------------------------------------------------------


def trusted(key: PrivateKey, role: Role, scopes: tuple[str, ...], name: str) -> TrustedKey:
    return TrustedKey(key.public, role, scopes, name)


@dataclass
class Vector:
    name: str
    description: str
    envelope: dict[str, Any]
    policy: dict[str, Any]
    expected: dict[str, Any]
    schema_valid: bool
    now: str = NOW
    file_contents: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "description": self.description,
            "envelope": self.envelope,
            "policy": self.policy,
            "now": self.now,
            "expected": self.expected,
            "schema_valid": self.schema_valid,
        }
        if self.file_contents is not None:
            out["file_contents"] = self.file_contents
        return out


def valid(env: Envelope, publishers: int, approvers: int = 0) -> dict[str, Any]:
    return {"verdict": "valid", "digest": env.digest, "publishers": publishers, "approvers": approvers}


def invalid(error: type[errors.Error], fragment: str) -> dict[str, Any]:
    return {"verdict": "invalid", "error": error.__name__, "message_contains": fragment}


def contents(files: list[SynthFile]) -> dict[str, Any]:
    return {f.path: f.to_json() for f in files}


def build(keys: dict[str, PrivateKey]) -> list[Vector]:
    pub, p256, approver, stranger = (
        keys["publisher-ed25519"],
        keys["publisher-p256"],
        keys["approver-p256"],
        keys["stranger-ed25519"],
    )
    release = trusted(pub, "publisher", ("acme/*",), "acme-release")
    policy = TrustPolicy(keys=(release,)).to_dict()
    base = statement()
    base_payload = payload_of(base)
    base_env = sign(base_payload, pub)
    vectors: list[Vector] = []

    def add(
        name: str,
        description: str,
        env: Envelope,
        expected: dict[str, Any],
        *,
        pol: dict[str, Any] | None = None,
        schema_valid: bool = True,
        now: str = NOW,
        files: list[SynthFile] | None = None,
    ) -> None:
        vectors.append(
            Vector(
                name,
                description,
                env.to_dict(),
                policy if pol is None else pol,
                expected,
                schema_valid,
                now,
                contents(files) if files is not None else None,
            )
        )

    def bad_statement(
        name: str,
        description: str,
        stmt: dict[str, Any],
        error: type[errors.Error],
        fragment: str,
        *,
        schema_valid: bool,
    ) -> None:
        add(name, description, sign(payload_of(stmt), pub), invalid(error, fragment), schema_valid=schema_valid)

    # ---- valid -------------------------------------------------------------------------
    add(
        "valid-ed25519",
        "A release signed by one Ed25519 publisher key trusted for acme/*. Six files: a license, "
        "a small config, an empty file, a 3-piece safetensors shard whose last piece is partial, "
        "a 2-leaf shard shorter than one piece (short-file rule), and a one-leaf file in a subdirectory. "
        "file_contents rebuilds every file so sizes, SHA-256 and pieces roots can be checked too.",
        base_env,
        valid(base_env, 1),
        files=BASE_FILES,
    )
    env = sign(base_payload, p256)
    add(
        "valid-p256",
        "The same statement signed by one ECDSA P-256 publisher key (DER signature over SHA-256), "
        "trusted with an exact-name scope acme/tiny-llm.",
        env,
        valid(env, 1),
        pol=TrustPolicy(keys=(trusted(p256, "publisher", (NAME,), "acme-p256"),)).to_dict(),
        files=BASE_FILES,
    )
    env = sign(base_payload, pub, approver)
    counter_policy = TrustPolicy(
        keys=(release, trusted(approver, "approver", ("*",), "mirror-approver")),
        required_approvals=1,
        allowed_licenses=("Apache-2.0", "MIT"),
    ).to_dict()
    add(
        "valid-countersigned",
        "Publisher (Ed25519) signature plus an approver's (P-256) countersignature over the same payload; "
        "the policy requires one approval and allows Apache-2.0 and MIT.",
        env,
        valid(env, 1, 1),
        pol=counter_policy,
        files=BASE_FILES,
    )
    extended = copy.deepcopy(base)
    extended["x-statement-extension"] = {"kept": True}
    extended["predicate"]["x-predicate-extension"] = ["kept", 1]
    extended["predicate"]["license"]["x-license-note"] = "kept"
    extended["predicate"]["origin"]["x-origin-contact"] = "models@example.com"
    extended["predicate"]["lineage"][0]["x-lineage-note"] = "kept"
    extended["predicate"]["files"][0]["x-file-role"] = "license"
    extended["predicate"]["files"][3]["safetensors"]["x-summary-note"] = "kept"
    extended["predicate"]["torrent"]["x-torrent-trackers"] = ["https://tracker.example.com/announce"]
    extended["subject"][3]["annotations"] = {"x-role": "weights"}
    extended["subject"][3]["digest"]["sha512"] = hashlib.sha512(b"not checked by verifiers").hexdigest()
    env = sign(payload_of(extended), pub)
    add(
        "valid-unknown-fields",
        "Unknown fields at every level (statement, subject entry, digest set, predicate, license, origin, "
        "lineage link, files entry, safetensors summary, torrent) are accepted and carried through a parse "
        "and re-serialization unchanged.",
        env,
        valid(env, 1),
    )
    pickle_files = [text("LICENSE", LICENSE_TEXT), text("pytorch_model.bin", "not really a pickle\n")]
    env = sign(payload_of(statement(pickle_files, allow_pickle=True)), pub)
    add(
        "valid-allow-pickle",
        "A pickle file (.bin) is accepted by verification when the publisher set allow_pickle: true "
        "(clients still refuse to load it).",
        env,
        valid(env, 1),
    )

    # ---- invalid: envelope and signatures ----------------------------------------------
    tampered = bytearray(base_payload)
    at = base_payload.index(b"Synthetic test vector")
    tampered[at] = ord("s")
    add(
        "invalid-tampered-payload",
        "valid-ed25519 with one payload byte changed after signing ('S' of origin.notes to 's'); "
        "the payload still parses, the signature no longer verifies.",
        Envelope(bytes(tampered), base_env.payload_type, base_env.signatures),
        invalid(errors.SignatureError, "signature does not verify"),
    )
    add(
        "invalid-wrong-key",
        "Signed by a key that is not in the trust policy.",
        sign(base_payload, stranger),
        invalid(errors.SignatureError, "key not in the local trust policy"),
    )
    add(
        "invalid-no-signatures",
        "An envelope with an empty signatures list.",
        Envelope(base_payload),
        invalid(errors.SignatureError, "expected at least one signature, found none"),
    )
    add(
        "invalid-empty-policy",
        "A correct signature, but the verifier's policy trusts no key at all (fail closed).",
        base_env,
        invalid(errors.SignatureError, "the local trust policy has no keys"),
        pol=TrustPolicy().to_dict(),
    )
    add(
        "invalid-payload-type",
        "payloadType is application/json instead of application/vnd.in-toto+json "
        "(signed over PAE with that type, so only the type check can refuse it).",
        sign(base_payload, pub, payload_type="application/json"),
        invalid(errors.ManifestError, "expected payloadType 'application/vnd.in-toto+json'"),
    )

    # ---- invalid: policy -------------------------------------------------------------------
    add(
        "invalid-approval-missing",
        "The policy requires one approval; only the publisher signed.",
        base_env,
        invalid(errors.PolicyError, "expected 1 approval(s) by distinct trusted approver keys, found 0"),
        pol=counter_policy,
    )
    self_approval_policy = TrustPolicy(
        keys=(release, trusted(pub, "approver", ("*",), "the-publisher-as-approver")),
        required_approvals=1,
    ).to_dict()
    add(
        "invalid-self-approval",
        "The publisher's key is also trusted as an approver, and the policy requires one approval: "
        "its single signature counts as publisher only; an approval must come from another key.",
        base_env,
        invalid(errors.PolicyError, "expected 1 approval(s) by distinct trusted approver keys, found 0"),
        pol=self_approval_policy,
    )
    add(
        "invalid-expired",
        "The same envelope as valid-ed25519, evaluated at exactly its expires time (expiry is inclusive).",
        base_env,
        invalid(errors.ExpiredError, "expired at 2027-01-15T12:00:00Z"),
        now=EXPIRES,
    )
    add(
        "invalid-revoked-key",
        "The publisher key is trusted but also listed as revoked; revocation wins.",
        base_env,
        invalid(errors.PolicyError, "key is revoked"),
        pol=TrustPolicy(keys=(release,), revoked=frozenset({pub.key_id})).to_dict(),
    )
    add(
        "invalid-out-of-scope",
        "The publisher key is trusted only for other/*, and the model is acme/tiny-llm.",
        base_env,
        invalid(errors.PolicyError, "not for this namespace"),
        pol=TrustPolicy(keys=(trusted(pub, "publisher", ("other/*",), "other-release"),)).to_dict(),
    )
    sig = raw_sign(p256, base_env.signed_bytes())
    twice = Envelope(
        base_payload, base_env.payload_type, (Signature(p256.key_id, sig), Signature(p256.key_id, malleate(sig)))
    )
    threshold_two = TrustPolicy(
        keys=(trusted(p256, "publisher", ("acme/*",), "acme-p256"),),
        publisher_threshold=2,
    ).to_dict()
    add(
        "invalid-duplicate-signer-p256",
        "publisher_threshold is 2 and one P-256 key signed twice: two different valid signatures, "
        "(r, s) and (r, n - s). Signatures are counted per key, so they count once.",
        twice,
        invalid(errors.PolicyError, "another signature by the same key, counted once"),
        pol=threshold_two,
    )
    sig = raw_sign(pub, base_env.signed_bytes())
    add(
        "invalid-duplicate-signer-ed25519",
        "publisher_threshold is 2 and the same Ed25519 signature appears twice; it counts once.",
        Envelope(base_payload, base_env.payload_type, (Signature(pub.key_id, sig), Signature(pub.key_id, sig))),
        invalid(errors.PolicyError, "expected 2 valid signature(s) by trusted publisher keys"),
        pol=TrustPolicy(keys=(release,), publisher_threshold=2).to_dict(),
    )
    add(
        "invalid-license-not-allowed",
        "The policy allows only MIT; the model is Apache-2.0.",
        base_env,
        invalid(errors.PolicyError, "license Apache-2.0 is not allowed"),
        pol=TrustPolicy(keys=(release,), allowed_licenses=("MIT",)).to_dict(),
    )

    # ---- invalid: paths --------------------------------------------------------------------
    three = with_paths("config.json", "tokenizer.json", "vocab.txt")
    bad_statement(
        "invalid-path-traversal",
        "A file path with a '..' component: ../x.",
        set_path(three, 0, "../x"),
        errors.UnsafePathError,
        "has an empty, '.' or '..' component",
        schema_valid=False,
    )
    bad_statement(
        "invalid-dot-component",
        "A file path with a '.' component: a/./b.",
        set_path(three, 0, "a/./b"),
        errors.UnsafePathError,
        "has an empty, '.' or '..' component",
        schema_valid=False,
    )
    bad_statement(
        "invalid-empty-component",
        "A file path with an empty component: a//b.",
        set_path(three, 0, "a//b"),
        errors.UnsafePathError,
        "has an empty, '.' or '..' component",
        schema_valid=False,
    )
    bad_statement(
        "invalid-absolute-path",
        "An absolute file path: /etc/passwd.",
        set_path(three, 0, "/etc/passwd"),
        errors.UnsafePathError,
        "is absolute",
        schema_valid=False,
    )
    bad_statement(
        "invalid-drive-path",
        "A Windows drive-relative path: C:tokenizer.json.",
        set_path(three, 1, "C:tokenizer.json"),
        errors.UnsafePathError,
        "is absolute",
        schema_valid=False,
    )
    bad_statement(
        "invalid-backslash-path",
        "A path with a backslash: tokenizer\\tokenizer.json.",
        set_path(three, 1, "tokenizer\\tokenizer.json"),
        errors.UnsafePathError,
        "contains a backslash",
        schema_valid=False,
    )
    bad_statement(
        "invalid-control-char-path",
        "A path with a NUL character.",
        set_path(three, 1, "tokenizer\u0000.json"),
        errors.UnsafePathError,
        "contains NUL or a control character",
        schema_valid=False,
    )
    dup = with_paths("config.json", "vocab.txt")
    dup["subject"].append(copy.deepcopy(dup["subject"][0]))
    dup["predicate"]["files"].append(copy.deepcopy(dup["predicate"]["files"][0]))
    bad_statement(
        "invalid-duplicate-path",
        "The same file listed twice (identical subject and files entries).",
        dup,
        errors.UnsafePathError,
        "expected each path once",
        schema_valid=False,
    )
    bad_statement(
        "invalid-duplicate-path-casefold",
        "Two paths that differ only in case: Config.json and config.json.",
        with_paths("Config.json", "config.json"),
        errors.UnsafePathError,
        "compared case-insensitively",
        schema_valid=True,
    )
    bad_statement(
        "invalid-file-is-directory",
        "tokenizer is a file, and tokenizer/vocab.json needs it to be a directory.",
        with_paths("tokenizer", "tokenizer/vocab.json"),
        errors.UnsafePathError,
        "is a file, but",
        schema_valid=True,
    )

    # ---- invalid: other structure ----------------------------------------------------------
    short = copy.deepcopy(base)
    short["subject"][1]["digest"]["sha256"] = short["subject"][1]["digest"]["sha256"][:63]
    bad_statement(
        "invalid-digest-length",
        "A subject sha256 digest of 63 hex characters.",
        short,
        errors.ManifestError,
        "expected 64 lowercase hex characters",
        schema_valid=False,
    )
    upper = copy.deepcopy(base)
    upper["subject"][1]["digest"][PIECES_ROOT_KEY] = upper["subject"][1]["digest"][PIECES_ROOT_KEY].upper()
    bad_statement(
        "invalid-digest-uppercase",
        "A pieces root in uppercase hex.",
        upper,
        errors.ManifestError,
        "expected 64 lowercase hex characters",
        schema_valid=False,
    )
    mismatch = copy.deepcopy(base)
    mismatch["predicate"]["files"] = mismatch["predicate"]["files"][:-1]
    bad_statement(
        "invalid-subject-files-mismatch",
        "A subject entry without its predicate.files entry.",
        mismatch,
        errors.ManifestError,
        "expected subject and predicate.files to list the same paths",
        schema_valid=True,
    )
    rooted = copy.deepcopy(base)
    empty_index = next(i for i, f in enumerate(rooted["predicate"]["files"]) if f["size"] == 0)
    rooted["subject"][empty_index]["digest"][PIECES_ROOT_KEY] = hashlib.sha256(b"").hexdigest()
    bad_statement(
        "invalid-pieces-root-on-empty-file",
        "An empty file with a pieces root.",
        rooted,
        errors.ManifestError,
        "exactly when the file is not empty",
        schema_valid=True,
    )
    rehash = copy.deepcopy(base)
    rehash["predicate"]["torrent"]["info_hash_v2"] = info_hash_v2(
        "acme--tiny-llm--9.9.9", digest_files(BASE_FILES, PIECE_LENGTH), PIECE_LENGTH
    )
    bad_statement(
        "invalid-info-hash",
        "torrent.info_hash_v2 computed with another torrent name.",
        rehash,
        errors.ManifestError,
        "expected the v2 info-hash derived from the listed files",
        schema_valid=True,
    )
    pieces = copy.deepcopy(base)
    pieces["predicate"]["torrent"]["piece_length"] = 48 * 1024
    bad_statement(
        "invalid-piece-length",
        "piece_length 49152 is not a power of two.",
        pieces,
        errors.ManifestError,
        "a power of two of at least 16384",
        schema_valid=False,
    )
    bad_statement(
        "invalid-pickle-without-opt-in",
        "A pickle file (.bin) without allow_pickle.",
        statement(pickle_files),
        errors.UnsafeWeightsError,
        "can run code when loaded",
        schema_valid=False,
    )
    renamed = copy.deepcopy(base)
    renamed["predicate"]["name"] = "tiny-llm"
    bad_statement(
        "invalid-model-name",
        "A model name without a namespace.",
        renamed,
        errors.ManifestError,
        "expected 'namespace/name'",
        schema_valid=False,
    )
    relabeled = copy.deepcopy(base)
    relabeled["predicate"]["version"] = "1..0"
    bad_statement(
        "invalid-version",
        "A version label containing '..'.",
        relabeled,
        errors.ManifestError,
        "version: expected a label",
        schema_valid=False,
    )
    relation = copy.deepcopy(base)
    relation["predicate"]["lineage"][0]["relation"] = "forked-from"
    bad_statement(
        "invalid-lineage-relation",
        "A lineage relation outside the fixed list.",
        relation,
        errors.ManifestError,
        "predicate.lineage[0].relation",
        schema_valid=False,
    )
    lic = copy.deepcopy(base)
    lic["predicate"]["license"]["sha256"] = hashlib.sha256(b"another license").hexdigest()
    bad_statement(
        "invalid-license-file-digest",
        "license.sha256 differs from the listed LICENSE file's sha256.",
        lic,
        errors.ManifestError,
        "license file 'LICENSE'",
        schema_valid=True,
    )
    return vectors


# ---- self-check and output -------------------------------------------------------------

REQUIRED = (
    "valid-ed25519", "valid-p256", "valid-countersigned",
    "invalid-tampered-payload", "invalid-wrong-key", "invalid-path-traversal", "invalid-absolute-path",
    "invalid-backslash-path", "invalid-duplicate-path", "invalid-digest-length", "invalid-approval-missing",
    "invalid-self-approval",
    "invalid-expired", "invalid-revoked-key", "invalid-out-of-scope", "invalid-duplicate-signer-p256",
    "invalid-license-not-allowed",
)  # fmt: skip


def run(vector: Vector) -> Any:
    data = vector.to_json()
    return evaluate(
        Envelope.from_dict(data["envelope"]),
        TrustPolicy.from_dict(data["policy"]),
        now=parse_time(data["now"], "now"),
    )


def check(vector: Vector) -> None:
    """Run the vector through the implementation; refuse to write a vector it disagrees with."""
    expected = vector.expected
    if expected["verdict"] == "valid":
        verdict = run(vector)
        got = {
            "verdict": "valid",
            "digest": verdict.digest,
            "publishers": verdict.publishers,
            "approvers": verdict.approvers,
        }
        if got != expected:
            raise SystemExit(f"{vector.name}: expected {expected}, the implementation says {got}")
        return
    try:
        run(vector)
    except errors.Error as exc:
        if type(exc).__name__ != expected["error"] or expected["message_contains"] not in str(exc):
            raise SystemExit(f"{vector.name}: expected {expected}, got {type(exc).__name__}: {exc}") from None
    else:
        raise SystemExit(f"{vector.name}: expected {expected}, the implementation accepted it")


def main() -> int:
    check_coverage()
    vectors = build(load_keys())
    names = [v.name for v in vectors]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate vector names")
    missing = set(REQUIRED) - set(names)
    if missing:
        raise SystemExit(f"required vectors not generated: {sorted(missing)}")
    for v in vectors:
        check(v)
    VECTORS.mkdir(parents=True, exist_ok=True)
    for stale in sorted(set(VECTORS.glob("*.json")) - {VECTORS / f"{n}.json" for n in names}):
        stale.unlink()
        print(f"removed stale {stale.relative_to(HERE)}")
    for v in vectors:
        path = VECTORS / f"{v.name}.json"
        path.write_text(json.dumps(v.to_json(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(vectors)} vectors to {VECTORS.relative_to(HERE.parent)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
