#!/usr/bin/env python
"""Generate the signed test vectors of manifest format v1 into manifests/vectors/, and those
of the head (section 11) into manifests/vectors/head/.

Run from anywhere:  python manifests/make_vectors.py
Check that the committed vectors are what it generates (byte for byte), writing nothing:
                    python manifests/make_vectors.py --check

Deterministic inputs: fixed private keys (manifests/vectors/keys/*.pem, derived from fixed
labels the first time and loaded from the PEM files afterwards), a fixed `created` time,
fixed evaluation times, and small synthetic files described by byte patterns (no real model
files). Ed25519 signatures are deterministic; ECDSA P-256 signatures use RFC 6979
deterministic nonces when the installed `cryptography` supports them, and random nonces
otherwise. Either way the vectors are generated once and committed: consumers check
verdicts, never byte equality with a fresh run.

Every vector declares its expected verdict here, by intent; the generator then runs
`seedvault.signing.evaluate` (heads: `accept_head`) on it and refuses to write anything if the implementation
disagrees, so a regression never silently becomes the expected result.

THE PRIVATE KEYS IN vectors/keys/ ARE PUBLIC TEST KEYS. NEVER TRUST THEM FOR ANYTHING.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import struct
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from seedvault import errors, hashing
from seedvault.client import Client
from seedvault.head import DEFAULT_HEAD_TTL, HEAD_PREDICATE_TYPE, MAX_REASON_CHARS, MAX_SEQUENCE, MAX_YANKS, Head, Yank
from seedvault.manifest import (
    PIECES_ROOT_KEY,
    FileEntry,
    License,
    LineageLink,
    Manifest,
    Origin,
    TorrentBinding,
    format_time,
    info_hash_v2,
    parse_time,
    torrent_name,
)
from seedvault.settings import MERKLE_BLOCK_SIZE
from seedvault.signing import Envelope, PrivateKey, Signature, TrustedKey, TrustPolicy, evaluate
from seedvault.signing.policy import Role
from seedvault.signing.trusted import AcceptedHead, HeldHead, accept_head
from seedvault.weights import gguf as gguf_format
from seedvault.weights import header_from_buffer

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors"
HEAD_VECTORS = VECTORS / "head"
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
    gguf: bool = False  # a real GGUF file: the manifest gets its GGUF summary

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
            gguf_summary = gguf_format.parse(content, len(content), f.path).summary() if f.gguf else None
            entries.append(FileEntry(f.path, d.size, d.sha256, d.pieces_root, summary, gguf=gguf_summary))
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
    envelope_raw: bytes | None = None  # exact envelope bytes, for faults a JSON object cannot hold
    expected_files: dict[str, Any] | None = None  # section 9 E verdict on file_contents

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        if self.envelope_raw is not None:
            out["envelope_base64"] = base64.b64encode(self.envelope_raw).decode()
        else:
            out["envelope"] = self.envelope
        out.update(policy=release_policy(self.policy), now=self.now, expected=self.expected,
                   schema_valid=self.schema_valid)
        if self.file_contents is not None:
            out["file_contents"] = self.file_contents
        if self.expected_files is not None:
            out["expected_files"] = self.expected_files
        return out


# Policy members for heads only (section 11), written by TrustPolicy.to_dict since heads exist.
# The release vectors predate them and leave them out at their defaults, so regenerating
# them gives the committed bytes.
HEAD_ONLY_POLICY_DEFAULTS: dict[str, Any] = {"yanked": "refuse", "fresh_heads": False}


def release_policy(policy: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in policy.items()
            if not (k in HEAD_ONLY_POLICY_DEFAULTS and v == HEAD_ONLY_POLICY_DEFAULTS[k])}


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
        raw: bytes | None = None,
        files_expected: dict[str, Any] | None = None,
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
                raw,
                files_expected,
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
    more_vectors(add, bad_statement, keys, base, policy, release)
    return vectors


# ---- the rules a verifier would otherwise have to guess (issue 8) -----------------------

ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
SMALL_ORDER_POINT = bytes.fromhex("0100000000000000000000000000000000000000000000000000000000000000")


def small_order_pem() -> str:
    """An Ed25519 public key of small order (the identity point): a forged signature
    (R = identity, S = 0) verifies under it for every message."""
    spki = bytes.fromhex("302a300506032b6570032100") + SMALL_ORDER_POINT
    body = base64.b64encode(spki).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def raw_envelope(payload: bytes, sigs: list[tuple[Any, str]], extra: str = "") -> bytes:
    """Envelope text written by hand, to say what `Envelope` never writes."""
    parts = ", ".join(
        "{" + ("" if keyid is ... else f'"keyid": {json.dumps(keyid)}, ') + f'"sig": {json.dumps(sig)}' + "}"
        for keyid, sig in sigs
    )
    payload_b64 = base64.b64encode(payload).decode()
    return (
        f'{{"payloadType": "application/vnd.in-toto+json", "payload": "{payload_b64}", '
        f'"signatures": [{parts}]{extra}}}'
    ).encode()


def sig_b64(key: PrivateKey, payload: bytes) -> str:
    return base64.b64encode(raw_sign(key, Envelope(payload).signed_bytes())).decode()


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(*, overlap: bool = False) -> bytes:
    """A small GGUF v3 file (section 4.4.2): llama metadata, an F32 tensor of 32 values and
    a Q8_0 tensor of 2x32 values (two 34-byte blocks), each at an offset aligned to 32.
    With `overlap`, the second tensor's offset points into the first one's bytes."""
    metadata = [
        _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string("llama"),
        _gguf_string("general.license") + struct.pack("<I", 8) + _gguf_string("apache-2.0"),
        _gguf_string("llama.context_length") + struct.pack("<II", 4, 2048),
    ]

    def info(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
        return (_gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                + struct.pack("<IQ", ggml_type, offset))

    infos = [info("output_norm.weight", [32], 0, 0), info("blk.0.attn_q.weight", [32, 2], 8, 96 if overlap else 128)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(metadata)) + b"".join(metadata) + b"".join(infos)
    head += bytes(-len(head) % 32)
    data = bytes(range(128)) + bytes((i * 5 + 1) % 256 for i in range(68))
    return head + data + bytes(-len(data) % 32)


def gguf_file(path: str, *, overlap: bool = False) -> SynthFile:
    content = gguf_bytes(overlap=overlap)
    return SynthFile(path, [(content, len(content))], gguf=not overlap)


def raw_safetensors(path: str, header: bytes, data_len: int) -> SynthFile:
    """A safetensors file with exactly this header text (after the 8-byte length)."""
    head = struct.pack("<Q", len(header)) + header
    segments: list[Segment] = [(head, len(head))]
    if data_len:
        segments.append((bytes(range(1, 251)), data_len))
    return SynthFile(path, segments)


def more_vectors(add: Any, bad_statement: Any, keys: dict[str, PrivateKey], base: dict[str, Any],
                 policy: dict[str, Any], release: TrustedKey) -> None:
    pub, p256, approver = keys["publisher-ed25519"], keys["publisher-p256"], keys["approver-p256"]
    base_payload = payload_of(base)

    def bad_raw(name: str, description: str, raw: bytes, error: type[errors.Error], fragment: str) -> None:
        add(name, description, Envelope(b""), invalid(error, fragment), raw=raw, schema_valid=True)

    def bad_payload(name: str, description: str, payload: bytes, error: type[errors.Error], fragment: str,
                    *, schema_valid: bool = False) -> None:
        add(name, description, sign(payload, pub), invalid(error, fragment), schema_valid=schema_valid)

    def edited(old: str, new: str) -> bytes:
        text = base_payload.decode()
        assert old in text, old
        return text.replace(old, new, 1).encode()

    # ---- section 2: the envelope, read as text -----------------------------------------------
    good_sig = sig_b64(pub, base_payload)
    other = copy.deepcopy(base)
    other["predicate"]["version"] = "6.6.6"
    second = base64.b64encode(payload_of(other)).decode()
    bad_raw("invalid-envelope-duplicate-member",
            "The envelope has two payload members: the first is the signed release, the second another "
            "statement. First-wins and last-wins readers would see different releases; both MUST refuse.",
            raw_envelope(base_payload, [(pub.key_id, good_sig)], f', "payload": "{second}"'),
            errors.ManifestError, "found 'payload' twice")
    bad_raw("invalid-envelope-byte-order-mark", "The envelope text starts with a UTF-8 byte order mark.",
            b"\xef\xbb\xbf" + raw_envelope(base_payload, [(pub.key_id, good_sig)]),
            errors.ManifestError, "without a byte order mark")
    bad_raw("invalid-envelope-nan", "An unknown envelope member whose value is NaN, which JSON does not have.",
            raw_envelope(base_payload, [(pub.key_id, good_sig)], ', "x-score": NaN'),
            errors.ManifestError, "found NaN")
    bad_raw("invalid-envelope-65-signatures",
            "65 signature entries (the same valid one repeated): more than the 64 an envelope may carry, "
            "refused before any signature is checked.",
            raw_envelope(base_payload, [(pub.key_id, good_sig)] * 65),
            errors.OversizeError, "at most 64 signatures, found 65")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    padded = good_sig[:-3] + alphabet[alphabet.index(good_sig[-3]) | 0b1111] + "=="
    assert base64.b64decode(padded) == base64.b64decode(good_sig) and padded != good_sig
    bad_raw("invalid-base64-pad-bits",
            "The valid Ed25519 signature, base64 with the 4 unused bits of its last character set: "
            "a lenient decoder reads the same bytes; a verifier MUST refuse any non-canonical base64.",
            raw_envelope(base_payload, [(pub.key_id, padded)]),
            errors.ManifestError, "non-zero pad bits")
    wrapped = base64.b64encode(base_payload).decode()
    bad_raw("invalid-base64-whitespace", "The payload's base64 has a line break after 76 characters (MIME style).",
            raw_envelope(b"", [(pub.key_id, good_sig)]).replace(
                b'"payload": ""', f'"payload": "{wrapped[:76]}\\n{wrapped[76:]}"'.encode()),
            errors.ManifestError, "no whitespace")
    bad_raw("invalid-keyid-null", "A signature entry whose keyid is null (not a string, not absent).",
            raw_envelope(base_payload, [(None, good_sig)]),
            errors.ManifestError, "keyid: expected a string")
    add("invalid-keyid-absent",
        "A signature entry without keyid: it is the empty string, which names no trusted key.",
        Envelope(b""), invalid(errors.SignatureError, "key not in the local trust policy"),
        raw=raw_envelope(base_payload, [(..., good_sig)]))
    add("invalid-keyid-uppercase",
        "The trusted key's id in uppercase hex: key ids are compared exactly, so it names no trusted key.",
        Envelope(base_payload, PAYLOAD_TYPE_V1, (Signature(pub.key_id.upper(), raw_sign(pub, sign(
            base_payload, pub).signed_bytes())),)),
        invalid(errors.SignatureError, "key not in the local trust policy"))

    # ---- section 3: the statement's JSON -------------------------------------------------------
    bad_payload("invalid-statement-duplicate-member",
                "predicate.version given twice (1.0.0, then 6.6.6) in the signed payload.",
                edited('"version": "1.0.0"', '"version": "1.0.0", "version": "6.6.6"'),
                errors.ManifestError, "found 'version' twice", schema_valid=True)
    bad_payload("invalid-statement-nan", "An unknown predicate member whose value is NaN.",
                edited('"torrent": {', '"x-score": NaN, "torrent": {'), errors.ManifestError, "found NaN",
                schema_valid=True)
    bad_payload("invalid-statement-huge-integer",
                "A file size of 2^53 (9007199254740992): beyond what every JSON reader holds exactly.",
                edited('"size": 68', '"size": 9007199254740992'), errors.ManifestError, "integers between")
    bad_payload("invalid-statement-negative-zero", "A file size written -0.",
                edited('"size": 0', '"size": -0'), errors.ManifestError, "no negative zero", schema_valid=True)
    bad_payload("invalid-statement-fraction", "A file size written 68.0 (a number with a fraction).",
                edited('"size": 68', '"size": 68.0'), errors.ManifestError,
                "expected an integer, found 68.0", schema_valid=True)
    deep = "[" * 64 + "]" * 64
    bad_payload("invalid-statement-too-deep", "An unknown member nested 66 levels deep (the bound is 64).",
                edited('"torrent": {', f'"x-deep": {deep}, "torrent": {{'), errors.ManifestError,
                "nested at most 64 levels deep", schema_valid=True)
    bad_payload("invalid-statement-lone-surrogate", "origin.notes holds the lone surrogate escape \\ud800.",
                edited("not a real model.", "not a real model.\\ud800"), errors.ManifestError, "lone surrogate",
                schema_valid=True)
    bad_payload("invalid-statement-byte-order-mark", "The payload starts with a UTF-8 byte order mark.",
                b"\xef\xbb\xbf" + base_payload, errors.ManifestError, "without a byte order mark",
                schema_valid=True)
    nulled = copy.deepcopy(base)
    nulled["predicate"]["origin"]["notes"] = None
    bad_statement("invalid-null-optional-member",
                  "origin.notes is null: an optional member is absent or has its type; null is never 'absent'.",
                  nulled, errors.ManifestError, "origin.notes: expected a string, found null", schema_valid=False)

    # ---- section 3.1 / 5.5: digest sets ---------------------------------------------------------
    digest_set = copy.deepcopy(base)
    digest_set["subject"][1]["digest"]["sha512"] = "not hex"
    bad_statement("invalid-digest-set-value",
                  "A digest set holds an algorithm seedvault does not use (sha512) with a value that is not hex: "
                  "unknown algorithms are ignored when deciding, but their values MUST be lowercase hex.",
                  digest_set, errors.ManifestError, "lowercase hex of whole bytes", schema_valid=False)
    digest_name = copy.deepcopy(base)
    digest_name["subject"][1]["digest"]["SHA-512"] = hashlib.sha512(b"x").hexdigest()
    bad_statement("invalid-digest-set-algorithm-name",
                  "A digest set algorithm named in capitals (SHA-512): names are lowercase.",
                  digest_name, errors.ManifestError, "digest algorithm names", schema_valid=False)

    # ---- section 4.4: safetensors summary ---------------------------------------------------------
    no_summary = copy.deepcopy(base)
    for f in no_summary["predicate"]["files"]:
        f.pop("safetensors", None)
    env = sign(payload_of(no_summary), pub)
    add("valid-no-safetensors-summary",
        "The safetensors summaries are left out: producers MUST write them, but verifiers MUST NOT refuse a "
        "manifest without one (the digests pin the bytes; the header is validated from the verified bytes).",
        env, valid(env, 1))

    # ---- section 4.4: GGUF summary ----------------------------------------------------------------
    gguf_files = [text("LICENSE", LICENSE_TEXT), gguf_file("tiny-llm-q8_0.gguf")]
    gguf_stmt = statement(gguf_files)
    env = sign(payload_of(gguf_stmt), pub)
    add("valid-gguf-summary",
        "A GGUF release: its file entry carries the GGUF summary (section 4.4.2): format version, tensor count, "
        "parameter count, ggml types, header SHA-256, architecture, context length and the file's own "
        "general.license.", env, valid(env, 1), files=gguf_files)
    bad_types = copy.deepcopy(gguf_stmt)
    bad_types["predicate"]["files"][1]["gguf"]["types"]["Q8_0"] = -1
    bad_statement("invalid-gguf-summary-types", "A GGUF summary whose types map holds a negative count.",
                  bad_types, errors.ManifestError, "ggml type name to tensor count", schema_valid=False)
    two = copy.deepcopy(gguf_stmt)
    two["predicate"]["files"][1]["safetensors"] = {"tensors": 0, "parameters": 0, "dtypes": {},
                                                   "header_sha256": "0" * 64}
    bad_statement("invalid-two-summaries", "A file entry with both a safetensors and a GGUF summary: a file has "
                  "one format.", two, errors.ManifestError, "at most one weights summary", schema_valid=False)

    # ---- section 4.5: piece_length -----------------------------------------------------------------
    for name, value, text_ in (("invalid-piece-length-too-large", 2**27, "at most 67108864"),):
        big = copy.deepcopy(base)
        big["predicate"]["torrent"]["piece_length"] = value
        bad_statement(name, f"piece_length {value} (128 MiB): above the 64 MiB bound.", big,
                      errors.ManifestError, text_, schema_valid=False)

    # ---- section 5.4: the RFC 3339 profile -----------------------------------------------------------
    for name, value, fragment, description in (
        ("invalid-time-lowercase", "2026-01-15t12:00:00z", "T and Z in capitals", "created with t and z in lowercase."),
        ("invalid-time-fraction", "2026-01-15T12:00:00.5Z", "whole seconds", "created with a fraction of a second."),
        ("invalid-time-leap-second", "2026-06-30T23:59:60Z", "leap seconds", "created at a leap second, :60."),
        ("invalid-time-unknown-offset", "2026-01-15T12:00:00-00:00", "-00:00 means unknown",
         "created with the offset -00:00 (RFC 3339: unknown local offset)."),
        ("invalid-time-space-separator", "2026-01-15 12:00:00Z", "RFC 3339 time",
         "created with a space instead of T."),
        ("invalid-time-year-after-utc", "9999-12-31T23:00:00-05:00", "after conversion to UTC",
         "created 9999-12-31T23:00:00-05:00, which is in the year 10000 in UTC."),
        ("invalid-time-before-1970", "1969-12-31T23:59:59Z", "in the years 1970 to 9999",
         "created before 1970 (UTC)."),
    ):
        timed = copy.deepcopy(base)
        timed["predicate"]["created"] = value
        # The schema checks the spelling; the year range in UTC is beyond it.
        in_schema = name in ("invalid-time-year-after-utc", "invalid-time-before-1970")
        bad_statement(name, description, timed, errors.ManifestError, fragment, schema_valid=in_schema)
    offset = copy.deepcopy(base)
    offset["predicate"]["created"] = "2026-01-15T14:00:00+02:00"
    env = sign(payload_of(offset), pub)
    add("valid-time-offset",
        "created with the offset +02:00 (the same instant as 12:00:00Z): valid; times compare as instants.",
        env, valid(env, 1))

    # ---- section 5.1 / 5.2: paths other file systems cannot hold -------------------------------------
    three = with_paths("config.json", "tokenizer.json", "vocab.txt")
    for name, path, fragment, description in (
        ("invalid-path-windows-device", "CON.json", "reserves for a device",
         "A path component that is a Windows device name with an extension: CON.json."),
        ("invalid-path-windows-character", "config.json:stream", "Windows does not allow",
         "A path with ':' (on NTFS, an alternate data stream of config.json)."),
        ("invalid-path-trailing-dot", "tokenizer.", "ending in '.' or a space",
         "A path component ending in a dot, which Windows drops."),
        ("invalid-path-too-deep", "/".join(["d"] * 32 + ["x.json"]), "more than 32 components",
         "A path of 33 components (the bound is 32)."),
        ("invalid-path-too-long", "/".join(["d" * 200] * 5) + "/" + "x" * 30, "is too long",
         "A path of 1,035 bytes (6 components, each within 255 bytes): above the 1,024-byte bound."),
    ):
        stmt = set_path(three, 0, path)
        bad_statement(name, description, stmt, errors.UnsafePathError, fragment, schema_valid=False)
    nfc, nfd = "caf\u00e9.json", "cafe\u0301.json"
    bad_statement("invalid-path-nfc-nfd",
                  "Two paths equal under Unicode normalization: cafe\u0301.json (NFC) and cafe\u0301.json (NFD); "
                  "one file on macOS and Windows.",
                  with_paths(nfc, nfd), errors.UnsafePathError, "after Unicode normalization", schema_valid=True)

    # ---- section 8: the policy ------------------------------------------------------------------------
    add("valid-license-case", "allowed_licenses lists apache-2.0; the model is Apache-2.0. SPDX ids match "
        "case-insensitively.",
        sign(base_payload, pub), valid(sign(base_payload, pub), 1),
        pol=TrustPolicy(keys=(release,), allowed_licenses=("apache-2.0",)).to_dict())
    gpl = sign(payload_of(statement(license_spdx="GPL-2.0+")), pub)
    add("invalid-license-plus", "allowed_licenses lists GPL-2.0 (deprecated for GPL-2.0-only); the model is GPL-2.0+ "
        "(GPL-2.0-or-later), another license.",
        gpl, invalid(errors.PolicyError, "license GPL-2.0+ is not allowed"),
        pol=TrustPolicy(keys=(release,), allowed_licenses=("GPL-2.0",)).to_dict())
    ref_env = sign(payload_of(statement(license_spdx="LicenseRef-acme-community OR MIT")), pub)
    add("valid-license-ref", "LicenseRef-acme-community OR MIT with both ids allowed.",
        ref_env, valid(ref_env, 1),
        pol=TrustPolicy(keys=(release,), allowed_licenses=("LicenseRef-acme-community", "MIT")).to_dict())
    choice = sign(payload_of(statement(license_spdx="MIT OR GPL-3.0-only")), pub)
    add("valid-license-or", "MIT OR GPL-3.0-only with only MIT allowed: OR is a choice, and MIT may be chosen.",
        choice, valid(choice, 1), pol=TrustPolicy(keys=(release,), allowed_licenses=("MIT",)).to_dict())
    both = sign(payload_of(statement(license_spdx="MIT AND GPL-3.0-only")), pub)
    add("invalid-license-and", "MIT AND GPL-3.0-only with only MIT allowed: AND needs both.",
        both, invalid(errors.PolicyError, "license MIT AND GPL-3.0-only is not allowed"),
        pol=TrustPolicy(keys=(release,), allowed_licenses=("MIT",)).to_dict())
    unknown = sign(payload_of(statement(license_spdx="apache2")), pub)
    add("invalid-license-unknown", "The model's license apache2 is not an SPDX id; a list of allowed licenses never "
        "allows what is not SPDX, even when it lists the same text.",
        unknown, invalid(errors.PolicyError, "license apache2 is not allowed"),
        pol=TrustPolicy(keys=(release,), allowed_licenses=("MIT",)).to_dict())
    add("invalid-scope-case", "The key is trusted for Acme/*; the model is acme/tiny-llm. Scopes are case-sensitive.",
        sign(base_payload, pub), invalid(errors.PolicyError, "not for this namespace"),
        pol=TrustPolicy(keys=(trusted(pub, "publisher", ("Acme/*",), "acme-release"),)).to_dict())
    add("invalid-approver-only",
        "The only signature is by a key the policy trusts as approver only: no publisher signature counts. "
        "A trusted key did sign, so the refusal is a PolicyError.",
        sign(base_payload, approver), invalid(errors.PolicyError, "counted as approver"),
        pol=TrustPolicy(keys=(trusted(approver, "approver", ("*",), "approver"),)).to_dict())
    forged = Envelope(base_payload, PAYLOAD_TYPE_V1, (Signature(
        hashlib.sha256(bytes.fromhex("302a300506032b6570032100") + SMALL_ORDER_POINT).hexdigest(),
        SMALL_ORDER_POINT + bytes(32)),))
    small_policy = copy.deepcopy(policy)
    small_policy["keys"][0]["public_key"] = small_order_pem()
    small_policy["keys"][0].pop("id")
    add("invalid-small-order-key",
        "The policy holds an Ed25519 key of small order (the identity point), and the envelope a signature "
        "(R = identity, S = 0) that verifies under it for any message. The policy MUST be refused on load.",
        forged, invalid(errors.UsageError, "small order"), pol=small_policy)
    good = raw_sign(pub, Envelope(base_payload).signed_bytes())
    s_value = int.from_bytes(good[32:], "little") + ED25519_ORDER
    add("invalid-ed25519-noncanonical-s",
        "The valid Ed25519 signature with S replaced by S + L (the group order): S MUST be below L.",
        Envelope(base_payload, PAYLOAD_TYPE_V1, (Signature(pub.key_id, good[:32] + s_value.to_bytes(32, "little")),)),
        invalid(errors.SignatureError, "signature does not verify"))
    der = raw_sign(p256, Envelope(base_payload).signed_bytes())
    r, s_ = decode_dss_signature(der)
    r_bytes = b"\x00" + r.to_bytes(33, "big").lstrip(b"\x00").rjust(33, b"\x00")
    s_enc = encode_dss_signature(r, s_)[4 + der[3]:]
    body = b"\x02" + bytes([len(r_bytes)]) + r_bytes + s_enc
    ber = b"\x30" + bytes([len(body)]) + body
    p256_policy = TrustPolicy(keys=(trusted(p256, "publisher", (NAME,), "acme-p256"),)).to_dict()
    add("invalid-ecdsa-not-der",
        "The valid P-256 signature re-encoded with a superfluous leading zero byte in r (BER, not DER).",
        Envelope(base_payload, PAYLOAD_TYPE_V1, (Signature(p256.key_id, ber),)),
        invalid(errors.SignatureError, "signature does not verify"), pol=p256_policy)
    high = Envelope(base_payload, PAYLOAD_TYPE_V1, (Signature(p256.key_id, malleate(der)),))
    add("valid-ecdsa-high-s", "The P-256 signature as (r, n - s): ECDSA has no low-S rule here; it verifies.",
        high, valid(high, 1), pol=p256_policy)

    # ---- section 9 E: files ------------------------------------------------------------------------------
    files_policy = policy

    def file_vector(name: str, description: str, files: list[SynthFile], given: list[SynthFile] | None,
                    error: type[errors.Error], fragment: str, *, stmt: dict[str, Any] | None = None) -> None:
        stmt = stmt if stmt is not None else statement(files, license_file=None, expires=None)
        env = sign(payload_of(stmt), pub)
        add(name, description, env, valid(env, 1), pol=files_policy, files=given if given is not None else files,
            files_expected=invalid(error, fragment))

    small = [text("config.json", '{"a": 1}\n'), SynthFile("data.bin.txt", [(bytes(range(256)), 40000)])]
    wrong_sha = statement(small, license_file=None, expires=None)
    wrong_sha["subject"][1]["digest"]["sha256"] = hashlib.sha256(b"another file").hexdigest()
    file_vector("invalid-files-sha256-mismatch",
                "data.bin.txt matches its signed size and pieces root, but not its signed sha256: both digests "
                "MUST be checked.", small, None, errors.IntegrityError, "data.bin.txt", stmt=wrong_sha)
    flipped = SynthFile("data.bin.txt", [(bytes(range(256)), 39999), (b"\xff", 1)])
    file_vector("invalid-files-tampered-byte", "The last byte of data.bin.txt differs from the signed file.",
                small, [small[0], flipped], errors.IntegrityError, "data.bin.txt")
    file_vector("invalid-files-extra-file", "The directory holds a file the manifest does not list.",
                small, [*small, text("extra.txt", "x\n")], errors.IntegrityError, "extra.txt")
    file_vector("invalid-files-missing-file", "A listed file is missing from the directory.",
                small, small[:1], errors.IntegrityError, "data.bin.txt")
    entry = b'{"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}'
    for name, header, fragment, description in (
        ("invalid-safetensors-duplicate-tensor", b'{"a": ' + entry + b', "a": ' + entry + b"}", "found 'a' twice",
         "A safetensors header naming tensor a twice (pinned by the digests: only header validation refuses it)."),
        ("invalid-safetensors-unknown-key",
         b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "byte_order": "big"}}',
         "expected only dtype, shape and data_offsets",
         "A tensor entry with a member beyond dtype, shape, data_offsets."),
        ("invalid-safetensors-nul-padding", b'{"a": ' + entry + b"}\x00\x00\x00", "followed only by spaces",
         "A header padded with NUL bytes instead of spaces."),
        ("invalid-safetensors-metadata-type", b'{"__metadata__": {"format": 1}, "a": ' + entry + b"}",
         "__metadata__ to map strings to strings", "__metadata__ with a number value."),
        ("invalid-safetensors-dtype", b'{"a": {"dtype": "F4", "shape": [16], "data_offsets": [0, 8]}}',
         "expected a dtype in", "A sub-byte dtype (F4), outside the list a verifier accepts."),
    ):
        weights_file = [raw_safetensors("model.safetensors", header, 8)]
        file_vector(name, description, weights_file, None, errors.UnsafeWeightsError, fragment)
    file_vector("invalid-gguf-overlapping-tensors",
                "A GGUF file whose second tensor starts inside the first one (pinned by the digests: only header "
                "validation refuses it, section 4.4.2).", [gguf_file("model.gguf", overlap=True)], None,
                errors.UnsafeWeightsError, "overlapping tensor 'output_norm.weight'")
    whole = gguf_bytes()
    file_vector("invalid-gguf-truncated", "A GGUF file cut inside its tensor data.",
                [SynthFile("model.gguf", [(whole[:-40], len(whole) - 40)])], None, errors.UnsafeWeightsError,
                "past the end of the file")


PAYLOAD_TYPE_V1 = "application/vnd.in-toto+json"


# ---- heads (section 11) ----------------------------------------------------------------

# Heads of acme/tiny-llm at fixed times. Sequences follow the spec's SHOULD: the issue time
# in Unix seconds. NOW (2026-02-01) is within the expiry of every head but the stale ones.
HEAD_T1 = "2026-01-10T00:00:00Z"  # 1.0.0 is the latest
HEAD_T2 = "2026-01-20T00:00:00Z"  # 1.1.0 is the latest, 1.0.0 yanked
HEAD_T3 = "2026-01-25T00:00:00Z"  # a timestamp refresh
HEAD_T4 = "2026-01-28T00:00:00Z"  # another one
HEAD_STALE_NOW = "2026-03-01T00:00:00Z"  # after every head's expiry
YANK_REASON = "Tokenizer config truncated: use 1.1.0 (test vector)."
# Section 11 of the spec fixes these verdicts; the reference implementation does not reach
# them yet. The generator writes them without running them; tests/test_head_vectors.py marks
# them as strict expected failures, so the day the gap closes the entry must go.
HEAD_KNOWN_GAPS: dict[str, str] = {}  # none today


_DELETE = object()  # edited(): remove the member


def at(value: str) -> datetime:
    return parse_time(value, "time")


def head_at(issued: str, version: str, digest: str, yanked: tuple[Yank, ...] = (), *,
            ttl: timedelta = DEFAULT_HEAD_TTL) -> Head:
    moment = at(issued)
    return Head(NAME, int(moment.timestamp()), moment, moment + ttl, version, digest, yanked)


def refresh(head: Head, issued: str) -> Head:
    """What a timestamp key signs: the same content, a new sequence, issue time and expiry."""
    return head.successor(now=at(issued))


@dataclass
class HeadVector:
    name: str
    description: str
    envelope: dict[str, Any]
    policy: dict[str, Any]
    expected: dict[str, Any]
    schema_valid: bool
    now: str = NOW
    held: dict[str, Any] | None = None
    bases: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description, "envelope": self.envelope,
                               "policy": self.policy, "now": self.now}
        if self.held is not None:
            out["held"] = self.held
        if self.bases is not None:
            out["bases"] = self.bases
        out.update(expected=self.expected, schema_valid=self.schema_valid)
        return out


def head_valid(env: Envelope, head: Head, *, stale: bool = False, signed_by: str = "publisher", known: bool = False,
               publishers: int = 1, timestamps: int = 0) -> dict[str, Any]:
    """The verdict intended for a head: what the signer meant it to say."""
    return {
        "verdict": "valid", "digest": env.digest, "sequence": head.sequence,
        "latest": {"version": head.latest_version, "manifest_digest": head.latest_digest},
        "yanked": [y.to_dict() for y in head.yanked], "stale": stale, "signed_by": signed_by, "known": known,
        "publishers": publishers, "timestamps": timestamps,
    }  # fmt: skip


def held_of(env: Envelope, publisher_env: Envelope | None) -> dict[str, Any]:
    """The head a verifier holds, and the last head its publishers signed (when it has one)."""
    out: dict[str, Any] = {"envelope": env.to_dict()}
    if publisher_env is not None:
        out["publisher_envelope"] = publisher_env.to_dict()
    return out


def build_heads(keys: dict[str, PrivateKey]) -> list[HeadVector]:
    pub, p256, timestamp_key, stranger = (
        keys["publisher-ed25519"],
        keys["publisher-p256"],
        keys["approver-p256"],  # trusted as timestamp here: a key's role is the policy's
        keys["stranger-ed25519"],
    )
    publisher = trusted(pub, "publisher", ("acme/*",), "acme-release")
    stamper = trusted(timestamp_key, "timestamp", ("acme/*",), "acme-timestamp")
    second = trusted(p256, "publisher", ("acme/*",), "acme-p256")
    policy = TrustPolicy(keys=(publisher, stamper)).to_dict()
    fresh_policy = TrustPolicy(keys=(publisher, stamper), fresh_heads=True).to_dict()
    two_policy = TrustPolicy(keys=(publisher, second, stamper), publisher_threshold=2).to_dict()

    # 1.0.0 is valid-ed25519's release; 1.1.0 a stand-in digest.
    d100 = hashlib.sha256(payload_of(statement())).hexdigest()
    d110 = hashlib.sha256(b"payload of acme/tiny-llm@1.1.0 (test vector)").hexdigest()
    h1 = head_at(HEAD_T1, "1.0.0", d100)
    h2 = head_at(HEAD_T2, "1.1.0", d110, (Yank("1.0.0", YANK_REASON),))
    e1, e2 = sign(h1.to_payload(), pub), sign(h2.to_payload(), pub)
    e1two = sign(h1.to_payload(), pub, p256)  # e1 as held under publisher_threshold 2
    vectors: list[HeadVector] = []

    def add(name: str, description: str, env: Envelope, expected: dict[str, Any], *,
            pol: dict[str, Any] | None = None, schema_valid: bool = True, now: str = NOW,
            held: dict[str, Any] | None = None, bases: Sequence[Envelope] | None = None) -> None:
        vectors.append(HeadVector(name, description, env.to_dict(), policy if pol is None else pol, expected,
                                  schema_valid, now, held, [b.to_dict() for b in bases] if bases else None))

    def bad_head(name: str, description: str, stmt: dict[str, Any], error: type[errors.Error], fragment: str, *,
                 schema_valid: bool, compact: bool = False) -> None:
        raw = json.dumps(stmt, separators=(",", ":"), ensure_ascii=False).encode() if compact else payload_of(stmt)
        add(name, description, sign(raw, pub), invalid(error, fragment), schema_valid=schema_valid)

    def edited(head: Head, dotted: str, value: Any) -> dict[str, Any]:
        stmt = head.to_dict()
        node: Any = stmt
        path: list[Any] = [int(k) if k.isdigit() else k for k in dotted.split(".")]
        for k in path[:-1]:
            node = node[k]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return stmt

    # ---- valid ---------------------------------------------------------------------------------------
    add("head-valid-publisher",
        "A first head of acme/tiny-llm (latest 1.0.0, the release of valid-ed25519; nothing yanked), signed by "
        "the Ed25519 publisher key; no head is held. The policy also trusts a timestamp key.",
        e1, head_valid(e1, h1))
    add("head-valid-yanks",
        "The publisher's next head: latest 1.1.0, and 1.0.0 yanked with a reason. The verifier holds the "
        "previous head (a lower sequence).",
        e2, head_valid(e2, h2), held=held_of(e1, e1))
    add("head-valid-stale",
        "head-valid-publisher evaluated after its expiry: accepted as stale (a warning), since the policy does "
        "not set fresh_heads.",
        e1, head_valid(e1, h1, stale=True), now=HEAD_STALE_NOW)
    add("head-valid-known",
        "The very head the verifier holds, offered again: accepted (known), not an equivocation.",
        e1, head_valid(e1, h1, known=True), held=held_of(e1, e1))
    r1 = refresh(h1, HEAD_T3)
    er1 = sign(r1.to_payload(), timestamp_key)
    add("head-valid-timestamp-refresh",
        "A timestamp key (the P-256 key approver-p256.pem, trusted here as timestamp) re-signs the held "
        "publisher head with a higher sequence and a later expiry, its latest and yanked unchanged.",
        er1, head_valid(er1, r1, signed_by="timestamp", publishers=0, timestamps=1), held=held_of(e1, e1))
    add("head-valid-timestamp-refresh-with-base",
        "The refresh of head-valid-timestamp-refresh for a verifier that holds no head: the publisher head it "
        "refreshes is offered with it (bases), as a registry serves both.",
        er1, head_valid(er1, r1, signed_by="timestamp", publishers=0, timestamps=1), bases=[e1])
    r1b = refresh(r1, HEAD_T4)
    er1b = sign(r1b.to_payload(), timestamp_key)
    add("head-valid-timestamp-refresh-of-refresh",
        "The verifier holds a timestamp refresh and the publisher head it refreshed; a second refresh by the "
        "timestamp key, same content again: accepted (checked against the publisher head, not the held one).",
        er1b, head_valid(er1b, r1b, signed_by="timestamp", publishers=0, timestamps=1), held=held_of(er1, e1))
    two_yanks = (Yank("0.9.0", "Superseded by 1.0.0 (test vector)."), Yank("1.0.0", YANK_REASON))
    h2y = head_at(HEAD_T2, "1.1.0", d110, two_yanks)
    e2y = sign(h2y.to_payload(), pub)
    r2y = replace(refresh(h2y, HEAD_T3), yanked=tuple(reversed(two_yanks)))
    er2y = sign(r2y.to_payload(), timestamp_key)
    add("head-valid-timestamp-reorders-yanks",
        "A timestamp refresh that lists the publisher head's two yanks in the other order: the yanks are a set, "
        "so the content is unchanged.",
        er2y, head_valid(er2y, r2y, signed_by="timestamp", publishers=0, timestamps=1), held=held_of(e2y, e2y))
    e2two = sign(h2.to_payload(), pub, p256)
    add("head-valid-threshold-two",
        "publisher_threshold is 2; two publisher keys (Ed25519 and P-256) signed.",
        e2two, head_valid(e2two, h2, publishers=2), pol=two_policy, held=held_of(e1two, e1two))
    er1mixed = sign(r1.to_payload(), pub, timestamp_key)
    add("head-valid-threshold-two-publisher-and-timestamp",
        "publisher_threshold is 2; one publisher and one timestamp key signed a refresh of the held publisher "
        "head. The threshold is met, but not by publishers alone, so it counts as a timestamp refresh: its "
        "content is that of the held publisher head, so it is accepted.",
        er1mixed, head_valid(er1mixed, r1, signed_by="timestamp", publishers=1, timestamps=1), pol=two_policy,
        held=held_of(e1two, e1two))
    h1y = replace(head_at(HEAD_T2, "1.0.0", d100), yanked=(Yank("1.0.0", YANK_REASON),))
    e1y = sign(h1y.to_payload(), pub)
    add("head-valid-latest-yanked", "The latest release is itself yanked (the spec allows it).",
        e1y, head_valid(e1y, h1y))
    no_yanked = h1.to_dict()
    del no_yanked["predicate"]["yanked"]
    env = sign(payload_of(no_yanked), pub)
    add("head-valid-no-yanked-member", "predicate.yanked is absent: the parser reads it as no yanks.",
        env, head_valid(env, h1))
    extended = h2.to_dict()
    extended["x-statement-extension"] = {"kept": False}
    extended["predicate"]["x-predicate-extension"] = ["kept", 1]
    extended["predicate"]["latest"]["x-latest-note"] = "ignored"
    extended["predicate"]["yanked"][0]["x-yank-ticket"] = "ACME-123"
    env = sign(payload_of(extended), pub)
    add("head-valid-unknown-fields",
        "Unknown members in the statement, the predicate, latest and a yanked entry: accepted and ignored "
        "when deciding (the reference parser carries only the predicate's through a re-serialization).",
        env, head_valid(env, h2))
    h = replace(h1, sequence=1)
    env = sign(h.to_payload(), pub)
    add("head-valid-sequence-one", "A head with sequence 1, the lowest.", env, head_valid(env, h))
    env = sign(replace(h1, sequence=MAX_SEQUENCE).to_payload(), pub)
    add("head-invalid-sequence-far-ahead",
        "A head with sequence 2^53-1, which the parser reads, but far above its issue time: it would leave the "
        "publisher no higher sequence to sign (a freeze one timestamp key could cause).",
        env, invalid(errors.PolicyError, "and a sequence at most"))
    long_reason = "é" * MAX_REASON_CHARS
    h = replace(h2, yanked=(Yank("1.0.0", long_reason),))
    env = sign(h.to_payload(), pub)
    add("head-valid-reason-1000-characters",
        "A yank reason of exactly 1000 characters, each é (2 bytes in UTF-8): the bound counts characters.",
        env, head_valid(env, h))
    many = tuple(Yank(f"0.{i // 100}.{i % 100}", "r") for i in range(MAX_YANKS))

    # ---- invalid: freshness and memory ---------------------------------------------------------------
    add("head-invalid-stale-fresh-heads",
        "head-valid-publisher under a policy with fresh_heads = true, evaluated at exactly its expires time "
        "(expiry is inclusive).",
        e1, invalid(errors.ExpiredError, "the policy requires fresh heads"), pol=fresh_policy,
        now=format_time(h1.expires_at))
    add("head-invalid-rollback",
        "The verifier holds head-valid-yanks' head; the older head (lower sequence, 1.0.0 not yanked) is "
        "offered: a replay.",
        e1, invalid(errors.RollbackError, "refusing an older head"), held=held_of(e2, e2))
    forked = replace(h1, latest_version="1.1.0", latest_digest=d110)
    add("head-invalid-equivocation",
        "The publisher key signed two heads with the same sequence: the verifier holds one (latest 1.0.0) and "
        "is offered the other (latest 1.1.0).",
        sign(forked.to_payload(), pub), invalid(errors.RollbackError, "expected each sequence to be signed once"),
        held=held_of(e1, e1))

    # ---- invalid: timestamp keys may refresh, never change --------------------------------------------
    changed_latest = replace(r1, latest_version="1.1.0", latest_digest=d110)
    add("head-invalid-timestamp-changes-latest",
        "A head signed by the timestamp key only that moves latest to 1.1.0; the publisher head held says 1.0.0.",
        sign(changed_latest.to_payload(), timestamp_key),
        invalid(errors.PolicyError, "signed by timestamp keys only"), held=held_of(e1, e1))
    added_yank = r1.with_yank("1.0.0", YANK_REASON)
    add("head-invalid-timestamp-adds-yank",
        "A head signed by the timestamp key only that yanks 1.0.0; the publisher head held yanks nothing.",
        sign(added_yank.to_payload(), timestamp_key),
        invalid(errors.PolicyError, "never change its latest version or its yanks"), held=held_of(e1, e1))
    removed_yank = refresh(h2, HEAD_T3).without_yank("1.0.0")
    add("head-invalid-timestamp-removes-yank",
        "A head signed by the timestamp key only that drops the yank of 1.0.0 the publisher head held has.",
        sign(removed_yank.to_payload(), timestamp_key),
        invalid(errors.PolicyError, "signed by timestamp keys only"), held=held_of(e2, e2))
    add("head-invalid-timestamp-no-base",
        "A timestamp refresh for a verifier that holds no head and is offered no publisher head with it.",
        er1, invalid(errors.PolicyError, "differs from (or there is no) head the publishers signed"))
    changed_mixed = sign(changed_latest.to_payload(), pub, timestamp_key)
    add("head-invalid-threshold-two-publisher-and-timestamp-change",
        "publisher_threshold is 2; one publisher and one timestamp key signed a head that moves latest to "
        "1.1.0. Publishers alone do not meet the threshold, so it is a timestamp refresh, and it changes the "
        "content of the held publisher head.",
        changed_mixed, invalid(errors.PolicyError, "signed by timestamp keys only"), pol=two_policy,
        held=held_of(e1two, e1two))
    r2 = refresh(h2, HEAD_T3)
    er2 = sign(r2.to_payload(), timestamp_key)
    restored = refresh(h1, HEAD_T4)
    add("head-invalid-timestamp-restores-older-base",
        "The verifier holds a timestamp refresh of the publisher head that yanks 1.0.0 (and that publisher "
        "head). A timestamp-only head with a higher sequence says what an older publisher head said (latest "
        "1.0.0, nothing yanked), and that older head is offered with it. Rule 3 of section 11 allows only the "
        "newest publisher head's content: un-yanking is the publishers' decision.",
        sign(restored.to_payload(), timestamp_key), invalid(errors.PolicyError, "signed by timestamp keys only"),
        held=held_of(er2, e2), bases=[e1])

    # ---- invalid: signatures and policy ---------------------------------------------------------------
    add("head-invalid-untrusted-signer", "Signed by a key that is not in the trust policy.",
        sign(h1.to_payload(), stranger), invalid(errors.SignatureError, "key not in the local trust policy"))
    add("head-invalid-out-of-scope", "The publisher key is trusted only for other/*; the model is acme/tiny-llm.",
        e1, invalid(errors.PolicyError, "not for this namespace"),
        pol=TrustPolicy(keys=(trusted(pub, "publisher", ("other/*",), "other-release"), stamper)).to_dict())
    add("head-invalid-timestamp-out-of-scope",
        "A refresh signed by the timestamp key, trusted only for other/*; the publisher head is held.",
        er1, invalid(errors.PolicyError, "not for this namespace"),
        pol=TrustPolicy(keys=(publisher, trusted(timestamp_key, "timestamp", ("other/*",), "other-timestamp")))
        .to_dict(), held=held_of(e1, e1))
    add("head-invalid-approver-only",
        "Signed by a key trusted as approver only: approvals do not count for heads.",
        sign(h1.to_payload(), timestamp_key), invalid(errors.PolicyError, "counted as approver"),
        pol=TrustPolicy(keys=(publisher, trusted(timestamp_key, "approver", ("*",), "approver"))).to_dict())
    add("head-invalid-revoked-key", "The publisher key is trusted but also revoked.",
        e1, invalid(errors.PolicyError, "key is revoked"),
        pol=TrustPolicy(keys=(publisher, stamper), revoked=frozenset({pub.key_id})).to_dict())
    add("head-invalid-threshold-two", "publisher_threshold is 2; only one publisher key signed.",
        e2, invalid(errors.PolicyError, "expected 2 valid signature(s)"), pol=two_policy, held=held_of(e1two, e1two))
    tampered = bytearray(e1.payload)
    at_byte = e1.payload.index(b'"expires": "2026-02-09') + len('"expires": "2026-02-')
    tampered[at_byte] = ord("1")
    add("head-invalid-tampered-payload",
        "head-valid-publisher with one payload byte changed after signing: expires 2026-02-09 becomes "
        "2026-02-19. It parses; the signature no longer verifies.",
        Envelope(bytes(tampered), e1.payload_type, e1.signatures),
        invalid(errors.SignatureError, "signature does not verify"))
    add("head-invalid-no-signatures", "An envelope with no signature.",
        Envelope(h1.to_payload()), invalid(errors.SignatureError, "expected at least one signature, found none"))
    add("head-invalid-payload-type",
        "payloadType application/json instead of application/vnd.in-toto+json (signed over PAE with that type).",
        sign(h1.to_payload(), pub, payload_type="application/json"),
        invalid(errors.ManifestError, "expected payloadType 'application/vnd.in-toto+json'"))

    # ---- invalid: the statement ------------------------------------------------------------------------
    release_type = edited(h1, "predicateType", "https://seedvault.dev/manifest/v1")
    bad_head("head-invalid-predicate-type",
             "A head statement whose predicateType is the release's (https://seedvault.dev/manifest/v1).",
             release_type, errors.ManifestError, f"expected {HEAD_PREDICATE_TYPE}", schema_valid=False)
    bad_head("head-invalid-statement-type", "_type is in-toto Statement v0.1.",
             edited(h1, "_type", "https://in-toto.io/Statement/v0.1"), errors.ManifestError, "_type",
             schema_valid=False)
    for name, value, fragment, description, in_schema in (
        ("head-invalid-sequence-zero", 0, "an integer from 1 to", "predicate.sequence is 0.", False),
        ("head-invalid-sequence-negative", -5, "an integer from 1 to", "predicate.sequence is -5.", False),
        ("head-invalid-sequence-too-large", MAX_SEQUENCE + 1, "integers between",
         "predicate.sequence is 2^53, above what every JSON reader holds exactly (refused by the JSON reader).",
         False),
        ("head-invalid-sequence-boolean", True, "expected an integer", "predicate.sequence is true.", False),
        ("head-invalid-sequence-string", "1768003200", "expected an integer",
         "predicate.sequence is a string of digits.", False),
    ):
        bad_head(name, description, edited(h1, "predicate.sequence", value), errors.ManifestError, fragment,
                 schema_valid=in_schema)
    bad_head("head-invalid-expires-before-issued", "predicate.expires is a day before predicate.issued.",
             edited(h1, "predicate.expires", format_time(h1.issued - timedelta(days=1))), errors.ManifestError,
             "a time after issued", schema_valid=True)
    bad_head("head-invalid-expires-equals-issued", "predicate.expires equals predicate.issued.",
             edited(h1, "predicate.expires", HEAD_T1), errors.ManifestError, "a time after issued",
             schema_valid=True)
    bad_head("head-invalid-time-fraction", "predicate.issued with fractional seconds.",
             edited(h1, "predicate.issued", "2026-01-10T00:00:00.5Z"), errors.ManifestError, "RFC 3339 time",
             schema_valid=False)
    bad_head("head-invalid-issued-missing", "predicate.issued is absent.",
             edited(h1, "predicate.issued", _DELETE), errors.ManifestError, "predicate.issued", schema_valid=False)
    bad_head("head-invalid-latest-missing", "predicate.latest is absent.",
             edited(h1, "predicate.latest", _DELETE), errors.ManifestError, "predicate.latest", schema_valid=False)
    upper = edited(h1, "predicate.latest.manifest_digest", d100.upper())
    upper["subject"][0]["digest"]["sha256"] = d100.upper()
    bad_head("head-invalid-digest-uppercase", "latest.manifest_digest (and the subject's) in uppercase hex.",
             upper, errors.ManifestError, "64 lowercase hex characters", schema_valid=False)
    short = edited(h1, "predicate.latest.manifest_digest", d100[:63])
    short["subject"][0]["digest"]["sha256"] = d100[:63]
    bad_head("head-invalid-digest-length", "latest.manifest_digest (and the subject's) of 63 characters.",
             short, errors.ManifestError, "63 characters", schema_valid=False)
    bad_head("head-invalid-model-name", "predicate.name is acme/tiny..llm (and the subject says so too).",
             {**edited(h1, "predicate.name", "acme/tiny..llm"),
              "subject": [{"name": "acme/tiny..llm@1.0.0", "digest": {"sha256": d100}}]},
             errors.ManifestError, "expected 'namespace/name'", schema_valid=False)
    bad_version = edited(h1, "predicate.latest.version", "1..0")
    bad_version["subject"][0]["name"] = f"{NAME}@1..0"
    bad_head("head-invalid-latest-version", "latest.version is 1..0 (and the subject says so too).",
             bad_version, errors.ManifestError, "no '..'", schema_valid=False)
    bad_head("head-invalid-subject-mismatch",
             "The subject names acme/tiny-llm@1.1.0; predicate.latest says 1.0.0.",
             edited(h1, "subject.0.name", f"{NAME}@1.1.0"), errors.ManifestError,
             "expected subject to name the latest release", schema_valid=True)
    bad_head("head-invalid-subject-digest-mismatch",
             "The subject's sha256 is another digest than predicate.latest.manifest_digest.",
             edited(h1, "subject.0.digest.sha256", d110), errors.ManifestError,
             "expected subject to name the latest release", schema_valid=True)
    extra_digest = edited(h1, "subject.0.digest.sha512", hashlib.sha512(b"x").hexdigest())
    bad_head("head-invalid-subject-extra-digest",
             "The subject's digest set has a sha512 beside sha256: a head's subject is exactly {name, digest: "
             "{sha256}} (unlike a release's, section 7).",
             extra_digest, errors.ManifestError, "expected subject to name the latest release", schema_valid=False)
    two_subjects = h1.to_dict()
    two_subjects["subject"].append({"name": f"{NAME}@1.1.0", "digest": {"sha256": d110}})
    bad_head("head-invalid-two-subjects", "Two subject entries; a head has exactly one.",
             two_subjects, errors.ManifestError, "expected subject to name the latest release", schema_valid=False)

    # ---- invalid: yanks ------------------------------------------------------------------------------
    dup = h2.to_dict()
    dup["predicate"]["yanked"].append({"version": "1.0.0", "reason": "Listed twice (test vector)."})
    bad_head("head-invalid-yanked-duplicate-version",
             "1.0.0 is yanked twice, with two different reasons.",
             dup, errors.ManifestError, "expected each version once, found '1.0.0' twice", schema_valid=True)
    for name, reason, fragment, description in (
        ("head-invalid-reason-too-long", "é" * (MAX_REASON_CHARS + 1), "a one-line reason of 1 to 1000",
         "A yank reason of 1001 characters."),
        ("head-invalid-reason-empty", "", "a one-line reason", "An empty yank reason."),
        ("head-invalid-reason-spaces", "   ", "a one-line reason", "A yank reason of spaces only."),
        ("head-invalid-reason-newline", "Broken.\nUse 1.1.0.", "a one-line reason",
         "A yank reason of two lines."),
        ("head-invalid-reason-control-character", "Broken\u001b[31m", "a one-line reason",
         "A yank reason with an escape character (terminal control sequence)."),
    ):
        bad_head(name, description, edited(h2, "predicate.yanked.0.reason", reason), errors.ManifestError, fragment,
                 schema_valid=False)
    bad_head("head-invalid-yanked-version", "A yanked version of ../1.0.0.",
             edited(h2, "predicate.yanked.0.version", "../1.0.0"), errors.ManifestError, "version: expected",
             schema_valid=False)
    bad_head("head-invalid-yanked-reason-missing", "A yanked entry without a reason.",
             edited(h2, "predicate.yanked.0.reason", _DELETE), errors.ManifestError, "reason", schema_valid=False)
    bad_head("head-invalid-yanked-null", "predicate.yanked is null (optional members are omitted, never null).",
             edited(h1, "predicate.yanked", None), errors.ManifestError, "predicate.yanked", schema_valid=False)
    bad_head("head-invalid-yanked-not-list", "predicate.yanked is an object.",
             edited(h1, "predicate.yanked", {"1.0.0": YANK_REASON}), errors.ManifestError, "expected a list",
             schema_valid=False)
    too_many = replace(h2, yanked=(*many, Yank("9.9.9", "r"))).to_dict()
    bad_head("head-invalid-1025-yanks", "1025 yanked versions, one more than a head may list (compact JSON payload).",
             too_many, errors.ManifestError, "at most 1024 yanked versions", schema_valid=False, compact=True)
    return vectors


def head_envelope(data: dict[str, Any]) -> Envelope:
    return Envelope.from_dict(data)


def head_held(data: dict[str, Any]) -> HeldHead | None:
    held = data.get("held")
    if held is None:
        return None
    env = head_envelope(held["envelope"])
    base = held.get("publisher_envelope")
    content = Head.from_payload(head_envelope(base).payload).content() if base is not None else None
    return HeldHead(Head.from_payload(env.payload), env.digest, content)


def run_head(data: dict[str, Any]) -> AcceptedHead:
    """accept_head on the vector, as a client does: the bases offered with the head are
    accepted first (with no held head) and count only when publishers alone signed them."""
    policy = TrustPolicy.from_dict(data["policy"])
    now = parse_time(data["now"], "now")
    bases = []
    for raw in data.get("bases", []):
        base = accept_head(head_envelope(raw), policy, None, now=now)
        if base.by_publishers:
            bases.append(base.head)
    return accept_head(head_envelope(data["envelope"]), policy, head_held(data), now=now, bases=tuple(bases))


def head_verdict(accepted: AcceptedHead) -> dict[str, Any]:
    head = accepted.head
    valid_signers = [r for r in accepted.signers if r.status == "valid"]
    return {
        "verdict": "valid", "digest": accepted.digest, "sequence": head.sequence,
        "latest": {"version": head.latest_version, "manifest_digest": head.latest_digest},
        "yanked": [y.to_dict() for y in head.yanked], "stale": accepted.stale,
        "signed_by": "publisher" if accepted.by_publishers else "timestamp", "known": accepted.known,
        "publishers": len({r.key_id for r in valid_signers if r.role == "publisher"}),
        "timestamps": len({r.key_id for r in valid_signers if r.role == "timestamp"}),
    }  # fmt: skip


def check_head(vector: HeadVector) -> None:
    data = vector.to_json()
    # What the verifier holds, or is offered beside the head, must be heads publishers signed.
    policy, now = TrustPolicy.from_dict(data["policy"]), parse_time(data["now"], "now")
    publisher_heads = [*data.get("bases", []), *([data["held"]["publisher_envelope"]]
                                                 if "publisher_envelope" in data.get("held", {}) else [])]
    if not all(accept_head(head_envelope(raw), policy, None, now=now).by_publishers for raw in publisher_heads):
        raise SystemExit(f"{vector.name}: a held or offered publisher head is not one this policy accepts")
    if vector.name in HEAD_KNOWN_GAPS:
        return
    expected = vector.expected
    try:
        got = head_verdict(run_head(data))
    except errors.Error as exc:
        if expected["verdict"] == "valid":
            raise SystemExit(f"{vector.name}: expected valid, got {type(exc).__name__}: {exc}") from None
        if type(exc).__name__ != expected["error"] or expected["message_contains"] not in str(exc):
            raise SystemExit(f"{vector.name}: expected {expected}, got {type(exc).__name__}: {exc}") from None
        return
    if got != expected:
        raise SystemExit(f"{vector.name}: expected {expected}, the implementation says {got}")


# ---- self-check and output -------------------------------------------------------------

REQUIRED = (
    "valid-ed25519", "valid-p256", "valid-countersigned",
    "invalid-tampered-payload", "invalid-wrong-key", "invalid-path-traversal", "invalid-absolute-path",
    "invalid-backslash-path", "invalid-duplicate-path", "invalid-digest-length", "invalid-approval-missing",
    "invalid-self-approval",
    "invalid-expired", "invalid-revoked-key", "invalid-out-of-scope", "invalid-duplicate-signer-p256",
    "invalid-license-not-allowed",
)  # fmt: skip


def envelope_of(data: dict[str, Any]) -> Envelope:
    if "envelope_base64" in data:
        return Envelope.from_json(base64.b64decode(data["envelope_base64"]))
    return Envelope.from_dict(data["envelope"])


def run(vector: Vector) -> Any:
    data = vector.to_json()
    return evaluate(
        envelope_of(data),
        TrustPolicy.from_dict(data["policy"]),
        now=parse_time(data["now"], "now"),
    )


def run_files(data: dict[str, Any]) -> Any:
    """Section 9 E through the reference client: the files of `file_contents` in a directory,
    verified against the envelope under the policy (`Client.verify_dir`)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "model"
        for path, segments in data["file_contents"].items():
            target = base / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(
                (bytes.fromhex(s["repeat_hex"]) * (s["size"] // max(1, len(s["repeat_hex"]) // 2) + 1))[: s["size"]]
                for s in segments
            ))
        client = Client(Path(tmp) / "home")
        try:
            client.save_policy(TrustPolicy.from_dict(data["policy"]))
            return client.verify_dir(base, envelope_of(data))
        finally:
            client.close()


# Vectors whose verdict the spec fixes but the reference implementation does not reach yet,
# with the work that closes the gap. tests/test_vectors.py marks them as strict expected
# failures, so the day the gap closes the entry must go.
KNOWN_GAPS: dict[str, str] = {}  # none today: issue 8 closed the SHA-256 gap


def check_files(vector: Vector) -> None:
    expected = vector.expected_files
    if expected is None or vector.name in KNOWN_GAPS:
        return
    try:
        run_files(vector.to_json())
    except errors.Error as exc:
        if expected["verdict"] == "valid":
            raise SystemExit(f"{vector.name}: files: expected valid, got {type(exc).__name__}: {exc}") from None
        if type(exc).__name__ != expected["error"] or expected["message_contains"] not in str(exc):
            raise SystemExit(f"{vector.name}: files: expected {expected}, got {type(exc).__name__}: {exc}") from None
    else:
        if expected["verdict"] != "valid":
            raise SystemExit(f"{vector.name}: files: expected {expected}, the implementation accepted them")


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


REQUIRED_HEADS = (
    "head-valid-publisher", "head-valid-yanks", "head-valid-stale", "head-valid-timestamp-refresh",
    "head-invalid-stale-fresh-heads", "head-invalid-rollback", "head-invalid-equivocation",
    "head-invalid-timestamp-changes-latest", "head-invalid-timestamp-adds-yank", "head-invalid-untrusted-signer",
    "head-invalid-out-of-scope", "head-invalid-threshold-two", "head-invalid-predicate-type",
    "head-invalid-payload-type",
)  # fmt: skip


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[Path, dict[str, str]]:
    """Every vector, checked against the implementation: {directory: {file name: text}}."""
    check_coverage()
    keys = load_keys()
    vectors = build(keys)
    heads = build_heads(keys)
    names = [v.name for v in vectors] + [v.name for v in heads]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate vector names")
    missing = (set(REQUIRED) | set(REQUIRED_HEADS)) - set(names)
    if missing:
        raise SystemExit(f"required vectors not generated: {sorted(missing)}")
    for v in vectors:
        check(v)
        check_files(v)
    for h in heads:
        check_head(h)
    return {
        VECTORS: {f"{v.name}.json": render(v.to_json()) for v in vectors},
        HEAD_VECTORS: {f"{h.name}.json": render(h.to_json()) for h in heads},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["--check"]):
        raise SystemExit("usage: make_vectors.py [--check]")
    out = generate()
    if args == ["--check"]:
        problems = []
        for directory, files in out.items():
            on_disk = {p.name for p in directory.glob("*.json")}
            problems += [f"missing {directory / n}" for n in sorted(set(files) - on_disk)]
            problems += [f"not generated {directory / n}" for n in sorted(on_disk - set(files))]
            problems += [f"differs {directory / n}" for n in sorted(set(files) & on_disk)
                         if (directory / n).read_text() != files[n]]
        for p in problems:
            print(p)
        print(f"{len(problems)} difference(s) from the committed vectors" if problems else "vectors up to date")
        return 1 if problems else 0
    for directory, files in out.items():
        directory.mkdir(parents=True, exist_ok=True)
        for stale in sorted(set(directory.glob("*.json")) - {directory / n for n in files}):
            stale.unlink()
            print(f"removed stale {stale.relative_to(HERE)}")
        for n, body in files.items():
            (directory / n).write_text(body)
        print(f"wrote {len(files)} vectors to {directory.relative_to(HERE.parent)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
