"""File helpers the bridges share: copy while hashing, and small atomic writes."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from seedvault._text import quote
from seedvault.errors import IntegrityError
from seedvault.settings import READ_CHUNK


@dataclass(frozen=True)
class Copied:
    """What was read while copying: exactly the bytes now in the copy."""

    size: int
    sha256: str
    git_sha1: str | None  # git blob id, when asked for


def copy_hashed(src: Path, dst: Path, *, rel: str, git_sha1: bool = False) -> Copied:
    """Copy `src` to a new file `dst` (fsynced), hashing the very bytes written.

    The source is opened without following a final symlink: callers resolve and check
    links first, and a link swapped in after that check must not be followed. With
    `git_sha1`, also computes the git blob id, SHA-1 over b"blob <size>\\0" + content,
    which needs the size up front; a file that changes size while read is refused.
    """
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb", buffering=0) as reader, open(dst, "xb", buffering=0) as writer:
        size = os.fstat(fd).st_size
        sha = hashlib.sha256()
        # Not a trust decision: git names non-LFS blobs by SHA-1; SHA-256 is what gets signed.
        sha1 = hashlib.sha1(b"blob %d\x00" % size, usedforsecurity=False) if git_sha1 else None
        done = 0
        while chunk := reader.read(READ_CHUNK):
            sha.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            writer.write(chunk)
            done += len(chunk)
        os.fsync(writer.fileno())
    if done != size:
        raise IntegrityError(
            f"file {quote(rel)}: expected {size} bytes (its size when opened), read {done}; it changed while copied",
            path=rel, expected=str(size), found=str(done),
            hint="something is writing to the source; wait for it to finish and try again",
        )
    return Copied(size, sha.hexdigest(), sha1.hexdigest() if sha1 is not None else None)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename: readers see the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
