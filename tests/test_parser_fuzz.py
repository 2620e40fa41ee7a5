"""Structural fuzzing of the parsers that read outside input before any signature counts:
the envelope (`Envelope.from_json`), the statement (`Manifest.from_payload`), the
safetensors header (`weights.parse_header`) and the JSON reader under them.

Not bit flips: hypothesis builds JSON-like documents and mutates a valid manifest over its
structure (wrong types, extreme values, deep nesting, long lists, duplicated members).
Whatever comes in, the parsers either accept it or raise a `seedvault.errors.Error` whose
message is for people: no traceback, no Python repr, bounded length. Examples are bounded
so that the file stays well under a minute.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedvault import _json, errors, weights
from seedvault.manifest import FileEntry, License, Manifest, Origin, TorrentBinding, info_hash_v2, torrent_name
from seedvault.signing import Envelope

# Generated strings avoid quotes and the letters of Python's reprs (None, True, dict, ...):
# so any of those found in a message came from a repr, not from the input echoed back.
ALPHABET = "abcxyz0189 ./_-:\\@+é\u0301\x00\x7f\ud800\U0001f600"
REPR = re.compile(r"Traceback|(?:^|[\s(\[,=])b'|\bNone\b|\bTrue\b|\bFalse\b|<class|\bdict\b|\bstr\b|\bint\b|\['|\{'")
# derandomize: CI runs the same examples each time (a red CI must mean a change broke
# something); to explore further, run with derandomize=False by hand.
FUZZ = settings(
    derandomize=True, max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

text = st.text(ALPHABET, max_size=12)
extreme_int = st.sampled_from([0, -1, 2**14, 2**53 - 1, 2**53, -(2**53), 2**63, 2**64 + 1, 10**30])
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), extreme_int,
    st.floats(allow_nan=True, allow_infinity=True), text,
)
json_like = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def check_error(exc: BaseException) -> None:
    """The only acceptable failure: one of seedvault's errors, with a message for people."""
    assert isinstance(exc, errors.Error), f"{type(exc).__name__} escaped the parser: {exc}"
    message = exc.diagnostics()
    assert not REPR.search(message), f"a Python repr in: {message}"
    assert len(message) < 2000, f"a message of {len(message)} characters"


def parse_payload(payload: bytes) -> None:
    try:
        Manifest.from_payload(payload)
    except Exception as exc:  # every exception: the point is to see which escape
        check_error(exc)


def parse_envelope(raw: bytes) -> None:
    try:
        env = Envelope.from_json(raw)
    except Exception as exc:
        check_error(exc)
        return
    parse_payload(env.payload)


def dumps(value: Any) -> bytes:
    """JSON text as a hostile producer writes it: NaN, lone surrogates and huge numbers included."""
    return json.dumps(value, allow_nan=True, ensure_ascii=True).encode()


# ---- a valid statement to mutate -------------------------------------------------------


def valid_statement() -> dict[str, Any]:
    files = (
        FileEntry("model.safetensors", 40000, "a" * 64, "b" * 64),
        FileEntry("sub/config.json", 10, "c" * 64, "d" * 64),
        FileEntry("empty.txt", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None),
    )
    manifest = Manifest(
        name="acme/tiny", version="1.0", created=datetime(2026, 1, 1, tzinfo=UTC), files=files,
        license=License("Apache-2.0"), origin=Origin("Acme"),
        torrent=TorrentBinding(16384, info_hash_v2(torrent_name("acme/tiny", "1.0"), files, 16384)),
    )
    return manifest.to_dict()


BASE = valid_statement()


def locations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document a mutation can target."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += locations(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += locations(v, (*path, i))
    return out


LOCATIONS = locations(BASE)


def replace_at(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return doc


def nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


mutation = st.one_of(
    st.tuples(st.just("replace"), json_like),
    st.tuples(st.just("nest"), st.integers(1, 300)),
    st.tuples(st.just("repeat"), st.integers(2, 2000)),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("extreme"), extreme_int),
    st.tuples(st.just("long-string"), st.integers(1, 70_000)),
)


def mutate(doc: dict[str, Any], path: tuple[Any, ...], kind: str, arg: Any) -> Any:
    node: Any = doc
    for key in path:
        node = node[key]
    if kind == "replace":
        return replace_at(doc, path, arg)
    if kind == "nest":
        return replace_at(doc, path, nest(node, arg))
    if kind == "repeat":
        # Bounded in the generator itself: three repeats of 2,000 would build 8e9 items.
        arg = max(2, min(arg, 2_000_000 // max(1, len(json.dumps(node)))))
        return replace_at(doc, path, [node] * arg if not isinstance(node, list) else node * arg)
    if kind == "extreme":
        return replace_at(doc, path, arg)
    if kind == "long-string":
        return replace_at(doc, path, "a/" * arg)
    if path:  # delete
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
    return doc


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(LOCATIONS), st.lists(mutation, min_size=1, max_size=3))
def test_structurally_mutated_statement_is_accepted_or_refused_cleanly(
    path: tuple[Any, ...], mutations: list[tuple[str, Any]]
) -> None:
    doc: Any = copy.deepcopy(BASE)
    for kind, arg in mutations:
        try:
            doc = mutate(doc, path, kind, arg)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the place
            break
    payload = dumps(doc)
    parse_payload(payload)
    env = Envelope(payload).to_json()
    parse_envelope(env)


@FUZZ
@given(json_like)
def test_arbitrary_json_as_payload_or_envelope_is_refused_cleanly(value: Any) -> None:
    raw = dumps(value)
    parse_payload(raw)
    parse_envelope(raw)


envelope_member = st.sampled_from(["payloadType", "payload", "signatures", "keyid", "sig"])


@FUZZ
@given(
    st.dictionaries(envelope_member, json_like, max_size=4),
    st.lists(st.dictionaries(envelope_member, json_like, max_size=3), max_size=70),
)
def test_envelope_of_wrong_types_is_refused_cleanly(top: dict[str, Any], sigs: list[dict[str, Any]]) -> None:
    doc = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(dumps(BASE)).decode(),
           "signatures": sigs, **top}
    parse_envelope(dumps(doc))


@FUZZ
@given(st.binary(max_size=64), st.sampled_from(["prefix", "suffix", "insert"]), st.integers(0, 10_000))
def test_envelope_text_with_spliced_bytes_is_refused_cleanly(junk: bytes, where: str, at: int) -> None:
    raw = Envelope(dumps(BASE)).to_json()
    at %= len(raw)
    spliced = {"prefix": junk + raw, "suffix": raw + junk, "insert": raw[:at] + junk + raw[at:]}[where]
    parse_envelope(spliced)


@FUZZ
@given(json_like, st.binary(max_size=16))
def test_arbitrary_safetensors_header_is_refused_cleanly(value: Any, data: bytes) -> None:
    header = dumps(value if isinstance(value, dict) else {"t": value})
    header += b" " * (-len(header) % 8)
    try:
        weights.parse_header(header, 8 + len(header) + len(data), "fuzz.safetensors")
    except Exception as exc:
        check_error(exc)


tensor_info = st.fixed_dictionaries(
    {"dtype": st.sampled_from([*weights.DTYPE_SIZES, "F4", "x"]),
     "shape": st.lists(st.one_of(st.integers(0, 2**60), extreme_int), max_size=40),
     "data_offsets": st.lists(st.one_of(st.integers(0, 64), extreme_int), min_size=0, max_size=3)},
    optional={"extra": json_like},
)


@FUZZ
@given(st.dictionaries(text, tensor_info, max_size=5), st.integers(0, 128))
def test_safetensors_header_of_extreme_tensors_is_refused_cleanly(tensors: dict[str, Any], size: int) -> None:
    header = dumps(tensors)
    try:
        weights.parse_header(header, 8 + len(header) + size, "fuzz.safetensors")
    except Exception as exc:
        check_error(exc)


@FUZZ
@given(st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_json_reader_refuses_cleanly(text_in: str) -> None:
    for raw in (text_in, text_in.encode("utf-8", "surrogatepass")):
        try:
            _json.loads(raw, "fuzz")
        except Exception as exc:
            check_error(exc)
