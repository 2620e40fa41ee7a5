"""Text for people: values from outside shown safely, long lists cut.

Messages name what was expected and what was found. What was found often comes from a
hostile source (a path in a manifest, a member of a tar, a JSON value), so it is shown
escaped (no control characters reach a terminal or a log line) and cut (a refusal of a
40,000-file listing stays one short line). Values are spelled the way the document that
held them spells them: JSON's `null`, `true`, `an object`, never Python's `None`,
`True`, `dict`, `b'...'`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

MAX_VALUE_CHARS = 120  # a quoted value longer than this is cut
MAX_LIST_ITEMS = 5  # a list longer than this names its first items and counts the rest


def _escape(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000 or code in (0x2028, 0x2029):
            # Control characters, lone surrogates and line separators: escaped, never written raw.
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text` escaped and, beyond `limit` characters, cut with a count of the rest."""
    if len(text) > limit:
        return f"{_escape(text[:limit])}… ({len(text) - limit:,} more characters)"
    return _escape(text)


def quote(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """A value from outside, for a message: text in single quotes, escaped and cut;
    anything else as JSON spells it (see `show`)."""
    if isinstance(value, str):
        return "'" + cut(value, limit).replace("'", "\\'") + "'"
    return show(value, limit)


def show(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """A JSON-like value as JSON writes it (null, true, [1, 2], {"a": 1}), escaped and cut.

    Bytes are shown as text when they are printable UTF-8, else as hex."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = ""
        if text and text.isprintable():
            return f"{len(raw)} bytes '" + cut(text, limit).replace("'", "\\'") + "'"
        return f"{len(raw)} bytes 0x{cut(raw.hex(), limit)}"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        text = str(value)
    return cut(text, limit)


def kind(value: object) -> str:
    """What a JSON value is, in JSON's words: 'an object', 'an array', 'a string', 'a number',
    'true', 'false', 'null' (for "expected an object, found null")."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return "a value of another kind"


def listing(items: Iterable[str], limit: int = MAX_LIST_ITEMS, *, item_limit: int = MAX_VALUE_CHARS) -> str:
    """'a.bin, b.bin and c.bin', or 'a.bin, b.bin and 39,998 more': at most `limit` items
    named, each escaped and cut; 'none' for no items."""
    seq: Sequence[str] = items if isinstance(items, Sequence) else list(items)
    shown = [cut(str(i), item_limit) for i in seq[:limit]]
    rest = len(seq) - len(shown)
    if not shown:
        return "none"
    if rest > 0:
        return f"{', '.join(shown)} and {rest:,} more"
    if len(shown) == 1:
        return shown[0]
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def human_size(n: int) -> str:
    """Bytes for people: 812 B, 4.2 kB, 91.6 MB, 13.5 GB (powers of 1000, as disks are sold)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.95 or unit == "PB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 file', '40,000 files'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def toml_error(exc: Exception) -> tuple[str, str]:
    """Where a TOML file stops parsing ("at line 3, column 9"), and the TOML reader's own
    words for the hint: the message names the place, in the user's terms."""
    import re

    text = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", text)
    where = f"at line {match.group(1)}, column {match.group(2)}" if match else "somewhere in the file"
    reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", text) or "invalid TOML"
    if isinstance(exc, UnicodeDecodeError):
        where, reason = f"at byte {exc.start}", "the file is not UTF-8 text"
    return where, f"the TOML reader says: {cut(reason)}"
