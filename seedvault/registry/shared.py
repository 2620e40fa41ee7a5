"""Several nodes behind one name, sharing one index (PostgreSQL): what each does so that a
push, approval, head or yank accepted by any of them is served by all.

- The index holds each release's current envelope and each model's highest accepted head;
  a node judges what it takes from there under its own policy, like anything else it is
  offered (the index is shared state, not a source of trust).
- Approvals are merged into the index's envelope with compare-and-swap, so two nodes
  merging at once both keep their signatures.
- Each node announces itself (a heartbeat) and records the releases whose bytes it holds;
  one lacking a release answers its torrent from a node that holds it, and fetches the
  bytes itself from those nodes (their swarm seeds and web seeds) in the background.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from seedvault.errors import Error, IntegrityError, PolicyError, TransferError
from seedvault.manifest import Manifest
from seedvault.p2p import SwarmConfig, TransferStats, parse_endpoint
from seedvault.registry.client import RegistryClient
from seedvault.registry.index import Release, index_yanks
from seedvault.signing import Envelope, counted_signatures, evaluate
from seedvault.swarming import pull

if TYPE_CHECKING:
    from seedvault.registry.node import Node

PEER_WINDOW = 60.0  # seconds: a node not heard from for longer is not asked for bytes
PEER_TIMEOUT = 10.0  # seconds for another node's answer (its torrent)
FETCH_TIMEOUT = 3600.0  # seconds for one release's bytes from the other nodes
CAS_ATTEMPTS = 8  # compare-and-swap rounds when nodes merge approvals into one envelope at once
log = logging.getLogger("seedvault.registry")


def merge_signatures(node: Node, offered: Envelope, kind: str, *, strict: bool = False) -> int:
    """Merge into the release's shared envelope the offered signatures this node's policy
    counts; the number added. `strict`: none new is a PolicyError (an explicit approval)."""
    for _attempt in range(CAS_ATTEMPTS):
        raw = node.index.envelope(offered.digest)
        stored = Envelope.from_json(raw, "envelope in the registry index") if raw else node.envelope(offered.digest)
        if offered.payload_type != stored.payload_type:
            raise IntegrityError(f"signatures for {offered.digest}: expected payload type "
                                 f"{stored.payload_type}, found {offered.payload_type}")
        manifest = Manifest.from_payload(stored.payload)
        known = {s.keyid for s in stored.signatures}
        new = [s for s in counted_signatures(offered, manifest.name, node.client.policy).signatures
               if s.keyid not in known]
        if not new:
            if strict:
                raise PolicyError(f"signatures for {manifest.ref}: expected at least one new signature by a key "
                                  f"this registry trusts for {manifest.name}, found none",
                                  hint="the signing key must be in the registry's trust policy")
            return 0
        merged = Envelope(stored.payload, stored.payload_type, (*stored.signatures, *new))
        if node.index.replace_envelope(evaluate(merged, node.client.policy), merged, raw):
            break
    else:
        raise TransferError(f"{offered.digest}: other nodes kept changing its signatures; not merged",
                            hint="retry the approval")
    if node.client.vault.has(offered.digest):
        _merge_into_vault(node, merged)
    node.log.record("approval" if kind == "approval" else "release", merged, manifest.name, manifest.version,
                    {s.keyid for s in new})
    return len(new)


def _merge_into_vault(node: Node, envelope: Envelope) -> None:
    held = {s.keyid for s in node.client.vault.get(envelope.digest).envelope.signatures}
    if {s.keyid for s in envelope.signatures} - held:
        # PolicyError: nothing in it counts under this node's policy; the vault keeps its own.
        with contextlib.suppress(PolicyError):
            node.client.merge_signatures(envelope)


def adopt_head(node: Node, name: str) -> None:
    """Take the model's head another node accepted, when it is newer than the one held here."""
    listed = node.index.heads(name)
    if listed is None:
        return
    sequence, dicts = listed
    held = node.client.heads.held(name)
    if held is not None and held.head.sequence >= sequence:
        return
    try:
        envelopes = [Envelope.from_dict(d, "head in the registry index") for d in dicts]
        _current, refusals = node.client.admit_heads(envelopes, name)
    except Error as exc:
        log.warning("head of %s in the shared index refused: %s", name, exc)
        return
    for refusal in refusals:
        log.info("head of %s in the shared index refused: %s", name, refusal)
    index_yanks(node.client, node.index, name)


def adopt(node: Node) -> None:
    """A housekeeping pass: signatures and heads other nodes took, and no seeding of what an
    admin removed through another node."""
    listed = node.index.search(limit=100_000, include_yanked=True)
    refs = {f"{r.name}@{r.version}" for r in listed}
    for ref in node.seeding_refs() - refs:
        node.stop_seeding(ref)
    for release in listed:
        raw = node.index.envelope(release.digest)
        if raw is not None and node.client.vault.has(release.digest):
            try:
                _merge_into_vault(node, Envelope.from_json(raw, "envelope in the registry index"))
            except Error as exc:
                log.warning("signatures of %s@%s in the shared index: %s", release.name, release.version, exc)
    for name in sorted({r.name for r in listed}):
        adopt_head(node, name)


def torrent_from_holders(node: Node, release: Release) -> tuple[str, bytes]:
    """The release's torrent from a node of the registry holding its bytes (its web seed and
    tracker in it): the client checks it against the signed binding like any other."""
    manifest = Manifest.from_payload(node.envelope(release.digest).payload)
    tried = []
    for peer in node.index.holders(release.digest, within=PEER_WINDOW, exclude=node.config.base_url):
        try:
            return manifest.torrent_name, RegistryClient(peer.url, PEER_TIMEOUT).torrent(release.name, release.version)
        except Error as exc:
            tried.append(f"{peer.url}: {exc}")
    raise TransferError(f"{manifest.ref}: this node does not hold its bytes yet, and no other node of the registry "
                        f"holding them answered ({'; '.join(tried) or 'none heard from lately'})",
                        hint="retry in a minute")


def fetch_missing(node: Node, stop: threading.Event) -> list[str]:
    """Pull the bytes of every listed release this node lacks from the nodes holding them;
    the refs now held (to be seeded). Runs off the node's worker; `stop` ends it early."""

    def check_stop(_stats: TransferStats) -> None:
        if stop.is_set():
            raise TransferError("fetch from the other nodes interrupted: the node is shutting down")

    fetched = []
    for release in node.index.search(limit=100_000, include_yanked=True):
        if stop.is_set():
            break
        if node.client.vault.has(release.digest):
            continue
        holders = node.index.holders(release.digest, within=PEER_WINDOW, exclude=node.config.base_url)
        if not holders:
            continue
        ref = f"{release.name}@{release.version}"
        try:
            envelope = node.envelope(release.digest)
            node.client.judge(envelope)  # this node's policy, before any byte moves
        except Error as exc:
            log.warning("not fetching %s from the other nodes: %s", ref, exc)
            continue
        peers = [parse_endpoint(p.swarm) for p in holders if p.swarm]
        for holder in holders:
            try:
                torrent = RegistryClient(holder.url, PEER_TIMEOUT).torrent(release.name, release.version)
                pull(node.client, ref, envelope, torrent=torrent, peers=peers, config=SwarmConfig(),
                     timeout=FETCH_TIMEOUT, on_status=check_stop)
            except Error as exc:
                log.warning("fetching %s through %s failed: %s", ref, holder.url, exc)
                continue
            node.index.hold(release.digest, node.config.base_url)
            fetched.append(ref)
            break
    return fetched
