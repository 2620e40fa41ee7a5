"""Mirroring: take from an upstream node exactly what the local policy approves.

A sync lists upstream releases, skips those already held (so an unchanged upstream costs
one listing), judges every other envelope under the LOCAL policy (trusted publisher for
the namespace, allowed license, required approvals), fetches approved ones through the
swarm and the upstream's web seed, verifies them, and indexes them. Refusals are reported
with their reason. The upstream is never trusted for anything but bytes to check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from seedvault.client import Client
from seedvault.errors import Error, PolicyError, RemovedError, TransferError, VerificationError
from seedvault.p2p import SwarmConfig, TransferStats
from seedvault.registry.client import RegistryClient
from seedvault.registry.index import Index, index_yanks
from seedvault.signing import evaluate
from seedvault.swarming import pull


@dataclass
class SyncReport:
    upstream: str
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    signed: list[str] = field(default_factory=list)  # held releases that gained signatures (approvals)
    heads: list[str] = field(default_factory=list)  # models whose head moved forward

    def to_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream, "added": self.added, "present": self.present,
            "signed": self.signed, "heads": self.heads,
            "refused": [{"ref": r, "reason": why} for r, why in self.refused],
            "failed": [{"ref": r, "reason": why} for r, why in self.failed],
        }  # fmt: skip


def sync(
    client: Client, index: Index, upstream: str, *, timeout: float = 600.0, stop: threading.Event | None = None
) -> SyncReport:
    """One pass over the upstream. `stop` (set when a node shuts down) ends it early; a
    download it interrupts keeps what arrived, for the next sync to resume."""

    def check_stop(_stats: TransferStats) -> None:
        if stop is not None and stop.is_set():
            raise TransferError("mirror sync interrupted: the node is shutting down")

    remote = RegistryClient(upstream)
    report = SyncReport(upstream)
    held, removed, removed_refs = index.digests(), index.removed(), index.removed_refs()
    listed_heads: dict[str, object] = {}
    # Bounded: all_releases stops at a page bound and on a page with nothing new, each
    # request has a deadline, each download `timeout`; entries are type-checked there.
    for release in remote.all_releases():
        if stop is not None and stop.is_set():
            break
        ref = f"{release['name']}@{release['version']}"
        listed_heads[release["name"]] = release.get("head_sequence")
        if release["digest"] in held:
            report.present.append(ref)
            if _has_new_signers(client, release):
                _merge_upstream_signatures(client, index, remote, release, report)
            continue
        if release["digest"] in removed or (release["name"], release["version"]) in removed_refs:
            report.refused.append((ref, "removed from this registry by its admin; not mirrored again"))
            continue
        try:
            envelope = remote.envelope(release["name"], release["version"])
            client.judge(envelope)  # local policy, before any byte moves
        except VerificationError as exc:
            report.refused.append((ref, _reason(ref, exc)))
            continue
        except Error as exc:
            report.failed.append((ref, _reason(ref, exc)))
            continue
        try:
            torrent = remote.torrent(release["name"], release["version"])
            pulled = pull(client, ref, envelope, torrent=torrent, config=SwarmConfig(), timeout=timeout,
                          on_status=check_stop)
        except Error as exc:
            report.failed.append((ref, _reason(ref, exc)))
            continue
        entry = client.vault.get(pulled.digest)
        try:
            index.put(entry.manifest, evaluate(entry.envelope, client.policy), entry.envelope)
        except RemovedError:  # removed by the admin while it was being pulled
            report.refused.append((ref, "removed from this registry by its admin; not mirrored again"))
            continue
        report.added.append(ref)
    held_names = index.names()
    for name, listed in sorted(listed_heads.items()):
        if stop is not None and stop.is_set():
            break
        held_head = client.heads.held(name)
        # The listing says which head the upstream has (none: no head there): an unchanged
        # one costs no request.
        newer = isinstance(listed, int) and (held_head is None or listed > held_head.head.sequence)
        if name in held_names and newer:
            _sync_head(client, index, remote, name, report)
    return report


def _reason(ref: str, exc: Error) -> str:
    """Why a release was not copied, without repeating the ref the report already names."""
    text = str(exc)
    return text[len(ref) + 2:] if text.startswith(f"{ref}: ") else text


def _has_new_signers(client: Client, release: dict[str, Any]) -> bool:
    """Whether the upstream lists signer keys that the copy held here lacks (cheap: no request)."""
    listed = {k for field_name in ("publisher_keys", "approver_keys") for k in release.get(field_name) or []
              if isinstance(k, str)}
    stored = {s.keyid for s in client.vault.get(release["digest"]).envelope.signatures}
    return bool(listed - stored)


def _merge_upstream_signatures(client: Client, index: Index, remote: RegistryClient, release: dict[str, Any],
                               report: SyncReport) -> None:
    """An approval (or another publisher signature) given upstream after the release was copied."""
    ref = f"{release['name']}@{release['version']}"
    try:
        offered = remote.envelope(release["name"], release["version"])
        if offered.digest != release["digest"]:
            raise VerificationError(f"the upstream lists digest {release['digest']} and serves {offered.digest}")
        merged = client.merge_signatures(offered)
        entry = client.vault.get(merged.digest)
        index.put(entry.manifest, evaluate(merged, client.policy), merged)
    except PolicyError:
        return  # the new signatures do not count under the local policy: nothing to take
    except Error as exc:
        report.failed.append((ref, f"new signatures upstream: {exc}"))
        return
    report.signed.append(ref)


def _sync_head(client: Client, index: Index, remote: RegistryClient, name: str, report: SyncReport) -> None:
    """Take the upstream's head of a model held here, judged under the local policy; a lower
    sequence than the one held is refused, so a yank once seen is never lost."""
    before = client.heads.held(name)
    try:
        current, refusals = client.admit_heads(remote.heads(name), name)
    except Error as exc:
        report.failed.append((name, f"head: {exc}"))
        return
    report.refused.extend((name, f"head: {exc}") for exc in refusals)
    if current is not None and (before is None or current.head.sequence > before.head.sequence):
        report.heads.append(name)
    index_yanks(client, index, name)
