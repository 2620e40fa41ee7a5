"""File hashing: SHA-256 and the BitTorrent v2 pieces root (BEP 52) in one read pass.

The pieces root is the root of a binary SHA-256 merkle tree over 16 KiB blocks of the file,
with zero hashes padding the leaves to a power of two. Leaves are independent, so:

- publishing hashes each file once: the main thread feeds SHA-256 while pool threads hash
  the leaves of the same chunk (hashlib releases the GIL), so even a single file uses two
  cores;
- verifying checks sizes and pieces roots only, split into piece-aligned spans hashed in
  parallel across all cores, also within one large file. The pieces root is a SHA-256
  merkle root pinned by the signature, so it binds the bytes as tightly as the whole-file
  SHA-256 does.

Memory stays bounded: at most a few chunks of `READ_CHUNK` bytes per worker.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seedvault._text import quote
from seedvault.errors import IntegrityError
from seedvault.settings import MERKLE_BLOCK_SIZE, READ_CHUNK, worker_count

_ZERO_LEAF = bytes(32)
_pool_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _shared_pool(name: str) -> ThreadPoolExecutor:
    """Process-wide pools, one per kind of work: threads, because hashlib and file I/O drop
    the GIL. Hashing and writing get separate pools so a write never waits behind hashing."""
    with _pool_lock:
        if name not in _pools:
            _pools[name] = ThreadPoolExecutor(worker_count(), thread_name_prefix=f"seedvault-{name}")
        return _pools[name]


def _leaf_pool() -> ThreadPoolExecutor:
    return _shared_pool("hash")


# ---- only regular files are hashed ----------------------------------------------------


def describe_mode(mode: int) -> str:
    """What a file system entry is, for "expected a regular file, found ..."."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file that is not a regular file" if not stat.S_ISREG(mode) else "a regular file"


def not_regular(rel: str, found: str) -> IntegrityError:
    return IntegrityError(
        f"file {quote(rel)}: expected a regular file, found {found}",
        path=rel, expected="a regular file", found=found,
        hint="only regular files are verified: a link or special file could change what is read after the "
        "check; put the real file there (fetch or import the model again)",
    )


def missing_file(rel: str, size: int) -> IntegrityError:
    return IntegrityError(
        f"file {quote(rel)}: expected {size} bytes, found no file",
        path=rel, expected=str(size), found="no file",
        hint="the copy is incomplete; fetch or import it again",
    )


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def open_regular(path: str | os.PathLike[str], rel: str, size: int = 0) -> int:
    """A file descriptor for reading `path`, which must be a regular file.

    A final symlink is not followed (O_NOFOLLOW) and a FIFO does not block the open
    (O_NONBLOCK, cleared again once fstat shows a regular file): what is checked is the
    very file that is read, and nothing else is ever read."""
    try:
        fd = os.open(path, _OPEN_FLAGS | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise missing_file(rel, size) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise not_regular(rel, "a symlink") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise not_regular(rel, describe_mode(mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: str | os.PathLike[str], rel: str, size: int = 0) -> io.FileIO:
    """`open_regular` as an unbuffered binary file object."""
    return io.FileIO(open_regular(path, rel, size), "rb", closefd=True)


def lstat_regular(path: Path, rel: str, size: int = 0) -> os.stat_result:
    """The stat of `path` (not following a symlink), which must be a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise missing_file(rel, size) from None
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(rel, describe_mode(st.st_mode))
    return st


def _pad_hash(height: int) -> bytes:
    """Root of a subtree of 2**height zero leaves."""
    node = _ZERO_LEAF
    for _ in range(height):
        node = hashlib.sha256(node + node).digest()
    return node


def merkle_root(nodes: Sequence[bytes], width: int, pad: bytes = _ZERO_LEAF) -> bytes:
    """Root over `nodes` padded with `pad` to `width` (a power of two) entries."""
    if width & (width - 1) or width < max(1, len(nodes)):
        raise ValueError(f"merkle width must be a power of two >= {len(nodes)}, got {width}")
    layer = list(nodes)
    while width > 1:
        if len(layer) % 2:
            layer.append(pad)
        sha = hashlib.sha256
        layer = [sha(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        pad = hashlib.sha256(pad + pad).digest()
        width //= 2
    return layer[0] if layer else pad


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _piece_hashes(buf: memoryview, piece_length: int, *, file_size: int | None = None) -> list[bytes]:
    """Subtree roots for each piece in `buf` (which starts on a piece boundary).

    A file shorter than one piece has no piece layer: its root pads the leaves only to the
    next power of two (BEP 52), so pass `file_size` to get that root instead.
    """
    sha = hashlib.sha256
    blocks_per_piece = piece_length // MERKLE_BLOCK_SIZE
    out = []
    for start in range(0, len(buf), piece_length):
        piece = buf[start : start + piece_length]
        leaves = [
            sha(piece[i : i + MERKLE_BLOCK_SIZE]).digest()
            for i in range(0, len(piece), MERKLE_BLOCK_SIZE)
        ]
        short = file_size is not None and file_size < piece_length
        out.append(merkle_root(leaves, _next_pow2(len(leaves)) if short else blocks_per_piece))
    return out


def file_root(pieces: Sequence[bytes], size: int, piece_length: int) -> bytes | None:
    """Pieces root from the piece hashes of a file (for a file within one piece, its only hash)."""
    if size == 0:
        return None
    if size <= piece_length:
        return pieces[0]
    pad = _pad_hash((piece_length // MERKLE_BLOCK_SIZE).bit_length() - 1)
    return merkle_root(pieces, _next_pow2(len(pieces)), pad)


def _read_full(f: io.RawIOBase, view: memoryview) -> int:
    """readinto until the view is full or the file ends (short reads break piece alignment)."""
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            break
        done += n
    return done


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str
    pieces_root: str | None  # None for an empty file (BEP 52 gives it no root)
    piece_layer: bytes  # concatenated piece hashes; empty unless size > piece_length


def _chunk_size(piece_length: int) -> int:
    # Piece-aligned so every chunk's pieces can be hashed independently.
    return max(piece_length, READ_CHUNK // piece_length * piece_length)


_RING = 4  # chunk buffers per file in flight: bounds memory at _RING * READ_CHUNK
_SYNC_EVERY = 8  # chunks between fdatasync calls while copying: writeback overlaps hashing


def _write_chunk(fd: int, view: memoryview, offset: int, sync: bool) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    if sync:
        os.fdatasync(fd)


def hash_file(
    path: str | os.PathLike[str],
    piece_length: int,
    progress: Callable[[int], None] | None = None,
    copy_to: Path | None = None,
) -> FileDigest:
    """SHA-256, pieces root and piece layer of one file, reading it exactly once.

    With `copy_to`, the bytes are also written there (and fsynced): the digest is then of
    exactly the bytes of the copy, whatever happens to the source afterwards. Hashing the
    leaves, the whole-file SHA-256 and writing the copy all run at once on one read.
    """
    fd = os.open(copy_to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644) if copy_to is not None else None
    try:
        digest = _hash_file(path, piece_length, progress, fd)
        if fd is not None:
            os.fsync(fd)
        return digest
    finally:
        if fd is not None:
            os.close(fd)


def _hash_file(
    path: str | os.PathLike[str],
    piece_length: int,
    progress: Callable[[int], None] | None,
    sink: int | None,
) -> FileDigest:
    with open_regular_file(path, str(path)) as f:
        return _hash_stream(f, piece_length, progress, sink)


def _hash_stream(
    f: io.RawIOBase,
    piece_length: int,
    progress: Callable[[int], None] | None,
    sink: int | None,
) -> FileDigest:
    pool = _leaf_pool()
    writer = _shared_pool("write") if sink is not None else None
    sha = hashlib.sha256()
    chunk_size = _chunk_size(piece_length)
    # A ring of reused buffers: no allocation or page faults per chunk. A buffer is reused
    # only once its leaf hashing and its write have finished.
    ring = [np.empty(chunk_size, dtype=np.uint8) for _ in range(_RING)]
    busy: list[list[Future[Any]]] = [[] for _ in range(_RING)]
    hashed: deque[Future[list[bytes]]] = deque()
    pieces: list[bytes] = []
    size = 0
    chunk_no = 0
    while True:
        slot = chunk_no % _RING
        for fut in busy[slot]:
            fut.result()
        while len(hashed) >= _RING:
            pieces.extend(hashed.popleft().result())
        n = _read_full(f, ring[slot].data)
        if not n:
            break
        view = ring[slot].data[:n]
        # A first chunk shorter than a piece is the whole file: BEP 52's short-file root.
        whole = n if size == 0 and n < piece_length else None
        leaf_job = pool.submit(_piece_hashes, view, piece_length, file_size=whole)
        hashed.append(leaf_job)
        busy[slot] = [leaf_job]
        if writer is not None and sink is not None:
            sync = chunk_no % _SYNC_EVERY == _SYNC_EVERY - 1
            busy[slot].append(writer.submit(_write_chunk, sink, view, size, sync))
        sha.update(view)  # runs beside the pool's leaf hashing and the write
        size += n
        chunk_no += 1
        if progress:
            progress(n)
    while hashed:
        pieces.extend(hashed.popleft().result())
    for futures in busy:
        for fut in futures:
            fut.result()
    root = file_root(pieces, size, piece_length)
    layer = b"".join(pieces) if size > piece_length else b""
    return FileDigest(size, sha.hexdigest(), root.hex() if root else None, layer)


def sha256_stream(f: io.RawIOBase) -> FileDigest:
    """The SHA-256 alone of what F yields until it ends (no pieces root, no layer)."""
    sha = hashlib.sha256()
    buf = np.empty(READ_CHUNK, dtype=np.uint8)
    size = 0
    while n := _read_full(f, buf.data):
        sha.update(buf.data[:n])
        size += n
    return FileDigest(size, sha.hexdigest(), None, b"")


def hash_stream(f: io.RawIOBase, piece_length: int) -> FileDigest:
    """SHA-256, pieces root and piece layer of what F yields until it ends (one read)."""
    return _hash_stream(f, piece_length, None, None)


def hash_files(
    paths: Sequence[Path],
    piece_length: int,
    progress: Callable[[int], None] | None = None,
    copy_to: Sequence[Path | None] | None = None,
) -> list[FileDigest]:
    """Hash several files, several at a time; results in input order."""
    targets: Sequence[Path | None] = copy_to if copy_to is not None else [None] * len(paths)
    if len(paths) != len(targets):
        raise ValueError("copy_to must name one target per path")
    jobs = list(zip(paths, targets, strict=True))
    if len(jobs) <= 1:
        return [hash_file(p, piece_length, progress, t) for p, t in jobs]
    with ThreadPoolExecutor(min(len(jobs), worker_count()), thread_name_prefix="seedvault-file") as ex:
        return list(ex.map(lambda job: hash_file(job[0], piece_length, progress, job[1]), jobs))


# ---- verification -------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What a file must be, as the signed manifest says."""

    path: str
    size: int
    pieces_root: str | None
    sha256: str | None = None  # when given, a whole-file check may be used instead of the root


def _span_pieces(path: Path, rel: str, offset: int, length: int, piece_length: int, file_size: int) -> list[bytes]:
    """Piece hashes of one piece-aligned span of a file, read with pread (no shared offset)."""
    out: list[bytes] = []
    chunk_size = _chunk_size(piece_length)
    buf = bytearray(min(chunk_size, length))
    with open_regular_file(path, rel, file_size) as f:
        f.seek(offset)
        done = 0
        while done < length:
            view = memoryview(buf)[: min(chunk_size, length - done)]
            got = _read_full(f, view)
            if got != len(view):
                raise IntegrityError(
                    f"file {quote(rel)}: expected {file_size} bytes, it ended at {offset + done + got}",
                    path=rel,
                )
            out.extend(_piece_hashes(view, piece_length, file_size=file_size))
            done += got
    return out


def _spans(size: int, piece_length: int, parts: int) -> Iterator[tuple[int, int]]:
    pieces = -(-size // piece_length)
    per_span = max(1, -(-pieces // parts))
    for first in range(0, pieces, per_span):
        start = first * piece_length
        yield start, min(size, start + per_span * piece_length) - start


def _check_size(path: Path, expected: Expected) -> None:
    """A regular file (not a link, FIFO or device: an empty one would otherwise pass
    unopened) of the signed size."""
    size = lstat_regular(path, expected.path, expected.size).st_size
    if size != expected.size:
        raise IntegrityError(
            f"file {quote(expected.path)}: expected {expected.size} bytes, found {size}",
            path=expected.path,
            expected=str(expected.size),
            found=str(size),
        )


def root_mismatch(path: str, expected: str | None, found: str | None) -> IntegrityError:
    return IntegrityError(
        f"file {quote(path)}: content does not match the signed manifest; "
        f"expected pieces root {expected}, found {found}",
        path=path,
        expected=expected,
        found=found,
        hint="the bytes were changed or corrupted; do not use this copy",
    )


def whole_file_balanced(sizes: Sequence[int], workers: int) -> bool:
    """Whether hashing whole files, one per worker, keeps every worker about equally busy."""
    total = sum(sizes)
    return len(sizes) >= workers and total > 0 and max(sizes) * workers <= total * 1.25


def verify_files(
    base: Path,
    expected: Iterable[Expected],
    piece_length: int,
    progress: Callable[[int], None] | None = None,
    *,
    need_layers: bool = True,
    both: bool = True,
) -> dict[str, bytes]:
    """Check every file under `base` against the signed manifest, in parallel.

    By default (`both`, what every admission uses) each file is read once and checked
    against both digests the manifest signs, its pieces root and its SHA-256: the swarm
    relies on the first, Hugging Face and OMS consumers on the second, so a manifest whose
    two digests disagree about one content is refused rather than stored. Files are hashed
    several at a time; the verified piece layers (path -> concatenated piece hashes, for
    files larger than a piece) are returned, which seeding needs.

    With `both=False` (re-checking bytes admitted under both digests) one digest is
    enough: each file's pieces root, large files split into spans so that all cores work
    even on one file; or, with `need_layers=False`, several similar-sized files that all
    have a signed SHA-256 are checked whole instead (one hashlib call per chunk).
    Raises IntegrityError for the first file (in manifest order) that differs.
    """
    items = list(expected)
    for item in items:
        _check_size(base / item.path, item)
    if both:
        return _verify_both(base, items, piece_length, progress)
    if (not need_layers and all(i.sha256 for i in items)
            and whole_file_balanced([i.size for i in items], worker_count())):
        _verify_whole_files(base, items, progress)
        return {}
    total = sum(item.size for item in items)
    # Split large files into spans so that even one big file keeps every core busy.
    target = max(piece_length, total // (worker_count() * 4))
    pool = _leaf_pool()
    jobs: list[tuple[Expected, list[Future[list[bytes]]]]] = []
    for item in items:
        parts = max(1, item.size // target)
        futures = [
            pool.submit(_span_pieces, base / item.path, item.path, off, length, piece_length, item.size)
            for off, length in _spans(item.size, piece_length, parts)
        ]
        jobs.append((item, futures))
    failure: IntegrityError | None = None
    layers: dict[str, bytes] = {}
    for item, futures in jobs:
        try:
            pieces = [h for fut in futures for h in fut.result()]
        except IntegrityError as exc:
            failure = failure or exc
            continue
        if progress:
            progress(item.size)
        root = file_root(pieces, item.size, piece_length)
        found = root.hex() if root else None
        if failure is None and found != item.pieces_root:
            failure = root_mismatch(item.path, item.pieces_root, found)
        if item.size > piece_length:
            layers[item.path] = b"".join(pieces)
    if failure:
        raise failure
    return layers


def digest_mismatch(item: Expected, found: FileDigest) -> IntegrityError | None:
    """None when `found` agrees with every digest the manifest signs for `item`; otherwise
    the refusal, naming which digest disagreed (and whether the other one matched)."""
    if found.size != item.size:
        return IntegrityError(f"file {quote(item.path)}: expected {item.size} bytes, it changed size while read "
                              f"({found.size} bytes read)", path=item.path, expected=str(item.size),
                              found=str(found.size))
    root_ok = found.pieces_root == item.pieces_root
    sha_ok = item.sha256 is None or found.sha256 == item.sha256
    if root_ok and sha_ok:
        return None
    if root_ok:  # the bytes are the ones the swarm binds, but not the ones the SHA-256 names
        return IntegrityError(
            f"file {quote(item.path)}: its pieces root matches the signed manifest but its SHA-256 does not; "
            f"expected sha256 {item.sha256}, found {found.sha256}",
            path=item.path, expected=item.sha256, found=found.sha256,
            hint="the manifest pins two digests that no single content has (a broken or forged manifest); "
            "Hugging Face and OMS consumers check the SHA-256, so the release is refused",
        )
    if item.sha256 is not None and found.sha256 == item.sha256:
        return IntegrityError(
            f"file {quote(item.path)}: its SHA-256 matches the signed manifest but its pieces root does not; "
            f"expected pieces root {item.pieces_root}, found {found.pieces_root}",
            path=item.path, expected=item.pieces_root, found=found.pieces_root,
            hint="the manifest pins two digests that no single content has (a broken or forged manifest); "
            "peers check the pieces root, so the release is refused",
        )
    return root_mismatch(item.path, item.pieces_root, found.pieces_root)


def _verify_both(
    base: Path, items: Sequence[Expected], piece_length: int, progress: Callable[[int], None] | None
) -> dict[str, bytes]:
    """Both digests of every file from one read each, several files at a time."""

    def one(item: Expected) -> FileDigest | IntegrityError:
        try:
            with open_regular_file(base / item.path, item.path, item.size) as f:
                return _hash_stream(f, piece_length, progress, None)
        except IntegrityError as exc:
            return exc

    if len(items) <= 1:
        found = [one(i) for i in items]
    else:
        with ThreadPoolExecutor(min(len(items), worker_count()), thread_name_prefix="seedvault-verify") as ex:
            found = list(ex.map(one, items))
    layers: dict[str, bytes] = {}
    for item, digest in zip(items, found, strict=True):
        if isinstance(digest, IntegrityError):
            raise digest
        failure = digest_mismatch(item, digest)
        if failure is not None:
            raise failure
        if digest.piece_layer:
            layers[item.path] = digest.piece_layer
    return layers


def _whole_file_sha256(path: Path, rel: str, size: int) -> str:
    sha = hashlib.sha256()
    with open_regular_file(path, rel, size) as f:
        buf = bytearray(min(READ_CHUNK, max(size, 1)))
        view = memoryview(buf)
        done = 0
        while n := f.readinto(view):
            sha.update(view[:n])
            done += n
    if done != size:
        raise IntegrityError(f"file {quote(rel)}: expected {size} bytes, it changed size while read", path=rel)
    return sha.hexdigest()


def sha_mismatch(path: str, expected: str | None, found: str) -> IntegrityError:
    return IntegrityError(
        f"file {quote(path)}: content does not match the signed manifest; expected sha256 {expected}, found {found}",
        path=path,
        expected=expected,
        found=found,
        hint="the bytes were changed or corrupted; do not use this copy",
    )


def _verify_whole_files(base: Path, items: Sequence[Expected], progress: Callable[[int], None] | None) -> None:
    pool = _leaf_pool()
    # Largest first, so the last job to start is a short one.
    order = sorted(items, key=lambda i: -i.size)
    futures = {i.path: pool.submit(_whole_file_sha256, base / i.path, i.path, i.size) for i in order}
    failure: IntegrityError | None = None
    for item in items:
        try:
            found = futures[item.path].result()
        except IntegrityError as exc:
            failure = failure or exc
            continue
        if progress:
            progress(item.size)
        if failure is None and found != item.sha256:
            failure = sha_mismatch(item.path, item.sha256, found)
    if failure:
        raise failure


def read_verified(
    path: Path, expected: Expected, piece_length: int, *, check: bool = True, whole_file: bool = False
) -> np.ndarray:
    """Read a whole file into memory and verify exactly those bytes.

    The buffer is hashed, not the file, so nothing can change between check and use.
    Reading and hashing overlap: each chunk is hashed by the pool while the next is read.
    With `whole_file` (the caller reads several files at once, one per core) the chunks
    are hashed whole-file SHA-256 in this thread instead, against `expected.sha256`.
    `check=False` only reads (fast mode, after the caller matched a verification record).
    """
    whole_file = whole_file and check and expected.sha256 is not None
    sha = hashlib.sha256()
    _check_size(path, expected)
    # Uninitialized memory: zero-filling a large bytearray first costs as much as reading.
    buf = np.empty(expected.size, dtype=np.uint8)
    view = buf.data
    pool = _leaf_pool()
    chunk_size = _chunk_size(piece_length)
    futures: list[Future[list[bytes]]] = []
    with open_regular_file(path, expected.path, expected.size) as f:
        done = 0
        while done < expected.size:
            n = _read_full(f, view[done : done + chunk_size])
            if not n:
                break
            chunk = view[done : done + n]
            if whole_file:
                sha.update(chunk)
            elif check:
                futures.append(pool.submit(_piece_hashes, chunk, piece_length, file_size=expected.size))
            done += n
        if done != expected.size or f.read(1):
            raise IntegrityError(
                f"file {quote(expected.path)}: expected {expected.size} bytes, it changed size while read",
                path=expected.path,
            )
    if not check:
        return buf
    if whole_file:
        if sha.hexdigest() != expected.sha256:
            raise sha_mismatch(expected.path, expected.sha256, sha.hexdigest())
        return buf
    root = file_root([h for fut in futures for h in fut.result()], expected.size, piece_length)
    found = root.hex() if root else None
    if found != expected.pieces_root:
        raise root_mismatch(expected.path, expected.pieces_root, found)
    return buf


def sha256_file(path: str | os.PathLike[str], rel: str | None = None) -> str:
    """Whole-file SHA-256 of a regular file (a link or special file is refused)."""
    with open_regular_file(path, rel or str(path)) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
