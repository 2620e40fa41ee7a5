"""Hashing behind a download: each file's digests computed while its bytes arrive.

A pull used to wait for the last byte and then read the whole model again to check both
digests the manifest signs. Here one thread follows the download instead: it reads each
file's completed prefix as libtorrent finishes its pieces (from the page cache, just
written) and feeds the very same hashing code that admission uses (SHA-256 and the BEP 52
pieces root with its piece layer, leaves on the other core). When the last piece lands,
only its tail is left to hash, so admission follows within a fraction of a second.

Nothing here decides trust: admission compares these digests with the signed ones, and
re-reads any file that changed on disk after it was hashed (see `Prehashed.still_current`).
Every byte is hashed by us, including pieces that came from resume data or a recheck.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seedvault import hashing
from seedvault.errors import Error

POLL = 0.02  # seconds between looks at the download's progress while waiting for bytes
STALLED = 1.0  # seconds without a hashed byte, after the download, before admission takes over


class _Stopped(Exception):
    """The download ended or failed before this file was complete."""


class GrowingFile(io.RawIOBase):
    """A file another writer is filling: reads never go past `ready()` bytes (the complete
    prefix), and wait for more until the file's full size is there or `stop` is set."""

    def __init__(self, path: Path, size: int, ready: Callable[[], int], stop: threading.Event) -> None:
        super().__init__()
        self.path, self.size, self.ready, self.stop = path, size, ready, stop
        self.pos = 0
        self._fd: int | None = None

    def readable(self) -> bool:
        return True

    def wait_for_bytes(self) -> None:
        """Until the first bytes past `pos` are there (or the file is empty)."""
        while self.pos < self.size and min(self.size, self.ready()) <= self.pos:
            if self.stop.wait(POLL):
                raise _Stopped

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # RawIOBase's buffer type
        view = memoryview(buffer).cast("B")
        if self.pos >= self.size or not len(view):
            return 0
        if self.stop.is_set():  # stopped mid-file: the bytes on disk are admission's to read now
            raise _Stopped
        self.wait_for_bytes()
        limit = min(self.size, self.ready())
        if self._fd is None:
            self._fd = hashing.open_regular(self.path, self.path.name, self.size)
        n = os.preadv(self._fd, [view[: limit - self.pos]], self.pos)
        if n <= 0:  # shorter than libtorrent says it wrote: admission reads it again
            raise _Stopped
        self.pos += n
        return n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()


@dataclass(frozen=True)
class Prehashed:
    """A file's digests as hashed behind the download, and the file as it was then.

    With `root_by_swarm`, only the SHA-256 was computed here: libtorrent hashed every piece
    against the signed pieces root as it arrived, and admission accepts that only for a
    file all of whose pieces it checked in this run (none from resume data)."""

    digest: hashing.FileDigest
    stat: os.stat_result
    root_by_swarm: bool = False

    def still_current(self, path: Path) -> bool:
        """Whether PATH is the same file, unchanged since it was hashed."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        fields = ("st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
        return all(getattr(st, k) == getattr(self.stat, k) for k in fields)


@dataclass(frozen=True)
class GrowingEntry:
    path: str  # relative to the staging directory
    size: int
    ready: Callable[[], int]  # bytes of its complete prefix so far
    # Asked once its first bytes are there: whether some of them came from resume data, so
    # that the pieces root must be computed here too (else the SHA-256 alone).
    resumed: Callable[[], bool] = lambda: True


class HashBehind:
    """One thread hashing the files of a download in order, each as its prefix completes."""

    def __init__(self, staging: Path, files: Sequence[GrowingEntry], piece_length: int) -> None:
        self.staging, self.files, self.piece_length = staging, list(files), piece_length
        self.results: dict[str, Prehashed] = {}
        self._hashed = 0
        self._reader: GrowingFile | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seedvault-hash-behind", daemon=True)

    def __enter__(self) -> HashBehind:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        for entry in self.files:
            if self._stop.is_set():
                return
            path = self.staging / entry.path
            reader = self._reader = GrowingFile(path, entry.size, entry.ready, self._stop)
            try:
                reader.wait_for_bytes()
                sha_only = not entry.resumed()
                digest = (hashing.sha256_stream(reader) if sha_only else
                          hashing.hash_stream(reader, self.piece_length))
                if reader.pos == entry.size:
                    self.results[entry.path] = Prehashed(digest, os.lstat(path), root_by_swarm=sha_only)
            except (_Stopped, Error, OSError):
                continue  # not hashed here: admission reads this file itself
            finally:
                self._hashed += reader.pos
                self._reader = None
                reader.close()

    def finish(self, timeout: float) -> dict[str, Prehashed]:
        """Once the download is complete: wait for the tail to be hashed, as long as the
        hashing moves on (and at most TIMEOUT); what is not done then is left to admission."""
        deadline = time.monotonic() + timeout
        last, moved = -1, time.monotonic()
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(POLL * 5)
            if self.hashed != last:
                last, moved = self.hashed, time.monotonic()
            elif time.monotonic() - moved > STALLED:
                break  # waiting for bytes that will not come (a piece not handed over)
        self.stop()
        return dict(self.results)

    @property
    def hashed(self) -> int:
        """Bytes hashed so far (read from the waiting thread: an int, atomic to read)."""
        return self._hashed + (self._reader.pos if self._reader is not None else 0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
