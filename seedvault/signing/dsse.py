"""DSSE envelopes (Dead Simple Signing Envelope): one payload, any number of signatures.

Signatures are over PAE(payloadType, payload), the exact payload bytes, so no JSON
canonicalization is needed, and the manifest digest is simply SHA-256(payload).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from seedvault.errors import ManifestError, OversizeError, SignatureError
from seedvault.manifest import PAYLOAD_TYPE
from seedvault.settings import MAX_ENVELOPE_BYTES
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
        return Envelope(self.payload, self.payload_type, (*others, sig))

    def merge(self, other: Envelope) -> Envelope:
        """Add the signatures of another envelope over the same payload."""
        if other.payload != self.payload or other.payload_type != self.payload_type:
            raise SignatureError(
                f"cannot merge signatures: expected the same payload (digest {self.digest}), "
                f"found digest {other.digest}"
            )
        known = {(s.keyid, s.sig) for s in self.signatures}
        extra = tuple(s for s in other.signatures if (s.keyid, s.sig) not in known)
        return Envelope(self.payload, self.payload_type, self.signatures + extra)

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
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5000-digit number, deep nesting
            raise ManifestError(f"{source}: expected a DSSE envelope in JSON, found invalid JSON ({exc})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: object, source: str = "envelope") -> Envelope:
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: expected a JSON object, found {type(data).__name__}")
        payload_type = data.get("payloadType")
        if payload_type != PAYLOAD_TYPE:
            raise ManifestError(f"{source}: expected payloadType {PAYLOAD_TYPE!r}, found {payload_type!r}")
        payload = b64_field(data.get("payload"), f"{source}.payload")
        raw_sigs = data.get("signatures")
        if not isinstance(raw_sigs, list):
            raise ManifestError(f"{source}.signatures: expected a list, found {type(raw_sigs).__name__}")
        sigs = []
        for i, item in enumerate(raw_sigs):
            if not isinstance(item, dict) or not isinstance(item.get("keyid", ""), str):
                raise ManifestError(f"{source}.signatures[{i}]: expected an object with keyid and sig")
            sigs.append(Signature(item.get("keyid", ""), b64_field(item.get("sig"), f"{source}.signatures[{i}].sig")))
        return cls(payload, payload_type, tuple(sigs))


def b64_field(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected base64 text, found {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError(f"{where}: expected standard base64, found invalid characters") from None
