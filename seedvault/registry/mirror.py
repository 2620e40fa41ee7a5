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
from seedvault.errors import Error, RemovedError, TransferError, VerificationError
from seedvault.p2p import SwarmConfig, TransferStats
from seedvault.registry.client import RegistryClient
from seedvault.registry.index import Index
from seedvault.signing import evaluate
from seedvault.swarming import pull


@dataclass
class SyncReport:
    upstream: str
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream, "added": self.added, "present": self.present,
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
    # Bounded: all_releases stops at a page bound and on a page with nothing new, each
    # request has a deadline, each download `timeout`; entries are type-checked there.
    for release in remote.all_releases():
        if stop is not None and stop.is_set():
            break
        ref = f"{release['name']}@{release['version']}"
        if release["digest"] in held:
            report.present.append(ref)
            continue
        if release["digest"] in removed or (release["name"], release["version"]) in removed_refs:
            report.refused.append((ref, "removed from this registry by its admin; not mirrored again"))
            continue
        try:
            envelope = remote.envelope(release["name"], release["version"])
            client.judge(envelope)  # local policy, before any byte moves
        except VerificationError as exc:
            report.refused.append((ref, str(exc)))
            continue
        except Error as exc:
            report.failed.append((ref, str(exc)))
            continue
        try:
            torrent = remote.torrent(release["name"], release["version"])
            pulled = pull(client, ref, envelope, torrent=torrent, config=SwarmConfig(), timeout=timeout,
                          on_status=check_stop)
        except Error as exc:
            report.failed.append((ref, str(exc)))
            continue
        entry = client.vault.get(pulled.digest)
        try:
            index.put(entry.manifest, evaluate(entry.envelope, client.policy))
        except RemovedError:  # removed by the admin while it was being pulled
            report.refused.append((ref, "removed from this registry by its admin; not mirrored again"))
            continue
        report.added.append(ref)
    return report
