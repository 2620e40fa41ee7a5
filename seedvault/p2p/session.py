"""A libtorrent session with private, explicit defaults.

A bare `lt.session()` listens on every interface and turns on DHT bootstrap, UPnP,
NAT-PMP and LSD. Here every session gets a full settings pack: it listens only where
asked (127.0.0.1 unless told otherwise), never maps ports, never contacts public DHT
routers, and announces on the LAN (LSD) or a DHT only when the user asked for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libtorrent as lt

from seedvault.errors import TransferError, UsageError
from seedvault.p2p.torrent import file_map

Endpoint = tuple[str, int]


def parse_endpoint(text: str, what: str = "address") -> Endpoint:
    """`host:port` or `[v6]:port`."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{what}: expected HOST:PORT such as 127.0.0.1:6881, found {text!r}")
    return host, int(port)


def format_endpoint(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class SwarmConfig:
    listen: str = "127.0.0.1:0"
    lan: bool = False  # Local Service Discovery beacons on the LAN
    dht_nodes: tuple[Endpoint, ...] = ()  # a private DHT; empty = no DHT at all
    upload_rate_limit: int = 0  # bytes/s, 0 = unlimited
    download_rate_limit: int = 0
    limit_local_peers: bool = False  # libtorrent exempts LAN peers from limits unless told
    # BEP 16 for an origin with a thin uplink: offer each peer pieces nobody has yet, so the
    # origin sends each piece about once and peers spread it.
    super_seed: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        parse_endpoint(self.listen, "listen address")
        categories = (
            lt.alert_category.error | lt.alert_category.status | lt.alert_category.storage
            | lt.alert_category.peer | lt.alert_category.tracker | lt.alert_category.block_progress
            | lt.alert_category.piece_progress  # piece_finished_alert: hashing follows the download
        )  # fmt: skip
        if self.dht_nodes:
            categories |= lt.alert_category.dht
        pack: dict[str, Any] = {
            "listen_interfaces": self.listen,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_lsd": self.lan,
            "enable_dht": bool(self.dht_nodes),
            "dht_bootstrap_nodes": "",
            # uTP is 3-10x slower than TCP on loopback and LAN here.
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            # Peers on one host share an IP; tests and the demo need them all.
            "allow_multiple_connections_per_ip": True,
            "alert_mask": int(categories),
            "user_agent": "seedvault/0.1",
            "upload_rate_limit": self.upload_rate_limit,
            "download_rate_limit": self.download_rate_limit,
            "ignore_limits_on_local_network": not self.limit_local_peers,
            # A private DHT on one host: every node shares an IP, so lift the per-IP limits.
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_block_ratelimit": 100000,
            "dht_block_timeout": 1,
            "dht_upload_rate_limit": 100000,
            # LAN rates (bench/pull.py, measured side by side): a seeder keeps up to 16 MiB queued
            # per peer instead of 500 kB (the default starves a fast link between two requests),
            # and a downloader keeps more requests in flight.
            "send_buffer_watermark": 16 * 1024 * 1024,
            "send_buffer_low_watermark": 1024 * 1024,
            "send_buffer_watermark_factor": 150,
            "max_out_request_queue": 1500,
            # Metadata comes from peers only for cards (model torrents are derived from the
            # signed manifest): a hostile peer cannot make it large.
            "max_metadata_size": 1024 * 1024,
        }
        pack.update(self.extra)
        return pack


class Swarm:
    """One libtorrent session; closed with `close()` or as a context manager."""

    def __init__(self, config: SwarmConfig | None = None) -> None:
        self.config = config or SwarmConfig()
        self.session = lt.session(self.config.settings())  # type: ignore[call-overload]  # stubs lack dict
        self._dht_ready = False
        for node in self.config.dht_nodes:
            self.session.add_dht_node(node)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.session.pop_alerts():
                if isinstance(alert, lt.listen_failed_alert):
                    self.session.pause()
                    raise TransferError(
                        f"cannot listen on {self.config.listen}: {alert.message()}",
                        hint="choose another --listen address or port",
                    )
            if self.session.listen_port():
                return
            time.sleep(0.02)
        raise TransferError(f"the BitTorrent session did not start listening on {self.config.listen} in {timeout}s")

    def wait_for_dht(self, timeout: float = 10.0) -> None:
        """Until the DHT's routing table holds a node (right after start it is empty, and a
        lookup then finds nothing at once); TransferError after TIMEOUT."""
        if self._dht_ready:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.session.post_dht_stats()
            for alert in self.pop_alerts(wait=0.05):
                if isinstance(alert, lt.dht_stats_alert) and any(b["num_nodes"] > 0 for b in alert.routing_table):
                    self._dht_ready = True
                    return
        raise TransferError(f"no DHT node answered within {timeout:.0f} s",
                            hint="check the --dht-node addresses: at least one must be a running DHT node")

    @property
    def discovers(self) -> bool:
        """Whether this session finds peers by itself (LSD or DHT)."""
        return self.config.lan or bool(self.config.dht_nodes)

    @property
    def port(self) -> int:
        return int(self.session.listen_port())

    @property
    def endpoint(self) -> Endpoint:
        host = parse_endpoint(self.config.listen)[0]
        return ("127.0.0.1" if host in ("0.0.0.0", "") else host, self.port)  # noqa: S104 - a comparison

    def add(
        self,
        ti: lt.torrent_info,
        save_path: Path,
        *,
        seed: bool = False,
        resume_data: bytes | None = None,
        peers: Iterable[Endpoint] = (),
        web_seeds: Iterable[str] = (),
        trackers: Iterable[str] = (),
        stop_when_ready: bool = False,
    ) -> lt.torrent_handle:
        """Add a torrent whose files live directly under save_path at their manifest paths.

        With `stop_when_ready`, libtorrent checks what is on disk, then pauses the torrent
        before it connects to anyone; the caller resumes it (and connects `peers` itself).
        """
        atp = lt.read_resume_data(resume_data) if resume_data else lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = str(save_path)
        # Files go to save_path/<manifest path>, not save_path/<torrent name>/<path>.
        atp.renamed_files = {index: path for path, index in file_map(ti).items()}
        flags = atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        # Resume data sets these, so the trackers and web seeds it saved (none, for sources
        # given at add time) would replace the ones this run passes: the resumed torrent
        # would have no source and stall for good. This run's sources always apply.
        flags &= ~lt.torrent_flags.override_trackers & ~lt.torrent_flags.override_web_seeds
        if seed:
            flags |= lt.torrent_flags.seed_mode  # verified by us; libtorrent re-hashes on demand
            if self.config.super_seed:
                flags |= lt.torrent_flags.super_seeding
        if stop_when_ready:
            flags |= lt.torrent_flags.stop_when_ready
        atp.flags = flags
        atp.url_seeds = list(web_seeds)
        atp.trackers = list(trackers)
        handle: lt.torrent_handle = self.session.add_torrent(atp)
        for peer in peers:
            handle.connect_peer(peer)
        return handle

    def pop_alerts(self, wait: float = 0.0) -> list[Any]:
        if wait > 0:
            self.session.wait_for_alert(int(wait * 1000))
        return list(self.session.pop_alerts())

    def remove(self, handle: lt.torrent_handle, timeout: float = 10.0) -> None:
        """Remove a torrent and wait until libtorrent has closed its files."""
        self.session.remove_torrent(handle)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.pop_alerts(0.2):
                if isinstance(alert, lt.torrent_removed_alert | lt.torrent_deleted_alert):
                    return

    def close(self) -> None:
        self.session.pause()
        del self.session

    def __enter__(self) -> Swarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
