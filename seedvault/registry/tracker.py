"""A minimal BitTorrent tracker (BEP 3 announce, BEP 23 compact peers), in memory.

Peers are kept per info-hash (the 20-byte form libtorrent announces, which for a v2
torrent is the truncated SHA-256) and expire when they stop announcing.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from seedvault._bencode import bencode

ANNOUNCE_INTERVAL = 30
PEER_TTL = 3 * ANNOUNCE_INTERVAL
MAX_PEERS_RETURNED = 50


class AnnounceError(ValueError):
    """A malformed announce; reported to the client as a bencoded failure reason."""


@dataclass
class _Peer:
    ip: str
    port: int
    left: int
    seen: float


class Tracker:
    def __init__(self) -> None:
        self._swarms: dict[bytes, dict[bytes, _Peer]] = {}

    def announce(self, info_hash: bytes, peer_id: bytes, ip: str, port: int, left: int, event: str) -> bytes:
        if len(info_hash) != 20:
            raise AnnounceError(f"info_hash: expected 20 bytes, found {len(info_hash)}")
        if len(peer_id) != 20:
            raise AnnounceError(f"peer_id: expected 20 bytes, found {len(peer_id)}")
        if not 0 < port < 65536:
            raise AnnounceError(f"port: expected 1-65535, found {port}")
        now = time.monotonic()
        swarm = self._swarms.setdefault(info_hash, {})
        for pid in [p for p, peer in swarm.items() if now - peer.seen > PEER_TTL]:
            del swarm[pid]
        if event == "stopped":
            swarm.pop(peer_id, None)
        else:
            swarm[peer_id] = _Peer(ip, port, left, now)
        others = [p for pid, p in swarm.items() if pid != peer_id][:MAX_PEERS_RETURNED]
        compact = b"".join(_compact(p) for p in others if _is_v4(p.ip))
        complete = sum(1 for p in swarm.values() if p.left == 0)
        return bencode({
            "interval": ANNOUNCE_INTERVAL,
            "complete": complete,
            "incomplete": len(swarm) - complete,
            "peers": compact,
        })

    def add_static(self, info_hash: bytes, ip: str, port: int) -> None:
        """Register the node's own seed, which never announces to itself."""
        self._swarms.setdefault(info_hash, {})[b"seedvault-node-" + port.to_bytes(5, "big")] = _Peer(
            ip, port, 0, float("inf")
        )


def failure(reason: str) -> bytes:
    return bencode({"failure reason": reason})


def _is_v4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def _compact(peer: _Peer) -> bytes:
    return ipaddress.IPv4Address(peer.ip).packed + peer.port.to_bytes(2, "big")
