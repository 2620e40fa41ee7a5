"""One download in a swarm: progress, byte accounting by source, resume data.

This module moves bytes and reports what happened; it never decides whether the bytes are
trusted. libtorrent checks every piece against the merkle roots in the (signed-manifest
derived) torrent and bans peers that send bad data; the caller still verifies the files
itself at the end, because libtorrent trusts its resume data without reading the disk.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libtorrent as lt
import numpy as np

from seedvault.errors import TransferError
from seedvault.p2p.session import Endpoint, Swarm, format_endpoint, write_atomic
from seedvault.p2p.torrent import file_map
from seedvault.settings import MERKLE_BLOCK_SIZE

RESUME_EVERY = 2.0  # seconds between resume-data saves: what a kill -9 can cost
RESUME_BYTES_PER_S = 4_000_000  # resume data written per second at most, on average
STATUS_EVERY = 0.5
LOOKUP_EVERY = 2.0  # seconds between DHT lookups while no peer is connected
FLUSH_EVERY = 0.1  # seconds between write fences that hand finished pieces to the hashing behind
FLUSH_LOST = 2.0  # a fence not answered by then is asked for again


@dataclass
class TransferStats:
    """What a download has done so far; all byte counts are payload bytes."""

    total: int = 0
    done: int = 0
    rate: float = 0.0
    peers: int = 0
    seeds: int = 0
    from_seeds: int = 0  # peers that had the whole model when first asked for a block
    from_peers: int = 0  # peers that were downloading too
    from_web: int = 0  # HTTP web seeds
    uploaded: int = 0
    downloaded: int = 0  # payload received in this run (includes rejected pieces)
    resumed: int = 0  # already on disk when this run started (checked before any connection)
    reused: int = 0  # files the vault held already, verified (a delta pull): not fetched at all
    hash_failures: int = 0
    banned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    state: str = "starting"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Download:
    """A torrent being fetched into a staging directory, with resume data beside it."""

    def __init__(
        self,
        swarm: Swarm,
        ti: lt.torrent_info,
        staging: Path,
        resume_path: Path,
        *,
        peers: Iterable[Endpoint] = (),
        web_seeds: Iterable[str] = (),
        trackers: Iterable[str] = (),
        skip: Iterable[str] = (),
        sequential: bool = True,
    ) -> None:
        self.swarm = swarm
        self.resume_path = resume_path
        self.peers = list(peers)
        resume = resume_path.read_bytes() if resume_path.exists() else None
        if resume is not None and not _readable_resume(resume):
            # Damaged (a crash mid-write, an edit): what it claims cannot be used; the bytes in
            # staging are still found by libtorrent's check and hashed by us before admission.
            resume_path.unlink(missing_ok=True)
            resume = None
        # Paused once its check is done, so `resumed` counts only what was on disk before.
        self.handle = swarm.add(
            ti, staging, resume_data=resume, web_seeds=web_seeds, trackers=trackers, stop_when_ready=True
        )
        layout, plen = ti.layout(), ti.piece_length()
        self._index = file_map(ti)  # manifest path -> libtorrent file index (pad files have their own)
        # path -> first piece, piece count, size (v2: every file starts on a piece boundary)
        self._pieces_of: dict[str, tuple[int, int, int]] = {
            path: (layout.file_offset(i) // plen, -(-layout.file_size(i) // plen), layout.file_size(i))
            for path, i in self._index.items()}
        self._piece_length = plen
        # Pieces libtorrent checked against the roots whose bytes are in the file: a piece is
        # reported finished when it hashes, while its write may still be queued; it moves from
        # `_finished` to `_have` once a cache flush requested after it completes (a fence).
        self._have: set[int] = set()
        self._finished: set[int] = set()
        # Pieces libtorrent hashed against the signed roots in this run (piece_finished_alert),
        # and those it took from resume data at the start (which it trusts without reading).
        self._checked_here: set[int] = set()
        self._resumed_pieces: set[int] = set()
        self._resume_bytes: bytes | None = None  # the latest resume data: its merkle trees
        self._flushing: deque[set[int]] = deque()  # one set per flush requested, in order
        self._last_flush = 0.0
        self._prefix: dict[str, int] = {}
        skipped = set(skip)
        if skipped:
            # Files this vault holds already (same pieces root, still verified): not fetched.
            priorities = [4] * layout.num_files()
            for path in skipped:
                priorities[self._index[path]] = 0
            self.handle.prioritize_files(priorities)
        # In order while one peer feeds us, so the hashing behind the download (behind.py) keeps
        # right up with it; rarest first as soon as there are more, or the swarm loses the
        # pieces peers trade (measured: a seed then sent 3.0x the model to three peers, not 1.7x).
        self._sequential_alone = sequential
        self._in_order = sequential  # from the first piece: no peer yet, or the one we were given
        if sequential:
            self.handle.set_flags(lt.torrent_flags.sequential_download)
        self.stats = TransferStats()
        self._blocks: dict[tuple[int, int], str] = {}
        self._kinds: dict[str, str] = {}  # endpoint -> "seed", "peer" or "web", fixed at its first block
        self._started = time.monotonic()
        self._last_resume = 0.0
        self._last_lookup = time.monotonic()
        self._saves_pending = 0  # save_resume_data requests whose alert has not arrived yet
        self._running = False

    # ---- the loop ----------------------------------------------------------------------
    def wait_finished(self, deadline: float, on_status: Callable[[TransferStats], None] | None = None) -> None:
        """Pump alerts until libtorrent reports every piece; TransferError at the deadline."""
        if not self._running:
            self._start(deadline)
        last_status = 0.0
        while True:
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY:
                self._refresh()
                last_status = now
                if on_status:
                    on_status(self.stats)
                if self.stats.total and self.stats.done >= self.stats.total and self.handle.status().is_finished:
                    self.stats.state = "finished"
                    self.save_resume()
                    return
            if now - self._last_resume >= self._resume_every():
                self._request_resume()
            if self._finished and not self._flushing and now - self._last_flush >= FLUSH_EVERY:
                self._flush()
            elif self._flushing and now - self._last_flush >= FLUSH_LOST:
                # Never answered: fold everything waiting into one new fence. (Should the old
                # answer come late, pieces may reach the hashing early; a digest then disagrees
                # and admission reads that file again from disk.)
                self._finished = self._finished.union(*self._flushing)
                self._flushing.clear()
                self._flush()
            if self.swarm.discovers and self.stats.peers == 0 and now - self._last_lookup >= LOOKUP_EVERY:
                # A seeder may have announced after our first lookup: ask the DHT (and LAN) again.
                self.handle.force_dht_announce()
                self._last_lookup = now
            if now >= deadline:
                self.save_resume()
                raise TransferError(
                    f"download timed out with {self.stats.done} of {self.stats.total} bytes "
                    f"from {self.stats.peers} peer(s)",
                    hint="what arrived is kept; run the same pull again to resume "
                    "(check --peer / --web-seed / --registry if no peer answered)",
                )
            for alert in self.swarm.pop_alerts(wait=0.2):
                self._on_alert(alert)

    def _start(self, deadline: float) -> None:
        """Wait for libtorrent to check what is on disk, count it as resumed, then connect."""
        checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        while True:
            st = self.handle.status()
            stopped = st.state not in checking and self.handle.flags() & lt.torrent_flags.paused
            if stopped:
                self.stats.resumed = st.total_wanted_done
                pieces = self.handle.status(lt.torrent_handle.query_pieces).pieces
                self._resumed_pieces = {i for i, had in enumerate(pieces) if had}
                self._have.update(self._resumed_pieces)
                self.handle.unset_flags(lt.torrent_flags.stop_when_ready)  # a later recheck must not stop
                self.handle.resume()
                for peer in self.peers:
                    self.handle.connect_peer(peer)
                self._running = True
                return
            if time.monotonic() >= deadline:
                raise TransferError(
                    f"timed out checking the {st.total_wanted_done} bytes already in staging",
                    hint="run the same pull again with a longer --timeout; nothing was lost",
                )
            for alert in self.swarm.pop_alerts(wait=0.05):
                self._on_alert(alert)

    def _on_alert(self, alert: Any) -> None:
        if isinstance(alert, lt.block_downloading_alert):
            # Attribute each 16 KiB block to the kind of peer last asked for it. Counting from
            # alerts, not peer counters, keeps peers that disconnected before a poll.
            # (libtorrent 2.1's Python bindings never post block_finished_alert.)
            kind = self._kind(format_endpoint(_endpoint(alert.endpoint)))
            self._blocks[(alert.piece_index, alert.block_index)] = kind
        elif isinstance(alert, lt.piece_finished_alert):
            self._finished.add(int(alert.piece_index))
            self._checked_here.add(int(alert.piece_index))
        elif isinstance(alert, lt.cache_flushed_alert):
            self._on_flushed(alert)
        elif isinstance(alert, lt.hash_failed_alert):
            self.stats.hash_failures += 1
        elif isinstance(alert, lt.peer_ban_alert):
            banned = format_endpoint(_endpoint(alert.endpoint))
            if banned not in self.stats.banned:
                self.stats.banned.append(banned)
        elif isinstance(alert, lt.save_resume_data_alert | lt.save_resume_data_failed_alert):
            self._on_saved(alert)
        elif isinstance(alert, lt.file_error_alert | lt.torrent_error_alert):
            self.stats.errors.append(alert.message())
            raise TransferError(
                f"writing the download failed: {alert.message()}",
                hint="check free disk space and permissions of the vault; what arrived is kept",
            )

    def _refresh(self) -> None:
        st = self.handle.status()
        self.stats.total = st.total_wanted  # excludes the virtual pad files
        self.stats.done = st.total_wanted_done
        self.stats.rate = float(st.download_payload_rate)
        self.stats.peers = st.num_peers
        in_order = self._sequential_alone and st.num_peers <= 1
        if in_order != self._in_order:
            if in_order:
                self.handle.set_flags(lt.torrent_flags.sequential_download)
            else:
                self.handle.unset_flags(lt.torrent_flags.sequential_download)
            self._in_order = in_order
        self.stats.seeds = st.num_seeds
        self.stats.uploaded = st.total_payload_upload
        self.stats.downloaded = st.total_payload_download
        self.stats.state = str(st.state).rsplit(".", 1)[-1]
        self.stats.elapsed = time.monotonic() - self._started
        counts = {"seed": 0, "peer": 0, "web": 0}
        for kind in self._blocks.values():
            counts[kind] += 1
        # Blocks are counted when requested (the bindings never post block_finished_alert), so
        # requests in flight run ahead of what arrived: the shares are scaled down to the bytes
        # this run actually fetched, never more. (The last block of a file may be shorter.)
        share = [counts[k] * MERKLE_BLOCK_SIZE for k in ("seed", "peer", "web")]
        fetched = max(0, self.stats.done - self.stats.resumed)
        if sum(share) > fetched:
            scaled = [n * fetched // sum(share) for n in share]
            scaled[max(range(3), key=lambda i: share[i])] += fetched - sum(scaled)  # rounding, to the largest
            share = scaled
        self.stats.from_seeds, self.stats.from_peers, self.stats.from_web = share

    def _kind(self, key: str) -> str:
        """Whether `key` is a seed, a peer or a web seed, decided at the first block asked of it.

        Not earlier: a peer listed before its bitfield arrives looks like an empty leecher,
        and an address given with --peer may be a leecher as well as a seed. By the time a
        block is requested, libtorrent knows which pieces the peer holds.
        """
        kind = self._kinds.get(key)
        if kind is not None:
            return kind
        for peer in self.handle.get_peer_info():
            if format_endpoint(_endpoint(peer.ip)) == key:
                web = peer.connection_type in (lt.peer_info.web_seed, lt.peer_info.http_seed)
                kind = "web" if web else "seed" if peer.flags & lt.peer_info.seed else "peer"
                self._kinds[key] = kind
                return kind
        return "peer"  # already gone; not remembered, so a later connection is judged afresh

    def files(self) -> list[str]:
        """The torrent's files in download order (relative paths)."""
        return sorted(self._index, key=self._index.__getitem__)

    def prefix_bytes(self, path: str) -> int:
        """Bytes of PATH's complete prefix: its pieces libtorrent holds, counted from the first
        until one is missing. Read from another thread (a set lookup is atomic in CPython)."""
        first, count, size = self._pieces_of[path]
        done = self._prefix.get(path, 0)  # pieces are only added while the hashing follows
        while done < count and first + done in self._have:
            done += 1
        self._prefix[path] = done
        return min(size, done * self._piece_length)

    # ---- resume data ---------------------------------------------------------------------
    def _resume_every(self) -> float:
        """Seconds between resume-data saves: RESUME_EVERY, or longer when the resume data is
        large (it holds every leaf hash: about 2 MB per GiB), so writing it stays under
        RESUME_BYTES_PER_S."""
        size = len(self._resume_bytes) if self._resume_bytes is not None else 0
        return max(RESUME_EVERY, size / RESUME_BYTES_PER_S)

    def _request_resume(self) -> None:
        self._last_resume = time.monotonic()
        if self.handle.is_valid() and self.handle.need_save_resume_data():
            self._ask_save()

    def _ask_save(self) -> None:
        self.handle.save_resume_data(lt.save_resume_flags_t.flush_disk_cache)
        self._saves_pending += 1

    def _on_saved(self, alert: Any) -> None:
        self._saves_pending = max(0, self._saves_pending - 1)
        if isinstance(alert, lt.save_resume_data_alert):
            # The bytes, not alert.params: an alert (and what it holds) is freed by the next pop.
            self._resume_bytes = bytes(lt.write_resume_data_buf(alert.params))
            write_atomic(self.resume_path, self._resume_bytes)

    def has_resumed(self, path: str) -> bool:
        """Whether any piece of PATH came from resume data (the hashing behind must then
        check its pieces root itself)."""
        first, count, _size = self._pieces_of[path]
        return any(p in self._resumed_pieces for p in range(first, first + count))

    def checked_here(self, path: str) -> bool:
        """Whether libtorrent hashed every piece of PATH against its signed pieces root in this
        run: none taken from resume data (trusted unread), none lost to a recheck since."""
        first, count, _size = self._pieces_of[path]
        pieces = range(first, first + count)
        return all(p in self._checked_here and p not in self._resumed_pieces for p in pieces)

    def verified_leaves(self) -> dict[str, list[bytes]]:
        """The 16 KiB leaf hashes libtorrent verified, per file, from the latest resume data
        (its merkle trees: tree nodes in breadth-first order, a mask of those present). A file
        whose leaves are not all there is left out. The caller checks what it builds from
        them against the signed roots."""
        if self._resume_bytes is None:
            return {}
        decoded: Any = lt.bdecode(self._resume_bytes)
        trees = decoded.get(b"trees") if isinstance(decoded, dict) else None
        if not isinstance(trees, list):
            return {}
        out: dict[str, list[bytes]] = {}
        for path, index in self._index.items():
            _first, _count, size = self._pieces_of[path]
            tree = trees[index] if index < len(trees) and isinstance(trees[index], dict) else {}
            leaves = _leaves(tree, size)
            if leaves is not None:
                out[path] = leaves
        return out

    def save_resume(self, timeout: float = 5.0) -> None:
        """Write resume data now and wait for it (bounded).

        Alerts arrive in request order, so this waits for every outstanding save, not the
        first: an earlier periodic request answers first with older state, and stopping there
        would leave resume data that forgets the pieces fetched since.
        """
        if not self.handle.is_valid():
            return
        self._ask_save()
        deadline = time.monotonic() + timeout
        while self._saves_pending and time.monotonic() < deadline:
            for alert in self.swarm.pop_alerts(wait=0.1):
                self._bookkeeping(alert)

    # ---- after completion ---------------------------------------------------------------
    def _flush(self) -> None:
        self._flushing.append(self._finished)
        self._finished = set()
        self._last_flush = time.monotonic()
        self.handle.flush_cache()

    def pause(self, timeout: float = 10.0) -> None:
        """Stop transfers and flush files, so the caller can read them safely (and the
        hashing behind the download gets the last pieces)."""
        self.handle.unset_flags(lt.torrent_flags.auto_managed)
        self.handle.pause()
        self._flush()
        deadline = time.monotonic() + timeout
        while self._flushing and time.monotonic() < deadline:
            for alert in self.swarm.pop_alerts(0.1):
                self._bookkeeping(alert)

    def _bookkeeping(self, alert: Any) -> None:
        """What must never be lost while another loop pops alerts: saved resume data, and
        flushes that hand pieces to the hashing behind the download."""
        if isinstance(alert, lt.save_resume_data_alert | lt.save_resume_data_failed_alert):
            self._on_saved(alert)
        elif isinstance(alert, lt.cache_flushed_alert):
            self._on_flushed(alert)

    def _on_flushed(self, alert: Any) -> None:
        if self._flushing and alert.handle == self.handle:
            self._have |= self._flushing.popleft()

    def fetch_file(self, path: str) -> None:
        """Download PATH after all (it was left out: the vault held it), and go on."""
        wanted = self.handle.status().total_wanted + self._pieces_of[path][2]
        self.handle.file_priority(self._index[path], 4)
        deadline = time.monotonic() + 5.0
        while self.handle.status().total_wanted < wanted and time.monotonic() < deadline:
            time.sleep(0.02)  # priorities apply asynchronously: until then it still looks finished
        self.handle.resume()
        for peer in self.peers:  # dropped when the download paused
            self.handle.connect_peer(peer)

    def recheck(self) -> None:
        """Re-hash what is on disk (our final check failed) and fetch what is bad."""
        self.resume_path.unlink(missing_ok=True)
        self._checked_here.clear()
        self._have.clear()
        self._finished.clear()
        self._flushing.clear()
        self._prefix.clear()
        self.handle.force_recheck()
        self.handle.resume()

    def remove(self) -> None:
        if self.handle.is_valid():
            self.swarm.remove(self.handle)


def _readable_resume(data: bytes) -> bool:
    try:
        lt.read_resume_data(data)
    except RuntimeError:
        return False
    return True


def _leaves(tree: dict[bytes, Any], size: int) -> list[bytes] | None:
    """A file's leaf hashes from one libtorrent resume-data tree, or None if not all present."""
    count = -(-size // MERKLE_BLOCK_SIZE)
    hashes, mask = tree.get(b"hashes"), tree.get(b"mask")
    if not count or not isinstance(hashes, bytes) or not isinstance(mask, bytes) or len(hashes) % 32:
        return None
    first = (1 << max(0, (count - 1).bit_length())) - 1  # index of the first leaf, breadth-first
    present = np.flatnonzero(np.unpackbits(np.frombuffer(mask, dtype=np.uint8)))
    if len(present) * 32 != len(hashes):
        return None
    start = int(np.searchsorted(present, first))  # the stored position of the first leaf
    if start + count > len(present) or present[start] != first or present[start + count - 1] != first + count - 1:
        return None  # not every leaf present (node indices are increasing)
    return [hashes[(start + j) * 32 : (start + j) * 32 + 32] for j in range(count)]


def _endpoint(value: Any) -> Endpoint:
    if isinstance(value, tuple):
        return str(value[0]), int(value[1])
    return str(value.address), int(value.port)
