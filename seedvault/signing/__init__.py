"""Keys, DSSE envelopes, the trust policy, and the verification that applies it."""

from seedvault.signing.dsse import Envelope, Signature, pae
from seedvault.signing.keys import KEY_TYPES, KeyType, PrivateKey, PublicKey
from seedvault.signing.policy import ROLES, Role, TrustedKey, TrustPolicy
from seedvault.signing.verify import SignerReport, Verdict, evaluate

__all__ = [
    "KEY_TYPES", "ROLES", "Envelope", "KeyType", "PrivateKey", "PublicKey", "Role",
    "Signature", "SignerReport", "TrustPolicy", "TrustedKey", "Verdict", "evaluate", "pae",
]  # fmt: skip
