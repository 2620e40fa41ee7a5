"""A registry node's log: its keys, its store, its witnesses, and what it logs.

The node calls `record` with what it admitted (a release, a head, an approval) on its
worker thread; the entry is sequenced by the store, then the new checkpoint goes to each
witness the node is configured with, bounded in time, and the cosignatures that verify
under the witnesses' keys are added to it. A witness that is down costs its timeout and
the checkpoint goes out with fewer cosignatures: logging never fails an admission after
the release is stored, it is caught up on the node's next pass (`catch_up`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seedvault.errors import Error, UsageError
from seedvault.signing.dsse import Envelope
from seedvault.tlog.entry import Kind, LogEntry, envelope_sha256
from seedvault.tlog.note import COSIGNATURE_V1, ED25519, Note, Signer, Verifier, load_or_create_signer
from seedvault.tlog.store import LogStore
from seedvault.tlog.witness import Witness, ask_witness

if TYPE_CHECKING:  # a runtime import would cycle: seedvault.registry imports the node, which imports this
    from seedvault.registry.database import Database

WITNESS_TIMEOUT = 5.0  # seconds per witness, per checkpoint
log = logging.getLogger("seedvault.registry.log")


@dataclass(frozen=True)
class LogSettings:
    origin: str | None  # None: the name in the key file, else `default_origin`
    default_origin: str
    witness_for: tuple[str, ...] = ()  # vkeys of the logs this node cosigns
    witnesses: tuple[str, ...] = ()  # "URL VKEY" of each witness this node asks to cosign
    key_file: Path | None = None  # the log key (relative: to config/ of the home); None: config/log.key


def parse_witnesses(entries: Iterable[str], where: str) -> list[tuple[str, Verifier]]:
    out = []
    for i, item in enumerate(entries):
        url, _, vkey = item.strip().partition(" ")
        if not url.startswith(("http://", "https://")) or not vkey.strip():
            raise UsageError(f"{where}: witnesses[{i}]: expected 'URL VKEY' (the witness's URL, a space, its "
                             f"verifier key), found {item[:100]!s}")
        verifier = Verifier.from_vkey(vkey.strip(), f"{where}: witnesses[{i}]")
        if verifier.kind != COSIGNATURE_V1:
            raise UsageError(f"{where}: witnesses[{i}]: expected a witness key (type 04), found a log key")
        out.append((url.rstrip("/"), verifier))
    return out


def parse_logs(vkeys: Iterable[str], where: str) -> list[Verifier]:
    out = []
    for i, vkey in enumerate(vkeys):
        verifier = Verifier.from_vkey(vkey, f"{where}: witness_for[{i}]")
        if verifier.kind != ED25519:
            raise UsageError(f"{where}: witness_for[{i}]: expected a log key (type 01), found a witness key")
        out.append(verifier)
    return out


def entry_for(kind: Kind, envelope: Envelope, name: str, label: str, keys: Iterable[str] | None = None) -> LogEntry:
    """The log entry of an admitted statement; `keys`: the signing keys it brought (default:
    every signature the envelope holds)."""
    signers = keys if keys is not None else (s.keyid for s in envelope.signatures)
    return LogEntry(kind, name, label, envelope.digest, envelope_sha256(envelope.to_json()),
                    tuple(sorted(set(signers))), int(time.time()))


def _existing_name(path: Path) -> str | None:
    try:
        return Signer.from_skey(path.read_text(), str(path)).name
    except (FileNotFoundError, UsageError, UnicodeDecodeError):
        return None


class NodeLog:
    """The node's log, kept in `database` (the index's): nodes sharing an index share it, so
    each must sign with the same log key (settings.key_file, a copy on every node); the
    store refuses a node whose key is not the one the log was created with."""

    def __init__(self, config_dir: Path, data_dir: Path, settings: LogSettings, database: Database) -> None:
        key_file = config_dir / (settings.key_file or "log.key")  # relative: to the home's config/
        origin = settings.origin or _existing_name(key_file) or settings.default_origin
        self.signer = load_or_create_signer(key_file, origin, ED25519)
        self.cosigner = load_or_create_signer(config_dir / "witness.key", origin + "/witness", COSIGNATURE_V1)
        legacy = data_dir / "tlog.db"  # where a node kept its log before it moved into the index's database
        self.store = LogStore(database, self.signer, legacy=legacy)
        if self.store.imported:
            # Committed: the old file is kept (renamed) as a backup, and is not imported again.
            for suffix in ("", "-wal", "-shm"):
                old = legacy.with_name(legacy.name + suffix)
                if old.exists():
                    old.rename(old.with_name(old.name + ".imported"))
            log.info("transparency log imported from %s into %s", legacy, database.where)
        self.witnesses = parse_witnesses(settings.witnesses, "node config")
        self._witness_sizes: dict[str, int] = {}  # what each witness last cosigned, as it told us
        follows = parse_logs(settings.witness_for, "node config")
        self.witness = Witness(data_dir / "witness.db", self.cosigner, follows) if follows else None

    @property
    def vkey(self) -> str:
        return self.signer.verifier.vkey

    @property
    def witness_vkey(self) -> str:
        return self.cosigner.verifier.vkey

    def close(self) -> None:
        self.store.close()
        if self.witness is not None:
            self.witness.close()

    def record(self, kind: Kind, envelope: Envelope, name: str, label: str,
               keys: Iterable[str] | None = None) -> None:
        self.record_entries([entry_for(kind, envelope, name, label, keys)])

    def record_entries(self, entries: list[LogEntry]) -> None:
        """Sequence the entries in one transaction, then collect cosignatures once."""
        if entries:
            self.store.append(entries)
            self.cosign()

    def has(self, digest: str, kind: Kind = "release") -> bool:
        return self.store.has(digest, kind)

    def cosign(self) -> None:
        """Ask every witness to cosign the latest checkpoint (bounded; failures are logged)."""
        if not self.witnesses:
            return
        note = self.store.checkpoint()
        size = int(Note.parse(note, "checkpoint").text.split("\n")[1])
        got = []
        for url, verifier in self.witnesses:
            old = self._witness_sizes.get(url, 0)
            try:
                for _attempt in range(2):  # a wrong `old` is answered with the right one: one retry
                    proof = self.store.consistency(old, size) if 0 < old <= size else []
                    sig, theirs = ask_witness(url, verifier, old, proof, note, WITNESS_TIMEOUT)
                    if sig is not None:
                        got.append(sig)
                        self._witness_sizes[url] = size
                        break
                    assert theirs is not None
                    if theirs > size:
                        raise UsageError(f"witness {url} has cosigned {theirs} entries of this log, more than "
                                         f"it has ({size}): the log lost entries, or another log uses its key")
                    old = theirs
            except Error as exc:
                log.warning("witness %s did not cosign checkpoint %d: %s", url, size, exc)
        if got:
            self.store.add_cosignatures(size, tuple(got))
