"""The head: a model's second signed statement, pure data. No I/O.

A release never changes; what changes about a model afterwards is said by its **head**:
the latest version and its manifest digest, the versions yanked (with a reason each), a
sequence number that only grows, an issue time and an expiry. It is an in-toto Statement v1
in a DSSE envelope like a release, with its own predicateType; the normative text is in
`manifests/README.md` ("The head").

Who may sign one, and what a verifier remembers (the highest sequence seen, the content
publishers last signed) is decided in `signing/trusted.py`; this module only reads and
writes the statement, validating every field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from seedvault import _json
from seedvault._json import quote
from seedvault.errors import ManifestError
from seedvault.manifest import (
    STATEMENT_TYPE,
    _extra,
    _fail,
    _optional,
    _require,
    check_hex_digest,
    check_model_name,
    check_version,
    format_time,
    parse_time,
)

HEAD_PREDICATE_TYPE = "https://seedvault.dev/head/v1"
MAX_YANKS = 1024  # yanked versions one head lists
MAX_REASON_CHARS = 1000
MAX_SEQUENCE = 2**53 - 1  # exact in every JSON reader
# How long a head stays fresh unless the signer says otherwise: long enough for a release
# key kept offline, short enough that a registry withholding a newer head is noticed.
DEFAULT_HEAD_TTL = timedelta(days=30)


@dataclass(frozen=True)
class Yank:
    version: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Yank:
        if not isinstance(data, Mapping):
            raise _fail(where, "an object with version and reason", data)
        version = check_version(_require(data, "version", str, where))
        reason = _require(data, "reason", str, where)
        if not reason.strip() or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
            raise _fail(f"{where}.reason", f"a one-line reason of 1 to {MAX_REASON_CHARS} printable characters",
                        reason)
        return cls(version, reason)


@dataclass(frozen=True)
class Head:
    """What the publisher says about a model now."""

    name: str
    sequence: int
    issued: datetime
    expires_at: datetime
    latest_version: str
    latest_digest: str
    yanked: tuple[Yank, ...] = ()
    extra_predicate: dict[str, Any] = field(default_factory=dict)

    # ---- what the trust core needs of a statement ----------------------------------------
    @property
    def ref(self) -> str:
        return f"head of {self.name} (sequence {self.sequence})"

    @property
    def expires(self) -> datetime:
        return self.expires_at

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    # ---- reading it ------------------------------------------------------------------------
    def yank_reason(self, version: str) -> str | None:
        return next((y.reason for y in self.yanked if y.version == version), None)

    def content(self) -> tuple[str, str, tuple[Yank, ...]]:
        """What a head says, apart from when: a timestamp key may re-sign this, never change it."""
        return self.latest_version, self.latest_digest, tuple(sorted(self.yanked, key=lambda y: y.version))

    # ---- the next head ---------------------------------------------------------------------
    def successor(self, *, now: datetime | None = None, expires: datetime | None = None) -> Head:
        """The same content, signed again later: a higher sequence and a new expiry."""
        moment = (now or datetime.now(UTC)).replace(microsecond=0)
        return replace(self, sequence=next_sequence(self.sequence, moment), issued=moment,
                       expires_at=expires or moment + DEFAULT_HEAD_TTL)

    def with_yank(self, version: str, reason: str) -> Head:
        others = tuple(y for y in self.yanked if y.version != version)
        return replace(self, yanked=(*others, Yank(version, reason)))

    def without_yank(self, version: str) -> Head:
        return replace(self, yanked=tuple(y for y in self.yanked if y.version != version))

    # ---- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        predicate: dict[str, Any] = {
            "name": self.name,
            "sequence": self.sequence,
            "issued": format_time(self.issued),
            "expires": format_time(self.expires_at),
            "latest": {"version": self.latest_version, "manifest_digest": self.latest_digest},
            "yanked": [y.to_dict() for y in self.yanked],
        }
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": f"{self.name}@{self.latest_version}", "digest": {"sha256": self.latest_digest}}],
            "predicateType": HEAD_PREDICATE_TYPE,
            "predicate": {**predicate, **self.extra_predicate},
        }

    def to_payload(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Head:
        return cls.from_dict(_json.load_object(payload, "head payload"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Head:
        if not isinstance(data, Mapping):
            raise _fail("(statement)", "a JSON object", data)
        if data.get("_type") != STATEMENT_TYPE:
            raise _fail("_type", STATEMENT_TYPE, data.get("_type"))
        if data.get("predicateType") != HEAD_PREDICATE_TYPE:
            raise _fail("predicateType", HEAD_PREDICATE_TYPE, data.get("predicateType"))
        pred = _require(data, "predicate", dict, "statement")
        name = check_model_name(_require(pred, "name", str, "predicate"))
        sequence = _require(pred, "sequence", int, "predicate")
        if not 1 <= sequence <= MAX_SEQUENCE:
            raise _fail("predicate.sequence", f"an integer from 1 to {MAX_SEQUENCE}", sequence)
        issued = parse_time(_require(pred, "issued", str, "predicate"), "predicate.issued")
        expires = parse_time(_require(pred, "expires", str, "predicate"), "predicate.expires")
        if expires <= issued:
            raise _fail("predicate.expires", f"a time after issued ({format_time(issued)})", format_time(expires))
        latest = _require(pred, "latest", dict, "predicate")
        version = check_version(_require(latest, "version", str, "predicate.latest"))
        digest = check_hex_digest(latest.get("manifest_digest"), "predicate.latest.manifest_digest")
        yanked_raw = _optional(pred, "yanked", list, "predicate") or []
        if len(yanked_raw) > MAX_YANKS:
            raise _fail("predicate.yanked", f"at most {MAX_YANKS} yanked versions", f"{len(yanked_raw)} entries")
        yanked = tuple(Yank.from_dict(y, f"predicate.yanked[{i}]") for i, y in enumerate(yanked_raw))
        versions = [y.version for y in yanked]
        if len(set(versions)) != len(versions):
            dup = next(v for v in versions if versions.count(v) > 1)
            raise ManifestError(f"head field predicate.yanked: expected each version once, found {quote(dup)} twice")
        subject = _require(data, "subject", list, "statement")
        expected_subject = [{"name": f"{name}@{version}", "digest": {"sha256": digest}}]
        if subject != expected_subject:
            raise ManifestError(f"head of {name}: expected subject to name the latest release, {name}@{version} "
                                f"with sha256 {digest}, found something else")
        return cls(name, sequence, issued, expires, version, digest, yanked, _extra(pred, _PREDICATE_KEYS))


_PREDICATE_KEYS = {"name", "sequence", "issued", "expires", "latest", "yanked"}


def next_sequence(after: int, now: datetime) -> int:
    """A sequence above `after` that a signer on another machine, knowing nothing of
    `after`, also reaches: the issue time in seconds, or one more than `after`."""
    return min(max(after + 1, int(now.timestamp())), MAX_SEQUENCE)


def first_head(name: str, version: str, digest: str, *, now: datetime | None = None,
               expires: datetime | None = None, after: int = 0) -> Head:
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    return Head(name, next_sequence(after, moment), moment, expires or moment + DEFAULT_HEAD_TTL, version, digest)
