"""The registry node's state and operations, free of HTTP: the handlers stay thin.

Everything that touches the vault, the index or the swarm runs here, synchronously, on
one worker thread (see app.py), so the SQLite connections and libtorrent calls are never
used concurrently. Trust decisions are the node's policy's, through Client.judge.
"""

from __future__ import annotations

import hmac
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedvault.client import Client
from seedvault.errors import Error, IntegrityError, NotFoundError, PolicyError
from seedvault.manifest import check_model_name, check_relative_path, check_version
from seedvault.p2p import Swarm, SwarmConfig, torrent_bytes
from seedvault.registry.config import NodeConfig
from seedvault.registry.index import Index, Release
from seedvault.registry.tracker import Tracker
from seedvault.signing import Envelope, Verdict, evaluate
from seedvault.swarming import start_seeding, stored_layers

UPLOAD_TTL = 3600.0  # seconds without a byte before an unfinished upload is dropped
UNSEEDABLE_RETRY = 600.0  # seconds before a release that failed verification is checked again
log = logging.getLogger("seedvault.registry")


@dataclass
class _Upload:
    envelope: Envelope
    verdict: Verdict
    staging: Path
    received: set[str] = field(default_factory=set)
    touched: float = field(default_factory=time.monotonic)


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.client = Client(config.home)
        self.index = Index(self.client.paths.data_dir / "registry.db")
        self.tracker = Tracker()
        self.swarm: Swarm | None = None
        self._uploads: dict[str, _Upload] = {}
        self._envelopes: dict[tuple[str, str], bytes] = {}  # hot path of GET .../envelope
        self._seeding: dict[str, Any] = {}  # ref -> libtorrent handle of the node's own seed
        self._unseedable: dict[str, float] = {}  # ref -> when seeding it was refused (damaged)
        self._reindex()

    def _reindex(self) -> None:
        """Index whatever the vault holds that the node's policy accepts (e.g. after restart)."""
        known = self.index.digests() | self.index.removed()
        for entry in self.client.vault.entries():
            if entry.digest in known:
                continue
            try:
                verdict = evaluate(entry.envelope, self.client.policy)
            except Error:  # not acceptable under the current policy: not listed
                continue
            self.index.put(entry.manifest, verdict)

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
        now = time.monotonic()
        for digest in [d for d, u in self._uploads.items() if now - u.touched > UPLOAD_TTL]:
            shutil.rmtree(self._uploads.pop(digest).staging, ignore_errors=True)

    def close(self) -> None:
        if self.swarm is not None:
            self.swarm.close()
            self.swarm = None
        for upload in self._uploads.values():
            shutil.rmtree(upload.staging, ignore_errors=True)
        self.index.close()
        self.client.close()

    def _announce_self(self, ref: str) -> None:
        if self.swarm is None:
            return
        entry = self.client.vault.resolve(ref)
        info_hash = bytes.fromhex(entry.manifest.torrent.info_hash_v2)[:20]  # BEP 52: truncated for trackers
        host, port = self.swarm.endpoint
        self.tracker.add_static(info_hash, host, port)

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
        """The envelope if already served once; safe from the event loop (a dict lookup)."""
        return self._envelopes.get((name, version))

    def envelope_bytes(self, name: str, version: str) -> bytes:
        key = (name, version)
        cached = self._envelopes.get(key)
        if cached is None:
            release = self.release(name, version)
            cached = self._envelopes[key] = self.client.vault.get(release.digest).envelope.to_json()
        return cached

    def detail(self, name: str, version: str) -> dict[str, Any]:
        release = self.release(name, version)
        entry = self.client.vault.get(release.digest)
        verdict = evaluate(entry.envelope, self.client.policy)
        return {
            **release.to_dict(),
            "verdict": verdict.to_dict(),
            "statement": entry.manifest.to_dict(),
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
        manifest = self.client.vault.get(digest).manifest
        prefix = manifest.torrent_name + "/"
        path = tail[len(prefix):] if tail.startswith(prefix) else tail
        check_relative_path(path, "web seed path")
        if path not in {f.path for f in manifest.files}:
            raise NotFoundError(f"{manifest.ref} has no file {path!r}")
        return self.client.vault.snapshot_dir(manifest) / path

    # ---- publishing -------------------------------------------------------------------------
    def begin_upload(self, raw: bytes) -> dict[str, Any]:
        """Step 1: the envelope. Judged under the node's policy before any byte is accepted."""
        envelope = Envelope.from_json(raw, "uploaded envelope")
        verdict = self.client.judge(envelope)
        manifest = verdict.manifest
        if envelope.digest in self.index.digests():
            return {"digest": envelope.digest, "status": "present", "needed": []}
        staging = self.client.vault.incoming / f"{envelope.digest}.upload"
        staging.mkdir(parents=True, exist_ok=True)
        upload = self._uploads.setdefault(envelope.digest, _Upload(envelope, verdict, staging))
        upload.touched = time.monotonic()
        needed = [{"path": f.path, "size": f.size} for f in manifest.files if f.path not in upload.received]
        return {"digest": envelope.digest, "status": "uploading", "needed": needed,
                "upload_url": f"{self.config.base_url}/v1/uploads/{envelope.digest}/"}

    def upload_target(self, digest: str, path: str) -> tuple[Path, int]:
        """Where an uploaded file goes, and the exact size the manifest allows for it."""
        upload = self._uploads.get(digest)
        if upload is None:
            raise NotFoundError(f"no upload in progress for digest {digest}",
                                hint="POST the envelope to /v1/envelopes first")
        check_relative_path(path, "upload path")
        upload.touched = time.monotonic()
        entry = next((f for f in upload.verdict.manifest.files if f.path == path), None)
        if entry is None:
            raise IntegrityError(f"{upload.verdict.manifest.ref} lists no file {path!r}; refusing the upload")
        target = upload.staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, entry.size

    def file_received(self, digest: str, path: str) -> dict[str, Any]:
        """Step 2: after each file. When all are in, verify and admit, atomically."""
        upload = self._uploads.get(digest)
        if upload is None:  # a concurrent upload of the same release completed it first
            raise NotFoundError(f"no upload in progress for digest {digest}; it may have just been published",
                                hint="GET the release to check")
        upload.received.add(path)
        manifest = upload.verdict.manifest
        missing = [f.path for f in manifest.files if f.path not in upload.received]
        if missing:
            return {"digest": digest, "status": "uploading", "needed": missing}
        try:
            admitted = self.client.admit_staged(upload.envelope, upload.verdict, upload.staging)
        finally:
            del self._uploads[digest]
            shutil.rmtree(upload.staging, ignore_errors=True)
        self.index.put(manifest, admitted.verdict)
        self.seed_ref(manifest.ref)
        return {"digest": digest, "status": "published", "ref": manifest.ref, "verdict": admitted.verdict.to_dict()}

    def abort_upload(self, digest: str, path: str) -> None:
        upload = self._uploads.get(digest)
        if upload is not None:
            upload.received.discard(path)
            (upload.staging / path).unlink(missing_ok=True)

    # ---- approvals ------------------------------------------------------------------------
    def approve(self, name: str, version: str, raw: bytes) -> dict[str, Any]:
        """Accept new signatures over the stored payload (approvals, another publisher's) by
        keys the node's policy trusts for this model; anything else is refused, never kept."""
        release = self.release(name, version)
        offered = Envelope.from_json(raw, "approval")
        if offered.digest != release.digest:
            raise IntegrityError(
                f"approval for {name}@{version}: expected a signature over the stored payload "
                f"(digest {release.digest}), found one over digest {offered.digest}"
            )
        merged = self.client.merge_signatures(offered)
        verdict = evaluate(merged, self.client.policy)
        self.index.put(verdict.manifest, verdict)
        self._envelopes.pop((name, version), None)
        return {"ref": verdict.manifest.ref, "verdict": verdict.to_dict()}

    # ---- admin ------------------------------------------------------------------------------
    def check_admin(self, authorization: str | None) -> None:
        token = self.config.admin_token
        if not token:
            raise PolicyError("admin operations are disabled on this registry (no admin_token configured)")
        scheme, _, presented = (authorization or "").strip().partition(" ")
        bearer = scheme.lower() == "bearer"  # RFC 6750; the scheme name is case-insensitive
        if not bearer or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            found = ("found none" if not authorization else "found a wrong token" if bearer
                     else "found a header without the Bearer scheme")  # never echo what was sent
            raise PolicyError(f"admin operation: expected 'Authorization: Bearer <admin token>', {found}")

    def yank(self, name: str, version: str) -> dict[str, Any]:
        self.release(name, version)
        self.index.yank(name, version)
        return {"ref": f"{name}@{version}", "yanked": True}

    def remove(self, name: str) -> dict[str, Any]:
        check_model_name(name)
        removed = self.index.remove(name)
        if not removed:
            raise NotFoundError(f"{name} is not on this registry")
        for key in [k for k in self._envelopes if k[0] == name]:
            del self._envelopes[key]
        for ref in [r for r in self._seeding if r.startswith(name + "@")]:
            handle = self._seeding.pop(ref)
            if self.swarm is not None:
                self.swarm.remove(handle)  # a removed model is no longer served by any route
        return {"name": name, "removed_versions": removed}

    def versions(self, name: str) -> list[dict[str, Any]]:
        check_model_name(name)
        releases = self.index.search(name=name)
        if not releases:
            raise NotFoundError(f"{name} is not on this registry")
        return [r.to_dict() for r in releases]
