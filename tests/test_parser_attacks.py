"""Hostile envelopes and statements, through the real CLI (`import`, `verify --envelope`) and
the library: every one is refused with exit code 3 and a message for people, before any
signature counts, and the receiver's vault stays empty.

Each case is signed by the trusted publisher key where a signature applies: the parser,
not the trust policy, has to refuse it (issue 8, items 12 and 13).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run
from conftest import REF

from seedvault import errors
from seedvault.bundle import import_bundle
from seedvault.client import Client
from seedvault.manifest import Manifest, parse_time
from seedvault.signing import Envelope, PrivateKey, Signature
from seedvault.weights import parse_header

SCRIPT = Path(sys.executable).with_name("seedvault")
# What a Python repr or a crash looks like inside a message.
REPR = re.compile(r"Traceback|(?<![\w'])b'|\bNone\b|\bTrue\b|\bFalse\b|<class|\bdict\b|\bNoneType\b|\['|\{'")


def assert_for_people(message: str) -> None:
    assert not REPR.search(message), f"a Python repr or traceback in: {message}"
    assert len(message) < 2000, f"a message of {len(message)} characters"


# ---- building hostile bundles ----------------------------------------------------------


def statement_of(publisher: Client) -> dict[str, Any]:
    statement: dict[str, Any] = publisher.vault.resolve(REF).manifest.to_dict()
    return statement


def envelope_bytes(payload: bytes, sigs: list[tuple[Any, str]], *, extra: str = "") -> bytes:
    """An envelope written by hand, so that it can say things `Envelope` never would."""
    signatures = ", ".join(
        "{" + ("" if keyid is ... else f'"keyid": {json.dumps(keyid)}, ') + f'"sig": "{sig}"' + "}"
        for keyid, sig in sigs
    )
    return (
        f'{{"payloadType": "application/vnd.in-toto+json", "payload": "{base64.b64encode(payload).decode()}", '
        f'"signatures": [{signatures}]{extra}}}'
    ).encode()


def signed(payload: bytes, key: PrivateKey) -> bytes:
    env = Envelope(payload)
    sig = key.sign(env.signed_bytes())
    return envelope_bytes(payload, [(key.key_id, base64.b64encode(sig).decode())])


Attack = Callable[[dict[str, Any], PrivateKey], bytes]


def signed_statement(mutate: Callable[[dict[str, Any]], None]) -> Attack:
    def build(statement: dict[str, Any], key: PrivateKey) -> bytes:
        mutate(statement)
        return signed(json.dumps(statement, indent=2, ensure_ascii=False).encode(), key)

    return build


def signed_text(edit: Callable[[str], str]) -> Attack:
    """Sign statement text edited by hand (duplicate names, NaN: what json.dumps cannot write)."""

    def build(statement: dict[str, Any], key: PrivateKey) -> bytes:
        text = json.dumps(statement, indent=2)
        edited = edit(text)
        assert edited != text
        return signed(edited.encode(), key)

    return build


def set_path(index: int, path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(statement: dict[str, Any]) -> None:
        old = statement["subject"][index]["name"]
        statement["subject"][index]["name"] = path
        for f in statement["predicate"]["files"]:
            if f["path"] == old:
                f["path"] = path

    return mutate


def set_created(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda s: s["predicate"].update(created=value)


def duplicate_envelope_member(statement: dict[str, Any], key: PrivateKey) -> bytes:
    """Two `payload` members: the first a signed release, the second another statement.
    A first-wins reader and a last-wins reader would see two different releases."""
    good = json.dumps(statement, indent=2).encode()
    raw = signed(good, key)
    other = dict(statement, predicate=dict(statement["predicate"], version="6.6.6"))
    second = base64.b64encode(json.dumps(other).encode()).decode()
    return raw[:-1] + f', "payload": "{second}"}}'.encode()


def too_many_signatures(statement: dict[str, Any], key: PrivateKey) -> bytes:
    payload = json.dumps(statement, indent=2).encode()
    sig = base64.b64encode(key.sign(Envelope(payload).signed_bytes())).decode()
    return envelope_bytes(payload, [(key.key_id, sig)] * 65)


def pad_bits_set(statement: dict[str, Any], key: PrivateKey) -> bytes:
    """An Ed25519 signature is 64 bytes: base64 ends in `==` after a character carrying 4
    unused bits. Setting them gives another spelling that lenient decoders accept."""
    payload = json.dumps(statement, indent=2).encode()
    sig = base64.b64encode(key.sign(Envelope(payload).signed_bytes())).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    assert base64.b64decode(sig[:-3] + alphabet[last | 0b1111] + "==") == base64.b64decode(sig)
    return envelope_bytes(payload, [(key.key_id, sig[:-3] + alphabet[last | 0b1111] + "==")])


def keyid_null(statement: dict[str, Any], key: PrivateKey) -> bytes:
    payload = json.dumps(statement, indent=2).encode()
    sig = base64.b64encode(key.sign(Envelope(payload).signed_bytes())).decode()
    return envelope_bytes(payload, [(None, sig)])


def with_bom(statement: dict[str, Any], key: PrivateKey) -> bytes:
    return b"\xef\xbb\xbf" + signed(json.dumps(statement).encode(), key)


def nfc_nfd_pair(statement: dict[str, Any]) -> None:
    """Two files, café.json in NFC and in NFD: one file on macOS and Windows."""
    nfc = unicodedata.normalize("NFC", "café.json")
    nfd = unicodedata.normalize("NFD", "café.json")
    assert nfc != nfd
    set_path(0, nfc)(statement)
    set_path(1, nfd)(statement)


ATTACKS: dict[str, tuple[Attack, type[errors.Error], str]] = {
    "envelope_with_duplicate_member_names": (
        duplicate_envelope_member, errors.ManifestError, "each member name once per object, found 'payload' twice"),
    "statement_with_duplicate_member_names": (
        signed_text(lambda t: t.replace('"version": "1.0"', '"version": "1.0", "version": "6.6.6"', 1)),
        errors.ManifestError, "found 'version' twice"),
    "statement_with_nan": (
        signed_text(lambda t: t.replace('"torrent": {', '"x-score": NaN, "torrent": {', 1)),
        errors.ManifestError, "found NaN, which JSON does not have"),
    "statement_with_huge_integer": (
        signed_text(lambda t: re.sub(r'"size": \d+', '"size": ' + "9" * 4000, t, count=1)),
        errors.ManifestError, "integers between"),
    "statement_with_lone_surrogate": (
        signed_text(lambda t: t.replace('"publisher": "Acme"', '"publisher": "Acme\\ud800"', 1)),
        errors.ManifestError, "lone surrogate"),
    "path_of_2048_components": (
        signed_statement(set_path(0, "/".join(["d"] * 2047 + ["config.json"]))),
        errors.UnsafePathError, "has more than 32 components"),
    "created_beyond_year_9999_after_utc_conversion": (
        signed_statement(set_created("9999-12-31T23:00:00-05:00")),
        errors.ManifestError, "in the years 1970 to 9999 after conversion to UTC"),
    "created_before_year_1_after_utc_conversion": (
        signed_statement(set_created("0001-01-01T00:00:00+01:00")),
        errors.ManifestError, "in the years 1970 to 9999 after conversion to UTC"),
    "created_with_leap_second": (
        signed_statement(set_created("2026-06-30T23:59:60Z")), errors.ManifestError, "leap seconds"),
    "created_with_unknown_offset": (
        signed_statement(set_created("2026-01-01T00:00:00-00:00")), errors.ManifestError, "-00:00 means unknown"),
    "windows_device_name_path": (
        signed_statement(set_path(0, "CON.json")), errors.UnsafePathError, "reserves for a device"),
    "alternate_data_stream_path": (
        signed_statement(set_path(0, "config.json:evil")), errors.UnsafePathError, "Windows does not allow"),
    "nfc_nfd_pair_of_paths": (
        signed_statement(nfc_nfd_pair), errors.UnsafePathError, "after Unicode normalization"),
    "null_for_an_optional_member": (
        signed_statement(lambda s: s["predicate"].update(expires=None)), errors.ManifestError,
        "predicate.expires: expected a string, found null"),
    "huge_piece_length": (
        signed_statement(lambda s: s["predicate"]["torrent"].update(piece_length=2**40)),
        errors.ManifestError, "at most 67108864"),
    "malformed_unknown_digest": (
        signed_statement(lambda s: s["subject"][0]["digest"].update(sha512=["not", "hex"])),
        errors.ManifestError, "lowercase hex of whole bytes"),
    "envelope_with_65_signatures": (too_many_signatures, errors.OversizeError, "at most 64 signatures, found 65"),
    "signature_with_nonzero_pad_bits": (pad_bits_set, errors.ManifestError, "non-zero pad bits"),
    "signature_with_null_keyid": (keyid_null, errors.ManifestError, "keyid: expected a string"),
    "envelope_with_byte_order_mark": (with_bom, errors.ManifestError, "without a byte order mark"),
}


def write_hostile(bundle: Path, dest: Path, raw: bytes) -> Path:
    shutil.copytree(bundle, dest)
    (dest / "envelope.json").write_bytes(raw)
    meta = json.loads((dest / "bundle.json").read_text())
    match = re.search(rb'"payload": "([A-Za-z0-9+/=]*)"', raw)
    if match:  # keep bundle.json in agreement, so only the envelope can be refused
        meta["digest"] = hashlib.sha256(base64.b64decode(match.group(1) + b"==")).hexdigest()
    (dest / "bundle.json").write_text(json.dumps(meta))
    return dest


def cli(home: Path, *args: str | Path) -> tuple[int, str]:
    """The in-process CLI (test_cli.run), its streams joined: what a user sees."""
    result = run(home, *args)
    return result.code, result.err + result.out


def refused_by_library_and_cli(
    attack: str, receiver: Client, publisher: Client, bundle: Path, pub_key: PrivateKey, tmp_path: Path
) -> None:
    build, error, fragment = ATTACKS[attack]
    raw = build(statement_of(publisher), pub_key)
    hostile = write_hostile(bundle, tmp_path / f"hostile-{attack}", raw)

    with pytest.raises(errors.Error) as caught:
        import_bundle(receiver, hostile)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert fragment in str(caught.value)
    assert_for_people(caught.value.diagnostics())
    assert receiver.vault.entries() == []

    home = tmp_path / "home-receiver"
    for args in (("import", hostile), ("verify", hostile / "files", "--envelope", hostile / "envelope.json")):
        code, text = cli(home, *args)
        assert code == 3, f"{args[0]}: exit {code}: {text}"
        assert fragment in text, text
        assert_for_people(text)
    assert receiver.vault.entries() == []


def _named_test(attack: str) -> Callable[..., None]:
    def test(receiver: Client, publisher: Client, bundle: Path, pub_key: PrivateKey, tmp_path: Path) -> None:
        refused_by_library_and_cli(attack, receiver, publisher, bundle, pub_key, tmp_path)

    test.__name__ = f"test_{attack}_refused"
    test.__doc__ = f"{attack.replace('_', ' ')}: refused by import and verify, library and CLI (exit 3)."
    return test


# One test per attack, named after it (test_envelope_with_duplicate_member_names_refused, ...).
for _attack in ATTACKS:
    globals()[f"test_{_attack}_refused"] = _named_test(_attack)


# Named tests for the two crashes of issue 8 item 13, through the installed console script.


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
@pytest.mark.parametrize("attack", ["path_of_2048_components", "created_beyond_year_9999_after_utc_conversion"])
def test_extreme_value_refused_without_traceback_by_console_script(
    attack: str, receiver: Client, publisher: Client, bundle: Path, pub_key: PrivateKey, tmp_path: Path
) -> None:
    build, _, fragment = ATTACKS[attack]
    hostile = write_hostile(bundle, tmp_path / "hostile", build(statement_of(publisher), pub_key))
    for args in (["import", hostile], ["verify", hostile / "files", "--envelope", hostile / "envelope.json"]):
        done = subprocess.run(
            [str(SCRIPT), "--home", str(tmp_path / "home-receiver"), *map(str, args)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 3, done.stderr
        assert fragment in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert receiver.vault.entries() == []


def test_path_of_2048_components_refused_without_traceback(
    receiver: Client, publisher: Client, bundle: Path, pub_key: PrivateKey, tmp_path: Path
) -> None:
    build, _, _ = ATTACKS["path_of_2048_components"]
    raw = build(statement_of(publisher), pub_key)
    with pytest.raises(errors.UnsafePathError, match="more than 32 components") as caught:
        Manifest.from_payload(Envelope.from_json(raw).payload)
    assert_for_people(str(caught.value))


def test_times_at_the_edge_of_the_representable_range_refused_without_traceback() -> None:
    assert parse_time("9999-12-31T23:59:59Z", "t").year == 9999
    assert parse_time("1970-01-01T00:00:00Z", "t").year == 1970
    for value in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                  "1969-12-31T23:59:59Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
                  "2026-01-01t00:00:00z", "2026-01-01T00:00:00.5Z", "2026-01-01 00:00:00Z",
                  "20260101T000000Z", "2026-W01-1T00:00:00Z", "2026-01-01T00:00:00+24:00"):
        with pytest.raises(errors.ManifestError) as caught:
            parse_time(value, "predicate.created")
        assert_for_people(str(caught.value))


def test_envelope_beyond_the_signature_bound_neither_read_nor_written(pub_key: PrivateKey) -> None:
    """65 signatures are refused at parse, before any is checked; and seedvault never writes
    an envelope it would refuse to read back."""
    payload = b"{}"
    env = Envelope(payload, signatures=tuple(Signature(pub_key.key_id, b"x" * 64) for _ in range(65)))
    with pytest.raises(errors.OversizeError, match="at most 64 signatures, found 65"):
        Envelope.from_json(env.to_json())
    with pytest.raises(errors.OversizeError, match="at most 64 signatures"):
        Envelope(payload, signatures=env.signatures[:64]).sign(PrivateKey.generate("ed25519"))


def test_safetensors_header_with_duplicate_tensor_names_refused() -> None:
    header = (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
              b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}')
    with pytest.raises(errors.UnsafeWeightsError, match="found 'a' twice") as caught:
        parse_header(header, 8 + len(header) + 8, "model.safetensors")
    assert_for_people(str(caught.value))


def test_small_order_ed25519_key_refused_by_trust_add(tmp_path: Path) -> None:
    """Under the identity point, (R = identity, S = 0) verifies for every message: such a
    "key" must never enter a policy, whatever file it comes in."""
    spki = bytes.fromhex("302a300506032b6570032100") + b"\x01" + bytes(31)
    pem = f"-----BEGIN PUBLIC KEY-----\n{base64.b64encode(spki).decode()}\n-----END PUBLIC KEY-----\n"
    (tmp_path / "forged.pub").write_text(pem)
    code, text = cli(tmp_path / "home", "trust", "add", tmp_path / "forged.pub", "--role", "publisher",
                     "--scope", "acme/*")
    assert code == 2, text
    assert "small order" in text
    assert_for_people(text)
