"""RFC 6962 / RFC 9162 Merkle trees: hashing, and inclusion and consistency proofs.

Proofs are built from a `NodeReader`, anything that answers the hash of a *full* subtree
(level L, index N: the 2**L leaves from N * 2**L). The node's SQLite store is one; a
client reading a log's tiles over HTTP is another, so the very code that builds a proof on
the node builds it on a client that trusts nothing the node says but its signed roots.
Verification (RFC 9162, sections 2.1.3.2 and 2.1.4.2) needs no reader at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from seedvault.errors import ProofError

HASH_SIZE = 32
MAX_PROOF_HASHES = 128  # a tree of 2**63 leaves needs at most 2 * 63; more is junk


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962: the hash of an empty tree


class NodeReader(Protocol):
    def node(self, level: int, index: int) -> bytes:
        """The hash of the full subtree of 2**level leaves starting at leaf index * 2**level."""
        ...


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(reader: NodeReader, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the tree's recursion produces (start a multiple of
    the largest power of two not above end - start)."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return reader.node(level, start >> level)
    k = _split(n)
    return node_hash(subtree_hash(reader, start, start + k), subtree_hash(reader, start + k, end))


def root_hash(reader: NodeReader, size: int) -> bytes:
    return subtree_hash(reader, 0, size)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 section 2.1.1, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"inclusion proof: index {index} outside a tree of {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:  # walk down, collecting siblings root side first
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree_hash(reader, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(reader, start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(reader: NodeReader, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[0:new]) of RFC 6962 section 2.1.2 (SUBPROOF with b = true)."""
    if not 0 <= old <= new:
        raise ValueError(f"consistency proof: sizes {old} and {new} out of order")
    if old in (0, new):
        return []
    proof: list[bytes] = []
    start, end, whole = 0, new, True
    m = old
    while True:
        n = end - start
        if m == n:
            if not whole:
                proof.append(subtree_hash(reader, start, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(subtree_hash(reader, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(reader, start, start + k))
            start, m, whole = start + k, m - k, False
    proof.reverse()
    return proof


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MAX_PROOF_HASHES or any(len(h) != HASH_SIZE for h in proof):
        raise ProofError(f"{what}: expected at most {MAX_PROOF_HASHES} hashes of {HASH_SIZE} bytes, found "
                         f"{len(proof)} hashes, not all of that size")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or ProofError."""
    _check_hashes(proof, "inclusion proof")
    if not 0 <= index < size:
        raise ProofError(f"inclusion proof: expected an index below the tree size {size}, found {index}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof: expected fewer hashes for index {index} in a tree of {size}, "
                             f"found {len(proof)}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof: expected more hashes for index {index} in a tree of {size}, "
                         f"found {len(proof)}")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    found = root_from_inclusion(leaf, index, size, proof)
    if found != root:
        raise ProofError(f"inclusion proof for entry {index}: expected it to lead to the signed root "
                         f"{root.hex()[:16]}... of a tree of {size}, found {found.hex()[:16]}...")


def verify_consistency(old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """RFC 9162 section 2.1.4.2: the tree of size `new` extends the tree of size `old`."""
    _check_hashes(proof, "consistency proof")
    what = f"consistency proof from {old} to {new} entries"
    if not 0 <= old <= new:
        raise ProofError(f"{what}: expected the old size not above the new one")
    if old == new:
        if proof or old_root != new_root:
            raise ProofError(f"{what}: expected equal roots and no hashes for equal sizes, found otherwise")
        return
    if old == 0:
        if proof:
            raise ProofError(f"{what}: expected no hashes from an empty tree, found {len(proof)}")
        return
    if not proof:
        raise ProofError(f"{what}: expected some hashes, found none")
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"{what}: expected fewer hashes, found {len(proof)}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"{what}: expected more hashes, found {len(proof)}")
    if fr != old_root or sr != new_root:
        raise ProofError(f"{what}: the log's history was rewritten: the proof does not join the old root "
                         f"{old_root.hex()[:16]}... to the new root {new_root.hex()[:16]}...")


class MemoryTree:
    """A tree held in memory (tests, benchmarks, the witness's checks): every full subtree
    kept, level by level."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, entry: bytes) -> int:
        self.append_hash(leaf_hash(entry))
        return self.size - 1

    def append_hash(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            pair = self.levels[level][-2:]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]
