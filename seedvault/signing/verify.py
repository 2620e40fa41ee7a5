"""Trust decisions: one function from (envelope bytes, policy, time) to a verdict.

Fails closed: no trusted key, an empty policy, a bad signature, a revoked key, a key outside
its scope, too few approvals, a license not allowed, or an expired manifest each refuse.
Several signatures by one key count once. Fetching lives elsewhere; this only decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from seedvault.errors import ExpiredError, PolicyError, SignatureError, UsageError
from seedvault.manifest import Manifest, format_time
from seedvault.signing.dsse import Envelope
from seedvault.signing.policy import TrustPolicy


@dataclass(frozen=True)
class SignerReport:
    """What one signature on the envelope amounted to under the local policy."""

    key_id: str
    status: str  # "valid", "untrusted", "revoked", "invalid", "out-of-scope", "duplicate"
    role: str | None = None
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "status": self.status, "role": self.role, "label": self.label}

    def describe(self) -> str:
        short = self.key_id[:16]
        who = f"{self.label} ({short})" if self.label and self.label != short else short
        return {
            "valid": f"{who}: valid signature, counted as {self.role}",
            "untrusted": f"{who}: key not in the local trust policy",
            "revoked": f"{who}: key is revoked",
            "invalid": f"{who}: signature does not verify (payload changed or signature forged)",
            "out-of-scope": f"{who}: trusted as {self.role}, but not for this namespace",
            "duplicate": f"{who}: another signature by the same key, counted once",
        }[self.status]


@dataclass(frozen=True)
class Verdict:
    manifest: Manifest
    digest: str
    signers: tuple[SignerReport, ...]
    publishers: int
    approvers: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.manifest.ref,
            "digest": self.digest,
            "publishers": self.publishers,
            "approvers": self.approvers,
            "signers": [s.to_dict() for s in self.signers],
        }


def _signer_reports(envelope: Envelope, manifest: Manifest, policy: TrustPolicy) -> list[SignerReport]:
    signed = envelope.signed_bytes()
    reports: list[SignerReport] = []
    counted: set[tuple[str, str]] = set()
    for sig in envelope.signatures:
        candidates = policy.keys_by_id(sig.keyid)
        if not candidates:
            reports.append(SignerReport(sig.keyid, "untrusted"))
            continue
        label = candidates[0].label
        if sig.keyid in policy.revoked:
            reports.append(SignerReport(sig.keyid, "revoked", candidates[0].role, label))
            continue
        if not candidates[0].key.verify(sig.sig, signed):
            reports.append(SignerReport(sig.keyid, "invalid", candidates[0].role, label))
            continue
        # One key may hold several roles; each role it holds within scope counts once.
        in_scope = [k for k in candidates if k.covers(manifest.name)]
        if not in_scope:
            reports.append(SignerReport(sig.keyid, "out-of-scope", candidates[0].role, label))
            continue
        for k in in_scope:
            if (k.key_id, k.role) in counted:
                reports.append(SignerReport(k.key_id, "duplicate", k.role, k.label))
            else:
                counted.add((k.key_id, k.role))
                reports.append(SignerReport(k.key_id, "valid", k.role, k.label))
    return reports


def evaluate(envelope: Envelope, policy: TrustPolicy, now: datetime | None = None) -> Verdict:
    """Parse, check signatures against the policy, and return the verdict or raise.

    Raises SignatureError (no valid trusted signature), PolicyError (trusted signatures,
    but a requirement is unmet) or ExpiredError; ManifestError for a malformed payload.
    """
    manifest = Manifest.from_payload(envelope.payload)
    if not policy.keys:
        raise SignatureError(
            f"{manifest.ref}: the local trust policy has no keys, so nothing can be trusted",
            hint="trust the publisher's key: seedvault trust add KEY.pub --role publisher --scope 'ns/*'",
        )
    if not envelope.signatures:
        raise SignatureError(f"{manifest.ref}: expected at least one signature, found none")
    reports = _signer_reports(envelope, manifest, policy)
    publisher_keys = {r.key_id for r in reports if r.status == "valid" and r.role == "publisher"}
    publishers = len(publisher_keys)
    # An approval is a second party's: a key already counted as publisher does not approve.
    approvers = len({r.key_id for r in reports if r.status == "valid" and r.role == "approver"} - publisher_keys)
    details = "; ".join(r.describe() for r in reports)

    if publishers < policy.publisher_threshold:
        # Some trusted signature verified, but the policy wants more: a policy refusal.
        policy_refusal = publishers > 0 or any(r.status in ("revoked", "out-of-scope") for r in reports)
        kind = PolicyError if policy_refusal else SignatureError
        raise kind(
            f"{manifest.ref}: expected {policy.publisher_threshold} valid signature(s) by trusted "
            f"publisher keys for {manifest.name}, found {publishers}. Signatures: {details}",
            hint="check the publisher's key id and your policy: seedvault trust list",
        )
    if approvers < policy.required_approvals:
        raise PolicyError(
            f"{manifest.ref}: expected {policy.required_approvals} approval(s) by distinct trusted "
            f"approver keys, found {approvers}. Signatures: {details}",
            hint="an approver countersigns with: seedvault approve REF --key APPROVER_KEY",
        )
    if not policy.license_allowed(manifest.license.spdx):
        raise PolicyError(
            f"{manifest.ref}: license {manifest.license.spdx!r} is not allowed; expected one of "
            f"{', '.join(policy.allowed_licenses or ())}",
            hint="allow it with: seedvault trust licenses allow SPDX",
        )
    if now is not None and now.tzinfo is None:
        raise UsageError("evaluation time: expected a timezone-aware datetime, found a naive one")
    moment = now or datetime.now(UTC)
    if manifest.is_expired(moment):
        assert manifest.expires is not None
        raise ExpiredError(
            f"{manifest.ref}: expired at {format_time(manifest.expires)}; it is now {format_time(moment)}",
            hint="ask the publisher for a fresh release",
        )
    return Verdict(manifest, envelope.digest, tuple(reports), publishers, approvers)
