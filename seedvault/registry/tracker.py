"""A minimal BitTorrent tracker (BEP 3 announce, BEP 23 compact peers), in memory, bounded.

Peers are kept per info-hash (the 20-byte form libtorrent announces, which for a v2
torrent is the truncated SHA-256). Everything an announce can add is bounded:
- only the info-hashes of releases the node serves have a swarm (`serve`); any other is
  refused, so nobody can make the node hold swarms for arbitrary hashes;
- a swarm holds at most MAX_PEERS_PER_SWARM peers and MAX_PEERS_PER_IP per address; peers
  that stop announcing expire after PEER_TTL;
- answers list the node's own seed, then the most recently seen peers first, so fake peers
  announced early cannot hide real ones, and an announce costs O(numwant): each swarm is
  kept in last-seen order, expired peers are dropped from its old end.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from seedvault._bencode import bencode
from seedvault.manifest import Manifest

ANNOUNCE_INTERVAL = 30
PEER_TTL = 3 * ANNOUNCE_INTERVAL
MAX_PEERS_RETURNED = 50
MAX_PEERS_PER_SWARM = 1000
MAX_PEERS_PER_IP = 8  # one machine runs a few clients; more from one address is flooding


def tracker_hash(manifest: Manifest) -> bytes:
    """The info-hash a client announces for a release (BEP 52: the v2 hash, truncated)."""
    return bytes.fromhex(manifest.torrent.info_hash_v2)[:20]


@dataclass(frozen=True)
class SwarmHealth:
    """What the tracker knows of one release's swarm now: seeds (the node's own seed among
    them) and peers still downloading."""

    seeds: int
    peers: int


class AnnounceError(ValueError):
    """A malformed announce; reported to the client as a bencoded failure reason."""


@dataclass
class _Peer:
    ip: str
    port: int
    left: int
    seen: float


@dataclass
class _Swarm:
    peers: OrderedDict[bytes, _Peer] = field(default_factory=OrderedDict)  # oldest seen first
    per_ip: Counter[str] = field(default_factory=Counter)
    complete: int = 0

    def drop(self, peer_id: bytes) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer is not None:
            self.per_ip[peer.ip] -= 1
            if not self.per_ip[peer.ip]:
                del self.per_ip[peer.ip]
            self.complete -= peer.left == 0

    def expire(self, now: float) -> None:
        while self.peers:
            oldest_id, oldest = next(iter(self.peers.items()))
            if now - oldest.seen <= PEER_TTL:
                return
            self.drop(oldest_id)

    def add(self, peer_id: bytes, peer: _Peer) -> None:
        """Record an announce; a new peer beyond a bound is not recorded (it still gets peers)."""
        known = peer_id in self.peers
        if known:
            self.drop(peer_id)
        elif len(self.peers) >= MAX_PEERS_PER_SWARM or self.per_ip[peer.ip] >= MAX_PEERS_PER_IP:
            return
        self.peers[peer_id] = peer
        self.per_ip[peer.ip] += 1
        self.complete += peer.left == 0

    def newest(self, exclude: bytes, want: int) -> list[_Peer]:
        out: list[_Peer] = []
        for examined, pid in enumerate(reversed(self.peers)):
            if len(out) >= want or examined > 4 * want:  # bounded even when few peers qualify
                break
            peer = self.peers[pid]
            if pid != exclude and _is_v4(peer.ip):
                out.append(peer)
        return out


class Tracker:
    def __init__(self) -> None:
        self._swarms: dict[bytes, _Swarm] = {}
        self._static: dict[bytes, tuple[str, int]] = {}  # the node's own seed per info-hash

    def serve(self, info_hashes: Iterable[bytes]) -> None:
        """The info-hashes the node serves, all of them: swarms of any other are dropped."""
        wanted = set(info_hashes)
        for gone in [h for h in self._swarms if h not in wanted]:
            del self._swarms[gone]
        for gone in [h for h in self._static if h not in wanted]:
            del self._static[gone]
        for info_hash in wanted:
            self._swarms.setdefault(info_hash, _Swarm())

    def add_hash(self, info_hash: bytes) -> None:
        self._swarms.setdefault(info_hash, _Swarm())

    def announce(self, info_hash: bytes, peer_id: bytes, ip: str, port: int, left: int, event: str,
                 numwant: int = MAX_PEERS_RETURNED) -> bytes:
        if len(info_hash) != 20:
            raise AnnounceError(f"info_hash: expected 20 bytes, found {len(info_hash)}")
        if len(peer_id) != 20:
            raise AnnounceError(f"peer_id: expected 20 bytes, found {len(peer_id)}")
        if not 0 < port < 65536:
            raise AnnounceError(f"port: expected 1-65535, found {port}")
        if left < 0:
            raise AnnounceError(f"left: expected a byte count of 0 or more, found {left}")
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            raise AnnounceError("info_hash: expected a torrent of a release this registry serves, found another")
        now = time.monotonic()
        swarm.expire(now)
        if event == "stopped":
            swarm.drop(peer_id)
        else:
            swarm.add(peer_id, _Peer(ip, port, left, now))
        want = max(0, min(numwant, MAX_PEERS_RETURNED))
        static = self._static.get(info_hash)
        peers = [static] if static is not None and want else []
        peers += [(p.ip, p.port) for p in swarm.newest(peer_id, want - len(peers))]
        complete = swarm.complete + (static is not None)
        return bencode({
            "interval": ANNOUNCE_INTERVAL,
            "complete": complete,
            "incomplete": len(swarm.peers) - swarm.complete,
            "peers": b"".join(_compact(ip, p) for ip, p in peers),
        })

    def health(self, info_hash: bytes) -> SwarmHealth | None:
        """The swarm's counts, peers that stopped announcing left out; None when the tracker
        keeps no swarm for this info-hash (a release it does not serve)."""
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return None
        swarm.expire(time.monotonic())
        seeds = swarm.complete + (info_hash in self._static)
        return SwarmHealth(seeds, len(swarm.peers) - swarm.complete)

    def add_static(self, info_hash: bytes, ip: str, port: int) -> None:
        """Register the node's own seed, which never announces to itself."""
        if _is_v4(ip):
            self._static[info_hash] = (ip, port)
        self.add_hash(info_hash)


def failure(reason: str) -> bytes:
    return bencode({"failure reason": reason})


def _is_v4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def _compact(ip: str, port: int) -> bytes:
    return ipaddress.IPv4Address(ip).packed + port.to_bytes(2, "big")
