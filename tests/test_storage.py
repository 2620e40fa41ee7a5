"""Storage and transfer that scale with what changed: one copy per content, delta pulls,
publish without a second copy, hashing behind the download, Ctrl-C that keeps what arrived.

Real vaults, real libtorrent sessions on 127.0.0.1, real files; the hostile publisher is a
real seed serving a manifest whose two digests disagree."""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARD1, build_manifest, entries_for, make_model, make_writable_and_tamper, sign_payload
from swarm_helpers import (
    Child,
    Published,
    disk_bytes,
    new_peer,
    publish,
    publish_generated,
    trusting,
    wait_until,
)

from seedvault import hashing
from seedvault.bundle import export_bundle, import_bundle
from seedvault.client import Client
from seedvault.errors import IntegrityError
from seedvault.manifest import Manifest
from seedvault.p2p import Swarm, SwarmConfig, format_endpoint
from seedvault.p2p.torrent import bound_torrent
from seedvault.signing import PrivateKey
from seedvault.swarming import pull, start_seeding, stored_layers

Spawn = Callable[..., Child]
MB = 1_000_000


def blob_bytes(client: Client) -> int:
    """Disk bytes of the vault's blobs, each inode counted once."""
    seen: dict[tuple[int, int], int] = {}
    for blob in client.vault.blobs.iterdir():
        st = blob.stat()
        seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def replace_file(path: Path, data: bytes) -> None:
    """How an editor that keeps hard links intact saves: a new file renamed over the old."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def second_version(published: Published, key: PrivateKey, changed: str, data: bytes) -> Published:
    model_dir = published.home.parent / "model"
    replace_file(model_dir / changed, data)
    return publish(published.home, model_dir, key, published.manifest.name, "1.1",
                   published.manifest.torrent.piece_length, published.home.parent / "release-1.1.json")


# ---- one copy per content ----------------------------------------------------------------


def test_versions_and_names_share_blobs_and_a_damaged_one_is_repaired_for_all(tmp_path: Path,
                                                                             pub_key: PrivateKey) -> None:
    published = publish_generated(tmp_path, pub_key, 8)
    with Client(published.home) as client:
        one_version = blob_bytes(client)
    v11 = second_version(published, pub_key, "LICENSE", b"Apache License 2.0, now with a README change\n")
    other = publish(published.home, tmp_path / "model", pub_key, "acme/renamed", "1.0",
                    published.manifest.torrent.piece_length, tmp_path / "renamed.json")
    with Client(published.home) as client:
        # Three releases, one copy of each content: only the changed file is new on disk.
        changed = v11.manifest.file("LICENSE").size
        assert blob_bytes(client) <= one_version + changed
        assert blob_bytes(client) / one_version <= 1.01
        shard = published.manifest.files[-1]
        blob = client.vault.blob_path(shard)
        for release in (published, v11, other):
            assert os.path.samefile(release.snapshot / shard.path, blob)
        bundle = export_bundle(client, published.ref, tmp_path / "bundle")  # a copy, made before the damage
        # A damaged shared blob: every release that uses it is refused ...
        make_writable_and_tamper(blob, 100)
        for release in (published, v11, other):
            with pytest.raises(IntegrityError, match=shard.path):
                client.verify(release.ref)
        # ... and one re-import of one of them repairs them all.
        import_bundle(client, bundle)
        for release in (published, v11, other):
            client.verify(release.ref, fast=False)


def test_publish_links_the_files_and_says_so(tmp_path: Path, pub_key: PrivateKey) -> None:
    model_dir = tmp_path / "model"
    make_model(model_dir)
    with Client(tmp_path / "home") as client:
        client.save_policy(trusting(pub_key))
        admitted = client.publish(model_dir, name="acme/tiny", version="1.0", license="Apache-2.0", key=pub_key,
                                  store="link")
        shard = admitted.verdict.manifest.file(SHARD1)
        blob = client.vault.blob_path(shard)
        # No second copy: the publisher's file is the vault's (a reflink where the filesystem
        # can, else a hard link of the file made read-only).
        how = dict(admitted.stored)
        assert sum(how.values()) == len(admitted.verdict.manifest.files) and "copy" not in how, how
        if "hard link" in how:
            assert os.path.samefile(model_dir / SHARD1, blob)
            assert not (model_dir / SHARD1).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        client.verify("acme/tiny@1.0", fast=False)
        # "copy" copies (and leaves the source as it was).
        copied = client.publish(model_dir, name="acme/copied", version="1.0", license="Apache-2.0", key=pub_key,
                                store="copy")
        assert dict(copied.stored) == {"copy": len(copied.verdict.manifest.files)}
        # "auto" hard-links only where read-only protects the file: never for root.
        auto = client.publish(model_dir, name="acme/auto", version="1.0", license="Apache-2.0", key=pub_key)
        if os.geteuid() == 0:
            assert "hard link" not in auto.stored, auto.stored


def test_a_publisher_file_changed_after_linking_is_caught(tmp_path: Path, pub_key: PrivateKey) -> None:
    model_dir = tmp_path / "model"
    make_model(model_dir)
    with Client(tmp_path / "home") as client:
        client.save_policy(trusting(pub_key))
        admitted = client.publish(model_dir, name="acme/tiny", version="1.0", license="Apache-2.0", key=pub_key,
                                  store="link")
        if "hard link" not in admitted.stored:
            pytest.skip("this filesystem reflinks: the vault's copy is independent of the publisher's file")
        make_writable_and_tamper(model_dir / SHARD1, 50)  # edited in place, behind the vault's back
        with pytest.raises(IntegrityError, match=SHARD1):
            client.verify("acme/tiny@1.0", fast=True)  # the record no longer matches: hashed again, refused


# ---- transfer: delta, hashing behind, Ctrl-C ---------------------------------------------


@pytest.mark.timeout(180)
def test_delta_pull_moves_only_the_changed_file(tmp_path: Path, pub_key: PrivateKey) -> None:
    published = publish_generated(tmp_path, pub_key, 16)
    shard = published.manifest.files[-1]
    new_bytes = os.urandom(1_000_000)
    v11 = second_version(published, pub_key, "LICENSE", new_bytes)
    home = new_peer(tmp_path / "peer", pub_key)
    with Client(published.home) as seeder, Swarm(SwarmConfig()) as swarm:
        report = start_seeding(seeder, swarm, [published.ref, v11.ref])
        assert sorted(report.seeding) == sorted([published.ref, v11.ref]), report.refused
        with Client(home) as client:
            first = pull(client, published.ref, published.envelope, peers=[swarm.endpoint], timeout=60)
            assert first.stats.downloaded >= published.manifest.total_size
            # Seeding needs each large file's piece layer: built from the leaf hashes libtorrent
            # verified, checked against the signed roots, stored: nothing reads the files again.
            large = [f.path for f in published.manifest.files if f.size > published.manifest.torrent.piece_length]
            assert large and sorted(stored_layers(client, published.manifest)) == sorted(large)
            second = pull(client, v11.ref, v11.envelope, peers=[swarm.endpoint], timeout=60)
            s = second.stats
            # Only the changed file crossed the network; the rest came from the vault.
            assert s.downloaded / len(new_bytes) <= 1.05, s
            assert s.reused == v11.manifest.total_size - len(new_bytes), s
            client.verify(v11.ref, fast=False)
            assert os.path.samefile(Path(first.snapshot) / shard.path, Path(second.snapshot) / shard.path)


@pytest.mark.timeout(180)
def test_hash_behind_refuses_a_file_whose_sha256_is_wrong_though_every_piece_matches(
        tmp_path: Path, pub_key: PrivateKey) -> None:
    """A manifest (signed by a trusted publisher) whose pieces roots are right but whose
    SHA-256 of one file is wrong: libtorrent accepts every piece, the digest computed while
    the bytes arrive disagrees, and the release is refused; nothing enters the vault."""
    model_dir = tmp_path / "model"
    make_model(model_dir)
    entries = [dataclasses.replace(f, sha256="0" * 64) if f.path == SHARD1 else f for f in entries_for(model_dir)]
    manifest = Manifest.from_dict(build_manifest(entries).to_dict())
    envelope = sign_payload(manifest.to_payload(), pub_key)
    home = new_peer(tmp_path / "victim", pub_key)
    with Swarm(SwarmConfig()) as swarm:
        swarm.add(bound_torrent(manifest), model_dir, seed=True)  # serves the real bytes
        with Client(home) as client:
            with pytest.raises(IntegrityError, match="SHA-256") as caught:
                pull(client, manifest.ref, envelope, peers=[swarm.endpoint], timeout=60)
            assert "pieces root matches" in str(caught.value)
            assert client.vault.entries() == []
            assert not list(client.vault.snapshots.rglob("*.safetensors"))


@pytest.mark.timeout(180)
def test_ctrl_c_mid_pull_keeps_what_arrived(tmp_path: Path, spawn: Spawn, pub_key: PrivateKey) -> None:
    published = publish_generated(tmp_path, pub_key, 24)
    total = published.manifest.total_size
    home = new_peer(tmp_path / "peer", pub_key)
    slow = 2 * MB
    config = SwarmConfig(upload_rate_limit=slow, limit_local_peers=True)
    with Client(published.home) as seeder, Swarm(config) as swarm:
        start_seeding(seeder, swarm, [published.ref])
        child = spawn(home, "pull", published.ref, "--envelope", str(published.envelope_path),
                      "--peer", format_endpoint(swarm.endpoint), "--json", "--timeout", "120")
        staging = home / "data" / "vault" / "incoming" / published.envelope.digest
        wait_until(lambda: staging.is_dir() and disk_bytes(staging) >= 0.3 * total, 60, "30% of the model")
        child.signal(signal.SIGINT)  # what Ctrl-C at a terminal sends
        assert child.wait(15) == 130, child.describe()
        arrived = disk_bytes(staging)
        swarm.session.apply_settings({"upload_rate_limit": 0})
        with Client(home) as client:
            t = time.monotonic()
            report = pull(client, published.ref, published.envelope, peers=[swarm.endpoint], timeout=60)
    s = report.stats
    numbers = f"arrived before Ctrl-C {arrived}, resumed {s.resumed}, fetched again {s.downloaded}, total {total}"
    # Resume data is written on the way out: what arrived is kept, but for pieces in flight.
    assert s.resumed >= arrived - 4 * published.manifest.torrent.piece_length, numbers
    assert s.downloaded <= total - s.resumed + 2 * published.manifest.torrent.piece_length, numbers
    assert time.monotonic() - t < 60
    with Client(home) as client:
        client.verify(published.ref, fast=False)
    assert hashing.sha256_file(Path(report.snapshot) / "LICENSE") == published.manifest.file("LICENSE").sha256


def test_publish_says_how_the_files_were_stored(tmp_path: Path, model: Any) -> None:
    from cli_helpers import make_world, ok

    w = make_world(tmp_path, model)
    args = ["publish", w.model, "--name", "acme/tiny", "--license", "Apache-2.0", "--key", w.key]
    files = len(list(w.model.iterdir()))
    out = ok(w.pub_home, *args, "--version", "1.0").out
    if os.geteuid() == 0:
        assert "nothing was hard-linked; --link to" in out or "by reflink" in out, out
    out = ok(w.pub_home, *args, "--version", "1.1", "--link").out
    stored = ok(w.pub_home, *args, "--version", "1.2", "--link", "--json").json()["stored"]
    assert sum(stored.values()) == files and "copy" not in stored, stored
    if "hard link" in stored:
        assert f"by hard link; no second copy: the hard-linked files in {w.model} are now read-only" in out, out
    assert ok(w.pub_home, *args, "--version", "1.3", "--copy", "--json").json()["stored"] == {"copy": files}


@pytest.mark.timeout(120)
def test_a_release_whose_files_are_all_held_needs_no_source_at_all(tmp_path: Path, pub_key: PrivateKey) -> None:
    published = publish_generated(tmp_path, pub_key, 4)
    same_files = publish(published.home, tmp_path / "model", pub_key, published.manifest.name, "1.0.1",
                         published.manifest.torrent.piece_length, tmp_path / "release-1.0.1.json")
    home = new_peer(tmp_path / "peer", pub_key)
    with Client(published.home) as seeder, Swarm(SwarmConfig()) as swarm:
        start_seeding(seeder, swarm, [published.ref])
        with Client(home) as client:
            pull(client, published.ref, published.envelope, peers=[swarm.endpoint], timeout=60)
    with Client(home) as client:  # no peer, no web seed, no registry: every byte is here already
        report = pull(client, same_files.ref, same_files.envelope, timeout=10)
        assert report.stats.downloaded == 0 and report.stats.reused == same_files.manifest.total_size
        client.verify(same_files.ref, fast=False)
        assert not list(client.vault.incoming.glob("*.pull"))


# ---- races and damage found in review ----------------------------------------------------


def test_a_file_changed_between_its_hash_and_its_storing_is_refused(tmp_path: Path, pub_key: PrivateKey,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer changes a staged file after admission hashed it (here: while the weights
    headers are checked): nothing is stored, and nothing certifies the changed bytes."""
    import seedvault.client as client_module

    model_dir = tmp_path / "model"
    make_model(model_dir)
    with Client(tmp_path / "pub") as pub:
        pub.save_policy(trusting(pub_key))
        pub.publish(model_dir, name="acme/tiny", version="1.0", license="Apache-2.0", key=pub_key)
        bundle = export_bundle(pub, "acme/tiny@1.0", tmp_path / "bundle")
    real = client_module.check_weights

    def racing(base: Path, manifest: Manifest, skip: frozenset[str] = frozenset()) -> None:
        with open(Path(base) / SHARD1, "r+b") as f:  # a byte of tensor data, after the hash
            f.seek(-1, 2)
            last = f.read(1)
            f.seek(-1, 2)
            f.write(bytes([last[0] ^ 0x40]))
        real(base, manifest, skip)

    with Client(tmp_path / "recv") as client:
        client.save_policy(trusting(pub_key))
        monkeypatch.setattr(client_module, "check_weights", racing)
        with pytest.raises(IntegrityError, match="changed after it was verified"):
            import_bundle(client, bundle)
        monkeypatch.setattr(client_module, "check_weights", real)
        assert client.vault.entries() == [] and not list(client.vault.blobs.iterdir())
        import_bundle(client, bundle)  # and the real bytes then go in
        client.verify("acme/tiny@1.0", fast=False)


@pytest.mark.timeout(180)
def test_a_held_file_changed_during_a_delta_pull_is_fetched_instead(tmp_path: Path, pub_key: PrivateKey) -> None:
    published = publish_generated(tmp_path, pub_key, 8)
    v11 = second_version(published, pub_key, "LICENSE", os.urandom(300_000))
    home = new_peer(tmp_path / "peer", pub_key)
    with Client(published.home) as seeder, Swarm(SwarmConfig()) as swarm:
        start_seeding(seeder, swarm, [published.ref, v11.ref])
        with Client(home) as client:
            pull(client, published.ref, published.envelope, peers=[swarm.endpoint], timeout=60)
            shard = published.manifest.files[-1]
            blob = client.vault.blob_path(shard)
            touched: list[bool] = []

            def touch_once(_stats: object) -> None:
                if not touched:
                    touched.append(True)
                    os.utime(blob)  # a backup tool touches the vault's copy: its record no longer holds

            report = pull(client, v11.ref, v11.envelope, peers=[swarm.endpoint], timeout=60, on_status=touch_once)
            assert touched and report.stats.reused < v11.manifest.total_size - shard.size + 1
            client.verify(v11.ref, fast=False)
            client.verify(published.ref, fast=False)


def test_a_resume_file_that_does_not_decode_is_dropped_and_the_pull_completes(tmp_path: Path,
                                                                              pub_key: PrivateKey) -> None:
    published = publish_generated(tmp_path, pub_key, 4)
    home = new_peer(tmp_path / "peer", pub_key)
    with Client(published.home) as seeder, Swarm(SwarmConfig()) as swarm:
        start_seeding(seeder, swarm, [published.ref])
        with Client(home) as client:
            (client.vault.incoming / f"{published.envelope.digest}.resume").write_bytes(b"d5:hello")  # torn
            report = pull(client, published.ref, published.envelope, peers=[swarm.endpoint], timeout=60)
            assert not report.already_present
            client.verify(published.ref, fast=False)
