"""Signing keys: Ed25519 (default) and ECDSA P-256, as PEM files.

The key id is the hex SHA-256 of the public key's DER SubjectPublicKeyInfo, so anyone
holding the public key computes the same id without trusting whoever sent it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from seedvault._text import quote
from seedvault.errors import NotFoundError, UsageError

KeyType = Literal["ed25519", "p256"]
KEY_TYPES: tuple[KeyType, ...] = ("ed25519", "p256")

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class PublicKey:
    """A public key that can check signatures; compares equal by key id."""

    key: _PublicKey

    @property
    def spki_der(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.spki_der).hexdigest()

    @property
    def key_type(self) -> KeyType:
        return "ed25519" if isinstance(self.key, ed25519.Ed25519PublicKey) else "p256"

    def pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
            else:
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_pem(cls, pem: bytes | str, source: str = "public key") -> PublicKey:
        raw = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(raw)
        except (ValueError, UnsupportedAlgorithm):
            found = _pem_found(raw)
            raise UsageError(f"{source}: expected a PEM public key (Ed25519 or ECDSA P-256), found "
                             + ("a public key block that does not parse (damaged?)" if found == "a public key"
                                else found), hint=_pem_hint(raw, public=True)) from None
        return cls(_check_public(key, source))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PublicKey:
        return cls.from_pem(_read(path), str(path))


@dataclass(frozen=True)
class PrivateKey:
    key: _PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))  # DER, as OMS and DSSE tooling expect

    def pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def generate(cls, key_type: KeyType = "ed25519") -> PrivateKey:
        if key_type == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if key_type == "p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise UsageError(f"key type: expected one of {', '.join(KEY_TYPES)}, found {quote(str(key_type))}")

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
        raw = _read(path)
        try:
            key = serialization.load_pem_private_key(raw, password=passphrase)
        except TypeError:
            raise UsageError(
                f"private key {path}: it is encrypted and no passphrase was given"
                if passphrase is None
                else f"private key {path}: it is not encrypted, but a passphrase was given",
                hint="set SEEDVAULT_KEY_PASSPHRASE or pass --passphrase-file",
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            found = _pem_found(raw)
            raise UsageError(
                f"private key {path}: a wrong passphrase, or a damaged key file" if found == "an encrypted private key"
                else f"private key {path}: expected a PEM private key (Ed25519 or ECDSA P-256), found "
                + (f"{found} that does not parse (damaged?)" if found == "a private key" else found),
                hint=_pem_hint(raw, public=False),
            ) from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(key)
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(key)
        raise UsageError(f"private key {path}: expected Ed25519 or ECDSA P-256, found {_kind_of_key(key)}",
                         hint="make a key seedvault uses: seedvault keygen (Ed25519) or seedvault keygen --type p256")

    def save(self, path: Path, passphrase: bytes | None = None) -> Path:
        """Write FILE (private, mode 0600) and FILE.pub; refuse to overwrite either."""
        pub_path = path.with_name(path.name + ".pub")
        for target in (path, pub_path):
            if target.exists():
                raise UsageError(f"{target} already exists; refusing to overwrite a key")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.pem(passphrase))
        pub_path.write_text(self.public.pem())
        return pub_path


# Encodings of the Ed25519 points of small order (and their non-canonical spellings), as
# libsodium's blocklist has them, compared without the sign bit. Under such a key one
# forged signature verifies for every message, so no policy may hold one.
_SMALL_ORDER = frozenset(bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
))


def _kind_of_key(key: object) -> str:
    """A key's algorithm in people's words ("an RSA key", "an ECDSA P-384 key"), not a class name."""
    name = type(key).__name__.lstrip("_").lower()
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        curves = {"secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "secp256k1"}
        return f"an ECDSA {curves.get(key.curve.name, key.curve.name)} key"
    for word, label in (("rsa", "an RSA key"), ("dsa", "a DSA key"), ("ed448", "an Ed448 key"),
                        ("x25519", "an X25519 key (for encryption, not signing)"),
                        ("x448", "an X448 key (for encryption, not signing)")):
        if word in name:
            return label
    return "a key of another algorithm"


def _check_public(key: object, source: str) -> _PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if raw[:31] + bytes([raw[31] & 0x7F]) in _SMALL_ORDER:
            raise UsageError(
                f"{source}: expected an Ed25519 public key, found a point of small order, under which "
                "forged signatures verify; this is not a real key"
            )
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise UsageError(f"{source}: expected an Ed25519 or ECDSA P-256 public key, found {_kind_of_key(key)}",
                     hint="make a key seedvault uses: seedvault keygen (Ed25519) or seedvault keygen --type p256")


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"key file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"key file {path}: expected a file, found a directory") from None


_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")


def _pem_found(raw: bytes) -> str:
    """What a key file holds, in a person's words (never the crypto library's text)."""
    match = _PEM_LABEL.search(raw)
    if match is None:
        return "an empty file" if not raw.strip() else "no PEM block (a PEM key starts with -----BEGIN ...-----)"
    label = match.group(1).decode()
    if "PRIVATE KEY" in label:
        return "a private key" if "ENCRYPTED" not in label else "an encrypted private key"
    if label == "PUBLIC KEY":
        return "a public key"
    return f"a PEM block of another kind ({label})"


def _pem_hint(raw: bytes, *, public: bool) -> str | None:
    found = _pem_found(raw)
    if public and "private key" in found:
        return "give the public key (the .pub file beside the private key), never the private key"
    if not public and found == "a public key":
        return "this is a public key; --key takes the private key file (or its key id)"
    if not public and "private key" in found:
        return "check the passphrase (--passphrase-file or SEEDVAULT_KEY_PASSPHRASE)"
    return "make a key with: seedvault keygen"
