"""The trust core: every decision about whether signed bytes are accepted, in one place.

Like python-tuf's `TrustedMetadataSet`, it takes bytes already fetched (an envelope) and
what the local store remembers, and decides; fetching and storing live elsewhere.

- `signer_reports` is the one function that decides which signatures count: by a key of
  the local policy, not revoked, verifying over the exact payload, within the key's scope;
  one per key and role.
- `counted_signatures` keeps exactly those (one per key): what any admission (node, client,
  mirror, import) stores, so junk offered alongside a release is never kept.
- `accept` applies a statement kind's requirements (roles and thresholds, approvals,
  licenses, expiry) and fails closed; `evaluate` is `accept` for releases.
- `check_not_substituted` and `is_newer` are the rules that need memory: a name@version
  keeps the first digest ever seen, and `latest` never moves back. The vault applies them
  inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar

from packaging.version import InvalidVersion, Version

from seedvault.errors import (
    ExpiredError,
    IntegrityError,
    PolicyError,
    ProofError,
    RollbackError,
    SignatureError,
    SplitViewError,
    UsageError,
    VerificationError,
)
from seedvault.head import Head
from seedvault.manifest import Manifest, format_time
from seedvault.signing.dsse import Envelope, Signature
from seedvault.signing.policy import Role, TrustPolicy, denied_by
from seedvault.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from seedvault.tlog.entry import LogEntry
from seedvault.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from seedvault.tlog.note import Note
from seedvault.tlog.proof import TlogProof

Purpose = Literal["use", "approve"]


class Statement(Protocol):
    """What the trust core needs of any signed statement about a model."""

    @property
    def name(self) -> str: ...  # the model (`ns/name`) the key scopes are matched against

    @property
    def ref(self) -> str: ...  # how messages name it

    def is_expired(self, now: datetime | None = None) -> bool: ...

    @property
    def expires(self) -> datetime | None: ...


S = TypeVar("S", bound=Statement)


@dataclass(frozen=True)
class StatementKind(Generic[S]):
    """One type of signed statement: how its payload is read and what must sign it."""

    noun: str
    parse: Callable[[bytes], S]
    roles: frozenset[Role]  # roles whose valid signatures count toward the publisher threshold
    approvals: bool  # whether the policy's required approvals apply to it
    license_of: Callable[[S], str] | None = None  # the SPDX expression the license policy checks
    expiry_refuses: bool = True  # False: a statement past its expiry is accepted as stale (heads)


RELEASE: StatementKind[Manifest] = StatementKind(
    noun="release",
    parse=Manifest.from_payload,
    roles=frozenset({"publisher"}),
    approvals=True,
    license_of=lambda manifest: manifest.license.spdx,
)


# A head is signed by the model's publishers, or refreshed by its timestamp keys (see accept_head).
HEAD: StatementKind[Head] = StatementKind(
    noun="head",
    parse=Head.from_payload,
    roles=frozenset({"publisher", "timestamp"}),
    approvals=False,
    expiry_refuses=False,
)


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
class Accepted(Generic[S]):
    """A statement whose signatures satisfy the local policy, and how they did."""

    statement: S
    digest: str
    signers: tuple[SignerReport, ...]
    publishers: int
    approvers: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.statement.ref,
            "digest": self.digest,
            "publishers": self.publishers,
            "approvers": self.approvers,
            "signers": [s.to_dict() for s in self.signers],
        }


@dataclass(frozen=True)
class Verdict(Accepted[Manifest]):
    """An accepted release."""

    yanked: str | None = None  # the reason, when the model's signed head yanks this release

    @property
    def manifest(self) -> Manifest:
        return self.statement

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), **({"yanked": self.yanked} if self.yanked is not None else {})}


# At most this many signers are named in a refusal: the rest are counted, not listed.
_DESCRIBED_SIGNERS = 8


def signer_reports(envelope: Envelope, name: str, policy: TrustPolicy) -> list[tuple[SignerReport, Signature]]:
    """Each signature's status under the policy, for a statement about model `name`.

    The one place that decides which signatures count. A key id already counted is not
    verified again: repeated signatures by one key cost nothing and count once.
    """
    signed = envelope.signed_bytes()
    reports: list[tuple[SignerReport, Signature]] = []
    counted: set[str] = set()
    for sig in envelope.signatures:
        candidates = policy.keys_by_id(sig.keyid)
        if not candidates:
            reports.append((SignerReport(sig.keyid, "untrusted"), sig))
            continue
        first = candidates[0]
        if sig.keyid in counted:
            reports.append((SignerReport(sig.keyid, "duplicate", first.role, first.label), sig))
            continue
        if sig.keyid in policy.revoked:
            reports.append((SignerReport(sig.keyid, "revoked", first.role, first.label), sig))
            continue
        if not first.key.verify(sig.sig, signed):
            reports.append((SignerReport(sig.keyid, "invalid", first.role, first.label), sig))
            continue
        # One key may hold several roles; each role it holds within scope counts once.
        in_scope = [k for k in candidates if k.covers(name)]
        if not in_scope:
            reports.append((SignerReport(sig.keyid, "out-of-scope", first.role, first.label), sig))
            continue
        counted.add(sig.keyid)
        reports.extend((SignerReport(k.key_id, "valid", k.role, k.label), sig) for k in in_scope)
    return reports


def counted_signatures(envelope: Envelope, name: str, policy: TrustPolicy) -> Envelope:
    """The envelope with only the signatures that count under the local policy, one per key.

    What every admission stores: anyone can re-offer a public envelope padded with junk
    signatures, and none of it may be kept (it would make the release unreadable)."""
    kept: dict[str, Signature] = {}
    for report, sig in signer_reports(envelope, name, policy):
        if report.status == "valid":
            kept.setdefault(sig.keyid, sig)
    return Envelope(envelope.payload, envelope.payload_type, tuple(kept.values()))


def _describe(reports: list[SignerReport]) -> str:
    shown = "; ".join(r.describe() for r in reports[:_DESCRIBED_SIGNERS])
    rest = len(reports) - _DESCRIBED_SIGNERS
    return shown + (f"; and {rest} more signature(s)" if rest > 0 else "")


def accept(
    envelope: Envelope, policy: TrustPolicy, kind: StatementKind[S], *,
    now: datetime | None = None, purpose: Purpose = "use",
) -> Accepted[S]:
    """Parse the statement, check its signatures against the policy, and accept it or raise.

    `purpose="approve"` is the judgement an approver makes before countersigning: every
    requirement but the approvals themselves (the countersignature is one).

    Raises SignatureError (no valid trusted signature), PolicyError (trusted signatures,
    but a requirement is unmet) or ExpiredError; ManifestError for a malformed payload.
    """
    statement = kind.parse(envelope.payload)
    if not policy.keys:
        raise SignatureError(
            f"{statement.ref}: the local trust policy has no keys, so nothing can be trusted",
            hint="trust the publisher's key: seedvault trust add KEY.pub --role publisher --scope 'ns/*'",
        )
    if not envelope.signatures:
        raise SignatureError(f"{statement.ref}: expected at least one signature, found none")
    reports = [r for r, _sig in signer_reports(envelope, statement.name, policy)]
    signer_keys = {r.key_id for r in reports if r.status == "valid" and r.role in kind.roles}
    publishers = len(signer_keys)
    # An approval is a second party's: a key already counted as publisher does not approve.
    approvers = len({r.key_id for r in reports if r.status == "valid" and r.role == "approver"} - signer_keys)
    roles = " or ".join(sorted(kind.roles))

    if publishers < policy.publisher_threshold:
        # Some trusted signature verified, but not one that counts here: a policy refusal.
        policy_refusal = any(r.status in ("valid", "revoked", "out-of-scope") for r in reports)
        error = PolicyError if policy_refusal else SignatureError
        raise error(
            f"{statement.ref}: expected {policy.publisher_threshold} valid signature(s) by trusted "
            f"{roles} keys for {statement.name}, found {publishers}. Signatures: {_describe(reports)}",
            hint="check the publisher's key id and your policy: seedvault trust list",
        )
    if kind.approvals and purpose == "use" and approvers < policy.required_approvals:
        raise PolicyError(
            f"{statement.ref}: expected {policy.required_approvals} approval(s) by distinct trusted "
            f"approver keys, found {approvers}. Signatures: {_describe(reports)}",
            hint="an approver countersigns with: seedvault approve REF --key APPROVER_KEY",
        )
    if kind.license_of is not None:
        spdx = kind.license_of(statement)
        if not policy.license_allowed(spdx):
            raise PolicyError(
                f"{statement.ref}: license {spdx} is not allowed; expected one of "
                f"{', '.join(policy.allowed_licenses or ())}",
                hint="allow it with: seedvault trust licenses allow SPDX",
            )
    if now is not None and now.tzinfo is None:
        raise UsageError("evaluation time: expected a timezone-aware datetime, found a naive one")
    moment = now or datetime.now(UTC)
    if kind.expiry_refuses and statement.is_expired(moment):
        expires = statement.expires
        assert expires is not None
        raise ExpiredError(
            f"{statement.ref}: expired at {format_time(expires)}; it is now {format_time(moment)}",
            hint=f"ask the publisher for a fresh {kind.noun}",
        )
    return Accepted(statement, envelope.digest, tuple(reports), publishers, approvers)


def evaluate(
    envelope: Envelope, policy: TrustPolicy, now: datetime | None = None, *, purpose: Purpose = "use"
) -> Verdict:
    """The verdict on a release under the local policy, or the refusal."""
    a = accept(envelope, policy, RELEASE, now=now, purpose=purpose)
    return Verdict(a.statement, a.digest, a.signers, a.publishers, a.approvers)


# ---- heads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldHead:
    """What a verifier remembers of a model's heads: the highest accepted, and what its
    publishers last signed (a timestamp key may only re-sign that)."""

    head: Head
    digest: str
    publisher_content: tuple[Any, ...] | None


@dataclass(frozen=True)
class AcceptedHead:
    head: Head
    digest: str
    signers: tuple[SignerReport, ...]
    by_publishers: bool  # publishers alone met the threshold (else a timestamp refresh)
    stale: bool  # past its expiry (accepted only when the policy does not require fresh heads)
    known: bool  # the very head already held

    def to_dict(self) -> dict[str, Any]:
        h = self.head
        return {
            "name": h.name, "sequence": h.sequence, "issued": format_time(h.issued),
            "expires": format_time(h.expires), "stale": self.stale,
            "latest": {"version": h.latest_version, "manifest_digest": h.latest_digest},
            "yanked": [y.to_dict() for y in h.yanked], "digest": self.digest,
            "signed_by": "publisher" if self.by_publishers else "timestamp",
            "signers": [s.to_dict() for s in self.signers],
        }  # fmt: skip


MAX_CLOCK_SKEW = timedelta(days=1)  # a head issued later than this from now is refused
MAX_SEQUENCE_AHEAD = 10**7  # a head's sequence at most this far above its issue time in Unix seconds


def accept_head(
    envelope: Envelope, policy: TrustPolicy, held: HeldHead | None, *, now: datetime | None = None,
    bases: tuple[Head, ...] = (),
) -> AcceptedHead:
    """Accept a head for a model, given the head held for it (if any), or raise.

    - Signatures: the publisher threshold, met by keys trusted as publisher or timestamp for
      the model's namespace.
    - Rollback: a lower sequence than the held head is refused; so is a different head with
      the same sequence (a signer equivocating).
    - A head whose threshold is met only with timestamp keys must say exactly what a head
      signed by publishers said (held, or among `bases`, heads offered with it).
    - Freshness: past its expiry it is stale; refused when the policy requires fresh heads.
    """
    accepted = accept(envelope, policy, HEAD, now=now)
    head = accepted.statement
    moment = now or datetime.now(UTC)
    publishers = {r.key_id for r in accepted.signers if r.status == "valid" and r.role == "publisher"}
    by_publishers = len(publishers) >= policy.publisher_threshold
    known = held is not None and held.digest == envelope.digest
    if held is not None and not known:
        if head.sequence < held.head.sequence:
            raise RollbackError(
                f"{head.ref}: this vault already holds sequence {held.head.sequence} (issued "
                f"{format_time(held.head.issued)}); refusing an older head",
                hint="whoever served it is behind or replaying an old head; ask another registry or peer")
        if head.sequence == held.head.sequence:
            raise RollbackError(
                f"{head.ref}: this vault holds a different head with the same sequence (digest "
                f"{held.digest[:16]}); expected each sequence to be signed once",
                hint="two heads with one sequence means a signing key is misused; tell the publisher")
    ahead = head.sequence - int(max(head.issued, moment).timestamp())
    if head.issued > moment + MAX_CLOCK_SKEW or ahead > MAX_SEQUENCE_AHEAD:
        # A sequence near its ceiling would leave the publisher no higher one to sign (a
        # freeze a single timestamp key could cause); sequences follow the clock instead.
        raise PolicyError(
            f"{head.ref}: issued {format_time(head.issued)} with sequence {head.sequence}; expected an issue time "
            f"no later than {format_time(moment + MAX_CLOCK_SKEW)} and a sequence at most {MAX_SEQUENCE_AHEAD:,} "
            "above it in seconds", hint="the signer's clock is wrong, or the head is meant to freeze the model")
    if not by_publishers:
        # Only the newest content the publishers signed may be refreshed: an older base
        # offered beside it must not bring back a yanked release or an older latest.
        newer_bases = [b for b in bases if b.name == head.name and (held is None or b.sequence > held.head.sequence)]
        newest = max(newer_bases, key=lambda b: b.sequence, default=None)
        allowed = newest.content() if newest is not None else (held.publisher_content if held is not None else None)
        if head.content() != allowed:
            raise PolicyError(
                f"{head.ref}: signed by timestamp keys only, and it differs from (or there is no) head "
                f"the publishers signed: a timestamp key may refresh a head, never change its latest "
                f"version or its yanks",
                hint="get the head the publisher signed (seedvault head NS/NAME from a registry, or a bundle)")
    stale = head.is_expired(moment)
    if stale and policy.fresh_heads:
        raise ExpiredError(
            f"{head.ref}: expired at {format_time(head.expires)}; it is now {format_time(moment)}, and the "
            "policy requires fresh heads",
            hint="ask the publisher (or its timestamp key) for a fresh head: seedvault head refresh NS/NAME")
    return AcceptedHead(head, envelope.digest, accepted.signers, by_publishers, stale, known)


# ---- rules that need the store's memory ---------------------------------------------------


def check_not_substituted(manifest: Manifest, digest: str, first_seen: tuple[str, str] | None) -> None:
    """Refuse a manifest whose name@version was first seen (digest, when) with another digest."""
    if first_seen is not None and first_seen[0] != digest:
        raise RollbackError(
            f"{manifest.ref}: this vault first saw manifest digest {first_seen[0]} (at {first_seen[1]}); "
            f"refusing a different manifest with digest {digest} for the same name@version",
            hint="a release is immutable; the publisher must use a new version",
        )


def is_newer(candidate: Manifest, current: Manifest) -> bool:
    """Whether `candidate` is a newer release than `current` of the same model.

    When both versions parse as PEP 440 / semantic versions (1.2.0, 2.0.0rc1, 2024.5.1),
    their order decides. Otherwise (dates with dashes, commit ids) the signed `created`
    time decides, and equal times fall back to comparing the labels.
    """
    try:
        a, b = Version(candidate.version), Version(current.version)
    except InvalidVersion:
        pass
    else:
        if a != b:
            return a > b
    if candidate.created != current.created:
        return candidate.created > current.created
    return candidate.version > current.version


# ---- lineage -----------------------------------------------------------------------------------

AncestorStatus = Literal["verified", "refused", "missing", "unpinned", "mismatch"]
_STATUS_TEXT = {
    "refused": "does not verify under your policy",
    "missing": "is neither in the vault nor in the bundle",
    "unpinned": "is not pinned by manifest digest, so which release is meant is not signed",
    "mismatch": "is not the release its link names",
}


@dataclass(frozen=True)
class AncestorVerdict:
    """One ancestor of a release, as its descendant's signed lineage pins it, and how it
    stands under the local policy."""

    relation: str  # how the descendant derives from it (quantized-from, distilled-from ...)
    ref: str  # as the descendant's lineage link names it
    digest: str | None  # the manifest digest the link pins
    status: AncestorStatus
    reason: str | None = None  # why it is not verified
    manifest: Manifest | None = None  # the pinned release, when its envelope is at hand
    verdict: Verdict | None = None  # when verified
    chain: str = ""  # the way from the model to it: "acme/q@1 quantized-from acme/base@1 ..."

    @property
    def names(self) -> set[str]:
        """The model names it goes by: the link's, and the pinned release's own."""
        return {self.ref.partition("@")[0]} | ({self.manifest.name} if self.manifest is not None else set())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"relation": self.relation, "ref": self.ref, "digest": self.digest,
                               "status": self.status, "reason": self.reason}
        if self.verdict is not None:
            out["signers"] = [s.to_dict() for s in self.verdict.signers if s.status == "valid"]
        return out


def judge_ancestor(relation: str, ref: str, digest: str | None, envelope: Envelope | None, policy: TrustPolicy,
                   chain: str = "") -> AncestorVerdict:
    """The verdict on one ancestor: its envelope (found by the pinned digest, from anywhere)
    judged like any release, and checked to be the release the link names.

    The pinned payload is authenticated by its descendant's signature whatever its own
    signatures say, so an ancestor that does not verify is still read, to follow its
    lineage further."""
    def made(status: AncestorStatus, reason: str | None = None, manifest: Manifest | None = None,
             verdict: Verdict | None = None) -> AncestorVerdict:
        text = _STATUS_TEXT.get(status)
        why = f"{text} ({reason})" if text and reason else (text or reason)
        return AncestorVerdict(relation, ref, digest, status, why, manifest, verdict, chain)

    if digest is None:
        return made("unpinned")
    if envelope is None:
        return made("missing")
    if envelope.digest != digest:
        return made("mismatch", f"expected manifest digest {digest}, found {envelope.digest}")
    try:
        manifest = Manifest.from_payload(envelope.payload)
    except VerificationError as exc:
        return made("refused", str(exc))
    name, _, version = ref.partition("@")
    if manifest.name != name or (version and manifest.version != version):
        return made("mismatch", f"the link names {ref}, the pinned release is {manifest.ref}", manifest)
    try:
        verdict = evaluate(envelope, policy)
    except VerificationError as exc:
        return made("refused", str(exc), manifest)
    return made("verified", None, manifest, verdict)


def check_lineage(ref: str, ancestors: Sequence[AncestorVerdict], policy: TrustPolicy) -> None:
    """The policy's lineage rules over a release's whole ancestry (every ancestor, however
    far): `lineage_deny` refuses any ancestor named by a denied scope (by its link or its
    own manifest); `verified_lineage` refuses any ancestor that is not verified here."""
    for a in ancestors:
        scope = next((s for n in sorted(a.names) if (s := denied_by(policy, n))), None)
        if scope is not None:
            raise PolicyError(
                f"{ref}: ancestor {a.ref} ({a.relation}; {a.chain}) is denied by your policy (lineage deny "
                f"'{scope}')", hint=f"to allow it: seedvault trust lineage allow '{scope}'")
    if policy.verified_lineage:
        for a in ancestors:
            if a.status != "verified":
                raise PolicyError(
                    f"{ref}: expected every ancestor held and verified (verified_lineage), found {a.relation} "
                    f"{a.ref} ({a.chain}), which {a.reason}",
                    hint="import the ancestor (or a bundle that carries it) and trust its publisher, or lift the "
                         "requirement: seedvault trust require --unverified-lineage-ok")


# ---- transparency logs (seedvault.tlog) -----------------------------------------------------


@dataclass(frozen=True)
class LogVerdict:
    """A release's .tlog-proof, accepted: in which trusted log, where, seen by which witnesses."""

    origin: str
    log: str  # the trusted log's label
    index: int
    size: int
    root: bytes
    witnesses: tuple[str, ...]  # labels of the trusted witnesses that cosigned the checkpoint
    entry: LogEntry
    note: bytes  # the checkpoint as signed, for the client's memory of the log

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "log": self.log, "index": self.index, "tree_size": self.size,
                "root_hash": self.root.hex(), "witnesses": list(self.witnesses), "entry": self.entry.to_dict()}


def judge_checkpoint(raw: bytes, policy: TrustPolicy, where: str) -> tuple[SignedCheckpoint, str, tuple[str, ...]]:
    """A checkpoint signed by a log the policy trusts; its label and its trusted cosigners."""
    note = Note.parse(raw, where)
    origin = note.text.partition("\n")[0]
    logs = [k for k in policy.logs if k.verifier.name == origin]
    if not logs:
        raise PolicyError(f"{where}: the checkpoint is from the log {origin[:100]!s}, which your policy does not "
                          "trust", hint="trust its key: seedvault trust log add VKEY (from the node operator, "
                                        "or GET /log/keys of the node, checked out of band)")
    signed = open_checkpoint(raw, logs[0].verifier, [w.verifier for w in policy.witnesses], where)
    labels = {w.verifier.vkey: w.label for w in policy.witnesses}
    witnesses = tuple(sorted(labels[v] for v in signed.cosigned if v in labels))
    return signed, logs[0].label, witnesses


def check_logged(
    manifest: Manifest, digest: str, proof: bytes | None, policy: TrustPolicy,
    held_for: Callable[[str], tuple[int, bytes] | None], *, where: str = "",
) -> LogVerdict:
    """Whether a release is proven to be in a trusted log, with the witnesses the policy asks for.

    - the proof's checkpoint is signed by a log key of the policy (its origin the key's name),
      and cosigned by at least `required_witnesses` distinct witnesses of the policy;
    - the entry it carries is this release (kind, digest, name and version), and the
      inclusion path leads from that entry to the checkpoint's root;
    - `held_for(origin)` is the largest checkpoint of that log this client has seen: one of the same size
      with another root is a fork (SplitViewError). Sizes that differ need a consistency
      proof from the log (`check_consistent`), which the online commands fetch.
    """
    label = where or manifest.ref
    if proof is None:
        raise PolicyError(f"{label}: your policy requires releases to be in a transparency log; expected a "
                          ".tlog-proof for this release, found none",
                          hint="pull or push it through a registry node (its log proves it), or import a bundle "
                               "that carries release.tlog-proof")
    parsed = TlogProof.parse(proof, f"{label}: .tlog-proof")
    signed, log_label, witnesses = judge_checkpoint(parsed.checkpoint, policy, f"{label}: .tlog-proof checkpoint")
    if len(witnesses) < policy.required_witnesses:
        raise PolicyError(f"{label}: expected the log's checkpoint cosigned by {policy.required_witnesses} trusted "
                          f"witness(es), found {len(witnesses)}" + (f" ({', '.join(witnesses)})" if witnesses else ""),
                          hint="the node may not have reached its witnesses; fetch a newer proof, or trust more "
                               "witnesses: seedvault trust witness add VKEY")
    entry = LogEntry.parse(parsed.extra, f"{label}: logged entry")
    found = (entry.kind, entry.digest, entry.name, entry.label)
    if found != ("release", digest, manifest.name, manifest.version):
        raise IntegrityError(f"{label}: expected the proof's entry to be release {manifest.ref} with digest "
                             f"{digest}, found {entry.kind} {entry.ref} with digest {entry.digest}",
                             hint="the proof belongs to another release")
    cp = signed.checkpoint
    verify_inclusion(leaf_hash(parsed.extra), parsed.index, cp.size, parsed.path, cp.root)
    held = held_for(cp.origin)
    if held is not None and held[0] == cp.size and held[1] != cp.root:
        raise SplitViewError(f"{label}: the log {cp.origin} signed two different trees of {cp.size} entries (root "
                             f"{held[1].hex()[:16]}... seen before, {cp.root.hex()[:16]}... now): it shows "
                             "different histories to different clients",
                             hint="report it to the log's operator and the witnesses; do not use this release")
    return LogVerdict(cp.origin, log_label, parsed.index, cp.size, cp.root, witnesses, entry, parsed.checkpoint)


def check_consistent(origin: str, held: tuple[int, bytes], size: int, root: bytes, proof: list[bytes]) -> None:
    """The log's tree of `size` extends the one held, or SplitViewError (a fork, or a log
    that lost entries it had signed)."""
    old, old_root = held
    if size < old:
        raise SplitViewError(f"the log {origin} now shows {size} entries, fewer than the {old} it signed before",
                             hint="a log never shrinks: it lost entries or shows this client another history")
    try:
        verify_consistency(old, size, proof, old_root, root)
    except ProofError as exc:
        raise SplitViewError(f"the log {origin}: its tree of {size} entries does not extend the tree of {old} "
                             f"seen before ({exc})",
                             hint="the log rewrote its history, or shows this client a fork; report it") from None
