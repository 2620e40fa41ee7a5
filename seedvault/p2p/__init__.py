"""BitTorrent v2 transport: sessions with private defaults, manifest-bound torrents, transfers.

This package moves bytes and reports what happened; it never decides trust.
"""

from seedvault.p2p.session import Endpoint, Swarm, SwarmConfig, format_endpoint, parse_endpoint
from seedvault.p2p.torrent import bound_torrent, check_binding, magnet_link, torrent_bytes
from seedvault.p2p.transfer import Download, TransferStats

__all__ = [
    "Download", "Endpoint", "Swarm", "SwarmConfig", "TransferStats", "bound_torrent", "check_binding",
    "format_endpoint", "magnet_link", "parse_endpoint", "torrent_bytes",
]  # fmt: skip
