"""C2SP tlog-tiles v0.1.0: where a log's hashes and entries live as static files.

Level-L tiles hold the nodes of Merkle level 8L: tile N of level L is the 256 hashes of
level-8L nodes from N * 256, or its first W (`.p/W`) while the tree does not fill it. A
tile index is written in groups of three digits, all but the last prefixed by `x`
(1234067 -> x001/x234/067). Entry bundles (`tile/entries/N`) hold entries 256N.. as
big-endian uint16 length || bytes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from seedvault.errors import ManifestError
from seedvault.tlog.merkle import HASH_SIZE, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_BYTES = 0xFFFF
MAX_TILE_LEVEL = 8  # 2**64 leaves need tile levels 0..7; level 8 covers the rest of a 64-bit size
_PATH = re.compile(r"(?:x\d{3}/)*\d{3}(?:\.p/(\d{1,3}))?")


def encode_index(n: int) -> str:
    groups = f"{n:d}"
    groups = groups.zfill(-(-len(groups) // 3) * 3)
    parts = [groups[i:i + 3] for i in range(0, len(groups), 3)]
    return "/".join([*("x" + p for p in parts[:-1]), parts[-1]])


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    return f"tile/{level}/{encode_index(index)}" + (f".p/{width}" if width < TILE_WIDTH else "")


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    return f"tile/entries/{encode_index(index)}" + (f".p/{width}" if width < TILE_WIDTH else "")


def parse_index(tail: str) -> tuple[int, int]:
    """(tile index, width) of a path tail such as `x001/x234/067.p/5`; ValueError otherwise."""
    m = _PATH.fullmatch(tail)
    if m is None:
        raise ValueError("not a tile index")
    digits = tail.split(".p/")[0].replace("x", "").replace("/", "")
    if len(digits) > 21:
        raise ValueError("tile index too long")
    width = int(m.group(1)) if m.group(1) else TILE_WIDTH
    if not 1 <= width <= TILE_WIDTH - 1 and m.group(1):
        raise ValueError("partial tile width out of range")
    return int(digits), width


def encode_entries(entries: list[bytes]) -> bytes:
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY_BYTES:
            raise ValueError("entry longer than 65535 bytes")
        out += struct.pack(">H", len(e)) + e
    return bytes(out)


def decode_entries(data: bytes, where: str) -> list[bytes]:
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise ManifestError(f"{where}: expected a length before each entry, found a truncated bundle")
        (n,) = struct.unpack(">H", data[at:at + 2])
        if at + 2 + n > len(data):
            raise ManifestError(f"{where}: expected an entry of {n} bytes, found a truncated bundle")
        entries.append(data[at + 2:at + 2 + n])
        at += 2 + n
    if len(entries) > TILE_WIDTH:
        raise ManifestError(f"{where}: expected at most {TILE_WIDTH} entries in a bundle, found {len(entries)}")
    return entries


def split_hashes(data: bytes, width: int, where: str) -> list[bytes]:
    if len(data) != width * HASH_SIZE:
        raise ManifestError(f"{where}: expected {width} hashes ({width * HASH_SIZE} bytes), found {len(data)} bytes")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TileReader:
    """A NodeReader over a log's tiles, fetched (and bounded) by `fetch(path) -> bytes`, for a
    tree of `size` leaves: nodes of levels between tile levels are hashed from the tile below.
    What the tiles say is never trusted: proofs built from them are checked against roots."""

    def __init__(self, fetch: Callable[[str], bytes], size: int) -> None:
        self.fetch = fetch
        self.size = size
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def _tile(self, tile_level: int, index: int) -> list[bytes]:
        key = (tile_level, index)
        if key not in self._tiles:
            complete = self.size >> (TILE_HEIGHT * tile_level)  # nodes of that level in the tree
            width = min(TILE_WIDTH, complete - index * TILE_WIDTH)
            if width <= 0:
                raise ManifestError(f"tile {tile_level}/{index}: beyond a tree of {self.size}")
            path = tile_path(tile_level, index, width)
            self._tiles[key] = split_hashes(self.fetch(path), width, path)
        return self._tiles[key]

    def node(self, level: int, index: int) -> bytes:
        tile_level, rest = divmod(level, TILE_HEIGHT)
        span = 1 << rest  # nodes of the tile's level under this one
        first = index * span
        tile = self._tile(tile_level, first // TILE_WIDTH)
        hashes = tile[first % TILE_WIDTH: first % TILE_WIDTH + span]
        if len(hashes) != span:
            raise ManifestError(f"tile {tile_level}/{first // TILE_WIDTH}: expected {span} hashes from "
                                f"{first % TILE_WIDTH}, found {len(hashes)}")
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]
