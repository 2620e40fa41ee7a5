"""The vault: blobs, snapshots, first-seen digests, latest, verification records (real SQLite)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    MODEL,
    PIECE,
    REF,
    SHARD1,
    Model,
    assert_no_staging,
    build_manifest,
    db_rows,
    make_model,
    make_writable_and_tamper,
    trust,
)

from seedvault.bundle import export_bundle, import_bundle
from seedvault.client import Client
from seedvault.errors import IntegrityError, NotFoundError, RollbackError, UnsafePathError, UsageError
from seedvault.manifest import FileEntry, format_time
from seedvault.signing import PrivateKey
from seedvault.vault import Vault, is_newer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _m(version: str, created: datetime = T0) -> Any:
    return build_manifest([FileEntry("a", 1, "a" * 64, "b" * 64)], version=version, created=created)


@pytest.mark.parametrize(
    ("newer", "older"),
    [
        ("1.10", "1.9"),
        ("2.0.0", "2.0.0rc1"),
        ("1.0.1", "1.0"),
        ("2024.5.1", "2024.4.30"),
        ("1.0.post1", "1.0"),
    ],
)
def test_is_newer_orders_versions_not_strings(newer: str, older: str) -> None:
    # The newer version wins even when it was signed earlier.
    assert is_newer(_m(newer, T0), _m(older, T0 + timedelta(days=1)))
    assert not is_newer(_m(older, T0 + timedelta(days=1)), _m(newer, T0))


@pytest.mark.parametrize(("a", "b"), [("3f2a9c1", "a0b1c2d"), ("2024-05-01", "2024-04-30"), ("main", "1.0")])
def test_is_newer_uses_signed_created_time_for_labels(a: str, b: str) -> None:
    assert is_newer(_m(a, T0 + timedelta(seconds=1)), _m(b, T0))
    assert not is_newer(_m(a, T0), _m(b, T0 + timedelta(seconds=1)))


def test_is_newer_same_time_falls_back_to_label() -> None:
    assert is_newer(_m("b0", T0), _m("a0", T0))
    assert not is_newer(_m("a0", T0), _m("b0", T0))


def test_snapshot_holds_exactly_the_manifest_files_as_read_only_links(publisher: Client, model: Model) -> None:
    entry = publisher.vault.resolve(REF)
    snap = publisher.vault.snapshot_dir(entry.manifest)
    assert snap == publisher.paths.vault_dir / "snapshots" / "acme" / "tiny" / "1.0"
    present = sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())
    assert present == sorted(f.path for f in entry.manifest.files)
    for f in entry.manifest.files:
        blob = publisher.vault.blob_path(f)
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == f.sha256
        assert blob.name == f.pieces_root  # named by what verification checks
        assert (snap / f.path).stat().st_ino == blob.stat().st_ino
        assert stat.S_IMODE(blob.stat().st_mode) == 0o444
        assert (snap / f.path).read_bytes() == (model.path / f.path).read_bytes()
    assert_no_staging(publisher)


def test_nested_empty_and_identical_files_round_trip(make_client: Any, tmp_path: Path, pub_key: PrivateKey) -> None:
    src = tmp_path / "src"
    make_model(src)
    (src / "tokenizer").mkdir()
    (src / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (src / "tokenizer" / "copy.txt").write_text("a\nb\n")  # same bytes: one blob, two paths
    (src / "empty.txt").write_bytes(b"")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: main")  # not part of the model
    publisher: Client = make_client("pub")
    trust(publisher, pub_key)
    publisher.publish(src, name=MODEL, version="1.0", license="MIT", key=pub_key, piece_length=PIECE)
    manifest = publisher.vault.resolve(REF).manifest
    assert [f.path for f in manifest.files][-2:] == ["tokenizer/copy.txt", "tokenizer/vocab.txt"]
    assert manifest.file("empty.txt").pieces_root is None
    assert ".git/HEAD" not in {f.path for f in manifest.files}
    receiver: Client = make_client("recv")
    trust(receiver, pub_key)
    result = import_bundle(receiver, export_bundle(publisher, REF, tmp_path / "b", as_tar=True))
    assert (result.snapshot / "tokenizer" / "copy.txt").read_text() == "a\nb\n"
    assert (result.snapshot / "empty.txt").stat().st_size == 0
    receiver.verify(REF)


def test_publish_refuses_symlinks_in_the_model_dir(make_client: Any, model: Model, pub_key: PrivateKey,
                                                   tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("{}")
    (model.path / "linked.json").symlink_to(tmp_path / "elsewhere")
    publisher: Client = make_client("pub")
    with pytest.raises(UnsafePathError, match=r"linked.json: expected a regular file, found a symlink"):
        publisher.publish(model.path, name=MODEL, version="1.0", license="MIT", key=pub_key)


def test_publish_refuses_empty_or_missing_dir(make_client: Any, tmp_path: Path, pub_key: PrivateKey) -> None:
    publisher: Client = make_client("pub")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="expected model files, found none"):
        publisher.publish(tmp_path / "empty", name=MODEL, version="1.0", license="MIT", key=pub_key)
    with pytest.raises(UsageError, match="expected a model directory, found nothing"):
        publisher.publish(tmp_path / "nope", name=MODEL, version="1.0", license="MIT", key=pub_key)


def test_publish_records_license_file_and_summaries(publisher: Client, model: Model) -> None:
    m = publisher.vault.resolve(REF).manifest
    assert m.license.spdx == "Apache-2.0"
    assert m.license.file == "LICENSE"
    assert m.license.sha256 == hashlib.sha256((model.path / "LICENSE").read_bytes()).hexdigest()
    summary = m.file(SHARD1).safetensors
    assert summary is not None
    assert (summary.tensors, summary.parameters, summary.dtypes) == (2, 64 * 96 + 96, {"F32": 2})
    assert m.file("config.json").safetensors is None
    assert m.origin.publisher == "Acme"
    assert m.torrent.piece_length == PIECE and m.torrent.info_hash_v2 == m.computed_info_hash_v2()


def test_first_seen_survives_reopening_the_vault(publisher: Client, tmp_path: Path, pub_key: PrivateKey) -> None:
    digest = publisher.vault.resolve(REF).digest
    home = publisher.paths.config_dir.parent
    publisher.close()
    other = tmp_path / "other"
    make_model(other, seed=9)
    with Client(home) as again:
        assert again.vault.resolve(REF).digest == digest
        with pytest.raises(RollbackError, match=digest):
            again.publish(other, name=MODEL, version="1.0", license="MIT", key=pub_key)
        assert db_rows(again, "SELECT digest FROM first_seen WHERE name=?", MODEL) == [(digest,)]


def test_latest_moves_forward_only(publisher: Client, tmp_path: Path, pub_key: PrivateKey) -> None:
    for version, seed in (("2.0", 2), ("1.5", 3), ("2.1", 4), ("0.1", 5)):
        make_model(tmp_path / version, seed=seed)
        publisher.publish(tmp_path / version, name=MODEL, version=version, license="MIT", key=pub_key)
    assert publisher.vault.latest_version(MODEL) == "2.1"
    assert publisher.vault.resolve(MODEL).manifest.version == "2.1"
    assert [e.manifest.version for e in publisher.vault.entries()] == ["1.0", "2.0", "1.5", "2.1", "0.1"]


def test_resolve_reports_what_is_there(publisher: Client) -> None:
    with pytest.raises(NotFoundError, match=r"acme/tiny@2.0 is not in the vault; versions present: 1.0"):
        publisher.vault.resolve("acme/tiny@2.0")
    with pytest.raises(NotFoundError, match=r"acme/other is not in the vault$"):
        publisher.vault.resolve("acme/other")
    with pytest.raises(UsageError, match="model reference"):
        publisher.vault.resolve("not a ref")


def test_staging_is_removed_whatever_happens(tmp_path: Path) -> None:
    with Vault(tmp_path / "v") as vault:
        with pytest.raises(RuntimeError), vault.staging("x") as staged:
            (staged / "f").write_bytes(b"partial")
            raise RuntimeError("interrupted")
        assert not any(vault.incoming.iterdir())


def test_admit_cleans_staging_when_fill_fails(receiver: Client, publisher: Client) -> None:
    envelope = publisher.vault.resolve(REF).envelope

    def fill(manifest: Any, staged: Path) -> None:
        (staged / SHARD1).write_bytes(b"half")
        raise IntegrityError("connection lost")

    with pytest.raises(IntegrityError, match="connection lost"):
        receiver.admit(envelope, fill)
    assert_no_staging(receiver)
    assert not receiver.vault.entries()


def test_add_signatures_merges_and_persists(publisher: Client, approver_key: PrivateKey) -> None:
    merged = publisher.approve(REF, approver_key)
    assert len(merged.signatures) == 2
    assert publisher.approve(REF, approver_key).signatures == merged.signatures  # once per key
    assert publisher.vault.resolve(REF).envelope == merged
    with pytest.raises(NotFoundError):
        publisher.approve("acme/tiny@7", approver_key)


def test_verification_record_matches_only_unchanged_files(tmp_path: Path) -> None:
    with Vault(tmp_path / "v") as vault:
        f = tmp_path / "file"
        f.write_bytes(b"data")
        vault.record_verified(f, "d" * 64, "r" * 64, f.stat())
        assert vault.has_valid_record(f, "d" * 64, "r" * 64)
        assert not vault.has_valid_record(f, "e" * 64, "r" * 64)  # another manifest
        assert not vault.has_valid_record(f, "d" * 64, "s" * 64)  # another expected root
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        assert not vault.has_valid_record(f, "d" * 64, "r" * 64)
        vault.record_verified(f, "d" * 64, "r" * 64, f.stat())
        f.unlink()
        assert not vault.has_valid_record(f, "d" * 64, "r" * 64)
        assert not vault.has_valid_record(tmp_path / "never", "d" * 64, "r" * 64)


def test_verify_detects_a_file_added_to_the_snapshot(receiver: Client, bundle: Path) -> None:
    result = import_bundle(receiver, bundle)
    os.chmod(result.snapshot, 0o755)
    (result.snapshot / "extra.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match=r"not in the manifest: extra.py$"):
        receiver.verify(REF)


def test_verify_detects_a_removed_snapshot(receiver: Client, bundle: Path) -> None:
    result = import_bundle(receiver, bundle)
    shutil.rmtree(result.snapshot)
    with pytest.raises(IntegrityError, match=r"snapshot: expected a directory at .*, found nothing"):
        receiver.verify(REF)


def test_manifest_rows_are_queryable(publisher: Client) -> None:
    (row,) = db_rows(publisher, "SELECT name, version, created FROM manifests")
    m = publisher.vault.resolve(REF).manifest
    assert row == (MODEL, "1.0", format_time(m.created))
    assert db_rows(publisher, "SELECT version FROM latest WHERE name=?", MODEL) == [("1.0",)]


def test_importing_again_repairs_a_damaged_snapshot(receiver: Client, bundle: Path) -> None:
    """The remedy the error suggests (import it again) works: damaged and extra files are fixed."""
    result = import_bundle(receiver, bundle)
    manifest = result.verdict.manifest
    make_writable_and_tamper(receiver.vault.blob_path(manifest.file(SHARD1)), 10)
    (result.snapshot / "extra.py").write_text("print('hi')")
    with pytest.raises(IntegrityError):
        receiver.verify(REF)
    before = db_rows(receiver, "SELECT digest FROM manifests")
    import_bundle(receiver, bundle)
    receiver.verify(REF)
    assert not (result.snapshot / "extra.py").exists()
    assert db_rows(receiver, "SELECT digest FROM manifests") == before
    assert_no_staging(receiver)
