"""X.509 for OMS's certificate method: the chain a signer ships, and its verification.

A bundle signed with a certificate carries `verificationMaterial.x509CertificateChain`:
the leaf (whose key signed) first, then the CA certificates the signer passed. The
verifier trusts only the root certificates its user gives. Path building and checking
(signatures along the chain, validity periods now, CA basic constraints and key usage) is
`cryptography`'s own verifier; this module only adds what a code-signing leaf must carry:
a KeyUsage with digitalSignature and, when it has an ExtendedKeyUsage, codeSigning in it.

The leaf is checked at the time of verification: a key/certificate bundle has no trusted
timestamp, so an expired certificate no longer vouches for anything (model_signing
instead checks the chain at the leaf's own notBefore, which accepts expired leaves).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, Policy, PolicyBuilder, Store, VerificationError

from seedvault._text import quote
from seedvault.errors import ManifestError, NotFoundError, SignatureError, UsageError
from seedvault.signing import PrivateKey, PublicKey
from seedvault.signing.dsse import b64_field
from seedvault.signing.keys import OMS_KEY_TYPES

MAX_CHAIN = 10  # certificates in a bundle's chain; real ones have two or three


def load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """The PEM certificates in one file (a file may hold several)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path}: expected a PEM certificate file, found a directory") from None
    if b"-----BEGIN CERTIFICATE-----" not in raw:
        found = "an empty file" if not raw.strip() else (
            "a key, not a certificate" if b"KEY-----" in raw else "no PEM certificate block")
        raise UsageError(f"{what} {path}: expected a PEM certificate (-----BEGIN CERTIFICATE-----), found {found}")
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise UsageError(f"{what} {path}: expected a PEM certificate, found one that does not parse "
                         "(damaged?)") from None


def name_of(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(no subject)"


def chain_material(leaf: x509.Certificate, chain: Sequence[x509.Certificate], key: PrivateKey) -> dict[str, Any]:
    """The verificationMaterial of a certificate-signed bundle: the leaf, then the chain.

    The leaf must certify the very key that signs; a mismatch is refused before signing.
    """
    certified = PublicKey.from_key(leaf.public_key(), f"signing certificate {quote(name_of(leaf))}", OMS_KEY_TYPES)
    if certified.key_id != key.key_id:
        raise UsageError(
            f"signing certificate {quote(name_of(leaf))}: expected it to certify the private key given "
            f"(key id {key.key_id}), found the key {certified.key_id}",
            hint="pass the certificate issued for this private key",
        )
    certs = [leaf, *chain]
    return {"x509CertificateChain": {"certificates": [
        {"rawBytes": base64.b64encode(c.public_bytes(Encoding.DER)).decode()} for c in certs]}, "tlogEntries": []}


def _key_usage(_policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not usage.digital_signature:
        raise ValueError(f"the signing certificate {name_of(cert)} may not make signatures "
                         "(its KeyUsage lacks digitalSignature)")


def _extended_usage(_policy: Policy, cert: x509.Certificate, usage: x509.ExtendedKeyUsage | None) -> None:
    if usage is not None and not {ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} \
            & set(usage):
        raise ValueError(f"the signing certificate {name_of(cert)} is not for code signing "
                         "(its ExtendedKeyUsage lacks codeSigning)")


@dataclass(frozen=True)
class CertifiedKey:
    key: PublicKey
    leaf: str  # subject of the signing certificate
    root: str  # subject of the trusted root it chains to
    not_after: datetime


def parse_chain(material: Any, where: str) -> list[x509.Certificate]:
    """The certificates of `verificationMaterial.x509CertificateChain`, leaf first."""
    chain = material.get("x509CertificateChain") if isinstance(material, dict) else None
    certs = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(certs, list) or not certs:
        raise ManifestError(f"{where}.x509CertificateChain.certificates: expected the signing certificate "
                            "and its chain, found none")
    if len(certs) > MAX_CHAIN:
        raise ManifestError(f"{where}.x509CertificateChain: expected at most {MAX_CHAIN} certificates, "
                            f"found {len(certs)}")
    out = []
    for i, c in enumerate(certs):
        at = f"{where}.x509CertificateChain.certificates[{i}].rawBytes"
        der = b64_field(c.get("rawBytes") if isinstance(c, dict) else None, at)
        try:
            out.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise ManifestError(f"{at}: expected a DER certificate, found bytes that do not parse") from None
    return out


def verify_chain(certs: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], where: str,
                 now: datetime | None = None) -> CertifiedKey:
    """Check that the leaf chains to one of `roots`, now, and may sign code; its key."""
    if not roots:
        raise UsageError("certificate method: expected at least one trusted root certificate (--cert-chain), "
                         "found none")
    leaf, intermediates = certs[0], list(certs[1:])
    ee = (ExtensionPolicy.permit_all()
          .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _key_usage)
          .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _extended_usage))
    at = now or datetime.now(UTC)
    verifier = (PolicyBuilder().store(Store(list(roots))).time(at)
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
                .build_client_verifier())
    try:
        verified = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise SignatureError(f"{where}: the signing certificate {quote(name_of(leaf))} is not trusted: "
                             f"{_reason(str(exc), leaf, at)}",
                             hint="verify with the root certificate of the signer's CA (--cert-chain)") from None
    key = PublicKey.from_key(leaf.public_key(), f"{where}: signing certificate {quote(name_of(leaf))}",
                             OMS_KEY_TYPES)
    return CertifiedKey(key, name_of(leaf), name_of(verified.chain[-1]), leaf.not_valid_after_utc)


def _reason(text: str, leaf: x509.Certificate, at: datetime) -> str:
    """cryptography's reason in a person's words (its text names Rust internals otherwise)."""
    if "not valid at validation time" in text:
        return (f"a certificate in its chain is not valid now ({at:%Y-%m-%d}); the leaf is valid from "
                f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}")
    if "candidates exhausted" in text:
        return (f"it does not chain to any trusted root certificate given (the leaf was issued by "
                f"{quote(leaf.issuer.rfc4514_string())})")
    if "KeyUsage" in text or "digitalSignature" in text or "codeSigning" in text:
        start = text.find("the signing certificate")
        return text[start:].split(")")[0] + ")" if start >= 0 else "its key usage does not allow signing"
    return text.removeprefix("validation failed: ")
