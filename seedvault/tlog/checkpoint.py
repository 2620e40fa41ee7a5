"""C2SP tlog-checkpoint v1.0.0: the body of a log's signed note.

    <origin>
    <tree size, decimal>
    <root hash, base64>
    [extension lines]
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from seedvault._text import quote
from seedvault.errors import ManifestError, SignatureError
from seedvault.tlog.merkle import HASH_SIZE
from seedvault.tlog.note import ED25519, Note, NoteSignature, Signer, Verifier, verified_by

MAX_TREE_SIZE = 2**63 - 1
MAX_EXTENSIONS = 16


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    def sign(self, signer: Signer) -> Note:
        return Note(self.text, (signer.sign(self.text),))

    @classmethod
    def parse(cls, text: str, where: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or len(lines) > 4 + MAX_EXTENSIONS:
            raise ManifestError(f"{where}: expected a checkpoint (origin, size, root hash lines), found "
                                f"{len(lines) - 1} lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin:
            raise ManifestError(f"{where}: expected the log's origin on the first line, found an empty line")
        if not size.isdigit() or not size.isascii() or (size != "0" and size.startswith("0")) or len(size) > 19 \
                or int(size) > MAX_TREE_SIZE:
            raise ManifestError(f"{where}: expected a tree size in decimal on line 2, found {quote(size[:40])}")
        try:
            digest = base64.b64decode(root, validate=True)
        except ValueError:
            digest = b""
        if len(digest) != HASH_SIZE:
            raise ManifestError(f"{where}: expected a 32-byte root hash in base64 on line 3, found {quote(root[:60])}")
        extensions = tuple(lines[3:-1])
        if any(not e for e in extensions):
            raise ManifestError(f"{where}: expected no empty extension line in the checkpoint, found one")
        return cls(origin, int(size), digest, extensions)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose note verified under a log key (the key's name is the origin)."""

    checkpoint: Checkpoint
    note: Note
    cosigned: dict[str, int]  # vkey of each witness whose cosignature verified -> its time

    def witnessed_by(self, witnesses: list[Verifier]) -> dict[str, int]:
        return {v: t for v, t in self.cosigned.items() if v in {w.vkey for w in witnesses}}


def open_checkpoint(raw: bytes, log: Verifier, witnesses: list[Verifier], where: str) -> SignedCheckpoint:
    """Parse a signed checkpoint and check it: signed by the log key, its origin that key's
    name; cosignatures by known witnesses checked (a bad one refuses the note), others ignored."""
    note = Note.parse(raw, where)
    checkpoint = Checkpoint.parse(note.text, where)
    if log.kind != ED25519:
        raise SignatureError(f"{where}: {log.name} is a witness key, not a log key")
    if checkpoint.origin != log.name:
        raise SignatureError(f"{where}: expected a checkpoint of the log {quote(log.name)}, found one of "
                             f"{quote(checkpoint.origin[:100])}")
    found = verified_by(note, [log, *[w for w in witnesses if w.kind != ED25519]])
    if log.vkey not in found:
        raise SignatureError(f"{where}: expected a signature by the log key {log.name}+{log.key_id.hex()}, "
                             "found none", hint="the checkpoint comes from another log, or its key changed")
    cosigned = {v: t for v, t in found.items() if v != log.vkey and t is not None}
    return SignedCheckpoint(checkpoint, note, cosigned)


def cosignature_lines(sigs: tuple[NoteSignature, ...]) -> str:
    return "".join(s.line() for s in sigs)
