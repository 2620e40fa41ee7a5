"""C2SP signed notes (signed-note v1.0.0), their verifier keys, and tlog-cosignature v1.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
`— <key name> base64(4-byte key id || signature)`. Ed25519 keys sign the text (type 0x01);
a witness's Ed25519 cosignature (type 0x04) signs `cosignature/v1\\ntime <T>\\n` + the text
and carries the time T (a big-endian u64) before its signature. Key ids are the first four
bytes of SHA-256(name || 0x0A || type || public key). Keys are written as a verifier key
(`name+hex id+base64(type || key)`) and a signer key (`PRIVATE+KEY+name+hex id+base64(type || seed)`),
the formats Go's golang.org/x/mod/sumdb/note and its ecosystem read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from seedvault._text import quote
from seedvault.errors import ManifestError, OversizeError, SignatureError, UsageError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
KINDS = {ED25519: "log key (Ed25519)", COSIGNATURE_V1: "witness key (Ed25519 cosignature)"}
DASH = "\u2014 "
MAX_NOTE_BYTES = 256 * 1024
MAX_NOTE_SIGNATURES = 64  # the spec asks verifiers to take at least 16
MAX_KEY_NAME = 256
MAX_COSIGNATURE_TIME = 2**63 - 1


def key_id(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def check_key_name(name: str, where: str) -> str:
    if not name or len(name) > MAX_KEY_NAME or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise UsageError(f"{where}: expected a key name of 1-{MAX_KEY_NAME} characters without spaces or '+' "
                         f"(such as example.com/log), found {quote(name[:80])}")
    return name


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def _b64(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ManifestError(f"{what}: expected base64, found {quote(data[:60])}") from None


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes  # after the key id: an Ed25519 signature, or time || signature for a cosignature

    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    def with_signatures(self, extra: tuple[NoteSignature, ...]) -> Note:
        """This note with more signature lines; a line already present is kept once."""
        kept = list(self.signatures)
        for sig in extra:
            if sig not in kept:
                kept.append(sig)
        return Note(self.text, tuple(kept))

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Note:
        if len(raw) > MAX_NOTE_BYTES:
            raise OversizeError(f"{where}: expected a signed note of at most {MAX_NOTE_BYTES:,} bytes, "
                                f"found {len(raw):,}")
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(f"{where}: expected a signed note in UTF-8, found other bytes") from None
        if any(ord(c) < 0x20 and c != "\n" for c in data):
            raise ManifestError(f"{where}: expected a signed note without control characters, found some")
        split = data.rfind("\n\n")
        if split < 0 or not data.endswith("\n"):
            raise ManifestError(f"{where}: expected a signed note (text, a blank line, signature lines), "
                                "found no blank line before signatures")
        text, block = data[: split + 1], data[split + 2:]
        lines = block.split("\n")[:-1]
        if not lines:
            raise ManifestError(f"{where}: expected at least one signature line after the blank line, found none")
        if len(lines) > MAX_NOTE_SIGNATURES:
            raise OversizeError(f"{where}: expected at most {MAX_NOTE_SIGNATURES} signatures, found {len(lines)}")
        sigs = []
        for n, line in enumerate(lines, 1):
            name, _, encoded = line.removeprefix(DASH).partition(" ")
            if not line.startswith(DASH) or not name or not encoded or " " in encoded:
                raise ManifestError(f"{where}: signature line {n}: expected '\u2014 <key name> <base64>', "
                                    f"found {quote(line[:80])}")
            blob = _b64(encoded, f"{where}: signature line {n}")
            if len(blob) < 5:
                raise ManifestError(f"{where}: signature line {n}: expected a key id and a signature, "
                                    f"found {len(blob)} bytes")
            sigs.append(NoteSignature(name, blob[:4], blob[4:]))
        return cls(text, tuple(sigs))


@dataclass(frozen=True)
class Verifier:
    """A public key of a log (type 0x01) or of a witness (type 0x04), with its name."""

    name: str
    kind: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([self.kind]) + self.public).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str, where: str = "verifier key") -> Verifier:
        parts = vkey.strip().split("+", 2)  # base64 may hold "+" too
        if len(parts) != 3:
            raise UsageError(f"{where}: expected a verifier key 'name+keyid+base64key' (signed-note vkey), "
                             f"found {quote(vkey[:100])}")
        name, hex_id, encoded = parts
        check_key_name(name, where)
        try:
            material = base64.b64decode(encoded, validate=True)
            claimed = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: expected a hex key id and base64 key, found {quote(vkey[:100])}") from None
        if len(claimed) != 4 or len(material) != 33 or material[0] not in KINDS:
            raise UsageError(f"{where}: expected an Ed25519 log key (type 01) or witness key (type 04) with a "
                             f"4-byte id, found {quote(vkey[:100])}")
        verifier = cls(name, material[0], material[1:])
        if verifier.key_id != claimed:
            raise UsageError(f"{where}: expected key id {verifier.key_id.hex()} (the id of the key it holds), "
                             f"found {hex_id}: the verifier key was mistyped or altered")
        return verifier

    def matches(self, sig: NoteSignature) -> bool:
        return sig.name == self.name and sig.key_id == self.key_id

    def check(self, text: str, sig: NoteSignature) -> int | None:
        """Verify one matching signature line over `text`: None for a log signature, the
        cosignature's time for a witness's; SignatureError when it does not verify."""
        key = Ed25519PublicKey.from_public_bytes(self.public)
        if self.kind == COSIGNATURE_V1:
            if len(sig.signature) != 8 + 64:
                raise SignatureError(f"cosignature by {self.name}: expected 72 bytes, found {len(sig.signature)}")
            timestamp = int.from_bytes(sig.signature[:8], "big")
            message, raw = cosigned_message(text, timestamp), sig.signature[8:]
        else:
            timestamp, message, raw = None, text.encode(), sig.signature
        try:
            key.verify(raw, message)
        except InvalidSignature:
            raise SignatureError(f"signature by {self.name} ({self.key_id.hex()}) does not verify over the "
                                 "note: the note was altered, or signed by another key with that name",
                                 hint="a note with a bad signature from a known key is refused whole") from None
        if timestamp is not None and timestamp > MAX_COSIGNATURE_TIME:
            raise SignatureError(f"cosignature by {self.name}: time {timestamp} is out of range")
        return timestamp


def verified_by(note: Note, verifiers: list[Verifier]) -> dict[str, int | None]:
    """Which of `verifiers` signed the note (vkey -> cosignature time or None). Signatures by
    unknown keys are ignored; one by a known key that fails refuses the whole note."""
    found: dict[str, int | None] = {}
    for sig in note.signatures:
        for v in verifiers:
            if v.matches(sig):
                found[v.vkey] = v.check(note.text, sig)
    return found


@dataclass(frozen=True)
class Signer:
    """A log's or witness's private key, with its name."""

    name: str
    kind: int
    key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.kind, self.key.public_key().public_bytes_raw())

    def sign(self, text: str, timestamp: int | None = None) -> NoteSignature:
        if self.kind == COSIGNATURE_V1:
            if timestamp is None:
                raise ValueError("a cosignature needs a time")
            body = struct.pack(">Q", timestamp) + self.key.sign(cosigned_message(text, timestamp))
        else:
            body = self.key.sign(text.encode())
        return NoteSignature(self.name, self.verifier.key_id, body)

    @property
    def skey(self) -> str:
        seed = self.key.private_bytes_raw()
        return (f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+"
                f"{base64.b64encode(bytes([self.kind]) + seed).decode()}")

    @classmethod
    def generate(cls, name: str, kind: int) -> Signer:
        return cls(check_key_name(name, "key name"), kind, Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str, where: str = "signer key") -> Signer:
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise UsageError(f"{where}: expected a signer key 'PRIVATE+KEY+name+keyid+base64key', found "
                             "something else")
        name, hex_id, encoded = parts[2:]
        check_key_name(name, where)
        try:
            material = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: expected the key in base64, found something else") from None
        if len(material) != 33 or material[0] not in KINDS:
            raise UsageError(f"{where}: expected an Ed25519 key of type 01 or 04, found another")
        signer = cls(name, material[0], Ed25519PrivateKey.from_private_bytes(material[1:]))
        if signer.verifier.key_id.hex() != hex_id.lower():
            raise UsageError(f"{where}: key id {hex_id} does not match the key ({signer.verifier.key_id.hex()})")
        return signer


def load_or_create_signer(path: Path, name: str, kind: int) -> Signer:
    """The signer key in `path`, made (mode 0600, written atomically) when there is none.
    A key whose name or type differs from what is asked is refused: the log's identity
    must not change behind its clients' backs."""
    try:
        signer = Signer.from_skey(path.read_text(), str(path))
    except FileNotFoundError:
        signer = Signer.generate(name, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(signer.skey + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return signer
    except UnicodeDecodeError:
        raise UsageError(f"{path}: expected a signer key (text), found other bytes") from None
    if (signer.name, signer.kind) != (name, kind):
        raise UsageError(f"{path}: holds the key of {quote(signer.name)} (type {signer.kind:02x}); expected one "
                         f"named {quote(name)} (type {kind:02x})",
                         hint="set log_origin to the key's name, or move the key file away to start a new log")
    return signer
