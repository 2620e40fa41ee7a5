"""BitTorrent v2 torrents derived from manifests, and the checks that bind them.

Every node rebuilds the same torrent from the signed manifest alone: the info dictionary
is a function of the files' paths, sizes and pieces roots, the torrent name and the piece
length, so its SHA-256 is the v2 info-hash the manifest pins. Piece layers (the hashes
one level above the pieces) are added when the caller has verified them; a downloader
without them fetches them from peers, and libtorrent checks them against the roots.

Only v2 torrents are offered: a v1 or hybrid torrent would need SHA-1 piece hashes (a
second full read of every file at publish, and a hash the signature cannot bind as
strongly), and every libtorrent 2.x client speaks v2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import libtorrent as lt

from seedvault._bencode import bencode
from seedvault._text import quote as quoted
from seedvault.errors import IntegrityError, TransferError, UsageError
from seedvault.hashing import file_root
from seedvault.manifest import Manifest


def torrent_bytes(
    manifest: Manifest,
    piece_layers: Mapping[str, bytes] | None = None,
    *,
    web_seeds: Iterable[str] = (),
    trackers: Iterable[str] = (),
) -> bytes:
    """The .torrent file: the derived info dict, optional piece layers (by path), URLs."""
    torrent: dict[str, Any] = {"info": manifest.v2_info_dict()}
    if piece_layers:
        layers = {}
        for f in manifest.files:
            layer = piece_layers.get(f.path)
            if layer is not None and f.pieces_root is not None:
                layers[bytes.fromhex(f.pieces_root)] = layer
        if layers:
            torrent["piece layers"] = layers
    seeds = list(web_seeds)
    if seeds:
        torrent["url-list"] = seeds
    tracker_list = list(trackers)
    if tracker_list:
        torrent["announce"] = tracker_list[0]
        torrent["announce-list"] = [[t] for t in tracker_list]
    return bencode(torrent)


def checked_layers(manifest: Manifest, layers: Mapping[str, bytes]) -> dict[str, bytes]:
    """Keep only piece layers that hash up to the signed pieces root of their file."""
    good = {}
    for f in manifest.files:
        layer = layers.get(f.path)
        if not layer or f.pieces_root is None or len(layer) % 32 or f.size <= manifest.torrent.piece_length:
            continue
        pieces = [layer[i : i + 32] for i in range(0, len(layer), 32)]
        root = file_root(pieces, f.size, manifest.torrent.piece_length)
        if root is not None and root.hex() == f.pieces_root:
            good[f.path] = layer
    return good


def load_torrent(data: bytes, source: str = "torrent") -> lt.torrent_info:
    try:
        return lt.torrent_info(data)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise TransferError(f"{source}: expected a BitTorrent v2 .torrent, found unreadable data ({exc})") from None


def _strip_name(path: str, name: str) -> str:
    return path[len(name) + 1 :] if path.startswith(name + "/") else path


def file_map(ti: lt.torrent_info) -> dict[str, int]:
    """Manifest path -> libtorrent file index, skipping the virtual pad files."""
    fs = ti.layout()
    name = ti.name()
    out = {}
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        # Multi-file torrents prefix paths with the torrent name; single-file ones do not.
        out[_strip_name(fs.file_path(i), name)] = i
    return out


def check_binding(ti: lt.torrent_info, manifest: Manifest, source: str = "torrent") -> None:
    """Refuse a torrent that does not describe exactly the manifest's files."""
    info_hash = str(ti.info_hashes().v2)
    if info_hash != manifest.torrent.info_hash_v2:
        raise IntegrityError(
            f"{source}: expected v2 info-hash {manifest.torrent.info_hash_v2} (signed in the manifest of "
            f"{manifest.ref}), found {info_hash}",
            expected=manifest.torrent.info_hash_v2,
            found=info_hash,
            hint="the torrent does not belong to this manifest; do not use its source",
        )
    fs = ti.layout()
    files = file_map(ti)
    if set(files) != {f.path for f in manifest.files}:
        raise IntegrityError(
            f"{source}: expected the files {sorted(f.path for f in manifest.files)}, found {sorted(files)}"
        )
    for f in manifest.files:
        i = files[f.path]
        root = str(fs.root(i)) if f.size else None
        if fs.file_size(i) != f.size or (f.pieces_root is not None and root != f.pieces_root):
            raise IntegrityError(
                f"{source}: file {quoted(f.path)}: expected {f.size} bytes with pieces root {f.pieces_root}, "
                f"found {fs.file_size(i)} bytes with root {root}",
                path=f.path,
                expected=f.pieces_root,
                found=root,
            )


def bound_torrent(manifest: Manifest, piece_layers: Mapping[str, bytes] | None = None) -> lt.torrent_info:
    """The manifest's torrent as libtorrent sees it, after checking libtorrent agrees."""
    ti = load_torrent(torrent_bytes(manifest, piece_layers), f"torrent of {manifest.ref}")
    check_binding(ti, manifest, f"torrent of {manifest.ref}")
    return ti


def magnet_link(manifest: Manifest, *, peers: Iterable[str] = (), web_seeds: Iterable[str] = (),
                envelope_card: str | None = None) -> str:
    """A v2 magnet link (BEP 9 with a multihash `btmh` topic); with ENVELOPE_CARD, also the
    info-hash of the release's envelope card (`x.envelope`), so the link alone is enough to
    fetch the signed envelope first, judge it, and only then the model."""
    parts = [f"xt=urn:btmh:1220{manifest.torrent.info_hash_v2}", f"dn={quote(manifest.torrent_name)}"]
    if envelope_card:
        parts.append(f"x.envelope=urn:btmh:1220{envelope_card}")
    parts += [f"x.pe={quote(p)}" for p in peers]
    parts += [f"ws={quote(w, safe='')}" for w in web_seeds]
    return "magnet:?" + "&".join(parts)


MAX_MAGNET_CHARS = 8192
MAX_MAGNET_SOURCES = 16
_BTMH = "urn:btmh:1220"


@dataclass(frozen=True)
class Magnet:
    info_hash_v2: str  # the model's torrent
    envelope_card: str | None
    peers: tuple[str, ...]
    web_seeds: tuple[str, ...]


def parse_magnet(text: str) -> Magnet:
    """A magnet link as `magnet_link` writes it (other parameters are ignored)."""
    from urllib.parse import parse_qs, urlsplit

    if len(text) > MAX_MAGNET_CHARS:
        raise UsageError(f"magnet link: expected at most {MAX_MAGNET_CHARS} characters, found {len(text):,}")
    parts = urlsplit(text)
    if parts.scheme != "magnet":
        raise UsageError(f"expected a magnet link (magnet:?xt=urn:btmh:...), found {quoted(text[:80])}")
    query = parse_qs(parts.query)

    def btmh(values: list[str], what: str) -> str:
        good = [v[len(_BTMH):].lower() for v in values if v.lower().startswith(_BTMH) and len(v) == len(_BTMH) + 64]
        if len(good) != 1 or not all(c in "0123456789abcdef" for c in good[0]):
            raise UsageError(f"magnet link: expected one {what} {_BTMH}<64 hex> (a BitTorrent v2 info-hash), "
                             f"found {len(good)}", hint="seedvault torrent REF prints such a link")
        return good[0]

    info_hash = btmh(query.get("xt", []), "xt=")
    card = btmh(query["x.envelope"], "x.envelope=") if "x.envelope" in query else None
    peers, seeds = query.get("x.pe", []), query.get("ws", [])
    if len(peers) > MAX_MAGNET_SOURCES or len(seeds) > MAX_MAGNET_SOURCES:
        raise UsageError(f"magnet link: expected at most {MAX_MAGNET_SOURCES} peers (x.pe) and web seeds (ws), "
                         f"found {len(peers)} and {len(seeds)}")
    return Magnet(info_hash, card, tuple(peers), tuple(seeds))
