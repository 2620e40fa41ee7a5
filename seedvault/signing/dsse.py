"""DSSE envelopes (Dead Simple Signing Envelope): one payload, any number of signatures.

Signatures are over PAE(payloadType, payload), the exact payload bytes, so no JSON
canonicalization is needed, and the manifest digest is simply SHA-256(payload).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from seedvault import _json
from seedvault._json import describe
from seedvault.errors import ManifestError, OversizeError, SignatureError
from seedvault.manifest import PAYLOAD_TYPE
from seedvault.settings import MAX_ENVELOPE_BYTES, MAX_SIGNATURES
from seedvault.signing.keys import PrivateKey


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


def check_envelope_size(size: int, source: str) -> None:
    """An envelope past the cap is refused by its size alone, before it is read (413)."""
    if size > MAX_ENVELOPE_BYTES:
        raise OversizeError(f"{source}: expected an envelope of at most {MAX_ENVELOPE_BYTES} bytes, found {size}")


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str = PAYLOAD_TYPE
    signatures: tuple[Signature, ...] = field(default_factory=tuple)

    @property
    def digest(self) -> str:
        """The manifest digest: SHA-256 of the payload bytes."""
        return hashlib.sha256(self.payload).hexdigest()

    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def sign(self, key: PrivateKey) -> Envelope:
        """A copy with one more signature; signing twice with one key replaces the first."""
        sig = Signature(key.key_id, key.sign(self.signed_bytes()))
        others = tuple(s for s in self.signatures if s.keyid != key.key_id)
        signed = Envelope(self.payload, self.payload_type, (*others, sig))
        signed.check_bounds()
        return signed

    def check_bounds(self) -> None:
        """Refuse to produce an envelope that no verifier would read back (section 2)."""
        if len(self.signatures) > MAX_SIGNATURES:
            raise OversizeError(
                f"envelope: expected at most {MAX_SIGNATURES} signatures, found {len(self.signatures)}"
            )
        size = len(self.to_json())
        if size > MAX_ENVELOPE_BYTES:
            raise OversizeError(
                f"envelope: expected at most {MAX_ENVELOPE_BYTES} bytes, found {size}",
                hint="a manifest of many files may not fit one envelope; split the model into "
                "fewer, larger files",
            )

    def merge(self, other: Envelope) -> Envelope:
        """Add the signatures of another envelope over the same payload, one per key id: a
        second by a key already here adds nothing (an ECDSA signature can be re-spelled, s
        for n - s, and still verify, so comparing the bytes would keep both)."""
        if other.payload != self.payload or other.payload_type != self.payload_type:
            raise SignatureError(
                f"cannot merge signatures: expected the same payload (digest {self.digest}), "
                f"found digest {other.digest}"
            )
        known = {s.keyid for s in self.signatures}
        extra: list[Signature] = []
        for sig in other.signatures:
            if sig.keyid not in known:
                known.add(sig.keyid)
                extra.append(sig)
        merged = Envelope(self.payload, self.payload_type, self.signatures + tuple(extra))
        if len(merged.signatures) > MAX_SIGNATURES:
            raise OversizeError(
                f"cannot merge signatures: expected at most {MAX_SIGNATURES} in one envelope, "
                f"found {len(merged.signatures)}"
            )
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, source: str = "envelope") -> Envelope:
        check_envelope_size(len(raw), source)
        return cls.from_dict(_json.loads(raw, source), source)

    @classmethod
    def from_dict(cls, data: object, source: str = "envelope") -> Envelope:
        """The envelope rules of manifests/README.md section 2, before any signature is checked."""
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: expected a JSON object, found {describe(data)}")
        payload_type = data.get("payloadType")
        if payload_type != PAYLOAD_TYPE:
            raise ManifestError(
                f"{source}: expected payloadType '{PAYLOAD_TYPE}', found {describe(payload_type)}"
            )
        payload = b64_field(data.get("payload"), f"{source}.payload")
        raw_sigs = data.get("signatures")
        if not isinstance(raw_sigs, list):
            raise ManifestError(f"{source}.signatures: expected a list, found {describe(raw_sigs)}")
        if len(raw_sigs) > MAX_SIGNATURES:
            # Refused whole, before any is verified: padding costs the sender, not the verifier.
            raise OversizeError(
                f"{source}.signatures: expected at most {MAX_SIGNATURES} signatures, found {len(raw_sigs)}",
                hint="an envelope needs one signature per publisher or approver key",
            )
        sigs = tuple(_signature(item, f"{source}.signatures[{i}]") for i, item in enumerate(raw_sigs))
        return cls(payload, payload_type, sigs)


def _signature(item: object, where: str) -> Signature:
    if not isinstance(item, dict):
        raise ManifestError(f"{where}: expected an object with keyid and sig, found {describe(item)}")
    # A missing keyid is the empty string, which names no key; null or any non-string is refused.
    keyid = item.get("keyid", "")
    if not isinstance(keyid, str):
        raise ManifestError(f"{where}.keyid: expected a string (a key id in hex), found {describe(keyid)}")
    return Signature(keyid, b64_field(item.get("sig"), f"{where}.sig"))


_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64_field(value: object, where: str) -> bytes:
    """Standard base64 in its one canonical spelling (RFC 4648 section 4, padded, no
    whitespace, zero pad bits): two decoders then always agree on the bytes."""
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected base64 text, found {describe(value)}")
    if not _B64.fullmatch(value) or len(value) % 4:
        raise ManifestError(
            f"{where}: expected standard base64 (A-Z a-z 0-9 + /, '=' padding to a multiple of 4 "
            "characters, no whitespace), found other characters or a length that is not a multiple of 4"
        )
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError(f"{where}: expected standard base64, found misplaced padding") from None
    if base64.b64encode(decoded).decode() != value:
        raise ManifestError(
            f"{where}: expected canonical base64 (unused bits of the last character zero), "
            "found non-zero pad bits"
        )
    return decoded
