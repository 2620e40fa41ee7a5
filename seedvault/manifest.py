"""The manifest: pure data, parsing and validation. No I/O.

A manifest is an in-toto Statement v1 whose subjects are the model's files and whose
predicate carries the model's name, version, license, origin, lineage, per-file sizes and
safetensors summaries, and the BitTorrent v2 binding. The normative text is
`manifests/README.md`; this module implements it.

Parsing validates every rule (paths, names, digests, consistency between subjects and
files) and raises `ManifestError` / `UnsafePathError` naming the field, what was expected
and what was found. Unknown fields are carried through unchanged, so a newer publisher's
additions survive a round trip through an older client.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from seedvault import _json
from seedvault._bencode import bencode
from seedvault._json import describe, quote
from seedvault._text import listing
from seedvault.errors import ManifestError, UnsafePathError, UnsafeWeightsError, UsageError
from seedvault.settings import (
    MAX_COMPONENT_BYTES,
    MAX_FILES_PER_MANIFEST,
    MAX_PATH_BYTES,
    MAX_PATH_COMPONENTS,
    MAX_PIECE_LENGTH,
    MERKLE_BLOCK_SIZE,
)
from seedvault.summaries import SUMMARY_KINDS, GGUFSummary, SafetensorsSummary, Summary

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://seedvault.dev/manifest/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Digest-set key for a file's BitTorrent v2 pieces root (BEP 52 merkle root, hex).
PIECES_ROOT_KEY = "btv2-pieces-root"

LINEAGE_RELATIONS = frozenset(
    {"fine-tuned-from", "distilled-from", "quantized-from", "merged-from", "converted-from"}
)
# Formats that run code when loaded (pickle). Refused unless the publisher opts in.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?$")
_SPDX = re.compile(r"^[A-Za-z0-9.+\-() :]{1,256}$")
# Other algorithms of a digest set: a name, and a lowercase hex value (bounded).
_DIGEST_ALGORITHM = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")
_HEX_VALUE = re.compile(r"(?:[0-9a-f]{2}){1,256}")
# Windows cannot create these names, with or without an extension, in any case; a file
# named `model.safetensors:x` there writes an alternate data stream of another file.
_WINDOWS_RESERVED = re.compile(
    r"(?:CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])(?:\..*)?", re.I
)
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
# RFC 3339 `date-time`, the one profile seedvault reads (manifests/README.md section 5.4).
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})", re.ASCII
)
MIN_YEAR, MAX_YEAR = 1970, 9999
_KINDS = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true or false"}


def _fail(field_name: str, expected: str, found: object) -> ManifestError:
    return ManifestError(f"manifest field {field_name}: expected {expected}, found {describe(found)}")


def _require(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ManifestError(f"manifest field {where}.{key}: expected {_KINDS[kind]}, found nothing")
    value = data[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise _fail(f"{where}.{key}", _KINDS[kind], value)
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """An OPTIONAL member: absent gives None; present, even as null, must have its type
    (producers omit optional members; a null is a fault, never a second way to say absent)."""
    if key not in data:
        return None
    return _require(data, key, kind, where)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _extra(data: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def check_hex_digest(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        shown = f"{describe(value)} ({len(value)} characters)" if isinstance(value, str) else describe(value)
        raise ManifestError(
            f"manifest field {where}: expected 64 lowercase hex characters (SHA-256), found {shown}"
        )
    return value


def check_digest_set(digest: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The other algorithms of a digest set: ignored when deciding, but well-formed, so two
    verifiers never disagree on whether a digest set is valid."""
    extra = _extra(digest, {"sha256", PIECES_ROOT_KEY})
    for algorithm, value in extra.items():
        if not _DIGEST_ALGORITHM.fullmatch(algorithm):
            raise ManifestError(
                f"manifest field {where}: expected digest algorithm names of lowercase letters, digits, "
                f"'.', '_', '+', '-' (1-64 characters), found {quote(algorithm)}"
            )
        if not isinstance(value, str) or not _HEX_VALUE.fullmatch(value):
            raise _fail(f"{where}.{algorithm}", "lowercase hex of whole bytes (2-512 characters)", value)
    return extra


def check_model_name(name: str) -> str:
    """`namespace/name`, each part of letters, digits, `.`, `_`, `-`, no `..`."""
    parts = name.split("/")
    if len(parts) != 2 or not all(_NAME_PART.fullmatch(p) and ".." not in p for p in parts):
        raise ManifestError(
            f"model name: expected 'namespace/name' (letters, digits, '.', '_', '-'; "
            f"no '..'; each part 1-96 characters), found {quote(name)}"
        )
    return name


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version) or ".." in version:
        raise ManifestError(
            "version: expected a label of letters, digits, '.', '_', '+', '-' "
            f"(1-64 characters, no '..'), such as 1.2.0, 2024-05-01 or 3f2a9c1; found {quote(version)}"
        )
    return version


def check_relative_path(path: object, where: str = "path") -> str:
    """Refuse any path that could escape the model directory, or that some file system
    (Linux, macOS, Windows) cannot create as exactly this one file."""
    if not isinstance(path, str) or not path:
        raise UnsafePathError(f"{where}: expected a relative POSIX path, found {describe(path)}")
    reasons = _path_faults(path)
    if reasons:
        raise UnsafePathError(
            f"{where}: expected a relative POSIX path inside the model directory, "
            f"found {quote(path)}, which {' and '.join(reasons)}"
        )
    return path


def _path_faults(path: str) -> list[str]:
    reasons = []
    if "\x00" in path or any(ord(c) < 0x20 or c == "\x7f" for c in path):
        reasons.append("contains NUL or a control character")
    if any("\ud800" <= c <= "\udfff" for c in path):  # undecodable bytes in a file name, or a JSON \ud800
        reasons.append("is not valid Unicode (UTF-8)")
    if "\\" in path:
        reasons.append("contains a backslash")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        reasons.append("is absolute")
    elif any(c in _WINDOWS_FORBIDDEN for c in path):
        reasons.append('contains one of < > : " | ? *, which Windows does not allow in a name')
    # Count before splitting: a path of a million '/' must not cost a million-item list.
    if path.count("/") >= MAX_PATH_COMPONENTS:
        reasons.append(f"has more than {MAX_PATH_COMPONENTS} components")
        return reasons
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        reasons.append("has an empty, '.' or '..' component")
    elif any(p[-1] in ". " for p in parts):
        reasons.append("has a component ending in '.' or a space, which Windows drops")
    if any(_WINDOWS_RESERVED.fullmatch(p.rstrip(". ")) for p in parts if p):
        reasons.append("has a component Windows reserves for a device (CON, NUL, COM1, ...)")
    if len(path.encode(errors="surrogatepass")) > MAX_PATH_BYTES or any(
        len(p.encode(errors="surrogatepass")) > MAX_COMPONENT_BYTES for p in parts
    ):
        reasons.append(f"is too long (at most {MAX_PATH_BYTES} bytes, {MAX_COMPONENT_BYTES} per component)")
    return reasons


def path_key(path: str) -> str:
    """The key two paths collide under on some file system: Unicode canonical caseless
    matching (NFD, case folding, NFD), so `Config.json`/`config.json` and NFC/NFD spellings
    of `café` (one file on macOS and Windows) are the same."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", path).casefold())


def check_path_set(paths: Sequence[str], where: str = "subject") -> None:
    """No duplicates after normalization and case folding; no file that is also another
    file's directory."""
    seen: dict[str, str] = {}
    for p in paths:
        key = path_key(p)
        if key in seen:
            raise UnsafePathError(
                f"{where}: expected each path once (compared case-insensitively, after Unicode "
                f"normalization), found {quote(p)} and {quote(seen[key])}"
            )
        seen[key] = p
    for p in paths:
        parts = path_key(p).split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                raise UnsafePathError(
                    f"{where}: {quote(seen[prefix])} is a file, but {quote(p)} needs it to be a directory"
                )


def parse_time(value: str, where: str) -> datetime:
    """RFC 3339 `date-time` in seedvault's profile: `T` and `Z` in capitals, whole seconds,
    no leap second (`:60`), no unknown offset (`-00:00`), and a UTC year in 1970..9999."""
    expected = "an RFC 3339 time such as 2026-01-31T12:00:00Z (whole seconds, T and Z in capitals)"
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        if isinstance(value, str) and re.fullmatch(r"[0-9T:.-]+", value, re.ASCII):
            raise _fail(where, "a time with a UTC offset (e.g. ending in Z)", value)
        raise _fail(where, expected, value)
    offset = match.group(7)
    if offset == "-00:00":
        raise _fail(where, "a known UTC offset (Z or +00:00; RFC 3339's -00:00 means unknown)", value)
    if match.group(6) == "60":
        raise _fail(where, "seconds 00-59 (leap seconds are not representable)", value)
    if offset != "Z" and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        raise _fail(where, "a UTC offset between -23:59 and +23:59", value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # February 30, hour 24
        raise _fail(where, "a date and time of day that exist", value) from None
    in_range = f"a time in the years {MIN_YEAR} to {MAX_YEAR} after conversion to UTC"
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is in the year 10000 in UTC
        raise _fail(where, in_range, value) from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise _fail(where, in_range, value)
    return moment


def format_time(moment: datetime) -> str:
    # isoformat, not strftime: strftime("%Y") drops the zero padding of years before 1000.
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class FileEntry:
    """One file of the model: where it goes, how big it is, and what its bytes hash to."""

    path: str
    size: int
    sha256: str
    pieces_root: str | None  # BEP 52 merkle root; absent for empty files
    safetensors: SafetensorsSummary | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys of its predicate.files entry
    subject_extra: dict[str, Any] = field(default_factory=dict)  # unknown keys of its subject entry
    digest_extra: dict[str, Any] = field(default_factory=dict)  # other algorithms in its digest set
    gguf: GGUFSummary | None = None

    @property
    def summary(self) -> Summary | None:
        """The signed summary of its weights format, if it has one."""
        return self.safetensors or self.gguf

    @property
    def parameters(self) -> int:
        return self.summary.parameters if self.summary is not None else 0

    @property
    def is_pickle(self) -> bool:
        return is_pickle_path(self.path)

    @property
    def is_safetensors(self) -> bool:
        return self.path.lower().endswith(".safetensors")


@dataclass(frozen=True)
class License:
    spdx: str
    file: str | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> License:
        spdx = _require(data, "spdx", str, "predicate.license")
        if not _SPDX.fullmatch(spdx):
            raise _fail("predicate.license.spdx", "an SPDX license expression", spdx)
        file = _optional(data, "file", str, "predicate.license")
        digest = data.get("sha256")
        if file is not None:
            check_relative_path(file, "predicate.license.file")
            check_hex_digest(digest, "predicate.license.sha256")
        elif "sha256" in data:
            raise _fail("predicate.license.sha256", "nothing unless license.file is set", digest)
        return cls(spdx, file, digest, _extra(data, {"spdx", "file", "sha256"}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spdx": self.spdx}
        if self.file is not None:
            out["file"] = self.file
            out["sha256"] = self.sha256
        return {**out, **self.extra}


@dataclass(frozen=True)
class Origin:
    publisher: str
    source_url: str | None = None
    source_revision: str | None = None
    notes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Origin:
        where = "predicate.origin"
        return cls(
            publisher=_require(data, "publisher", str, where),
            source_url=_optional(data, "source_url", str, where),
            source_revision=_optional(data, "source_revision", str, where),
            notes=_optional(data, "notes", str, where),
            extra=_extra(data, {"publisher", "source_url", "source_revision", "notes"}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"publisher": self.publisher}
        for key in ("source_url", "source_revision", "notes"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {**out, **self.extra}


@dataclass(frozen=True)
class LineageLink:
    relation: str
    ref: str
    manifest_digest: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> LineageLink:
        relation = _require(data, "relation", str, where)
        if relation not in LINEAGE_RELATIONS:
            raise _fail(f"{where}.relation", "one of " + ", ".join(sorted(LINEAGE_RELATIONS)), relation)
        digest = data.get("manifest_digest")
        if "manifest_digest" in data:
            check_hex_digest(digest, f"{where}.manifest_digest")
        ref = _require(data, "ref", str, where)
        name, _, version = ref.partition("@")
        try:
            check_model_name(name)
            if version:
                check_version(version)
        except ManifestError:
            raise _fail(f"{where}.ref", "NAMESPACE/NAME or NAMESPACE/NAME@VERSION", ref) from None
        return cls(
            relation,
            ref,
            digest,
            _extra(data, {"relation", "ref", "manifest_digest"}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"relation": self.relation, "ref": self.ref}
        if self.manifest_digest is not None:
            out["manifest_digest"] = self.manifest_digest
        return {**out, **self.extra}


@dataclass(frozen=True)
class TorrentBinding:
    """The BitTorrent v2 torrent every node derives from this manifest, pinned by info-hash."""

    piece_length: int
    info_hash_v2: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TorrentBinding:
        piece_length = _require(data, "piece_length", int, "predicate.torrent")
        if not MERKLE_BLOCK_SIZE <= piece_length <= MAX_PIECE_LENGTH or piece_length & (piece_length - 1):
            raise _fail(
                "predicate.torrent.piece_length",
                f"a power of two of at least {MERKLE_BLOCK_SIZE} and at most {MAX_PIECE_LENGTH}",
                piece_length,
            )
        info_hash = check_hex_digest(data.get("info_hash_v2"), "predicate.torrent.info_hash_v2")
        return cls(piece_length, info_hash, _extra(data, {"piece_length", "info_hash_v2"}))

    def to_dict(self) -> dict[str, Any]:
        return {"piece_length": self.piece_length, "info_hash_v2": self.info_hash_v2, **self.extra}


@dataclass(frozen=True)
class Manifest:
    """The signed statement about one version of one model."""

    name: str
    version: str
    created: datetime
    files: tuple[FileEntry, ...]
    license: License
    origin: Origin
    torrent: TorrentBinding
    lineage: tuple[LineageLink, ...] = ()
    expires: datetime | None = None
    allow_pickle: bool = False
    extra_predicate: dict[str, Any] = field(default_factory=dict)
    extra_statement: dict[str, Any] = field(default_factory=dict)

    # ---- identity -------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def torrent_name(self) -> str:
        """Top-level name in the torrent: deterministic, filesystem-safe."""
        return torrent_name(self.name, self.version)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise ManifestError(f"manifest of {self.ref} has no file {quote(path)}")

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and (now or datetime.now(UTC)) >= self.expires

    # ---- BitTorrent v2 binding --------------------------------------------------------
    def v2_info_dict(self) -> dict[str, Any]:
        return v2_info_dict(self.torrent_name, self.files, self.torrent.piece_length)

    def computed_info_hash_v2(self) -> str:
        return info_hash_v2(self.torrent_name, self.files, self.torrent.piece_length)

    # ---- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        subject = []
        for f in self.files:
            digest = {"sha256": f.sha256}
            if f.pieces_root is not None:
                digest[PIECES_ROOT_KEY] = f.pieces_root
            subject.append({"name": f.path, "digest": {**digest, **f.digest_extra}, **f.subject_extra})
        files = []
        for f in self.files:
            entry: dict[str, Any] = {"path": f.path, "size": f.size}
            for summary in (f.safetensors, f.gguf):
                if summary is not None:
                    entry[summary.KEY] = summary.to_dict()
            files.append({**entry, **f.extra})
        predicate: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "created": format_time(self.created),
        }
        if self.expires is not None:
            predicate["expires"] = format_time(self.expires)
        predicate["license"] = self.license.to_dict()
        predicate["origin"] = self.origin.to_dict()
        predicate["lineage"] = [link.to_dict() for link in self.lineage]
        predicate["files"] = files
        predicate["torrent"] = self.torrent.to_dict()
        if self.allow_pickle:
            predicate["allow_pickle"] = True
        return {
            "_type": STATEMENT_TYPE,
            "subject": subject,
            "predicateType": PREDICATE_TYPE,
            "predicate": {**predicate, **self.extra_predicate},
            **self.extra_statement,
        }

    def to_payload(self) -> bytes:
        """The exact bytes that get signed. DSSE signs bytes, so no canonical form is needed."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, ensure_ascii=False).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Manifest:
        return cls.from_dict(_json.load_object(payload, "manifest payload"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        if not isinstance(data, Mapping):
            raise _fail("(statement)", "a JSON object", data)
        if data.get("_type") != STATEMENT_TYPE:
            raise _fail("_type", STATEMENT_TYPE, data.get("_type"))
        if data.get("predicateType") != PREDICATE_TYPE:
            raise _fail("predicateType", PREDICATE_TYPE, data.get("predicateType"))
        subject = _require(data, "subject", list, "statement")
        pred = _require(data, "predicate", dict, "statement")
        if not subject or len(subject) > MAX_FILES_PER_MANIFEST:
            raise ManifestError(
                f"manifest field subject: expected 1 to {MAX_FILES_PER_MANIFEST} files, found {len(subject)}"
            )

        digests: dict[str, tuple[str, str | None, dict[str, Any], dict[str, Any]]] = {}
        order: list[str] = []
        for i, item in enumerate(subject):
            where = f"subject[{i}]"
            if not isinstance(item, dict):
                raise _fail(where, "an object with name and digest", item)
            path = check_relative_path(item.get("name"), f"{where}.name")
            digest = _require(item, "digest", dict, where)
            sha = check_hex_digest(digest.get("sha256"), f"{where}.digest.sha256")
            root = digest.get(PIECES_ROOT_KEY)
            if PIECES_ROOT_KEY in digest:
                check_hex_digest(root, f"{where}.digest.{PIECES_ROOT_KEY}")
            digest_extra = check_digest_set(digest, f"{where}.digest")
            if path in digests:
                raise UnsafePathError(f"subject: expected each path once, found {quote(path)} twice")
            digests[path] = (sha, root, digest_extra, _extra(item, {"name", "digest"}))
            order.append(path)
        check_path_set(order)

        raw_files = _require(pred, "files", list, "predicate")
        sizes: dict[str, tuple[int, dict[str, Summary], dict[str, Any]]] = {}
        for i, item in enumerate(raw_files):
            where = f"predicate.files[{i}]"
            if not isinstance(item, dict):
                raise _fail(where, "an object with path and size", item)
            path = check_relative_path(item.get("path"), f"{where}.path")
            size = _require(item, "size", int, where)
            if size < 0:
                raise _fail(f"{where}.size", "a size >= 0", size)
            summaries = {key: kind.from_dict(_require(item, key, dict, where), f"{where}.{key}")
                         for key, kind in SUMMARY_KINDS.items() if key in item}
            if len(summaries) > 1:
                raise ManifestError(f"manifest field {where}: expected at most one weights summary, found "
                                    f"{' and '.join(summaries)}")
            if path in sizes:
                raise UnsafePathError(f"predicate.files: expected each path once, found {quote(path)} twice")
            sizes[path] = (size, summaries, _extra(item, {"path", "size", *SUMMARY_KINDS}))
        if set(sizes) != set(digests):
            only_subject = sorted(set(digests) - set(sizes))
            only_files = sorted(set(sizes) - set(digests))
            raise ManifestError(
                "manifest: expected subject and predicate.files to list the same paths; "
                f"only in subject: {_paths(only_subject)}; only in files: {_paths(only_files)}"
            )

        files = []
        for path in order:
            sha, root, digest_extra, subject_extra = digests[path]
            size, summaries, extra = sizes[path]
            if (size == 0) != (root is None):
                raise ManifestError(
                    f"file {quote(path)}: expected a {PIECES_ROOT_KEY} digest exactly when the file is "
                    f"not empty; found size {size} and {'a' if root else 'no'} pieces root"
                )
            st = summaries.get(SafetensorsSummary.KEY)
            gg = summaries.get(GGUFSummary.KEY)
            files.append(FileEntry(path, size, sha, root, st if isinstance(st, SafetensorsSummary) else None, extra,
                                   subject_extra, digest_extra, gg if isinstance(gg, GGUFSummary) else None))

        name = check_model_name(_require(pred, "name", str, "predicate"))
        version = check_version(_require(pred, "version", str, "predicate"))
        created = parse_time(_require(pred, "created", str, "predicate"), "predicate.created")
        expires_raw = _optional(pred, "expires", str, "predicate")
        expires = parse_time(expires_raw, "predicate.expires") if expires_raw is not None else None
        allow_pickle = pred.get("allow_pickle", False)
        if not isinstance(allow_pickle, bool):
            raise _fail("predicate.allow_pickle", "true or false", allow_pickle)
        lineage_raw = pred.get("lineage", [])
        if not isinstance(lineage_raw, list):
            raise _fail("predicate.lineage", "a list", lineage_raw)
        if len(lineage_raw) > MAX_LINEAGE:
            raise _fail("predicate.lineage", f"at most {MAX_LINEAGE} links", lineage_raw)

        manifest = cls(
            name=name,
            version=version,
            created=created,
            files=tuple(files),
            license=License.from_dict(_require(pred, "license", dict, "predicate")),
            origin=Origin.from_dict(_require(pred, "origin", dict, "predicate")),
            torrent=TorrentBinding.from_dict(_require(pred, "torrent", dict, "predicate")),
            lineage=tuple(
                LineageLink.from_dict(link, f"predicate.lineage[{i}]") if isinstance(link, dict)
                else _raise(_fail(f"predicate.lineage[{i}]", "an object", link))
                for i, link in enumerate(lineage_raw)
            ),
            expires=expires,
            allow_pickle=allow_pickle,
            extra_predicate=_extra(pred, _PREDICATE_KEYS),
            extra_statement=_extra(data, {"_type", "subject", "predicateType", "predicate"}),
        )
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Cross-field rules, also applied to manifests built in code before signing."""
        check_model_name(self.name)
        check_version(self.version)
        for f in self.files:
            check_relative_path(f.path)
        check_path_set([f.path for f in self.files])
        if self.license.file is not None:
            entry = next((f for f in self.files if f.path == self.license.file), None)
            if entry is None or entry.sha256 != self.license.sha256:
                raise ManifestError(
                    f"license file {quote(self.license.file)}: expected a listed file with sha256 "
                    f"{self.license.sha256}, found "
                    + ("no such file" if entry is None else f"sha256 {entry.sha256}")
                )
        check_pickles([f.path for f in self.files], "list", f"manifest of {self.ref}", allowed=self.allow_pickle)
        computed = self.computed_info_hash_v2()
        if computed != self.torrent.info_hash_v2:
            raise ManifestError(
                "predicate.torrent.info_hash_v2: expected the v2 info-hash derived from the "
                f"listed files, {computed}, found {self.torrent.info_hash_v2}"
            )


_PREDICATE_KEYS = {
    "name", "version", "created", "expires", "license", "origin", "lineage", "files",
    "torrent", "allow_pickle",
}


# Lineage is informational; a base list this long is junk, not a merge.
MAX_LINEAGE = 1024


def _raise(exc: Exception) -> Any:
    raise exc


def is_pickle_path(path: str) -> bool:
    return any(path.lower().endswith(s) for s in PICKLE_SUFFIXES)


def check_pickles(paths: Sequence[str], use: Literal["publish", "list", "load"], subject: str, *,
                  allowed: bool = False) -> None:
    """The pickle rule, in one place. Pickle files run code when loaded, so a release lists
    them only if its publisher set allow_pickle (`publish` a directory; `list`: a manifest at
    admission, verify and check), and seedvault itself never loads one (`load`: never allowed)."""
    pickles = [p for p in paths if is_pickle_path(p)]
    if not pickles or (allowed and use != "load"):
        return
    if use == "publish":
        raise UnsafeWeightsError(
            f"{subject}: expected safetensors, found pickle files, which run code when loaded: {listing(pickles)}",
            hint="convert them to safetensors, or pass --allow-pickle to publish them anyway")
    if use == "load":
        raise UnsafeWeightsError(
            f"{subject}: refusing to load pickle files ({listing(pickles)}): they can run code when loaded",
            hint="seedvault never loads pickle; if you trust the publisher, load the files of snapshot_path yourself")
    raise UnsafeWeightsError(f"{subject} lists pickle files {_paths(pickles)}, which can run code when loaded; "
                             "expected none unless the publisher set allow_pickle")


def _paths(paths: Sequence[str], limit: int = 5) -> str:
    """A list of paths for a message: quoted, comma-separated, cut after `limit`."""
    if not paths:
        return "none"
    shown = ", ".join(quote(p) for p in paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def torrent_name(name: str, version: str) -> str:
    return f"{name.replace('/', '--')}--{version}"


def v2_info_dict(name: str, files: Sequence[FileEntry], piece_length: int) -> dict[str, Any]:
    """BEP 52 info dictionary: a file tree keyed by path components; leaves under key ''."""
    tree: dict[str, Any] = {}
    for f in files:
        node = tree
        parts = f.path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        leaf: dict[str, Any] = {"length": f.size}
        if f.pieces_root is not None:
            leaf["pieces root"] = bytes.fromhex(f.pieces_root)
        node[parts[-1]] = {"": leaf}
    return {"file tree": tree, "meta version": 2, "name": name, "piece length": piece_length}


def info_hash_v2(name: str, files: Sequence[FileEntry], piece_length: int) -> str:
    """SHA-256 of the bencoded v2 info dictionary: the torrent's v2 info-hash."""
    return hashlib.sha256(bencode(v2_info_dict(name, files, piece_length))).hexdigest()


@dataclass(frozen=True)
class Ref:
    """`namespace/name@version`, or `namespace/name` for the newest trusted version."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        name, sep, version = text.partition("@")
        try:
            check_model_name(name)
            if sep:
                check_version(version)
        except ManifestError as exc:
            raise UsageError(
                f"model reference: expected NAMESPACE/NAME or NAMESPACE/NAME@VERSION, found {quote(text)}",
                hint=str(exc),
            ) from None
        return cls(name, version if sep else None)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name
