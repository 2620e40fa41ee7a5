"""A client following a node's log online: its checkpoint judged and held, proofs fetched,
and every entry read by a monitor proven to be in the signed tree.

The node is not trusted for any of it: its checkpoint must verify under a log key of the
local policy and extend the largest checkpoint this client saw (a consistency proof
built from the node's own tiles), and each entry a monitor reads must be proven in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seedvault.errors import ManifestError, UsageError
from seedvault.signing.policy import TrustPolicy
from seedvault.signing.trusted import check_consistent, judge_checkpoint
from seedvault.tlog.checkpoint import SignedCheckpoint
from seedvault.tlog.entry import LogEntry
from seedvault.tlog.memory import LogMemory
from seedvault.tlog.merkle import consistency_proof, inclusion_proof, leaf_hash, verify_inclusion
from seedvault.tlog.remote import LogReader
from seedvault.tlog.tiles import TILE_WIDTH, TileReader, decode_entries, entries_path

MAX_MONITOR_ENTRIES = 100_000  # entries one poll reads; the next poll goes on from there


@dataclass(frozen=True)
class Observed:
    signed: SignedCheckpoint
    log: str
    witnesses: tuple[str, ...]
    previous: tuple[int, bytes] | None  # what this client held before

    def to_dict(self) -> dict[str, object]:
        cp = self.signed.checkpoint
        return {"origin": cp.origin, "log": self.log, "tree_size": cp.size, "root_hash": cp.root.hex(),
                "witnesses": list(self.witnesses), "cosignatures": len(self.signed.note.signatures) - 1,
                "previous_size": self.previous[0] if self.previous else None, "verified": True}


def observe(memory: LogMemory, policy: TrustPolicy, reader: LogReader) -> Observed:
    """The node's checkpoint, judged, checked against the one held (split view), then held."""
    raw = reader.checkpoint()
    signed, label, witnesses = judge_checkpoint(raw, policy, f"{reader.base_url}/log/checkpoint")
    cp = signed.checkpoint
    held = memory.held(cp.origin)
    if held is not None and held != (cp.size, cp.root):
        proof = consistency_proof(TileReader(reader.tile, cp.size), held[0], cp.size) if cp.size > held[0] else []
        check_consistent(cp.origin, held, cp.size, cp.root, proof)
    memory.remember(cp.origin, cp.size, cp.root, signed.note.to_bytes())
    return Observed(signed, label, witnesses, held)


def fetch_proof(memory: LogMemory, reader: LogReader, digest: str) -> bytes:
    """The node's .tlog-proof of a release, kept beside the vault (judged when used)."""
    raw = reader.proof(digest)
    memory.save_proof(digest, raw)
    return raw


@dataclass
class MonitorReport:
    observed: Observed
    start: int
    checked: int = 0
    matches: list[tuple[int, LogEntry]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {**self.observed.to_dict(), "from": self.start, "checked": self.checked,
                "entries": [{"index": i, **e.to_dict()} for i, e in self.matches]}


def monitor(memory: LogMemory, policy: TrustPolicy, reader: LogReader, key: str,
            start: int | None = None) -> MonitorReport:
    """Every entry logged since the last poll (or `start`) that names signing key `key` (a
    key id or its prefix of 8+ hex digits); each entry read is proven in the checkpoint."""
    wanted = key.lower()
    if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
        raise UsageError(f"--key: expected a key id (at least 8 hex digits), found {key[:80]!s}")
    observed = observe(memory, policy, reader)
    cp = observed.signed.checkpoint
    first = memory.monitored(cp.origin, wanted) if start is None else start
    stop = min(cp.size, first + MAX_MONITOR_ENTRIES)
    report = MonitorReport(observed, first)
    tiles = TileReader(reader.tile, cp.size)
    for bundle in range(first // TILE_WIDTH, -(-stop // TILE_WIDTH)):
        width = min(TILE_WIDTH, cp.size - bundle * TILE_WIDTH)
        path = entries_path(bundle, width)
        entries = decode_entries(reader.tile(path), path)
        if len(entries) != width:
            raise ManifestError(f"{reader.base_url}/log/{path}: expected {width} entries, found {len(entries)}")
        for offset, raw in enumerate(entries):
            index = bundle * TILE_WIDTH + offset
            if not first <= index < stop:
                continue
            # The node may not swap or drop an entry: each one read is proven in the signed tree.
            verify_inclusion(leaf_hash(raw), index, cp.size, inclusion_proof(tiles, index, cp.size), cp.root)
            entry = LogEntry.parse(raw, f"{reader.base_url}/log/{path}, entry {index}")
            report.checked += 1
            if any(k.startswith(wanted) for k in entry.keys):
                report.matches.append((index, entry))
    memory.set_monitored(cp.origin, wanted, first + report.checked)
    return report
