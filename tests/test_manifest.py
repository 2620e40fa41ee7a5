"""The manifest: round trips (property-based), and every validation rule."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seedvault.errors import ManifestError, UnsafePathError, UnsafeWeightsError, UsageError
from seedvault.manifest import (
    LINEAGE_RELATIONS,
    PIECES_ROOT_KEY,
    FileEntry,
    License,
    LineageLink,
    Manifest,
    Origin,
    Ref,
    SafetensorsSummary,
    TorrentBinding,
    check_path_set,
    check_relative_path,
    info_hash_v2,
    torrent_name,
)

HEX = "0123456789abcdef"

# ---- strategies ---------------------------------------------------------------------

hex64 = st.text(HEX, min_size=64, max_size=64)
name_part = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda s: ".." not in s
)
version = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._+-]{0,10}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda s: ".." not in s
)
path_part = st.from_regex(r"[A-Za-z0-9_-](?:[A-Za-z0-9._ -]{0,7}[A-Za-z0-9_-])?", fullmatch=True).filter(
    lambda s: not re.fullmatch(r"(?:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(?:\..*)?", s, re.I)
)
rel_path = st.lists(path_part, min_size=1, max_size=3).map("/".join)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


def extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(text.filter(lambda k: k not in known), json_value, max_size=2)


moment = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    paths = draw(st.lists(rel_path, min_size=1, max_size=5, unique_by=str.casefold))
    try:
        check_path_set(paths)
    except UnsafePathError:
        assume(False)
    allow_pickle = draw(st.booleans())
    if not allow_pickle:
        assume(not any(FileEntry(p, 0, "", None).is_pickle for p in paths))
    files = []
    for p in paths:
        size = draw(st.integers(0, 2**40))
        summary = None
        if draw(st.booleans()):
            summary = SafetensorsSummary(
                tensors=draw(st.integers(0, 10**6)),
                parameters=draw(st.integers(0, 10**12)),
                dtypes=draw(st.dictionaries(st.sampled_from(["F32", "BF16", "I8"]), st.integers(0, 9))),
                header_sha256=draw(hex64),
                extra=draw(extras({"tensors", "parameters", "dtypes", "header_sha256"})),
            )
        files.append(FileEntry(
            path=p, size=size, sha256=draw(hex64), pieces_root=draw(hex64) if size else None,
            safetensors=summary, extra=draw(extras({"path", "size", "safetensors"})),
            subject_extra=draw(extras({"name", "digest"})),
            digest_extra=draw(st.dictionaries(
                st.sampled_from(["sha512", "blake3"]), st.binary(min_size=1, max_size=4).map(bytes.hex)
            )),
        ))
    lic_file = draw(st.sampled_from([None, *paths]))
    license = License(
        spdx=draw(st.from_regex(r"[A-Za-z0-9.+\-() ]{1,20}", fullmatch=True)),
        file=lic_file,
        sha256=next((f.sha256 for f in files if f.path == lic_file), None),
        extra=draw(extras({"spdx", "file", "sha256"})),
    )
    origin = Origin(
        publisher=draw(text),
        source_url=draw(st.none() | text),
        source_revision=draw(st.none() | text),
        notes=draw(st.none() | text),
        extra=draw(extras({"publisher", "source_url", "source_revision", "notes"})),
    )
    lineage = draw(st.lists(st.builds(
        LineageLink,
        relation=st.sampled_from(sorted(LINEAGE_RELATIONS)),
        ref=st.tuples(name_part, name_part, st.none() | version).map(
            lambda t: f"{t[0]}/{t[1]}" + (f"@{t[2]}" if t[2] else "")
        ),
        manifest_digest=st.none() | hex64,
        extra=extras({"relation", "ref", "manifest_digest"}),
    ), max_size=2))
    name = f"{draw(name_part)}/{draw(name_part)}"
    ver = draw(version)
    piece_length = 2 ** draw(st.integers(14, 24))
    return Manifest(
        name=name,
        version=ver,
        created=draw(moment),
        files=tuple(files),
        license=license,
        origin=origin,
        torrent=TorrentBinding(
            piece_length,
            info_hash_v2(torrent_name(name, ver), files, piece_length),
            extra=draw(extras({"piece_length", "info_hash_v2"})),
        ),
        lineage=tuple(lineage),
        expires=draw(st.none() | moment),
        allow_pickle=allow_pickle,
        extra_predicate=draw(extras({"name", "version", "created", "expires", "license", "origin", "lineage",
                                     "files", "torrent", "allow_pickle"})),
        extra_statement=draw(extras({"_type", "subject", "predicateType", "predicate"})),
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(manifests())
def test_manifest_round_trip(manifest: Manifest) -> None:
    data = manifest.to_dict()
    assert Manifest.from_dict(data) == manifest
    assert Manifest.from_dict(data).to_dict() == data
    payload = manifest.to_payload()
    assert Manifest.from_payload(payload) == manifest
    # Through JSON text, as a receiver sees it: unknown fields at every level survive.
    assert Manifest.from_payload(payload).to_dict() == json.loads(payload)


# ---- a valid statement to break -----------------------------------------------------


def good_manifest(**changes: Any) -> Manifest:
    files = (
        FileEntry("model.safetensors", 40000, "a" * 64, "b" * 64),
        FileEntry("sub/config.json", 10, "c" * 64, "d" * 64),
        FileEntry("empty.txt", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None),
    )
    base = Manifest(
        name="acme/tiny",
        version="1.0",
        created=datetime(2026, 1, 1, tzinfo=UTC),
        files=files,
        license=License("Apache-2.0"),
        origin=Origin("Acme"),
        torrent=TorrentBinding(16384, info_hash_v2("acme--tiny--1.0", files, 16384)),
    )
    m = dataclasses.replace(base, **changes)
    return dataclasses.replace(m, torrent=TorrentBinding(m.torrent.piece_length, m.computed_info_hash_v2()))


def good_dict() -> dict[str, Any]:
    return copy.deepcopy(good_manifest().to_dict())


def test_good_manifest_parses() -> None:
    m = Manifest.from_dict(good_dict())
    assert m.ref == "acme/tiny@1.0"
    assert m.total_size == 40010
    assert m.file("sub/config.json").size == 10
    with pytest.raises(ManifestError, match="no file 'nope'"):
        m.file("nope")


@pytest.mark.parametrize(
    "path",
    ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\b", "..\\x", "a//b", "./a", "a/./b", "a/", "", "a\x00b",
     "a\nb", "x" * 256, "/".join(["d"] * 2100)],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash", "backslash-dotdot", "empty-part",
         "dot-prefix", "dot-part", "trailing-slash", "empty", "nul", "newline", "long-part", "long-path"],
)
def test_unsafe_path_refused(path: str) -> None:
    with pytest.raises(UnsafePathError, match="expected a relative POSIX path"):
        check_relative_path(path)


@pytest.mark.parametrize("path", ["a", "a/b/c.safetensors", "dir with space/x", ".hidden", "a..b", "é/ü"])
def test_safe_path_accepted(path: str) -> None:
    assert check_relative_path(path) == path


def test_path_case_duplicates_and_file_dir_clash_refused() -> None:
    with pytest.raises(UnsafePathError, match=r"'Model.bin' and 'model.bin'"):
        check_path_set(["model.bin", "Model.bin"])
    with pytest.raises(UnsafePathError, match="'a' is a file, but 'a/b' needs it to be a directory"):
        check_path_set(["a", "a/b"])
    check_path_set(["a/b", "a/c", "ab"])


def _subject_path(d: dict[str, Any], value: str, index: int = 0) -> dict[str, Any]:
    old = d["subject"][index]["name"]
    d["subject"][index]["name"] = value
    for f in d["predicate"]["files"]:
        if f["path"] == old:
            f["path"] = value
    return d


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a\\b"])
def test_unsafe_path_in_statement_refused(bad: str) -> None:
    with pytest.raises(UnsafePathError, match=r"subject\[0\]\.name"):
        Manifest.from_dict(_subject_path(good_dict(), bad))


def test_duplicate_path_in_statement_refused() -> None:
    d = good_dict()
    d["subject"].append(dict(d["subject"][0]))
    with pytest.raises(UnsafePathError, match=r"'model.safetensors' twice"):
        Manifest.from_dict(d)
    d = _subject_path(good_dict(), "MODEL.safetensors", 1)
    with pytest.raises(UnsafePathError, match="compared case-insensitively"):
        Manifest.from_dict(d)


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda d: d.update(_type="x"), ManifestError, "_type: expected https://in-toto.io/Statement/v1"),
        (lambda d: d.update(predicateType="x"), ManifestError, "predicateType"),
        (lambda d: d.update(subject=[]), ManifestError, "1 to 100000 files"),
        (lambda d: d["subject"][0]["digest"].update(sha256="a" * 63), ManifestError,
         r"sha256: expected 64 lowercase hex.*63 characters"),
        (lambda d: d["subject"][0]["digest"].update(sha256="A" * 64), ManifestError, "lowercase hex"),
        (lambda d: d["subject"][0]["digest"].pop(PIECES_ROOT_KEY), ManifestError,
         "expected a btv2-pieces-root digest exactly when the file is not empty; found size 40000"),
        (lambda d: d["subject"][2]["digest"].update({PIECES_ROOT_KEY: "f" * 64}), ManifestError,
         "found size 0 and a pieces root"),
        (lambda d: d["predicate"]["files"].pop(), ManifestError,
         "only in subject: 'empty.txt'; only in files: none"),
        (lambda d: d["predicate"]["files"][0].update(size=-1), ManifestError, "a size >= 0"),
        (lambda d: d["predicate"]["files"][0].update(size="7"), ManifestError, "expected an integer, found '7'"),
        (lambda d: d["predicate"]["files"][0].update(size=True), ManifestError, "expected an integer, found true"),
        (lambda d: d["predicate"].update(name="acme"), ManifestError, "expected 'namespace/name'"),
        (lambda d: d["predicate"].update(name="acme/../x"), ManifestError, "expected 'namespace/name'"),
        (lambda d: d["predicate"].update(version="1..0"), ManifestError, "version: expected a label"),
        (lambda d: d["predicate"].update(created="2026-01-01T00:00:00"), ManifestError, "with a UTC offset"),
        (lambda d: d["predicate"].update(created="yesterday"), ManifestError, "RFC 3339"),
        (lambda d: d["predicate"].pop("license"), ManifestError,
         "predicate.license: expected an object, found nothing"),
        (lambda d: d["predicate"]["license"].update(spdx="MIT; rm -rf"), ManifestError, "SPDX"),
        (lambda d: d["predicate"]["license"].update(file="sub/config.json", sha256="0" * 64), ManifestError,
         "license file 'sub/config.json': expected a listed file with sha256 0{64}, found sha256 c{64}"),
        (lambda d: d["predicate"]["license"].update(file="LICENSE", sha256="0" * 64), ManifestError,
         "found no such file"),
        (lambda d: d["predicate"]["lineage"].append({"relation": "stolen-from", "ref": "x/y"}), ManifestError,
         "relation: expected one of"),
        (lambda d: d["predicate"].update(allow_pickle="yes"), ManifestError, "true or false"),
        (lambda d: d["predicate"]["torrent"].update(piece_length=1000), ManifestError,
         "a power of two of at least 16384"),
        (lambda d: d["predicate"]["torrent"].update(info_hash_v2="0" * 64), ManifestError,
         r"expected the v2 info-hash derived from the listed files, [0-9a-f]{64}, found 0{64}"),
    ],
    ids=["type", "predicate-type", "no-files", "digest-length", "digest-uppercase", "missing-root",
         "root-for-empty", "files-mismatch", "negative-size", "string-size", "bool-size", "name-no-ns",
         "name-dotdot", "version-dotdot", "naive-time", "bad-time", "no-license", "bad-spdx",
         "license-digest", "license-missing-file", "lineage-relation", "allow-pickle-type", "piece-length",
         "info-hash"],
)
def test_invalid_statement_refused(mutate: Any, error: type[Exception], message: str) -> None:
    d = good_dict()
    mutate(d)
    with pytest.raises(error, match=message):
        Manifest.from_dict(d)


def test_changing_a_file_digest_changes_the_torrent_binding() -> None:
    """The info-hash covers every pieces root: a manifest cannot bind one file set and list another."""
    d = good_dict()
    d["subject"][0]["digest"][PIECES_ROOT_KEY] = "0" * 64
    with pytest.raises(ManifestError, match="info_hash_v2"):
        Manifest.from_dict(d)


def test_pickle_file_needs_allow_pickle() -> None:
    files = (FileEntry("pytorch_model.bin", 10, "a" * 64, "b" * 64),)
    with pytest.raises(UnsafeWeightsError, match=r"pickle files 'pytorch_model.bin'.*allow_pickle"):
        good_manifest(files=files).validate()
    good_manifest(files=files, allow_pickle=True).validate()


def test_payload_must_be_a_json_object() -> None:
    with pytest.raises(ManifestError, match="expected JSON"):
        Manifest.from_payload(b"\xff not json")
    with pytest.raises(ManifestError, match="a JSON object, found an empty list"):
        Manifest.from_payload(b"[]")


def test_expiry_boundary() -> None:
    end = datetime(2030, 1, 1, tzinfo=UTC)
    m = good_manifest(expires=end)
    assert not m.is_expired(end - timedelta(seconds=1))
    assert m.is_expired(end)
    assert not good_manifest().is_expired(datetime(9999, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "name", "version"),
    [("acme/tiny", "acme/tiny", None), ("acme/tiny@1.0", "acme/tiny", "1.0"),
     ("a.b/c-d@3f2a9c1", "a.b/c-d", "3f2a9c1"), ("acme/tiny@2024-05-01", "acme/tiny", "2024-05-01")],
)
def test_ref_parse(text: str, name: str, version: str | None) -> None:
    ref = Ref.parse(text)
    assert (ref.name, ref.version) == (name, version)
    assert str(ref) == text


@pytest.mark.parametrize("text", ["acme", "acme/tiny@", "acme/tiny@1@2", "../x@1", "acme/tiny/x", "acme/ti ny"])
def test_ref_parse_refuses_bad_refs(text: str) -> None:
    with pytest.raises(UsageError, match="expected NAMESPACE/NAME or NAMESPACE/NAME@VERSION"):
        Ref.parse(text)


def test_payload_with_a_key_given_twice_refused() -> None:
    """Parsers keeping the first or the last value would read two different manifests."""
    payload = good_manifest().to_payload()
    doubled = payload.replace(b'"version": "1.0"', b'"version": "1.0", "version": "9.9"', 1)
    assert doubled != payload
    with pytest.raises(ManifestError, match="expected each member name once per object, found 'version' twice"):
        Manifest.from_payload(doubled)


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000 + b"]" * 100_000, b'{"_type": ' + b"1" * 5000 + b"}", b"\xff\xfe{}"],
    ids=["deeply-nested", "5000-digit-number", "not-utf8"],
)
def test_hostile_payload_is_a_manifest_error_not_a_crash(payload: bytes) -> None:
    with pytest.raises(ManifestError, match="manifest payload: expected ") as caught:
        Manifest.from_payload(payload)
    assert "Error" not in str(caught.value) and "\\x" not in str(caught.value)
