"""Keys, DSSE envelopes, the trust policy, and the verification that applies it."""

from seedvault.signing.dsse import Envelope, Signature, pae
from seedvault.signing.keys import KEY_TYPES, KeyType, PrivateKey, PublicKey
from seedvault.signing.policy import ROLES, Role, TrustedKey, TrustPolicy
from seedvault.signing.trusted import (
    RELEASE,
    Accepted,
    SignerReport,
    StatementKind,
    Verdict,
    accept,
    counted_signatures,
    evaluate,
)

__all__ = [
    "KEY_TYPES", "RELEASE", "ROLES", "Accepted", "Envelope", "KeyType", "PrivateKey", "PublicKey", "Role",
    "Signature", "SignerReport", "StatementKind", "TrustPolicy", "TrustedKey", "Verdict", "accept",
    "counted_signatures", "evaluate", "pae",
]  # fmt: skip
