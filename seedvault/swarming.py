"""Pull and seed: the client-side decisions around swarm transfers.

`pull` judges the envelope under the local policy before it opens a single connection,
downloads into a resumable staging directory (libtorrent checks each piece against the
signed merkle roots), verifies the finished files itself, and only then moves them into
the vault. `Seeder` serves verified snapshots and refuses to serve any that no longer
verify.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libtorrent as lt

from seedvault import bundle
from seedvault.behind import GrowingEntry, HashBehind, Prehashed
from seedvault.client import Admitted, Client
from seedvault.errors import Error, IntegrityError, ManifestError, NotFoundError, PolicyError, UsageError
from seedvault.hashing import merkle_root
from seedvault.manifest import Manifest, Ref
from seedvault.p2p.session import Endpoint, Swarm, SwarmConfig
from seedvault.p2p.torrent import bound_torrent, check_binding, checked_layers, load_torrent
from seedvault.p2p.transfer import Download, TransferStats
from seedvault.settings import MERKLE_BLOCK_SIZE
from seedvault.signing import Envelope, Verdict

FINAL_CHECK_ATTEMPTS = 3


@dataclass
class PullReport:
    ref: str
    digest: str
    snapshot: str
    already_present: bool
    stats: TransferStats

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "snapshot": self.snapshot,
                "already_present": self.already_present, **self.stats.to_dict()}


def check_requested(ref: Ref, manifest: Manifest) -> None:
    """The envelope must be for the model the user asked for (no substitution)."""
    if ref.name != manifest.name or (ref.version is not None and ref.version != manifest.version):
        raise IntegrityError(
            f"asked for {ref}, but the envelope is for {manifest.ref}",
            hint="the source offered a different model; check the envelope or registry",
        )


def _present(client: Client, verdict: Verdict, digest: str) -> bool:
    try:
        entry = client.vault.resolve(Ref(verdict.manifest.name, verdict.manifest.version))
    except (NotFoundError, ManifestError):  # absent, or stored damaged: fetch it, which repairs it
        return False
    if entry.digest != digest:
        return False
    try:
        client.verify(verdict.manifest.ref, fast=True)
    except IntegrityError:
        return False  # damaged on disk: fetch it again
    return True


def pull(
    client: Client,
    ref: str,
    envelope: Envelope,
    *,
    config: SwarmConfig | None = None,
    peers: Sequence[Endpoint] = (),
    web_seeds: Sequence[str] = (),
    trackers: Sequence[str] = (),
    torrent: bytes | None = None,
    timeout: float = 600.0,
    on_status: Callable[[TransferStats], None] | None = None,
    swarm: Swarm | None = None,
) -> PullReport:
    """Fetch a model from the swarm into the vault, verified. See the module docstring.

    `torrent` (e.g. from a registry) is used only if it matches the signed binding; its
    piece layers save a round of hash requests. Pass `swarm` to reuse a session (and keep
    seeding from it afterwards).
    """
    verdict = client.judge(envelope)  # before any connection: untrusted means no bytes
    manifest = verdict.manifest
    check_requested(Ref.parse(ref), manifest)
    if _present(client, verdict, envelope.digest):
        with contextlib.suppress(PolicyError):  # nothing new that counts: the release is here anyway
            client.merge_signatures(envelope)
        snapshot = client.vault.snapshot_dir(manifest)
        stats = TransferStats(total=manifest.total_size, done=manifest.total_size, state="already present")
        return PullReport(manifest.ref, envelope.digest, str(snapshot), True, stats)
    if torrent is not None:
        ti = load_torrent(torrent, f"torrent for {manifest.ref}")
        check_binding(ti, manifest, f"torrent for {manifest.ref}")
    else:
        ti = bound_torrent(manifest)
    # Under the pull's lock, so `gc` keeps every blob this pull counts on from here on.
    with client.vault.pull_in_progress(envelope) as staging:
        held = held_files(client, manifest)
        if all(f.path in held or not f.size for f in manifest.files):
            # Every byte is here already (a release that changed only its statement): nothing to fetch.
            for f in manifest.files:
                if not f.size:
                    (staging / f.path).parent.mkdir(parents=True, exist_ok=True)
                    (staging / f.path).touch()
            admitted = client.admit_staged(envelope, verdict, staging, held=held)
            _done_with(client, envelope, staging)
            stats = TransferStats(state="finished", reused=sum(f.size for f in manifest.files if f.path in held))
            return PullReport(manifest.ref, envelope.digest, str(admitted.snapshot), False, stats)
        sources = peers or web_seeds or trackers or (torrent is not None and _lists_sources(torrent))
        if not (sources or (config and (config.lan or config.dht_nodes)) or (swarm and swarm.discovers)):
            raise UsageError(
                f"no source of bytes for {manifest.ref}",
                hint="give --peer HOST:PORT, --web-seed URL, --registry URL, --lan or --dht-node",
            )
        resume_path = client.vault.incoming / f"{envelope.digest}.resume"
        own_swarm = swarm is None
        active = swarm or Swarm(config)
        deadline = time.monotonic() + timeout
        download: Download | None = None
        try:
            download = Download(active, ti, staging, resume_path, peers=peers, web_seeds=web_seeds,
                                trackers=trackers, skip=held)
            download.stats.reused = sum(f.size for f in manifest.files if f.path in held)
            admitted = _finish(client, envelope, verdict, download, staging, deadline, on_status, held)
        except BaseException:
            if download is not None:
                download.save_resume()  # interrupted or failed: keep what arrived for the next run
            raise
        finally:
            if download is not None:
                download.remove()
            if own_swarm:
                active.close()
        _done_with(client, envelope, staging)
    return PullReport(manifest.ref, envelope.digest, str(admitted.snapshot), False, download.stats)


def _done_with(client: Client, envelope: Envelope, staging: Path) -> None:
    """After the admission: the pull's staging, resume data and marker go."""
    shutil.rmtree(staging, ignore_errors=True)
    (client.vault.incoming / f"{envelope.digest}.resume").unlink(missing_ok=True)
    (client.vault.incoming / f"{envelope.digest}.pull").unlink(missing_ok=True)


def _lists_sources(torrent: bytes) -> bool:
    """Whether a .torrent names web seeds or trackers (read from the file itself: the
    libtorrent accessors for them are deprecated)."""
    decoded: Any = lt.bdecode(torrent)
    return isinstance(decoded, dict) and any(decoded.get(k) for k in (b"url-list", b"announce", b"announce-list"))


def held_files(client: Client, manifest: Manifest) -> frozenset[str]:
    """The manifest's files this vault holds already, verified: same pieces root, blob
    unchanged since it was hashed. A delta pull leaves them out of the download."""
    return frozenset(f.path for f in manifest.files if f.size and client.vault.blob_verified(f))


def _swarm_layers(manifest: Manifest, download: Download) -> dict[str, bytes]:
    """Piece layers built from the leaf hashes libtorrent verified, kept only where they hash
    up to the signed pieces root (seeding needs them; nothing has to read the files again)."""
    per_piece = manifest.torrent.piece_length // MERKLE_BLOCK_SIZE
    layers = {}
    for path, leaves in download.verified_leaves().items():
        if len(leaves) > per_piece:  # a file within one piece has no layer
            layers[path] = b"".join(merkle_root(leaves[i : i + per_piece], per_piece)
                                    for i in range(0, len(leaves), per_piece))
    return checked_layers(manifest, layers)


def _finish(
    client: Client,
    envelope: Envelope,
    verdict: Verdict,
    download: Download,
    staging: Path,
    deadline: float,
    on_status: Callable[[TransferStats], None] | None,
    held: frozenset[str],
) -> Admitted:
    """Wait for libtorrent while hashing behind it, then admit; on a mismatch re-check,
    re-fetch and verify from disk."""
    failure: IntegrityError | None = None
    sizes = {f.path: f.size for f in verdict.manifest.files}
    entries = [GrowingEntry(p, sizes[p], functools.partial(download.prefix_bytes, p),
                            functools.partial(download.has_resumed, p))
               for p in download.files() if p not in held]
    for attempt in range(FINAL_CHECK_ATTEMPTS):
        prehashed: dict[str, Prehashed] = {}
        if attempt == 0:
            with HashBehind(staging, entries, verdict.manifest.torrent.piece_length) as behind:
                download.wait_finished(deadline, on_status)
                download.pause()
                # The tail is still being hashed: waited for while it moves on (up to the pull's
                # deadline); what is not done then is read at admission.
                prehashed = behind.finish(timeout=max(1.0, deadline - time.monotonic()))
        else:
            download.wait_finished(deadline, on_status)
            download.pause()
        checked = frozenset(p for p in prehashed if download.checked_here(p))
        try:
            return client.admit_staged(envelope, verdict, staging, held=held, prehashed=prehashed,
                                       checked_by_swarm=checked,
                                       layers_given=_swarm_layers(verdict.manifest, download))
        except IntegrityError as exc:
            failure = exc
            if exc.path in held:
                # The vault's copy of a file left out of the download changed since: fetch it
                # now (a recheck could never, the file is not wanted).
                held = held - {exc.path}
                download.stats.reused -= sizes[exc.path]
                download.fetch_file(exc.path)
            else:
                download.recheck()  # e.g. a file damaged on disk behind libtorrent's resume data
    assert failure is not None
    raise failure


# ---- seeding ---------------------------------------------------------------------------


@dataclass
class SeedReport:
    seeding: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    handles: dict[str, lt.torrent_handle] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seeding": self.seeding, "refused": [{"ref": r, "reason": why} for r, why in self.refused]}


def stored_layers(client: Client, manifest: Manifest) -> dict[str, bytes]:
    stored = {}
    for f in manifest.files:
        layer = client.vault.load_layer(f.pieces_root) if f.pieces_root else None
        if layer is not None:
            stored[f.path] = layer
    return checked_layers(manifest, stored)


def seed_torrent(client: Client, ref: str, *, fast: bool = True) -> tuple[Manifest, lt.torrent_info, Path]:
    """Verify a stored model and build its torrent with verified piece layers (from the vault)."""
    manifest = client.verify(ref, fast=fast).manifest
    layers = stored_layers(client, manifest)
    if any(f.path not in layers for f in manifest.files if f.size > manifest.torrent.piece_length):
        client.verify(ref, fast=False, need_layers=True)  # recomputes and stores the layers
        layers = stored_layers(client, manifest)
    return manifest, bound_torrent(manifest, layers), client.vault.snapshot_dir(manifest)


def start_seeding(client: Client, swarm: Swarm, refs: Iterable[str] | None = None, *, fast: bool = True) -> SeedReport:
    """Serve the named models (default: every model in the vault) that still verify."""
    report = SeedReport()
    names = list(refs) if refs else [e.manifest.ref for e in client.vault.entries()]
    for ref in names:
        try:
            manifest, ti, snapshot = seed_torrent(client, ref, fast=fast)
        except Error as exc:
            report.refused.append((ref, exc.diagnostics()))
            continue
        yanked = client.yank_reason(manifest)
        if yanked is not None:  # its publisher withdrew it: not handed to anyone
            report.refused.append((manifest.ref, f"yanked by its publisher: {yanked}"))
            continue
        report.handles[manifest.ref] = swarm.add(ti, snapshot, seed=True)
        report.seeding.append(manifest.ref)
    return report


def stop_yanked(client: Client, swarm: Swarm, report: SeedReport) -> list[tuple[str, str]]:
    """Stop serving the releases of REPORT yanked since they were started: `(ref, reason)` each."""
    stopped = []
    for ref in list(report.handles):
        reason = client.yank_reason(client.vault.resolve(ref).manifest)
        if reason is not None:
            swarm.remove(report.handles.pop(ref))
            report.seeding.remove(ref)
            stopped.append((ref, f"yanked by its publisher: {reason}"))
    return stopped


def read_envelope_source(source: Path) -> Envelope:
    """An envelope from a JSON file, or from a bundle directory or tar (read by the bundle
    reader, so a tar holding envelope.json twice is refused here as on import)."""
    return bundle.read_envelope_source(source)
