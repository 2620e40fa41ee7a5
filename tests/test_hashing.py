"""SHA-256 and BitTorrent v2 pieces roots, checked against libtorrent itself."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import libtorrent as lt
import numpy as np
import pytest

from seedvault import hashing
from seedvault.errors import IntegrityError
from seedvault.manifest import FileEntry, info_hash_v2

KiB = 1024
PIECE_16K = 16 * KiB
BLOCK = 16 * KiB


def _sizes(piece: int) -> dict[str, int]:
    return {
        "empty": 0,
        "one-byte": 1,
        "one-block": BLOCK,
        "block-plus-one": BLOCK + 1,
        "one-piece": piece,
        "piece-plus-one": piece + 1,
        "several-pieces": 2 * piece + piece // 3 + 7,
    }


def _write(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())


@pytest.fixture(scope="module", params=[16 * KiB, 64 * KiB, 4 * 1024 * KiB], ids=["16KiB", "64KiB", "4MiB"])
def lt_tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A directory of files of edge sizes, and libtorrent's v2 torrent over it."""
    piece: int = request.param
    parent = tmp_path_factory.mktemp(f"lt{piece}")
    top = parent / "acme--edge--1.0"
    top.mkdir()
    sizes = _sizes(piece)
    for i, (name, size) in enumerate(sizes.items()):
        _write(top / name, size, seed=i + piece)
    ct = lt.create_torrent(lt.list_files(str(top)), piece, lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, str(parent))
    info = lt.torrent_info(ct.generate())
    layout = info.layout()
    roots: dict[str, bytes] = {}
    for i in range(layout.num_files()):
        if layout.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        rel = Path(layout.file_path(i)).relative_to(top.name).as_posix()
        roots[rel] = bytes.fromhex(str(layout.root(i)))
    return piece, top, sizes, roots, str(info.info_hashes().v2)


@pytest.mark.parametrize("name", list(_sizes(BLOCK)))
def test_pieces_root_matches_libtorrent(lt_tree, name: str) -> None:
    piece, top, sizes, roots, _ = lt_tree
    digest = hashing.hash_file(top / name, piece)
    assert digest.size == sizes[name]
    assert digest.sha256 == hashlib.sha256((top / name).read_bytes()).hexdigest()
    if sizes[name] == 0:
        assert digest.pieces_root is None  # BEP 52: empty files have no pieces root
        assert roots[name] == bytes(32)
    else:
        assert digest.pieces_root == roots[name].hex()
    # A piece layer exists exactly for files longer than one piece: one hash per piece.
    pieces = -(-sizes[name] // piece)
    assert len(digest.piece_layer) == (32 * pieces if sizes[name] > piece else 0)


def test_info_hash_v2_matches_libtorrent(lt_tree) -> None:
    """The binding a manifest signs is the info-hash libtorrent derives for the same files."""
    piece, top, sizes, _, lt_info_hash = lt_tree
    entries = []
    for name in sorted(sizes):
        d = hashing.hash_file(top / name, piece)
        entries.append(FileEntry(name, d.size, d.sha256, d.pieces_root))
    assert info_hash_v2(top.name, entries, piece) == lt_info_hash


def test_verify_files_and_read_verified_accept_libtorrent_roots(lt_tree) -> None:
    piece, top, sizes, roots, _ = lt_tree
    expected = [
        hashing.Expected(name, size, roots[name].hex() if size else None) for name, size in sizes.items()
    ]
    hashing.verify_files(top, expected, piece)
    for item in expected:
        buf = hashing.read_verified(top / item.path, item, piece)
        assert buf.tobytes() == (top / item.path).read_bytes()


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_verify_files_catches_one_flipped_byte(tmp_path: Path, where: str) -> None:
    piece = 16 * KiB
    size = 21 * piece + 1234  # many pieces: verification splits the file into parallel spans
    path = tmp_path / "big.bin"
    _write(path, size, seed=1)
    good = hashing.hash_file(path, piece)
    expected = hashing.Expected("big.bin", size, good.pieces_root)
    hashing.verify_files(tmp_path, [expected], piece)
    offset = {"first": 0, "middle": size // 2, "last": size - 1}[where]
    _flip(path, offset)
    bad = hashing.hash_file(path, piece).pieces_root
    with pytest.raises(IntegrityError) as info:
        hashing.verify_files(tmp_path, [expected], piece)
    assert info.value.expected == good.pieces_root and info.value.found == bad
    assert good.pieces_root in str(info.value) and bad in str(info.value)
    with pytest.raises(IntegrityError, match=f"expected pieces root {good.pieces_root}, found {bad}"):
        hashing.read_verified(path, expected, piece)


def test_verify_files_reports_size_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100)
    root = hashing.hash_file(tmp_path / "a", BLOCK).pieces_root
    with pytest.raises(IntegrityError, match="expected 101 bytes, found 100"):
        hashing.verify_files(tmp_path, [hashing.Expected("a", 101, root)], BLOCK)
    with pytest.raises(IntegrityError, match="expected 5 bytes, found no file"):
        hashing.verify_files(tmp_path, [hashing.Expected("missing", 5, root)], BLOCK)


def test_verify_files_reports_first_failure_in_manifest_order(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _write(tmp_path / name, 3 * BLOCK, seed=ord(name))
    expected = [
        hashing.Expected(n, 3 * BLOCK, hashing.hash_file(tmp_path / n, BLOCK).pieces_root) for n in "abc"
    ]
    _flip(tmp_path / "c", 10)
    _flip(tmp_path / "b", 10)
    with pytest.raises(IntegrityError) as info:
        hashing.verify_files(tmp_path, expected, BLOCK)
    assert info.value.path == "b"


def test_hash_file_copy_to_writes_the_hashed_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src, 3 * BLOCK + 5, seed=3)
    digest = hashing.hash_file(src, BLOCK, copy_to=tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == src.read_bytes()
    assert digest == hashing.hash_file(tmp_path / "copy", BLOCK)
    with pytest.raises(FileExistsError):  # never overwrites
        hashing.hash_file(src, BLOCK, copy_to=tmp_path / "copy")


def test_hash_files_keeps_input_order_and_counts_progress(tmp_path: Path) -> None:
    sizes = [5 * BLOCK, 1, 0, BLOCK]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"f{i}")
        _write(paths[-1], size, seed=i)
    seen: list[int] = []
    digests = hashing.hash_files(paths, BLOCK, progress=seen.append)
    assert [d.size for d in digests] == sizes
    assert [d.sha256 for d in digests] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert sum(seen) == sum(sizes)


def test_read_verified_refuses_a_file_of_the_wrong_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    _write(path, 1000, seed=0)
    root = hashing.hash_file(path, BLOCK).pieces_root
    with open(path, "ab") as f:
        f.write(b"!")
    with pytest.raises(IntegrityError, match="expected 1000 bytes, found 1001"):
        hashing.read_verified(path, hashing.Expected("f", 1000, root), BLOCK)


def test_read_verified_without_check_only_reads(tmp_path: Path) -> None:
    """Fast mode after a matching record: bytes are returned without hashing them."""
    path = tmp_path / "f"
    _write(path, 1000, seed=0)
    buf = hashing.read_verified(path, hashing.Expected("f", 1000, "00" * 32), BLOCK, check=False)
    assert buf.tobytes() == path.read_bytes()
    with pytest.raises(IntegrityError):
        hashing.read_verified(path, hashing.Expected("f", 1000, "00" * 32), BLOCK)


def test_merkle_root_rejects_a_width_that_is_not_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        hashing.merkle_root([b"\0" * 32] * 3, 3)
    with pytest.raises(ValueError):
        hashing.merkle_root([b"\0" * 32] * 3, 2)
    leaf = hashlib.sha256(b"x").digest()
    assert hashing.merkle_root([leaf], 2) == hashlib.sha256(leaf + bytes(32)).digest()


def test_sha256_file(tmp_path: Path) -> None:
    data = os.urandom(70_000)
    (tmp_path / "f").write_bytes(data)
    assert hashing.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("piece", [16 * KiB, 64 * KiB])
def test_many_small_chunks_give_the_same_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 piece: int) -> None:
    """With a tiny read chunk, the reused buffer ring wraps many times: copy and digests stay exact."""
    src = tmp_path / "src"
    _write(src, 40 * piece + 777, seed=11)
    reference = hashing.hash_file(src, piece)  # default chunk: the whole file in one or two reads
    monkeypatch.setattr(hashing, "READ_CHUNK", 16 * KiB)
    digest = hashing.hash_file(src, piece, copy_to=tmp_path / "copy")
    assert digest == reference
    assert (tmp_path / "copy").read_bytes() == src.read_bytes()
    expected = hashing.Expected("copy", digest.size, digest.pieces_root)
    hashing.verify_files(tmp_path, [expected], piece)
    assert hashing.read_verified(tmp_path / "copy", expected, piece).tobytes() == src.read_bytes()
    _flip(tmp_path / "copy", 30 * piece + 5)
    with pytest.raises(IntegrityError):
        hashing.verify_files(tmp_path, [expected], piece)


def _balanced_shards(tmp_path: Path, count: int = 4, size: int = 300_000) -> list[hashing.Expected]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        p = tmp_path / f"shard{i}.bin"
        p.write_bytes(rng.bytes(size))
        d = hashing.hash_file(p, PIECE_16K)
        out.append(hashing.Expected(p.name, d.size, d.pieces_root, d.sha256))
    return out


def test_whole_file_check_of_similar_shards_refuses_a_flipped_byte(tmp_path: Path) -> None:
    """Shards of similar size are checked whole (SHA-256); a flipped byte is still caught."""
    items = _balanced_shards(tmp_path)
    assert hashing.whole_file_balanced([i.size for i in items], 2)
    assert hashing.verify_files(tmp_path, items, PIECE_16K, need_layers=False, both=False) == {}
    target = tmp_path / items[2].path
    data = bytearray(target.read_bytes())
    data[12345] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"'shard2.bin'.*expected sha256 {items[2].sha256}, found [0-9a-f]{{64}}"):
        hashing.verify_files(tmp_path, items, PIECE_16K, need_layers=False, both=False)
    # The per-piece check, which seeding forces, catches it too.
    with pytest.raises(IntegrityError, match="expected pieces root"):
        hashing.verify_files(tmp_path, items, PIECE_16K)


def test_read_verified_whole_file_refuses_a_flipped_byte(tmp_path: Path) -> None:
    item = _balanced_shards(tmp_path, count=1)[0]
    path = tmp_path / item.path
    assert bytes(hashing.read_verified(path, item, PIECE_16K, whole_file=True)) == path.read_bytes()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"expected sha256 {item.sha256}"):
        hashing.read_verified(path, item, PIECE_16K, whole_file=True)


def test_uneven_or_few_files_use_the_per_piece_check() -> None:
    assert not hashing.whole_file_balanced([100], 2)  # one file: spans across cores instead
    assert not hashing.whole_file_balanced([900, 100], 2)  # one worker would do nearly all
    assert hashing.whole_file_balanced([100, 100, 100, 100], 2)
