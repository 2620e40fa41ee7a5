"""C2SP tlog-proof v1: an offline proof that an entry is in a log, `.tlog-proof` files.

    c2sp.org/tlog-proof@v1
    extra <base64>          here: the logged entry itself, so a verifier can hash the leaf
    index <N>
    <inclusion path, one base64 hash a line>

    <the checkpoint, a signed note with its cosignatures>
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from seedvault.errors import ManifestError, OversizeError
from seedvault.tlog.merkle import HASH_SIZE, MAX_PROOF_HASHES
from seedvault.tlog.note import MAX_NOTE_BYTES

HEADER = "c2sp.org/tlog-proof@v1"
SUFFIX = ".tlog-proof"
MAX_PROOF_BYTES = MAX_NOTE_BYTES + 200_000


@dataclass(frozen=True)
class TlogProof:
    index: int
    path: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, as the log (and its witnesses) signed it
    extra: bytes = b""

    def to_bytes(self) -> bytes:
        lines = [HEADER]
        if self.extra:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.path]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint

    @classmethod
    def parse(cls, raw: bytes, where: str) -> TlogProof:
        if len(raw) > MAX_PROOF_BYTES:
            raise OversizeError(f"{where}: expected a .tlog-proof of at most {MAX_PROOF_BYTES:,} bytes, "
                                f"found {len(raw):,}")
        head, sep, checkpoint = raw.partition(b"\n\n")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            lines = []
        if not sep or not lines or lines[0] != HEADER:
            raise ManifestError(f"{where}: expected a proof starting {HEADER!s}, then a blank line and a "
                                "checkpoint, found something else",
                                hint="a .tlog-proof comes from a registry node's publish answer or a bundle")
        rest = lines[1:]
        extra = b""
        try:
            if rest and rest[0].startswith("extra "):
                extra = base64.b64decode(rest.pop(0)[6:], validate=True)
            if not rest or not rest[0].startswith("index ") or not rest[0][6:].isdigit() or len(rest[0]) > 26:
                raise ValueError("index")
            index = int(rest.pop(0)[6:])
            path = tuple(base64.b64decode(h, validate=True) for h in rest)
        except (ValueError, binascii.Error):
            raise ManifestError(f"{where}: expected 'extra <base64>', 'index <N>' and base64 hashes, "
                                "found malformed lines") from None
        if len(path) > MAX_PROOF_HASHES or any(len(h) != HASH_SIZE for h in path):
            raise ManifestError(f"{where}: expected at most {MAX_PROOF_HASHES} hashes of {HASH_SIZE} bytes, "
                                "found others")
        return cls(index, path, checkpoint, extra)
