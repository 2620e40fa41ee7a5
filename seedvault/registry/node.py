"""The registry node's state and operations, free of HTTP: the handlers stay thin.

Everything that touches the vault, the index or the swarm runs here, synchronously, on
one worker thread (see app.py), so the SQLite connections and libtorrent calls are never
used concurrently. Trust decisions are the node's policy's, through Client.judge.
"""

from __future__ import annotations

import errno
import hmac
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedvault import housekeeping
from seedvault._text import quote
from seedvault.client import Client
from seedvault.errors import (
    BusyError,
    Error,
    InsufficientStorageError,
    IntegrityError,
    NotFoundError,
    PolicyError,
    RemovedError,
    RollbackError,
    TransferError,
    UnauthorizedError,
    UsageError,
)
from seedvault.head import Head
from seedvault.manifest import Manifest, check_model_name, check_relative_path, check_version
from seedvault.p2p import Swarm, SwarmConfig, format_endpoint, torrent_bytes
from seedvault.registry import shared
from seedvault.registry.config import NodeConfig
from seedvault.registry.index import Index, Release, index_yanks
from seedvault.registry.tracker import Tracker, tracker_hash
from seedvault.signing import Envelope, TrustPolicy, Verdict, evaluate
from seedvault.swarming import start_seeding, stored_layers
from seedvault.tlog.service import LogSettings, NodeLog, entry_for

# Seconds without a request before an unfinished upload is dropped, and the suffix of upload
# staging under the vault's incoming/ (pulls use other names there): `gc` keeps the same rules.
UPLOAD_TTL = housekeeping.UPLOAD_TTL
STAGING_SUFFIX = housekeeping.UPLOAD_STAGING_SUFFIX
# What a full disk or a file-size limit looks like: the client is told, nothing half-written is kept.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
UNSEEDABLE_RETRY = 600.0  # seconds before a release that failed verification is checked again
log = logging.getLogger("seedvault.registry")


@dataclass
class _Upload:
    envelope: Envelope
    verdict: Verdict
    staging: Path
    token: str  # the pusher's secret: only it may add files to, or abort, this session
    parts: Path  # each PUT's temporary file, beside (never inside) the staging that is verified
    received: set[str] = field(default_factory=set)
    touched: float = field(default_factory=time.monotonic)


def screen(raw: bytes, source: str, policy_file: Path | None) -> Envelope:
    """An envelope from outside, parsed (at most MAX_SIGNATURES signatures) and, given the
    policy file of a node, judged under that policy alone (an approval carries no publisher
    signature: it is judged when merged, so it gets None).

    Touches no vault, index or open handle: the node runs it in a process of its own (see
    app.py), so parsing a pile of junk never holds the GIL its searches need."""
    envelope = Envelope.from_json(raw, source)
    if policy_file is not None:
        evaluate(envelope, TrustPolicy.load(policy_file))
    return envelope


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.client = Client(config.home)
        self.index = Index(self.client.paths.data_dir / "registry.db", config.database_url)
        self.tracker = Tracker()
        self.swarm: Swarm | None = None
        self._uploads: list[_Upload] = []  # bounded by config.max_uploads
        self._envelopes: dict[tuple[str, str], bytes] = {}  # hot path of GET .../envelope
        self._seeding: dict[str, Any] = {}  # ref -> libtorrent handle of the node's own seed
        self._unseedable: dict[str, float] = {}  # ref -> when seeding it was refused (damaged)
        self._info_hashes: dict[str, bytes] = {}  # digest -> tracker info-hash of each indexed release
        try:
            self.log = NodeLog(self.client.paths.config_dir, self.client.paths.data_dir, LogSettings(
                config.log_origin, config.base_url.split("://", 1)[-1], config.witness_for, config.witnesses,
                config.log_key), self.index.database)
        except BaseException:
            self.index.close()  # e.g. refused: another log key than the shared log's
            self.client.close()
            raise
        self._reindex()
        self._log_unlogged()
        self._sweep_staging()
        self._sync_tracker()

    def _reindex(self) -> None:
        """Index whatever the vault holds that the node's policy accepts (e.g. after restart)."""
        known = self.index.digests() | self.index.removed()
        for entry in self.client.vault.entries():
            if entry.digest in known:
                continue
            try:
                verdict = evaluate(entry.envelope, self.client.policy)
                self.index.put(entry.manifest, verdict, entry.envelope)
            except Error:  # not acceptable under the current policy, or removed: not listed
                continue
        if self.index.shared:  # tell the other nodes which releases this one can serve the bytes of
            self._announce()
            for digest in self.index.digests():
                if self.client.vault.has(digest):
                    self.index.hold(digest, self.config.base_url)

    # ---- lifecycle ------------------------------------------------------------------------
    def start_swarm(self) -> None:
        if not self.config.seed:
            return
        self.swarm = Swarm(SwarmConfig(listen=self.config.swarm_listen))
        refs = [f"{r.name}@{r.version}" for r in self.index.search(limit=100_000, include_yanked=True)]
        if refs:
            self._start_seeding(refs)

    def _start_seeding(self, refs: list[str]) -> None:
        assert self.swarm is not None
        report = start_seeding(self.client, self.swarm, refs)
        self._seeding.update(report.handles)
        now = time.monotonic()
        for ref, reason in report.refused:
            self._unseedable[ref] = now
            log.warning("not seeding %s: %s", ref, reason)
        for ref in report.seeding:
            self._announce_self(ref)

    def pump(self) -> None:
        if self.swarm is not None:
            self.swarm.pop_alerts()

    def refresh(self) -> None:
        """Periodic housekeeping: seed releases indexed behind the node's back (a `seedvault
        mirror --once` run on its home), and drop uploads abandoned for UPLOAD_TTL."""
        if self.swarm is not None:
            listed = [f"{r.name}@{r.version}" for r in self.index.search(limit=100_000, include_yanked=True)]
            now = time.monotonic()
            # A release refused as damaged is re-checked now and then, not on every pass.
            new = [ref for ref in listed if ref not in self._seeding
                   and now - self._unseedable.get(ref, -UNSEEDABLE_RETRY) >= UNSEEDABLE_RETRY]
            if new:
                self._start_seeding(new)
        self._drop_idle_uploads()
        self._sweep_staging()
        if self.index.shared:
            self._announce()
            shared.adopt(self)
        self._sync_tracker()
        self.free_removed()
        self._log_unlogged()

    def _announce(self) -> None:
        """Heartbeat in the shared index: the other nodes fetch from nodes heard from lately."""
        swarm = format_endpoint(self.swarm.endpoint) if self.swarm is not None else None
        self.index.announce(self.config.base_url, swarm)

    def seeding_refs(self) -> set[str]:
        return set(self._seeding)

    def stop_seeding(self, ref: str) -> None:
        handle = self._seeding.pop(ref, None)
        if handle is not None and self.swarm is not None:
            self.swarm.remove(handle)

    def _log_unlogged(self) -> None:
        """Log releases indexed but not yet logged (a mirror run on this home, a crash between
        admission and logging): everything the node serves is in its log."""
        missing = []
        for release in self.index.search(limit=100_000, include_yanked=True):
            if not self.log.has(release.digest):
                try:
                    envelope = self.client.vault.get(release.digest).envelope
                except Error:
                    continue
                missing.append(entry_for("release", envelope, release.name, release.version))
        self.log.record_entries(missing)

    def log_proof(self, digest: str) -> str:
        return self.log.store.proof(digest).to_bytes().decode()

    def _sync_tracker(self) -> None:
        """The tracker keeps swarms for exactly the releases indexed (yanked ones still serve)."""
        digests = self.index.digests()
        for digest in digests - self._info_hashes.keys():
            try:
                self._info_hashes[digest] = tracker_hash(self.client.vault.get(digest).manifest)
            except Error:  # a damaged stored release: not served, so not tracked
                continue
        for digest in self._info_hashes.keys() - digests:
            del self._info_hashes[digest]
        self.tracker.serve(self._info_hashes.values())

    def close(self) -> None:
        if self.swarm is not None:
            self.swarm.close()
            self.swarm = None
        for upload in list(self._uploads):
            self._drop(upload)
        self.log.close()  # before the index: the log's tables are in the index's database
        self.index.close()
        self.client.close()

    def _announce_self(self, ref: str) -> None:
        if self.swarm is None:
            return
        entry = self.client.vault.resolve(ref)
        host, port = self.swarm.endpoint
        self.tracker.add_static(tracker_hash(entry.manifest), host, port)

    def seed_ref(self, ref: str) -> None:
        if self.swarm is not None and ref not in self._seeding:
            self._start_seeding([ref])

    # ---- reading ------------------------------------------------------------------------
    def release(self, name: str, version: str) -> Release:
        check_model_name(name)
        check_version(version)
        release = self.index.get(name, version)
        if release is None:
            raise NotFoundError(f"{name}@{version} is not on this registry")
        return release

    def cached_envelope(self, name: str, version: str) -> bytes | None:
        """The envelope if already served once; safe from the event loop (a dict lookup).
        Never with a shared index: another node may have merged an approval since."""
        return None if self.index.shared else self._envelopes.get((name, version))

    def envelope_bytes(self, name: str, version: str) -> bytes:
        if self.index.shared:
            return self.envelope(self.release(name, version).digest).to_json()
        key = (name, version)
        cached = self._envelopes.get(key)
        if cached is None:
            release = self.release(name, version)
            cached = self._envelopes[key] = self.client.vault.get(release.digest).envelope.to_json()
        return cached

    def envelope(self, digest: str) -> Envelope:
        """The release's current envelope: the shared index's (a node may not hold the release
        yet, or may not have merged the latest approval), else the vault's."""
        if self.index.shared:
            raw = self.index.envelope(digest)
            if raw is not None:
                return Envelope.from_json(raw, "envelope in the registry index")
        return self.client.vault.get(digest).envelope

    def detail(self, name: str, version: str) -> dict[str, Any]:
        release = self.release(name, version)
        verdict = evaluate(self.envelope(release.digest), self.client.policy)
        return {
            **release.to_dict(),
            "verdict": verdict.to_dict(),
            "statement": verdict.manifest.to_dict(),
            "links": {
                "envelope": f"{self.config.base_url}/v1/models/{name}/{version}/envelope",
                "torrent": f"{self.config.base_url}/v1/models/{name}/{version}/torrent",
                "web_seed": self.web_seed_url(release.digest),
            },
        }

    def web_seed_url(self, digest: str) -> str:
        return f"{self.config.base_url}/webseed/{digest}/"

    def torrent(self, name: str, version: str) -> tuple[str, bytes]:
        release = self.release(name, version)
        if not self.client.vault.has(release.digest):  # another node of the registry holds it
            return shared.torrent_from_holders(self, release)
        manifest = self.client.vault.get(release.digest).manifest
        data = torrent_bytes(manifest, stored_layers(self.client, manifest),
                             web_seeds=[self.web_seed_url(release.digest)],
                             trackers=[f"{self.config.base_url}/announce"])
        return manifest.torrent_name, data

    def web_seed_file(self, digest: str, tail: str) -> Path:
        """The snapshot file a web-seed request names: `<torrent name>/<path>`, or `<path>`
        alone for a single-file torrent (libtorrent names those after the file)."""
        if not self.index.has(digest):
            raise NotFoundError(f"no release with digest {digest} on this registry")
        if not self.client.vault.has(digest):
            raise NotFoundError(f"this node does not hold the bytes of {digest} yet; the other nodes of the "
                                "registry do", hint="use the torrent's other web seeds and peers")
        manifest = self.client.vault.get(digest).manifest
        prefix = manifest.torrent_name + "/"
        path = tail[len(prefix):] if tail.startswith(prefix) else tail
        check_relative_path(path, "web seed path")
        if path not in {f.path for f in manifest.files}:
            raise NotFoundError(f"{manifest.ref} has no file {quote(path)}")
        return self.client.vault.snapshot_dir(manifest) / path

    # ---- publishing -------------------------------------------------------------------------
    # An upload is a session owned by whoever opened it: `POST /v1/envelopes` answers a
    # secret token that every later step must present, so nobody else can touch its files.
    # Each PUT writes a temporary file of its own; only the node worker moves a complete one
    # into the session's staging, and admission (verify, then rename into the vault) runs on
    # that same worker, so no request can write to a file once it is being verified.

    def begin_upload(self, envelope: Envelope) -> dict[str, Any]:
        """Step 1: the envelope (see `screen`). Judged with the vault's memory before any
        byte is accepted."""
        verdict = self.client.judge(envelope)
        manifest = verdict.manifest
        if self.index.is_removed(envelope.digest, manifest.name, manifest.version):
            raise RemovedError(f"{manifest.ref} was removed from this registry by its admin; "
                               "expected a release that was not removed, found a removed one",
                               hint="ask the registry's admin to lift the removal first")
        listed = self.index.get(manifest.name, manifest.version)
        if listed is not None and listed.digest != envelope.digest:
            # This vault may never have seen it: another node of the registry admitted it.
            raise RollbackError(f"{manifest.ref}: this registry lists digest {listed.digest} under that name and "
                                f"version; found digest {envelope.digest}",
                                hint="a release never changes: publish a new version instead")
        if self.index.has(envelope.digest):
            # The release is here: what the push can still bring is signatures (an approval,
            # another publisher key's), merged if this node's policy counts them.
            if self.index.shared:
                added = shared.merge_signatures(self, envelope, "approval")
                return {"digest": envelope.digest, "status": "present", "needed": [], "signatures_added": added}
            added = self._merge_pushed_signatures(envelope, manifest)
            return {"digest": envelope.digest, "status": "present", "needed": [], "signatures_added": added}
        self._check_capacity(manifest)
        token = secrets.token_urlsafe(32)
        session = f"{envelope.digest}.{secrets.token_hex(8)}"
        staging = self.client.vault.incoming / f"{session}{STAGING_SUFFIX}"
        parts = self.client.vault.incoming / f"{session}.parts{STAGING_SUFFIX}"
        staging.mkdir(parents=True)
        parts.mkdir()
        self._uploads.append(_Upload(envelope, verdict, staging, token, parts))
        needed = [{"path": f.path, "size": f.size} for f in manifest.files]
        return {"digest": envelope.digest, "status": "uploading", "needed": needed, "upload_token": token,
                "upload_url": f"{self.config.base_url}/v1/uploads/{envelope.digest}/"}

    def _check_capacity(self, manifest: Manifest) -> None:
        """Refuse a new upload the node could not hold: too many sessions, the staging quota,
        or the free disk space (507 before a byte is sent, rather than a disk full later)."""
        self._drop_idle_uploads()
        if len(self._uploads) >= self.config.max_uploads:
            raise BusyError(f"this registry has {len(self._uploads)} uploads in progress, its bound; "
                            "expected fewer", hint="retry in a few minutes")
        staged = sum(u.verdict.manifest.total_size for u in self._uploads)
        quota = self.config.max_staging_bytes
        if quota is not None and staged + manifest.total_size > quota:
            raise InsufficientStorageError(
                f"{manifest.ref}: needs {manifest.total_size} bytes of upload staging; this registry allows "
                f"{quota} at once and {staged} are in use",
                hint="retry later, or ask the admin to raise max_staging_bytes")
        free = shutil.disk_usage(self.client.vault.incoming).free
        if free < manifest.total_size:
            raise InsufficientStorageError(
                f"{manifest.ref}: needs {manifest.total_size} bytes, the registry's disk has {free} free",
                hint="ask the registry's admin to free disk space")

    def _session(self, digest: str, token: str | None) -> _Upload:
        """The caller's own upload session; the token is compared in constant time."""
        if token is None:
            raise UnauthorizedError(f"upload {digest}: expected 'Authorization: Bearer <upload token>' "
                                    "(from POST /v1/envelopes), found none")
        presented = token.encode("utf-8", "surrogateescape")
        match = None
        for upload in self._uploads:
            if upload.envelope.digest == digest and hmac.compare_digest(presented, upload.token.encode()):
                match = upload
        if match is None:
            raise NotFoundError(f"no upload in progress for digest {digest} under this token",
                                hint="POST the envelope to /v1/envelopes to start one (an upload idle for "
                                     f"{int(UPLOAD_TTL)} s is dropped)")
        match.touched = time.monotonic()
        return match

    def upload_part(self, digest: str, path: str, token: str | None) -> tuple[Path, int]:
        """A fresh temporary file for one PUT of `path`, and the exact size the manifest allows."""
        upload = self._session(digest, token)
        check_relative_path(path, "upload path")
        entry = next((f for f in upload.verdict.manifest.files if f.path == path), None)
        if entry is None:
            raise IntegrityError(f"{upload.verdict.manifest.ref} lists no file {quote(path)}; refusing the upload")
        return upload.parts / secrets.token_hex(8), entry.size

    def file_received(self, digest: str, path: str, token: str | None, part: Path) -> dict[str, Any]:
        """Step 2: after each file, its complete temporary copy is moved into the session's
        staging. When all files are in, verify and admit, atomically."""
        upload = self._session(digest, token)
        manifest = upload.verdict.manifest
        if self.index.has(digest):  # another pusher's session published the same release first
            self._drop(upload)
            return {"digest": digest, "status": "present", "ref": manifest.ref}
        if self.index.is_removed(digest, manifest.name, manifest.version):  # removed while uploading
            self._drop(upload)
            raise RemovedError(f"{manifest.ref} was removed from this registry by its admin during the upload",
                               hint="ask the registry's admin to lift the removal first")
        target = upload.staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        upload.received.add(path)
        missing = [f.path for f in manifest.files if f.path not in upload.received]
        if missing:
            return {"digest": digest, "status": "uploading", "needed": missing}
        try:
            admitted = self.client.admit_staged(upload.envelope, upload.verdict, upload.staging)
        except OSError as exc:
            raise storage_error(exc, manifest.ref) from None
        finally:
            self._drop(upload)
        self.index.put(manifest, admitted.verdict, admitted.envelope)
        if self.index.shared:
            self.index.hold(digest, self.config.base_url)
        self.log.record("release", admitted.envelope, manifest.name, manifest.version)
        self._index_yanks(manifest.name)
        self.tracker.add_hash(tracker_hash(manifest))
        self.seed_ref(manifest.ref)
        return {"digest": digest, "status": "published", "ref": manifest.ref, "verdict": admitted.verdict.to_dict(),
                "tlog_proof": self.log_proof(digest)}

    def abort_upload(self, digest: str, token: str | None) -> dict[str, Any]:
        """The pusher gives up its own session (nobody else can)."""
        self._drop(self._session(digest, token))
        return {"digest": digest, "status": "aborted"}

    def _drop(self, upload: _Upload) -> None:
        if upload in self._uploads:
            self._uploads.remove(upload)
        shutil.rmtree(upload.staging, ignore_errors=True)
        shutil.rmtree(upload.parts, ignore_errors=True)

    def _drop_idle_uploads(self) -> None:
        now = time.monotonic()
        for upload in [u for u in self._uploads if now - u.touched > UPLOAD_TTL]:
            self._drop(upload)

    def _sweep_staging(self) -> None:
        """Upload staging no live session owns and untouched for UPLOAD_TTL (a crash, a kill)
        goes: sessions live in memory, so nothing else will ever finish it."""
        live = {u.staging for u in self._uploads} | {u.parts for u in self._uploads}
        cutoff = time.time() - UPLOAD_TTL
        for staging in self.client.vault.incoming.glob(f"*{STAGING_SUFFIX}"):
            if staging not in live and _newest_mtime(staging) < cutoff:
                shutil.rmtree(staging, ignore_errors=True)

    def _merge_pushed_signatures(self, envelope: Envelope, manifest: Manifest) -> int:
        stored = {s.keyid for s in self.client.vault.get(envelope.digest).envelope.signatures}
        if not {s.keyid for s in envelope.signatures} - stored:
            return 0
        try:
            merged = self.client.merge_signatures(envelope)
        except PolicyError:  # nothing new that counts here: the release stays as it was
            return 0
        self.index.put(manifest, evaluate(merged, self.client.policy))
        self._envelopes.pop((manifest.name, manifest.version), None)
        self.log.record("approval", merged, manifest.name, manifest.version,
                        {s.keyid for s in merged.signatures} - stored)
        return len(merged.signatures) - len(stored)

    # ---- heads ------------------------------------------------------------------------------
    def heads(self, name: str) -> list[dict[str, Any]]:
        """The model's head, and the publisher-signed head it refreshes when that is another."""
        check_model_name(name)
        if self.index.shared:
            shared.adopt_head(self, name)
        envelopes = self.client.head_envelopes(name)
        if not envelopes:
            raise NotFoundError(f"{name} has no signed head on this registry")
        return [e.to_dict() for e in envelopes]

    def put_head(self, name: str, envelope: Envelope) -> dict[str, Any]:
        """Accept a head of `name` by signature under the node's policy, only with a higher sequence."""
        head = Head.from_payload(envelope.payload)
        if head.name != name:
            raise UsageError(f"head: expected a head of {name} (the model the URL names), found {head.ref}")
        if not self.index.search(name=head.name, include_yanked=True, limit=1):
            raise NotFoundError(f"{head.name} is not on this registry; push a release before its head")
        if self.index.shared:
            shared.adopt_head(self, head.name)  # a higher head another node took first still wins
        current, refusals = self.client.admit_heads([envelope], head.name)
        if current is None or current.digest != envelope.digest:
            if refusals:
                raise refusals[0]
            raise PolicyError(f"{head.ref}: not accepted by this registry's policy")
        if self.index.shared:
            self.index.put_heads(head.name, current.head.sequence, self.client.head_envelopes(head.name))
        self._index_yanks(head.name)
        self.log.record("head", envelope, head.name, str(head.sequence),
                        {s.key_id for s in current.signers if s.status == "valid"})
        return {"name": head.name, "sequence": head.sequence, "head": current.to_dict()}

    def _index_yanks(self, name: str) -> None:
        index_yanks(self.client, self.index, name)

    # ---- approvals ------------------------------------------------------------------------
    def approve(self, name: str, version: str, offered: Envelope) -> dict[str, Any]:
        """Accept new signatures over the stored payload (approvals, another publisher's) by
        keys the node's policy trusts for this model; anything else is refused, never kept."""
        release = self.release(name, version)
        if offered.digest != release.digest:
            raise IntegrityError(
                f"approval for {name}@{version}: expected a signature over the stored payload "
                f"(digest {release.digest}), found one over digest {offered.digest}"
            )
        if self.index.shared:
            shared.merge_signatures(self, offered, "approval", strict=True)
            verdict = evaluate(self.envelope(release.digest), self.client.policy)
            return {"ref": verdict.manifest.ref, "verdict": verdict.to_dict()}
        before = {s.keyid for s in self.client.vault.get(release.digest).envelope.signatures}
        merged = self.client.merge_signatures(offered)
        verdict = evaluate(merged, self.client.policy)
        self.index.put(verdict.manifest, verdict)
        self._envelopes.pop((name, version), None)
        self.log.record("approval", merged, name, version, {s.keyid for s in merged.signatures} - before)
        return {"ref": verdict.manifest.ref, "verdict": verdict.to_dict()}

    # ---- admin ------------------------------------------------------------------------------
    def check_admin(self, authorization: str | None) -> None:
        token = self.config.admin_token
        if not token:
            raise PolicyError("admin operations are disabled on this registry (no admin_token configured)")
        presented = bearer_token(authorization)
        # Headers arrive as UTF-8 with surrogate escapes: any byte sequence compares, none raises.
        if presented is None or not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                                                        token.encode()):
            found = ("found none" if not authorization else "found a wrong token" if presented is not None
                     else "found no Bearer token in the header")  # never echo what was sent
            raise UnauthorizedError(f"admin operation: expected 'Authorization: Bearer <admin token>', {found}")

    def yank(self, name: str, version: str) -> dict[str, Any]:
        self.release(name, version)
        self.index.yank(name, version)
        return {"ref": f"{name}@{version}", "yanked": True}

    def remove(self, name: str, purge: bool = False) -> dict[str, Any]:
        """Remove a model: no longer served at once; its bytes freed after `removal_grace`, or
        now with `purge` (which also purges an earlier removal of it still on disk)."""
        check_model_name(name)
        removed = self.index.remove(name)
        if not removed and not (purge and self._removed_on_disk(name)):
            raise NotFoundError(f"{name} is not on this registry")
        for key in [k for k in self._envelopes if k[0] == name]:
            del self._envelopes[key]
        for ref in [r for r in self._seeding if r.startswith(name + "@")]:
            handle = self._seeding.pop(ref)
            if self.swarm is not None:
                self.swarm.remove(handle)  # a removed model is no longer served by any route
        self._sync_tracker()
        if purge:
            return {"name": name, "removed_versions": removed, **self.free_removed(name)}
        return {"name": name, "removed_versions": removed, "frees_after_seconds": self.config.removal_grace}

    # ---- freeing what an admin removed ------------------------------------------------------
    def free_removed(self, name: str | None = None) -> dict[str, Any]:
        """Delete from the vault the releases an admin removed (of NAME whatever their age, else
        those removed `removal_grace` ago or more), then what nothing uses any more: the same
        `rm` and `gc` a client runs. The vault still remembers their digests (first seen)."""
        before = None if name is not None else time.time() - self.config.removal_grace
        due = {d for d in self.index.removed_since(name, before=before) if self.client.vault.has(d)}
        if not due:
            return {"purged_versions": 0, "freed_bytes": 0}
        vault = self.client.vault
        gone = housekeeping.remove(vault, [r for r in housekeeping.rows(vault) if r.digest in due])
        live = {u.staging for u in self._uploads} | {u.parts for u in self._uploads}
        collected = housekeeping.collect(vault, keep=live)
        log.info("freed %d bytes of %d removed releases", collected.freed, len(gone))
        return {"purged_versions": len(gone), "freed_bytes": collected.freed}

    def _removed_on_disk(self, name: str) -> bool:
        return any(self.client.vault.has(d) for d in self.index.removed_since(name))

    def lift_removal(self, name: str) -> dict[str, Any]:
        """The admin lifts a removal: the model's releases may be pushed or mirrored again."""
        check_model_name(name)
        lifted = self.index.lift(name)
        if not lifted:
            raise NotFoundError(f"{name} has no removal to lift on this registry")
        return {"name": name, "lifted_versions": lifted}

    def versions(self, name: str) -> list[dict[str, Any]]:
        check_model_name(name)
        releases = self.index.search(name=name, include_yanked=True)
        if not releases:
            raise NotFoundError(f"{name} is not on this registry")
        return [r.to_dict() for r in releases]


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <token>` header (RFC 6750; the scheme name
    is case-insensitive), or None when there is none."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return presented.strip()


def storage_error(exc: OSError, what: str) -> Error:
    """A disk that cannot hold `what` as the error a client can act on (507), any other
    OSError as a transfer failure; never a 500 with a traceback."""
    if exc.errno in _STORAGE_ERRNOS:
        return InsufficientStorageError(f"{what}: the registry could not store it ({os.strerror(exc.errno or 0)}); "
                                        "nothing of it was kept", hint="ask the registry's admin to free disk space")
    return TransferError(f"{what}: the registry failed to write it ({exc.strerror or 'I/O error'})")


def _newest_mtime(directory: Path) -> float:
    try:
        return max([directory.stat().st_mtime] + [p.stat().st_mtime for p in directory.rglob("*")])
    except OSError:  # vanished while looking: nothing to sweep
        return float("inf")
