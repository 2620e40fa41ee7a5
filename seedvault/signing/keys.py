"""Signing keys as PEM files, one table entry per algorithm (generate, load, sign, verify).

Ed25519 (the default) and ECDSA P-256 sign seedvault's own manifests and heads; ECDSA
P-384 and P-521 are here for OpenSSF model signing (OMS) bundles, whose spec requires all
three NIST curves. Which use accepts which type is each caller's `accept` argument, never
an `else` branch: a key whose algorithm is not in the table is refused by name.

The key id is the hex SHA-256 of the public key's DER SubjectPublicKeyInfo, so anyone
holding the public key computes the same id without trusting whoever sent it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from seedvault._text import quote
from seedvault.errors import NotFoundError, UsageError

KeyType = Literal["ed25519", "p256", "p384", "p521"]

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class KeyAlgorithm:
    """One row of the table: how to make, recognize, sign and verify with one key type."""

    name: KeyType
    label: str  # in people's words: "ECDSA P-384"
    generate: Callable[[], _PrivateKey]
    matches: Callable[[object], bool]  # a loaded public key of this type?
    sign: Callable[[_PrivateKey, bytes], bytes]
    verify: Callable[[_PublicKey, bytes, bytes], None]  # raises InvalidSignature


def _ed25519_sign(key: _PrivateKey, data: bytes) -> bytes:
    assert isinstance(key, ed25519.Ed25519PrivateKey)  # the table pairs each key with its own row
    return key.sign(data)


def _ed25519_verify(key: _PublicKey, signature: bytes, data: bytes) -> None:
    assert isinstance(key, ed25519.Ed25519PublicKey)
    key.verify(signature, data)


def _ecdsa(name: KeyType, label: str, curve: type[ec.EllipticCurve], digest: type[hashes.HashAlgorithm]
           ) -> KeyAlgorithm:
    """An ECDSA row: DER signatures over the curve's own hash (SHA-256/384/512), as
    Sigstore's key details PKIX_ECDSA_P256_SHA_256 ... P521_SHA_512 and OMS verifiers use."""

    def sign(key: _PrivateKey, data: bytes) -> bytes:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(data, ec.ECDSA(digest()))  # DER, as OMS and DSSE tooling expect

    def verify(key: _PublicKey, signature: bytes, data: bytes) -> None:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(signature, data, ec.ECDSA(digest()))

    return KeyAlgorithm(
        name, label, lambda: ec.generate_private_key(curve()),
        lambda k: isinstance(k, ec.EllipticCurvePublicKey) and isinstance(k.curve, curve), sign, verify,
    )


ALGORITHMS: Mapping[KeyType, KeyAlgorithm] = {
    a.name: a for a in (
        KeyAlgorithm("ed25519", "Ed25519", ed25519.Ed25519PrivateKey.generate,
                     lambda k: isinstance(k, ed25519.Ed25519PublicKey), _ed25519_sign, _ed25519_verify),
        _ecdsa("p256", "ECDSA P-256", ec.SECP256R1, hashes.SHA256),
        _ecdsa("p384", "ECDSA P-384", ec.SECP384R1, hashes.SHA384),
        _ecdsa("p521", "ECDSA P-521", ec.SECP521R1, hashes.SHA512),
    )
}

# What seedvault's manifests, heads and trust policies accept (manifests/README.md, 2.1):
# P-384 and P-521 are for OMS bundles only. `keygen` offers these.
KEY_TYPES: tuple[KeyType, ...] = ("ed25519", "p256")
# What OpenSSF model signing accepts (OMS v1.0 4.2; Ed25519 is not among them).
OMS_KEY_TYPES: tuple[KeyType, ...] = ("p256", "p384", "p521")


def algorithm_of(key: object) -> KeyAlgorithm | None:
    """The table row of a loaded public key, or None for an algorithm not in the table."""
    return next((a for a in ALGORITHMS.values() if a.matches(key)), None)


def _labels(accept: Sequence[KeyType]) -> str:
    names = [ALGORITHMS[t].label for t in accept]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _accept_hint(accept: Sequence[KeyType]) -> str:
    if set(accept) <= set(KEY_TYPES):
        return "make a key seedvault uses: seedvault keygen (Ed25519) or seedvault keygen --type p256"
    return f"use an {_labels(accept)} key"


def _refuse_type(key: object, source: str, accept: Sequence[KeyType], *, public: bool) -> UsageError:
    """The error for a key of the wrong type: what was expected, and this key's algorithm by name."""
    pub = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) else key
    found = algorithm_of(pub)
    detail = _kind_of_key(key)
    if found is not None and found.name in OMS_KEY_TYPES and not set(accept) & {"p384", "p521"}:
        detail += " (seedvault signs OMS bundles with it, but its own manifests only with Ed25519 or P-256)"
    expected = f"an {_labels(accept)} public key" if public else _labels(accept)
    return UsageError(f"{source}: expected {expected}, found {detail}", hint=_accept_hint(accept))


@dataclass(frozen=True)
class PublicKey:
    """A public key that can check signatures; compares equal by key id."""

    key: _PublicKey

    @property
    def algorithm(self) -> KeyAlgorithm:
        found = algorithm_of(self.key)
        if found is None:  # only a key built around the loaders could get here
            raise UsageError(f"public key: expected a key type seedvault knows, found {_kind_of_key(self.key)}")
        return found

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
        return self.algorithm.name

    def pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.algorithm.verify(self.key, signature, data)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_pem(cls, pem: bytes | str, source: str = "public key",
                 accept: Sequence[KeyType] = KEY_TYPES) -> PublicKey:
        raw = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(raw)
        except (ValueError, UnsupportedAlgorithm):
            found = _pem_found(raw)
            raise UsageError(f"{source}: expected a PEM public key ({_labels(accept)}), found "
                             + ("a public key block that does not parse (damaged?)" if found == "a public key"
                                else found), hint=_pem_hint(raw, public=True)) from None
        return cls.from_key(key, source, accept)

    @classmethod
    def from_key(cls, key: object, source: str = "public key", accept: Sequence[KeyType] = KEY_TYPES) -> PublicKey:
        """A loaded `cryptography` public key (from PEM, DER or a certificate), checked against `accept`."""
        return cls(_check_public(key, source, accept))

    @classmethod
    def load(cls, path: str | os.PathLike[str], accept: Sequence[KeyType] = KEY_TYPES) -> PublicKey:
        return cls.from_pem(_read(path), str(path), accept)


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
        return self.public.algorithm.sign(self.key, data)

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
        algorithm = ALGORITHMS.get(key_type)
        if algorithm is None:
            raise UsageError(f"key type: expected one of {', '.join(ALGORITHMS)}, found {quote(str(key_type))}")
        return cls(algorithm.generate())

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: bytes | None = None,
             accept: Sequence[KeyType] = KEY_TYPES) -> PrivateKey:
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
                else f"private key {path}: expected a PEM private key ({_labels(accept)}), found "
                + (f"{found} that does not parse (damaged?)" if found == "a private key" else found),
                hint=_pem_hint(raw, public=False),
            ) from None
        found_type = algorithm_of(key.public_key())
        if found_type is None or found_type.name not in accept or not isinstance(
            key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
        ):
            raise _refuse_type(key, f"private key {path}", accept, public=False)
        return cls(key)

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
        curves = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "secp256k1"}
        return f"an ECDSA {curves.get(key.curve.name, key.curve.name)} key"
    for word, label in (("rsa", "an RSA key"), ("dsa", "a DSA key"), ("ed448", "an Ed448 key"),
                        ("x25519", "an X25519 key (for encryption, not signing)"),
                        ("x448", "an X448 key (for encryption, not signing)")):
        if word in name:
            return label
    return "a key of another algorithm"


def _check_public(key: object, source: str, accept: Sequence[KeyType]) -> _PublicKey:
    found = algorithm_of(key)
    if found is None or found.name not in accept or not isinstance(
        key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    ):
        raise _refuse_type(key, source, accept, public=True)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if raw[:31] + bytes([raw[31] & 0x7F]) in _SMALL_ORDER:
            raise UsageError(
                f"{source}: expected an Ed25519 public key, found a point of small order, under which "
                "forged signatures verify; this is not a real key"
            )
    return key


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
