"""The C2SP parts of seedvault.tlog against the specs' examples, RFC 6962's definitions,
and an independent implementation (sigstore's inclusion-proof verifier)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigstore._internal import merkle as sigstore_merkle

from seedvault.errors import Error, ManifestError, ProofError, SignatureError, UsageError
from seedvault.tlog.checkpoint import Checkpoint, open_checkpoint
from seedvault.tlog.entry import LogEntry
from seedvault.tlog.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from seedvault.tlog.note import COSIGNATURE_V1, ED25519, Note, Signer, Verifier, verified_by
from seedvault.tlog.proof import TlogProof
from seedvault.tlog.tiles import decode_entries, encode_entries, encode_index, entries_path, parse_index, tile_path

# ---- RFC 6962 as the RFC writes it (recursion over the leaves), to check the product against


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def rfc_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*rfc_subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*rfc_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def sigstore_root(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """sigstore-python's independent chain (its private helpers, as its verifier uses them)."""
    inner, border = sigstore_merkle._decomp_inclusion_proof(index, size)
    assert len(proof) == inner + border
    seed = sigstore_merkle._chain_inner(leaf, proof[:inner], index)
    return sigstore_merkle._chain_border_right(seed, proof[inner:])


def tree_of(n: int) -> tuple[MemoryTree, list[bytes]]:
    leaves = [f"entry {i}".encode() for i in range(n)]
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree, leaves


# The RFC 6962 reference roots (certificate-transparency's test data, leaves below).
RFC_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f")]
RFC_ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]


def test_roots_match_rfc6962_reference_vectors() -> None:
    tree = MemoryTree()
    for n, leaf in enumerate(RFC_LEAVES, 1):
        tree.append(leaf)
        assert root_hash(tree, n).hex() == RFC_ROOTS[n - 1]


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_inclusion_proofs_match_rfc_and_sigstore(size: int, data: st.DataObject) -> None:
    tree, leaves = tree_of(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(tree, index, size)
    assert proof == rfc_path(index, leaves)
    root = mth(leaves)
    assert root_hash(tree, size) == root
    verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
    assert sigstore_root(leaf_hash(leaves[index]), index, size, proof) == root


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_consistency_proofs_match_rfc(new: int, data: st.DataObject) -> None:
    tree, leaves = tree_of(new)
    old = data.draw(st.integers(min_value=1, max_value=new))
    proof = consistency_proof(tree, old, new)
    assert proof == (rfc_subproof(old, leaves, True) if old < new else [])
    verify_consistency(old, new, proof, mth(leaves[:old]), mth(leaves))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=200), st.data())
def test_a_rewritten_history_fails_consistency(new: int, data: st.DataObject) -> None:
    """A log that changes any entry below the old size cannot prove the new tree extends the old."""
    _tree, leaves = tree_of(new)
    old = data.draw(st.integers(min_value=1, max_value=new - 1))
    changed = data.draw(st.integers(min_value=0, max_value=old - 1))
    forked_leaves = list(leaves)
    forked_leaves[changed] = b"rewritten"
    forked = MemoryTree()
    for leaf in forked_leaves:
        forked.append(leaf)
    with pytest.raises(ProofError):
        verify_consistency(old, new, consistency_proof(forked, old, new), mth(leaves[:old]), mth(forked_leaves))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.data())
def test_a_changed_proof_hash_or_index_fails(size: int, data: st.DataObject) -> None:
    tree, leaves = tree_of(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(tree, index, size)
    root = mth(leaves)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"another entry"), index, size, proof, root)
    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bad = list(proof)
        bad[at] = bytes(32)
        with pytest.raises(ProofError):
            verify_inclusion(leaf_hash(leaves[index]), index, size, bad, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf_hash(leaves[index]), index, size, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(leaves[index]), index, size, [*proof, bytes(32)], root)


# ---- signed notes: the Go reference example (golang.org/x/mod/sumdb/note) and the C2SP text

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
SIGNED = (TEXT + "\n\u2014 PeterNeumann "
          "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_signed_note_matches_the_reference_example_byte_for_byte() -> None:
    signer = Signer.from_skey(SKEY)
    assert signer.verifier.vkey == VKEY
    assert Note(TEXT, (signer.sign(TEXT),)).to_bytes() == SIGNED.encode()
    assert verified_by(Note.parse(SIGNED.encode(), "note"), [Verifier.from_vkey(VKEY)]) == {VKEY: None}


def test_a_changed_note_is_refused_and_unknown_signers_are_ignored() -> None:
    verifier = Verifier.from_vkey(VKEY)
    with pytest.raises(SignatureError):
        verified_by(Note.parse(SIGNED.replace("cryptography", "cryptographY").encode(), "note"), [verifier])
    other = Signer.generate("someone.example/else", ED25519)
    note = Note.parse(SIGNED.encode(), "note").with_signatures((other.sign(TEXT),))
    assert verified_by(note, [verifier]) == {VKEY: None}  # an unknown key's line: ignored
    assert verified_by(note, []) == {}


@pytest.mark.parametrize("bad", [VKEY.replace("c74f20a3", "c74f20a4"), VKEY[:-4], "PeterNeumann+c74f20a3",
                                 "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", ""])
def test_mangled_verifier_keys_are_refused_in_words(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        Verifier.from_vkey(bad)
    assert "expected" in str(caught.value)


@pytest.mark.parametrize("raw", [b"no blank line\n", b"text\n\n", b"text\n\nnot a signature\n", b"\xff\xfe\n\n",
                                 b"text\n\n\xe2\x80\x94 name !!!\n", b"ctl\x01\n\n\xe2\x80\x94 n AAAAAAA=\n",
                                 b"x" * 300_000])
def test_malformed_notes_are_refused_as_seedvault_errors(raw: bytes) -> None:
    with pytest.raises(Error) as caught:
        Note.parse(raw, "checkpoint")
    assert "checkpoint" in str(caught.value) and "Traceback" not in str(caught.value)


def test_cosignature_follows_tlog_cosignature_v1() -> None:
    """The signed message is cosignature/v1, the time line and the checkpoint; the line
    carries key id || u64 time || signature; the key id uses type 0x04."""
    witness = Signer.generate("witness.example.com/w1", COSIGNATURE_V1)
    cp = Checkpoint("example.com/behind-the-sofa", 20852163,
                    base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
    sig = witness.sign(cp.text, 1679315147)
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    public = witness.verifier.public
    assert sig.key_id == hashlib.sha256(b"witness.example.com/w1\n\x04" + public).digest()[:4]
    message = b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n" \
              b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    witness.key.public_key().verify(sig.signature[8:], message)  # raises if not
    assert witness.verifier.check(cp.text, sig) == 1679315147
    log = Signer.generate("example.com/behind-the-sofa", ED25519)
    raw = cp.sign(log).with_signatures((sig,)).to_bytes()
    opened = open_checkpoint(raw, log.verifier, [witness.verifier], "checkpoint")
    assert opened.cosigned == {witness.verifier.vkey: 1679315147}
    with pytest.raises(SignatureError):  # a checkpoint of another origin under this key
        open_checkpoint(Checkpoint("example.com/other", 1, bytes(32)).sign(log).to_bytes(), log.verifier, [], "cp")


def test_tile_paths_follow_tlog_tiles() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000" and encode_index(1000) == "x001/000"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 3, 5) == "tile/1/003.p/5"
    assert entries_path(1234067, 5) == "tile/entries/x001/x234/067.p/5"
    assert parse_index("x001/x234/067.p/5") == (1234067, 5)
    assert parse_index("067") == (67, 256)
    for bad in ("67", "x1/067", "067.p/0", "067.p/256", "../067", "x001/x234/067/"):
        with pytest.raises(ValueError):
            parse_index(bad)
    entries = [b"a", b"", b"x" * 300]
    assert decode_entries(encode_entries(entries), "bundle") == entries
    with pytest.raises(ManifestError):
        decode_entries(encode_entries(entries)[:-1], "bundle")


def test_tlog_proof_round_trips_and_refuses_junk() -> None:
    cp = Checkpoint("example.com/log", 3, bytes(32)).sign(Signer.generate("example.com/log", ED25519)).to_bytes()
    proof = TlogProof(2, (bytes(32), b"\x01" * 32), cp, b"entry bytes")
    raw = proof.to_bytes()
    assert raw.startswith(b"c2sp.org/tlog-proof@v1\nextra ZW50cnkgYnl0ZXM=\nindex 2\n")
    assert TlogProof.parse(raw, "proof") == proof
    for junk in (b"", b"c2sp.org/tlog-proof@v1\nindex x\n\n" + cp, raw.replace(b"index 2", b"index -2"),
                 b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\n" + cp):
        with pytest.raises(ManifestError):
            TlogProof.parse(junk, "proof")


def test_log_entries_round_trip_and_refuse_junk() -> None:
    entry = LogEntry("release", "acme/tiny", "1.0", "a" * 64, "b" * 64, ("c" * 64, "d" * 64), 1700000000)
    assert LogEntry.parse(entry.to_bytes(), "entry") == entry
    for junk in (b"", entry.to_bytes().replace(b"kind release", b"kind other"),
                 entry.to_bytes().replace(b"time 1700000000", b"time soon"), entry.to_bytes() + b"extra line\n"):
        with pytest.raises(ManifestError):
            LogEntry.parse(junk, "entry")
