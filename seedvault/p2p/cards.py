"""Cards: tiny BitTorrent v2 torrents that carry signed statements through the swarm.

A release's **envelope card** holds `envelope.json`; a model's **head card** holds
`heads.json` (its head, and the publisher-signed head a timestamp refresh rests on, as in
bundles). Everyone who holds a release seeds its cards; a client that knows a card's
info-hash (from a DHT item or a magnet link) fetches it from peers (BEP 9 metadata, then the
file) without a server. The info-hash only names bytes: the statements inside are judged by
the caller like statements from anywhere else, before a single model byte is asked for.

A card's torrent is a function of its files' names and bytes alone, so every holder of the
same statement seeds the same torrent.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import libtorrent as lt

from seedvault._text import listing, quote
from seedvault.errors import IntegrityError, OversizeError, TransferError
from seedvault.p2p.session import Endpoint, Swarm
from seedvault.settings import MAX_ENVELOPE_BYTES

CARD_PIECE = 16 * 1024
MAX_CARD_BYTES = MAX_ENVELOPE_BYTES + 4 * 1024 * 1024  # an envelope, or heads.json
ENVELOPE_CARD = "envelope.json"
HEADS_CARD = "heads.json"
CARD_FILE_LIMITS = {ENVELOPE_CARD: MAX_ENVELOPE_BYTES, HEADS_CARD: 4 * 1024 * 1024}
MAX_CARD_ENTRIES = 8  # the file, and pad entries libtorrent may list
MAX_CARD_PEERS = 16
ANNOUNCE_EVERY = 2.0  # s between DHT lookups while nobody serving the card is known


def build_card(root: Path, files: Mapping[str, bytes]) -> tuple[lt.torrent_info, Path]:
    """Write FILES under ROOT/<digest>/card/ and return the card's torrent and the directory
    holding its files (what `Swarm.add` takes: files at their paths without the torrent name)."""
    digest = hashlib.sha256(b"".join(hashlib.sha256(n.encode() + b"\0" + d).digest()
                                     for n, d in sorted(files.items()))).hexdigest()
    save_path = root / digest
    card_dir = save_path / "card"
    if not all((card_dir / n).is_file() and (card_dir / n).read_bytes() == d for n, d in files.items()):
        shutil.rmtree(save_path, ignore_errors=True)
        card_dir.mkdir(parents=True)
        for name, data in files.items():
            (card_dir / name).write_bytes(data)
    ct = lt.create_torrent(lt.list_files(str(card_dir)), CARD_PIECE, lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, str(save_path))
    return lt.torrent_info(lt.bencode(ct.generate())), card_dir


def card_info_hash(ti: lt.torrent_info) -> str:
    return str(ti.info_hashes().v2)


def fetch_card(swarm: Swarm, info_hash: str, dest: Path, names: set[str], *, timeout: float,
               peers: tuple[Endpoint, ...] = ()) -> dict[str, bytes]:
    """The files of the card INFO_HASH (hex v2), fetched from peers into DEST: only files
    named in NAMES, at most MAX_CARD_BYTES in all, within TIMEOUT seconds."""
    atp = lt.add_torrent_params()
    atp.info_hashes = lt.info_hash_t(lt.sha256_hash(bytes.fromhex(info_hash)))
    atp.save_path = str(dest)
    atp.flags &= ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
    where = f"card {info_hash[:16]}"
    if swarm.session.find_torrent(atp.info_hashes.v2).is_valid():
        raise TransferError(f"{where}: this session already has that torrent (it seeds the card itself)",
                            hint="fetch cards in a session of their own")
    handle = swarm.session.add_torrent(atp)
    deadline = time.monotonic() + timeout
    last_lookup = time.monotonic()
    checked = False
    try:
        for peer in peers[:MAX_CARD_PEERS]:
            handle.connect_peer(peer)
        while time.monotonic() < deadline:
            status = handle.status()
            if status.has_metadata and not checked:
                _check_files(handle.torrent_file(), names, where)
                checked = True
            done = status.total_wanted > 0 and status.total_wanted_done == status.total_wanted
            if checked and done and status.is_finished:
                files = _read(dest, handle.torrent_file(), where)
                if files is not None:
                    return files
            if not status.has_metadata and swarm.discovers and time.monotonic() - last_lookup >= ANNOUNCE_EVERY:
                handle.force_dht_announce()  # a lookup: a seeder may have announced since the last one
                last_lookup = time.monotonic()
            swarm.pop_alerts(wait=0.1)
        raise TransferError(
            f"{where}: no peer served it within {timeout:.0f} s",
            hint="nobody seeding this model is reachable: check --dht-node, or give --peer HOST:PORT")
    finally:
        swarm.remove(handle)


def _check_files(ti: lt.torrent_info, names: set[str], where: str) -> None:
    files = ti.layout() if hasattr(ti, "layout") else ti.files()
    if files.num_files() > MAX_CARD_ENTRIES:
        raise OversizeError(f"{where}: expected a card of one file, found {files.num_files():,} entries")
    found = {}
    for i in range(files.num_files()):
        flags = files.file_flags(i)
        if flags & lt.file_storage.flag_pad_file:
            continue
        if flags & lt.file_storage.flag_symlink:
            raise IntegrityError(f"{where}: expected a regular file, found a symlink",
                                 hint="whoever announced this card is not serving a seedvault card")
        found[files.file_path(i).split("/", 1)[-1]] = files.file_size(i)
    unexpected = sorted(set(found) - names)
    if unexpected or not found:
        raise IntegrityError(f"{where}: expected a card holding {listing(sorted(names))}, found "
                             + (listing(unexpected) if unexpected else "no files"),
                             hint="whoever announced this card is not serving a seedvault card")
    for name, size in found.items():
        limit = CARD_FILE_LIMITS.get(name, MAX_CARD_BYTES)
        if size > limit:
            raise OversizeError(f"{where}: {name}: expected at most {limit:,} bytes, found {size:,}")


def _read(dest: Path, ti: lt.torrent_info, where: str) -> dict[str, bytes] | None:
    """The card's files, or None while libtorrent has not written them all out yet."""
    files = ti.layout() if hasattr(ti, "layout") else ti.files()
    out = {}
    for i in range(files.num_files()):
        if files.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        path = files.file_path(i)
        name = path.split("/", 1)[-1]
        try:
            data = (dest / path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransferError(f"{where}: {quote(name)} could not be read after the download ({exc.strerror})") \
                from None
        if len(data) != files.file_size(i):
            return None
        out[name] = data
    return out
