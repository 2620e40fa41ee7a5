"""Minimal bencoding (BEP 3), enough to derive v2 info-hashes and write .torrent files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def bencode(value: Any) -> bytes:
    """int, bytes, str, sequences and mappings (str or bytes keys), nested."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, str)):
        raw = value.encode() if isinstance(value, str) else value
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, Mapping):
        items = [(k.encode() if isinstance(k, str) else k, v) for k, v in value.items()]
        items.sort(key=lambda kv: kv[0])  # BEP 3: keys sorted as raw byte strings
        out.append(b"d")
        for key, item in items:
            _encode(key, out)
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")
