"""C2SP tlog-witness v1.0.0: cosigning other logs' checkpoints, and asking witnesses to.

A witness keeps, per log it follows, the largest checkpoint it has cosigned. A log POSTs
`<prefix>/add-checkpoint` with

    old <size the witness last cosigned, 0 at first>
    <consistency proof from that size, one base64 hash a line>

    <the new checkpoint, a signed note>

and the witness cosigns only a checkpoint signed by the log's key and consistent with what
it cosigned before: a log that rewrites its history (a fork shown to some clients) cannot
get the cosignatures that clients requiring witnesses insist on. A wrong `old` is answered
409 with the witness's size (`text/x.tlog.size`), for the log to retry.
"""

from __future__ import annotations

import base64
import binascii
import threading
import urllib.error
import urllib.request
from pathlib import Path

from seedvault._sqlite import open_database
from seedvault._text import quote
from seedvault.errors import ManifestError, NotFoundError, OldSizeConflict, TransferError, UsageError
from seedvault.tlog.checkpoint import open_checkpoint
from seedvault.tlog.merkle import MAX_PROOF_HASHES, verify_consistency
from seedvault.tlog.note import Note, NoteSignature, Signer, Verifier
from seedvault.tlog.store import now

MAX_REQUEST = 64 * 1024 + MAX_PROOF_HASHES * 48
MAX_ANSWER = 16 * 1024
SIZE_TYPE = "text/x.tlog.size"
SCHEMA = "CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL);"


def parse_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    if len(body) > MAX_REQUEST:
        raise UsageError(f"add-checkpoint: expected at most {MAX_REQUEST:,} bytes, found {len(body):,}")
    head, sep, note = body.partition(b"\n\n")
    try:
        lines = head.decode("ascii").split("\n")
        if not sep or not lines[0].startswith("old ") or not lines[0][4:].isdigit() or len(lines[0]) > 24:
            raise ValueError("old")
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise UsageError("add-checkpoint: expected 'old <size>', base64 proof lines, a blank line and a "
                         "checkpoint, found something else") from None
    if len(proof) > MAX_PROOF_HASHES:
        raise UsageError(f"add-checkpoint: expected at most {MAX_PROOF_HASHES} proof hashes, found {len(proof)}")
    return int(lines[0][4:]), proof, note


def request_body(old: int, proof: list[bytes], note: bytes) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + note


class Witness:
    """This node as a witness: its cosigner key and the logs it follows (their vkeys)."""

    def __init__(self, path: Path, signer: Signer, logs: list[Verifier]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_database(path, SCHEMA)
        self.db.execute("PRAGMA synchronous=FULL")  # never cosign twice from a forgotten state
        self.signer = signer
        self.logs = {v.name: v for v in logs}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    def add_checkpoint(self, body: bytes) -> bytes:
        """Cosign the checkpoint of a request, or raise (see the module's doc for which)."""
        old, proof, raw = parse_request(body)
        origin = Note.parse(raw, "add-checkpoint: checkpoint").text.partition("\n")[0]
        log = self.logs.get(origin)
        if log is None:
            raise NotFoundError(f"add-checkpoint: this witness does not follow the log {quote(origin[:100])}")
        signed = open_checkpoint(raw, log, [], "add-checkpoint: checkpoint")
        cp = signed.checkpoint
        if old > cp.size:
            raise UsageError(f"add-checkpoint: old size {old} is above the checkpoint's size {cp.size}")
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute("SELECT size, root FROM logs WHERE origin = ?", (origin,)).fetchone()
                size, root = (int(row[0]), bytes(row[1])) if row else (0, b"")
                if old != size:
                    raise OldSizeConflict(f"add-checkpoint: expected old {size} (the size this witness cosigned "
                                          f"for {origin}), found {old}", size)
                if row is not None:
                    verify_consistency(size, cp.size, proof, root, cp.root)  # a fork: ProofError, 422
                self.db.execute("INSERT OR REPLACE INTO logs VALUES (?, ?, ?)", (origin, cp.size, cp.root))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return self.signer.sign(cp.text, now()).line().encode()


def ask_witness(url: str, witness: Verifier, old: int, proof: list[bytes], note: bytes,
                timeout: float) -> tuple[NoteSignature | None, int | None]:
    """POST a checkpoint to a witness: its cosignature (checked against its key), or the
    size it holds when `old` was wrong. TransferError when it cannot be reached or refuses."""
    request = urllib.request.Request(url.rstrip("/") + "/add-checkpoint", data=request_body(old, proof, note),
                                     method="POST", headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # URLs from the node config
            answer = resp.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 409 and exc.headers.get_content_type() == SIZE_TYPE:
            text = exc.read(64).decode("ascii", "replace").strip()
            if text.isdigit():
                return None, int(text)
        raise TransferError(f"witness {url}: refused the checkpoint (HTTP {exc.code})") from None
    except (OSError, urllib.error.URLError) as exc:
        raise TransferError(f"witness {url}: could not be reached ({exc})") from None
    if len(answer) > MAX_ANSWER:
        raise TransferError(f"witness {url}: expected a short answer, found more than {MAX_ANSWER:,} bytes")
    text = Note.parse(note, "checkpoint").text
    for line in answer.decode("utf-8", "replace").splitlines():
        try:
            sig = Note.parse(("x\n\n" + line + "\n").encode(), f"witness {url}").signatures[0]
        except ManifestError:
            continue
        if witness.matches(sig):
            witness.check(text, sig)
            return sig, None
    raise TransferError(f"witness {url}: expected a cosignature by {witness.name}, found none in its answer")
