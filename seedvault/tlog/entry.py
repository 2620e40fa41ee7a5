"""What a registry node logs: one entry per admitted release, head and approval.

An entry is a few lines of text, so anyone reading the log's entry bundles can read it:

    seedvault.dev/tlog-entry/v1
    kind release                      (release | head | approval)
    name acme/tiny
    version 1.0.0                     (releases and approvals; a head names its sequence)
    digest <hex>                      the statement's digest: SHA-256 of the DSSE payload
    envelope <hex>                    SHA-256 of the envelope (JSON) as the node admitted it
    key <hex key id>                  one line per signing key counted (sorted)
    time <unix seconds>               the node's clock when it admitted it
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from seedvault._text import quote
from seedvault.errors import ManifestError

HEADER = "seedvault.dev/tlog-entry/v1"
Kind = Literal["release", "head", "approval"]
KINDS: tuple[Kind, ...] = ("release", "head", "approval")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LABEL = re.compile(r"[A-Za-z0-9._+!@/-]{1,200}")
MAX_KEYS = 64


@dataclass(frozen=True)
class LogEntry:
    kind: Kind
    name: str
    label: str  # the version of a release or approval; the sequence of a head
    digest: str
    envelope: str
    keys: tuple[str, ...]
    time: int

    @property
    def ref(self) -> str:
        return f"{self.name}#{self.label}" if self.kind == "head" else f"{self.name}@{self.label}"

    def to_bytes(self) -> bytes:
        label = "sequence" if self.kind == "head" else "version"
        lines = [HEADER, f"kind {self.kind}", f"name {self.name}", f"{label} {self.label}",
                 f"digest {self.digest}", f"envelope {self.envelope}",
                 *(f"key {k}" for k in sorted(self.keys)), f"time {self.time}"]
        return "".join(line + "\n" for line in lines).encode()

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ref": self.ref, "name": self.name, "digest": self.digest,
                "envelope_sha256": self.envelope, "keys": list(self.keys), "time": self.time}

    @classmethod
    def parse(cls, raw: bytes, where: str) -> LogEntry:
        try:
            lines = raw.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise ManifestError(f"{where}: expected a seedvault log entry (ASCII text), found other bytes") from None
        if len(lines) < 8 or lines[0] != HEADER or lines[-1] != "":
            raise ManifestError(f"{where}: expected a log entry starting {quote(HEADER)}, found something else")
        fields = [line.partition(" ") for line in lines[1:-1]]
        keys = tuple(v for k, _, v in fields if k == "key")
        named = {k: v for k, _, v in fields if k != "key"}
        kind = named.get("kind")
        label = named.get("sequence" if kind == "head" else "version", "")
        wanted = ["kind", "name", "sequence" if kind == "head" else "version", "digest", "envelope", "time"]
        if (kind not in KINDS or sorted(named) != sorted(wanted) or len(fields) != len(wanted) + len(keys)
                or not _LABEL.fullmatch(named["name"]) or not _LABEL.fullmatch(label)
                or not all(_HEX64.fullmatch(named[f]) for f in ("digest", "envelope"))
                or not all(_HEX64.fullmatch(k) for k in keys) or len(keys) > MAX_KEYS
                or not named["time"].isdigit() or len(named["time"]) > 12):
            raise ManifestError(f"{where}: expected the fields {', '.join(wanted)} and key lines of a log entry, "
                                "found others or malformed values")
        return cls(kind, named["name"], label, named["digest"], named["envelope"], keys, int(named["time"]))


def envelope_sha256(envelope_json: bytes) -> str:
    return hashlib.sha256(envelope_json).hexdigest()
