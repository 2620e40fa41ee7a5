"""One strict JSON reader for everything seedvault reads from outside.

Two parsers that read the same bytes differently are a way around verification: if
seedvault verifies one document and another tool acts on another, the signature means
nothing. So every JSON document from outside (envelopes, statements, safetensors headers,
bundle metadata, registry answers) is read here, under one profile (manifests/README.md,
section "JSON"):

- RFC 8259 text in UTF-8, decoded strictly; no byte order mark; no UTF-16/32 guessing;
- each member name at most once per object (first-wins and last-wins readers would
  otherwise see different documents);
- no `NaN`, `Infinity`, `-Infinity`; no number that overflows to infinity;
- integers within +-(2**53 - 1) (I-JSON, RFC 7493: what every JSON reader holds exactly),
  refused by their digit count before any conversion, and no `-0`;
- no lone surrogate (`"\\ud800"`) in any string, names included;
- nesting at most MAX_JSON_DEPTH deep.

Failures raise the caller's error class (a `seedvault.errors.Error`) with a message for
people: where, what was expected, what was found; never a Python repr.
"""

from __future__ import annotations

import json
import re
from typing import Any

from seedvault.errors import Error, ManifestError
from seedvault.settings import MAX_JSON_DEPTH

MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INT_DIGITS = len(str(MAX_SAFE_INTEGER))
# Paired surrogate escapes decode to one code point; only lone ones survive, and only from
# `\\u` escapes (strict UTF-8 decoding already refuses encoded surrogates). Checking the
# text first keeps the common case at one regex search.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(ValueError):
    """Raised inside the json hooks; turned into the caller's error class."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"each member name once per object, found {quote(key)} twice")
        out[key] = value
    return out


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS or int(digits) > MAX_SAFE_INTEGER:
        raise _Refused(
            f"integers between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}, found one of {len(digits)} digits"
        )
    if text == "-0":
        raise _Refused("no negative zero, found -0")
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"a number a 64-bit float can hold, found {text[:40]}")
    return value


def _constant(text: str) -> Any:
    raise _Refused(f"standard JSON (RFC 8259), found {text}, which JSON does not have")


def loads(raw: bytes | str, where: str, error: type[Error] = ManifestError) -> Any:
    """Parse one JSON text under seedvault's profile, or raise `error` saying why not."""
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        if data.startswith(b"\xef\xbb\xbf"):
            raise error(f"{where}: expected JSON in UTF-8 without a byte order mark, found one")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(
                f"{where}: expected JSON in UTF-8, found an invalid byte at offset {exc.start}"
            ) from None
    else:
        text = raw
        if text.startswith("\ufeff"):
            raise error(f"{where}: expected JSON without a byte order mark, found one")
        if _SURROGATE.search(text):
            raise error(f"{where}: expected valid Unicode text, found a lone surrogate")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_int=_integer,
            parse_float=_number,
            parse_constant=_constant,
        )
    except _Refused as exc:
        raise error(f"{where}: expected {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{where}: expected JSON (RFC 8259), found invalid JSON at line {exc.lineno} "
            f"column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise error(f"{where}: expected JSON nested at most {MAX_JSON_DEPTH} levels deep, found deeper") from None
    _check_tree(value, where, error, check_surrogates=bool(_SURROGATE_ESCAPE.search(text)))
    return value


def load_object(raw: bytes | str, where: str, error: type[Error] = ManifestError) -> dict[str, Any]:
    """`loads`, for documents that must be one JSON object."""
    value = loads(raw, where, error)
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, found {describe(value)}")
    return value


def _check_tree(root: Any, where: str, error: type[Error], *, check_surrogates: bool) -> None:
    """Depth bound (and lone surrogates, when the text had such escapes), iteratively."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
            if check_surrogates and any(_SURROGATE.search(k) for k in value):
                raise error(f"{where}: expected valid Unicode text, found a member name with a lone surrogate")
        elif isinstance(value, list):
            children = value
        else:
            if check_surrogates and isinstance(value, str) and _SURROGATE.search(value):
                raise error(f"{where}: expected valid Unicode text, found a string with a lone surrogate")
            continue
        if depth > MAX_JSON_DEPTH:
            raise error(f"{where}: expected JSON nested at most {MAX_JSON_DEPTH} levels deep, found deeper")
        stack.extend((child, depth + 1) for child in children)


def quote(text: str, limit: int = 80) -> str:
    """A string for a message: quoted, control characters escaped, cut to `limit` characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return f"'{shown}'" if shown.isprintable() else json.dumps(shown)


def describe(value: object, limit: int = 80) -> str:
    """What a JSON value is, for a message: JSON spelling for scalars, a kind for containers."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value, limit)
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= limit else f"a number of {len(text)} digits"
    if isinstance(value, dict):
        return "an empty object" if not value else f"an object with {len(value)} member(s)"
    if isinstance(value, list | tuple):
        return "an empty list" if not value else f"a list of {len(value)} item(s)"
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return "a value of another kind"
