"""Every attack of issue 2, refused: right error class, expected vs found, nothing loaded or stored.

The publisher (fixture) signed acme/tiny@1.0 with an Ed25519 key; the receiver trusts that
key for acme/* only. Each test forges or damages something on the way and checks the
receiver's vault is left exactly as it was.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    MODEL,
    PIECE,
    REF,
    SHARD1,
    SHARD2,
    Model,
    assert_no_staging,
    assert_unchanged,
    assert_vault_clean,
    build_manifest,
    db_rows,
    entries_for,
    make_model,
    make_writable_and_tamper,
    rebind,
    resign,
    sign_payload,
    sign_statement,
    trust,
    vault_state,
    write_bundle,
)
from test_weights import craft, f32

from seedvault import hashing
from seedvault.bundle import export_bundle, import_bundle
from seedvault.client import Client
from seedvault.errors import (
    ExpiredError,
    IntegrityError,
    ManifestError,
    NotFoundError,
    PolicyError,
    RollbackError,
    SignatureError,
    UnsafePathError,
    UnsafeWeightsError,
    VerificationError,
)
from seedvault.manifest import Manifest, info_hash_v2
from seedvault.signing import Envelope, PrivateKey, Signature


def published(client: Client, ref: str = REF) -> tuple[Envelope, Manifest]:
    entry = client.vault.resolve(ref)
    return entry.envelope, entry.manifest


def root_of(path: Path) -> str | None:
    return hashing.hash_file(path, PIECE).pieces_root


def refuse_import(receiver: Client, source: Path, error: type[Exception], match: str) -> VerificationError:
    """Import must raise `error` and leave the receiver's vault empty."""
    with pytest.raises(error, match=match) as info:
        import_bundle(receiver, source)
    assert isinstance(info.value, VerificationError)
    assert info.value.exit_code == 3
    assert_vault_clean(receiver)
    return info.value


# ---- bytes changed on the way --------------------------------------------------------


def test_tampered_shard_byte_refused(receiver: Client, bundle: Path, publisher: Client) -> None:
    _, manifest = published(publisher)
    shard = bundle / "files" / SHARD1
    make_writable_and_tamper(shard, 20_000)
    expected = manifest.file(SHARD1).pieces_root
    found = root_of(shard)
    assert expected and found and expected != found
    err = refuse_import(receiver, bundle, IntegrityError,
                        f"'{SHARD1}'.*expected pieces root {expected}, found {found}")
    assert isinstance(err, IntegrityError) and (err.expected, err.found) == (expected, found)


def test_tampered_shard_byte_in_vault_refused(receiver: Client, bundle: Path, publisher: Client) -> None:
    """After import, a byte changed in the stored blob: verify, load and snapshot_path refuse."""
    import_bundle(receiver, bundle)
    _, manifest = published(receiver)
    entry = manifest.file(SHARD2)
    blob = receiver.vault.blob_path(entry)
    make_writable_and_tamper(blob, entry.size - 3, keep_mtime=False)
    found = root_of(blob)
    match = f"expected pieces root {entry.pieces_root}, found {found}"
    with pytest.raises(IntegrityError, match=match):
        receiver.verify(REF)
    with pytest.raises(IntegrityError, match=match):
        receiver.load(REF)
    with pytest.raises(IntegrityError, match=match):
        receiver.load(REF, fast=True)
    with pytest.raises(IntegrityError, match=match):
        receiver.snapshot_path(REF)
    with pytest.raises(IntegrityError, match=match):  # nor is it exported onward
        export_bundle(receiver, REF, bundle.parent / "onward")
    assert not (bundle.parent / "onward").exists()


def test_tampered_equal_shard_in_vault_refused(make_client: Any, tmp_path: Path, pub_key: PrivateKey) -> None:
    """Equal-sized shards are checked by whole-file SHA-256 in verify and load: still refused."""
    from seedvault.demo_model import generate_model

    generate_model(tmp_path / "even", 2, shards=2)
    owner: Client = make_client("even")
    trust(owner, pub_key)
    owner.publish(tmp_path / "even", name="acme/even", version="1", license="MIT", key=pub_key)
    manifest = owner.vault.resolve("acme/even@1").manifest
    entry = manifest.files[-1]
    assert entry.is_safetensors and hashing.whole_file_balanced(
        [f.size for f in manifest.files if f.is_safetensors], 2)
    make_writable_and_tamper(owner.vault.blob_path(entry), entry.size // 2, keep_mtime=False)
    match = f"{entry.path}.*expected (sha256 {entry.sha256}|pieces root {entry.pieces_root}), found [0-9a-f]{{64}}"
    with pytest.raises(IntegrityError, match=match):
        owner.verify("acme/even@1")
    with pytest.raises(IntegrityError, match=match):
        owner.load("acme/even@1")


def test_fast_mode_reverifies_after_in_place_change(receiver: Client, bundle: Path) -> None:
    """The record is trusted only while size, mtime_ns, inode and ctime are unchanged.

    The blob is modified in place, keeping its size and restoring its mtime: only ctime
    tells, and it is enough to force a full check.
    """
    import_bundle(receiver, bundle)
    receiver.verify(REF, fast=True)  # the record from import holds
    _, manifest = published(receiver)
    entry = manifest.file(SHARD1)
    snap_file = receiver.vault.snapshot_dir(manifest) / SHARD1
    (recorded_ctime,) = db_rows(receiver, "SELECT ctime_ns FROM records WHERE path=?", str(snap_file))[0]
    before = snap_file.stat()
    time.sleep(0.05)  # past the kernel's coarse timestamp tick, so ctime can move
    make_writable_and_tamper(receiver.vault.blob_path(entry), 100)
    after = snap_file.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != recorded_ctime
    found = root_of(snap_file)
    with pytest.raises(IntegrityError, match=f"expected pieces root {entry.pieces_root}, found {found}"):
        receiver.verify(REF, fast=True)
    with pytest.raises(IntegrityError, match=f"found {found}"):
        receiver.load(REF, fast=True)
    with pytest.raises(IntegrityError, match=f"found {found}"):
        receiver.snapshot_path(REF)  # fast by default


def test_file_changed_during_verification_not_trusted_later(receiver: Client, bundle: Path) -> None:
    """A file modified right after it was hashed must not get a record that vouches for it."""
    import_bundle(receiver, bundle)
    _, manifest = published(receiver)
    entry = manifest.file(SHARD1)
    blob = receiver.vault.blob_path(entry)
    time.sleep(0.05)  # past the coarse timestamp tick of the import's own stat

    original = blob.read_bytes()

    def tamper_once_hashed(size: int) -> None:  # progress: called once a file's hashes are done
        if size == entry.size and blob.read_bytes() == original:
            make_writable_and_tamper(blob, 100)

    receiver.verify(REF, progress=tamper_once_hashed)  # hashed before the change: passes
    with pytest.raises(IntegrityError, match=f"expected pieces root {entry.pieces_root}"):
        receiver.verify(REF, fast=True)
    with pytest.raises(IntegrityError, match=f"expected pieces root {entry.pieces_root}"):
        receiver.load(REF, fast=True)


def test_fast_mode_reverifies_a_replaced_file(receiver: Client, bundle: Path) -> None:
    """A different file put in place (new inode) with the old size and mtime is re-hashed."""
    import_bundle(receiver, bundle)
    _, manifest = published(receiver)
    snap_file = receiver.vault.snapshot_dir(manifest) / SHARD2
    st = snap_file.stat()
    data = bytearray(snap_file.read_bytes())
    data[-1] ^= 0xFF
    os.chmod(snap_file.parent, 0o755)
    replacement = snap_file.with_name("x")
    replacement.write_bytes(bytes(data))
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, snap_file)
    with pytest.raises(IntegrityError, match=f"'{SHARD2}'"):
        receiver.load(REF, fast=True)


def test_truncated_file_refused(receiver: Client, bundle: Path, publisher: Client) -> None:
    _, manifest = published(publisher)
    size = manifest.file(SHARD2).size
    with open(bundle / "files" / SHARD2, "r+b") as f:
        f.truncate(size - 1)
    refuse_import(receiver, bundle, IntegrityError, f"'{SHARD2}': expected {size} bytes, found {size - 1}")


def test_extra_file_refused(receiver: Client, bundle: Path) -> None:
    (bundle / "files" / "evil.py").write_text("import os; os.system('id')\n")
    refuse_import(receiver, bundle, IntegrityError, r"not in the manifest: evil.py$")


def test_missing_file_refused(receiver: Client, bundle: Path) -> None:
    (bundle / "files" / "config.json").unlink()
    refuse_import(receiver, bundle, IntegrityError, r"expected exactly the 4 files.*; missing config.json$")


def test_renamed_file_refused(receiver: Client, bundle: Path) -> None:
    (bundle / "files" / SHARD1).rename(bundle / "files" / "model.safetensors")
    refuse_import(receiver, bundle, IntegrityError,
                  rf"missing {SHARD1}; not in the manifest: model.safetensors$")


def test_tampered_payload_refused(receiver: Client, bundle: Path, publisher: Client, model: Model) -> None:
    """The attacker swaps a shard and rewrites the manifest to match; the signature breaks."""
    envelope, manifest = published(publisher)
    evil = bundle.parent / "evil"
    make_model(evil, seed=666)
    shutil.copyfile(evil / SHARD1, bundle / "files" / SHARD1)
    (new_entry,) = entries_for(bundle / "files", [SHARD1])
    files = tuple(new_entry if f.path == SHARD1 else f for f in manifest.files)
    forged = rebind(manifest, files=files)
    tampered = Envelope(forged.to_payload(), signatures=envelope.signatures)  # the real signature
    (bundle / "envelope.json").write_bytes(tampered.to_json())
    refuse_import(receiver, bundle, SignatureError,
                  "expected 1 valid signature.*found 0.*signature does not verify")


def test_tampered_payload_one_byte_refused(receiver: Client, bundle: Path) -> None:
    raw = json.loads((bundle / "envelope.json").read_text())
    envelope = Envelope.from_json((bundle / "envelope.json").read_bytes())
    payload = envelope.payload.replace(b'"Apache-2.0"', b'"Apache-2.1"')
    assert payload != envelope.payload
    raw["payload"] = base64.b64encode(payload).decode()
    (bundle / "envelope.json").write_text(json.dumps(raw))
    refuse_import(receiver, bundle, SignatureError, "signature does not verify")


# ---- who signed -------------------------------------------------------------------


def test_untrusted_key_refused(receiver: Client, publisher: Client, model: Model, tmp_path: Path,
                               stranger_key: PrivateKey) -> None:
    envelope, _ = published(publisher)
    forged = write_bundle(tmp_path / "forged", sign_payload(envelope.payload, stranger_key), model.path)
    # The bundle carries the stranger's public key: bundled keys are never trusted by themselves.
    (forged / "keys").mkdir()
    (forged / "keys" / f"{stranger_key.key_id}.pub").write_text(stranger_key.public.pem())
    refuse_import(receiver, forged, SignatureError,
                  f"found 0.*{stranger_key.key_id[:16]}: key not in the local trust policy")


def test_revoked_key_refused(receiver: Client, bundle: Path, pub_key: PrivateKey) -> None:
    receiver.save_policy(receiver.policy.revoke(pub_key.key_id))
    refuse_import(receiver, bundle, PolicyError, f"found 0.*{pub_key.key_id[:16]}.*: key is revoked")


def test_key_revoked_after_import_refused_on_load(receiver: Client, bundle: Path, pub_key: PrivateKey) -> None:
    import_bundle(receiver, bundle)
    assert receiver.load(REF)
    receiver.save_policy(receiver.policy.revoke(pub_key.key_id))
    for call in (lambda: receiver.load(REF), lambda: receiver.load(REF, fast=True),
                 lambda: receiver.verify(REF, fast=True), lambda: receiver.snapshot_path(REF)):
        with pytest.raises(PolicyError, match="key is revoked"):
            call()
    _, _, verdict = receiver.show(REF)
    assert isinstance(verdict, PolicyError)


def test_key_outside_namespace_scope_refused(make_client: Any, bundle: Path, pub_key: PrivateKey) -> None:
    receiver: Client = make_client("scoped")
    trust(receiver, pub_key, "publisher", "other/*", "acme/other")
    refuse_import(receiver, bundle, PolicyError, "found 0.*trusted as publisher, but not for this namespace")


def test_key_signing_another_namespace_refused(receiver: Client, model: Model, tmp_path: Path,
                                               pub_key: PrivateKey) -> None:
    """acme's key is trusted for acme/*; a manifest it signs for meta/llama is refused."""
    manifest = build_manifest(entries_for(model.path), name="meta/llama")
    forged = write_bundle(tmp_path / "forged", sign_payload(manifest.to_payload(), pub_key), model.path)
    with pytest.raises(PolicyError, match=r"meta/llama.*not for this namespace"):
        import_bundle(receiver, forged)
    assert_vault_clean(receiver, "meta/llama")


@pytest.mark.parametrize("key_fixture", ["pub_key", "p256_key"])
def test_two_signatures_by_same_key_counted_once(make_client: Any, publisher: Client, model: Model,
                                                 tmp_path: Path, key_fixture: str,
                                                 request: pytest.FixtureRequest) -> None:
    key: PrivateKey = request.getfixturevalue(key_fixture)
    receiver: Client = make_client("threshold")
    trust(receiver, key)
    receiver.save_policy(dataclasses.replace(receiver.policy, publisher_threshold=2))
    envelope, _ = published(publisher)
    one = Envelope(envelope.payload).sign(key).signatures[0]
    two = Envelope(envelope.payload).sign(key).signatures[0]  # P-256: a different signature, same key
    doubled = Envelope(envelope.payload, signatures=(one, two))
    forged = write_bundle(tmp_path / "doubled", doubled, model.path)
    refuse_import(receiver, forged, PolicyError,
                  "expected 2 valid signature.*found 1.*another signature by the same key, counted once")


def test_approval_required_but_missing_refused(receiver: Client, bundle: Path, approver_key: PrivateKey) -> None:
    trust(receiver, approver_key, "approver")
    receiver.save_policy(dataclasses.replace(receiver.policy, required_approvals=1))
    refuse_import(receiver, bundle, PolicyError, "expected 1 approval.*found 0")


def test_approval_present_accepted(make_client: Any, receiver: Client, bundle: Path, tmp_path: Path,
                                   approver_key: PrivateKey, pub_key: PrivateKey, model: Model) -> None:
    """An organization's approver countersigns the imported release; its bundle is then accepted."""
    org: Client = make_client("org")
    trust(org, pub_key)
    import_bundle(org, bundle)
    approved = org.approve(REF, approver_key)
    assert {s.keyid for s in approved.signatures} == {pub_key.key_id, approver_key.key_id}
    onward = export_bundle(org, REF, tmp_path / "approved")

    trust(receiver, approver_key, "approver")
    receiver.save_policy(dataclasses.replace(receiver.policy, required_approvals=1))
    result = import_bundle(receiver, onward)
    assert (result.verdict.publishers, result.verdict.approvers) == (1, 1)
    tensors = receiver.load(REF)
    np.testing.assert_array_equal(tensors["embed.weight"], model.tensors[SHARD1]["embed.weight"])


def test_approval_of_tampered_release_refused(make_client: Any, bundle: Path, approver_key: PrivateKey,
                                              pub_key: PrivateKey) -> None:
    """An approver vouches for bytes: a release damaged in the approver's vault is not countersigned."""
    org: Client = make_client("org")
    trust(org, pub_key)
    import_bundle(org, bundle)
    snapshot = org.vault.snapshot_dir(org.vault.resolve(REF).manifest)
    make_writable_and_tamper(snapshot / SHARD1, 100)
    with pytest.raises(IntegrityError, match=r"expected pieces root [0-9a-f]{64}, found [0-9a-f]{64}"):
        org.approve(REF, approver_key)
    assert {s.keyid for s in org.vault.resolve(REF).envelope.signatures} == {pub_key.key_id}


def test_approval_by_key_out_of_scope_not_counted(make_client: Any, receiver: Client, bundle: Path,
                                                  tmp_path: Path, approver_key: PrivateKey,
                                                  pub_key: PrivateKey) -> None:
    org: Client = make_client("org")
    trust(org, pub_key)
    import_bundle(org, bundle)
    org.approve(REF, approver_key)
    onward = export_bundle(org, REF, tmp_path / "approved")
    trust(receiver, approver_key, "approver", "other/*")
    receiver.save_policy(dataclasses.replace(receiver.policy, required_approvals=1))
    refuse_import(receiver, onward, PolicyError, "expected 1 approval.*found 0.*not for this namespace")


def test_license_not_allowed_refused(receiver: Client, bundle: Path) -> None:
    receiver.save_policy(dataclasses.replace(receiver.policy, allowed_licenses=("MIT", "BSD-3-Clause")))
    refuse_import(receiver, bundle, PolicyError,
                  "license Apache-2.0 is not allowed; expected one of MIT, BSD-3-Clause")


def test_expired_manifest_refused(receiver: Client, publisher: Client, model: Model, tmp_path: Path,
                                  pub_key: PrivateKey) -> None:
    _, manifest = published(publisher)
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    envelope, _ = resign(manifest, pub_key, version="1.1", expires=past)
    forged = write_bundle(tmp_path / "expired", envelope, model.path)
    refuse_import(receiver, forged, ExpiredError, f"acme/tiny@1.1: expired at {past:%Y-%m-%dT%H:%M:%SZ}; it is now")


# ---- rollback and substitution -----------------------------------------------------


def test_substituted_manifest_for_seen_version_refused(receiver: Client, bundle: Path, tmp_path: Path,
                                                       pub_key: PrivateKey) -> None:
    """Even signed by the trusted key, a second manifest for acme/tiny@1.0 is refused."""
    first = import_bundle(receiver, bundle).envelope.digest
    other = tmp_path / "other"
    make_model(other, seed=7)
    manifest = build_manifest(entries_for(other))
    substitute = sign_payload(manifest.to_payload(), pub_key)
    forged = write_bundle(tmp_path / "substitute", substitute, other)
    before = vault_state(receiver)
    with pytest.raises(RollbackError, match=f"first saw manifest digest {first}.*refusing a different manifest "
                                            f"with digest {substitute.digest}"):
        import_bundle(receiver, forged)
    assert_unchanged(receiver, before)
    assert receiver.vault.resolve(REF).digest == first


def test_substituted_manifest_refused_at_publish(publisher: Client, tmp_path: Path, pub_key: PrivateKey) -> None:
    other = tmp_path / "other"
    make_model(other, seed=7)
    before = vault_state(publisher)
    with pytest.raises(RollbackError, match=r"acme/tiny@1.0: this vault first saw manifest digest"):
        publisher.publish(other, name=MODEL, version="1.0", license="MIT", key=pub_key, piece_length=PIECE)
    assert_unchanged(publisher, before)


def _bundle_version(publisher: Client, model_dir: Path, version: str, dest: Path, key: PrivateKey) -> Path:
    publisher.publish(model_dir, name=MODEL, version=version, license="Apache-2.0", key=key, piece_length=PIECE)
    return export_bundle(publisher, f"{MODEL}@{version}", dest)


def test_latest_never_moves_to_older_version(receiver: Client, publisher: Client, bundle: Path, tmp_path: Path,
                                             pub_key: PrivateKey) -> None:
    v2_dir, v10_dir = tmp_path / "v2", tmp_path / "v10"
    v2_tensors = make_model(v2_dir, seed=2)
    make_model(v10_dir, seed=10)
    b2 = _bundle_version(publisher, v2_dir, "1.9", tmp_path / "b2", pub_key)
    b10 = _bundle_version(publisher, v10_dir, "1.10", tmp_path / "b10", pub_key)
    import_bundle(receiver, b2)
    import_bundle(receiver, bundle)  # 1.0 arrives after 1.9: stored, but not latest
    assert receiver.vault.resolve(MODEL).manifest.version == "1.9"
    np.testing.assert_array_equal(receiver.load(MODEL)["embed.weight"], v2_tensors[SHARD1]["embed.weight"])
    import_bundle(receiver, b10)  # 1.10 > 1.9 as versions, though not as strings
    assert receiver.vault.resolve(MODEL).manifest.version == "1.10"
    assert {e.manifest.version for e in receiver.vault.entries()} == {"1.0", "1.9", "1.10"}


def test_latest_of_commit_id_versions_follows_signed_created_time(receiver: Client, publisher: Client,
                                                                  model: Model, tmp_path: Path,
                                                                  pub_key: PrivateKey) -> None:
    _, manifest = published(publisher)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    older, _ = resign(manifest, pub_key, version="f00dbee", created=t0)
    newer, _ = resign(manifest, pub_key, version="0abc123", created=t0 + timedelta(hours=1))
    import_bundle(receiver, write_bundle(tmp_path / "newer", newer, model.path))
    import_bundle(receiver, write_bundle(tmp_path / "older", older, model.path))
    # "f00dbee" sorts after "0abc123", but was signed earlier: latest stays on 0abc123.
    assert receiver.vault.latest_version(MODEL) == "0abc123"
    assert receiver.vault.resolve(MODEL).digest == newer.digest


# ---- unsafe paths in a signed manifest -------------------------------------------------


def _statement_with_path(manifest: Manifest, bad: str, *, index: int = 0) -> dict[str, Any]:
    data = manifest.to_dict()
    old = data["subject"][index]["name"]
    data["subject"][index]["name"] = bad
    for f in data["predicate"]["files"]:
        if f["path"] == old:
            f["path"] = bad
    entries = [dataclasses.replace(f, path=bad if f.path == old else f.path) for f in manifest.files]
    data["predicate"]["torrent"]["info_hash_v2"] = info_hash_v2(manifest.torrent_name, entries, PIECE)
    return data


@pytest.mark.parametrize(
    ("attack", "bad"),
    [("path_traversal", "../escaped.safetensors"), ("path_traversal_nested", "sub/../../escaped.safetensors"),
     ("absolute_path", "ABS"), ("backslash_path", "..\\escaped.safetensors")],
)
def test_unsafe_path_in_manifest_refused(receiver: Client, publisher: Client, model: Model, tmp_path: Path,
                                         pub_key: PrivateKey, attack: str, bad: str) -> None:
    """test_path_traversal_refused, test_absolute_path_refused, test_backslash_path_refused."""
    if bad == "ABS":
        bad = str(tmp_path / "escaped.safetensors")
    _, manifest = published(publisher)
    envelope = sign_statement(_statement_with_path(manifest, bad), pub_key)
    forged = write_bundle(tmp_path / "forged", envelope, model.path)
    refuse_import(receiver, forged, UnsafePathError, "expected a relative POSIX path inside the model directory")
    # Refused before any file was written, anywhere a naive join could have put it.
    incoming = receiver.paths.vault_dir / "incoming"
    for place in (tmp_path, incoming, incoming.parent, receiver.paths.vault_dir / "snapshots"):
        assert not list(place.rglob("escaped.safetensors")), place


def test_duplicate_path_in_manifest_refused(receiver: Client, publisher: Client, model: Model, tmp_path: Path,
                                            pub_key: PrivateKey) -> None:
    _, manifest = published(publisher)
    data = manifest.to_dict()
    data["subject"].append(dict(data["subject"][0]))
    data["predicate"]["files"].append(dict(data["predicate"]["files"][0]))
    forged = write_bundle(tmp_path / "forged", sign_statement(data, pub_key), model.path)
    name = data["subject"][0]["name"]
    refuse_import(receiver, forged, UnsafePathError, f"expected each path once, found '{name}' twice")


def test_undecodable_path_in_manifest_refused(receiver: Client, publisher: Client, model: Model,
                                              tmp_path: Path, stranger_key: PrivateKey) -> None:
    """A lone surrogate (JSON "\\ud800") in a path is a clean refusal, not a crash, even unsigned."""
    _, manifest = published(publisher)
    data = _statement_with_path(manifest, "PLACEHOLDER")  # the info-hash cannot bencode a surrogate
    data["subject"][0]["name"] = data["predicate"]["files"][0]["path"] = "x\ud800.safetensors"
    payload = json.dumps(data).encode()  # ASCII JSON with a \ud800 escape
    assert b"\\ud800" in payload
    forged = write_bundle(tmp_path / "forged", sign_payload(payload, stranger_key), model.path)
    # Refused by the JSON reader itself (manifests/README.md section 1.1), before any path rule.
    refuse_import(receiver, forged, ManifestError, "lone surrogate")


def test_undecodable_file_name_refused_at_publish(make_client: Any, model: Model, pub_key: PrivateKey) -> None:
    (model.path / os.fsdecode(b"bad\xffname.json")).touch()  # a Latin-1 name on a UTF-8 system
    publisher: Client = make_client("publisher")
    with pytest.raises(UnsafePathError, match="is not valid Unicode"):
        publisher.publish(model.path, name=MODEL, version="1.0", license="MIT", key=pub_key)
    assert_vault_clean(publisher)


def test_case_duplicate_path_in_manifest_refused(receiver: Client, publisher: Client, model: Model,
                                                 tmp_path: Path, pub_key: PrivateKey) -> None:
    _, manifest = published(publisher)
    data = manifest.to_dict()
    i = next(i for i, s in enumerate(data["subject"]) if s["name"] == "config.json")
    dup = {**data["subject"][i], "name": "Config.JSON"}
    data["subject"].append(dup)
    data["predicate"]["files"].append({**data["predicate"]["files"][i], "path": dup["name"]})
    forged = write_bundle(tmp_path / "forged", sign_statement(data, pub_key), model.path)
    refuse_import(receiver, forged, UnsafePathError, "compared case-insensitively")


# ---- bundles and tars carrying links ---------------------------------------------------


def test_bundle_symlink_refused(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    """A symlink to a file with exactly the right bytes is still refused."""
    outside = tmp_path / "outside-config.json"
    shutil.copyfile(bundle / "files" / "config.json", outside)
    (bundle / "files" / "config.json").unlink()
    (bundle / "files" / "config.json").symlink_to(outside)
    refuse_import(receiver, bundle, UnsafePathError, "'config.json': expected a regular file, found a symlink to")


def test_bundle_symlinked_files_dir_refused(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-files"
    (bundle / "files").rename(real)
    (bundle / "files").symlink_to(real)
    refuse_import(receiver, bundle, UnsafePathError, "expected a directory, found a symlink")


def _tar_of(bundle: Path, dest: Path, extra: list[tarfile.TarInfo], drop: str | None = None) -> Path:
    with tarfile.open(dest, "w") as tar:
        for p in sorted(bundle.rglob("*")):
            rel = p.relative_to(bundle).as_posix()
            if p.is_file() and rel != drop:
                tar.add(p, arcname=rel)
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return dest


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _file(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize(
    ("attack", "member", "message"),
    [
        ("tar_symlink_member", _link("files/config.json", "/etc/passwd", tarfile.SYMTYPE),
         "found a symlink to '/etc/passwd'"),
        ("tar_hardlink_member", _link("files/config.json", "/etc/passwd", tarfile.LNKTYPE),
         "found a hard link to '/etc/passwd'"),
        ("tar_member_escapes", _file("../escaped"), "which has an empty, '.' or '..' component"),
        ("tar_member_escapes_from_files", _file("files/../../escaped"), "'..' component"),
        ("tar_member_absolute", _file("/tmp/escaped"), "which is absolute"),
        ("tar_member_device", tarfile.TarInfo("files/dev"), "found a character device"),
    ],
    ids=["symlink", "hardlink", "escapes", "escapes-from-files", "absolute", "device"],
)
def test_tar_member_attack_refused(receiver: Client, bundle: Path, tmp_path: Path, attack: str,
                                   member: tarfile.TarInfo, message: str) -> None:
    if attack == "tar_member_device":
        member.type = tarfile.CHRTYPE
    drop = "files/config.json" if member.name == "files/config.json" else None
    tar = _tar_of(bundle, tmp_path / "evil.tar", [member], drop=drop)
    refuse_import(receiver, tar, UnsafePathError, message)
    assert not list(tmp_path.rglob("escaped"))
    assert not Path("/tmp/escaped").exists()


# ---- unsafe weights --------------------------------------------------------------------


BAD_WEIGHTS = {
    "huge_header_length": craft(f32([("a", [1], 0, 4)]), b"\0" * 4, length=2**62),
    "overlapping_offsets": craft(f32([("a", [2], 0, 8), ("b", [2], 4, 12)]), b"\0" * 12),
    "out_of_range_offsets": craft(f32([("a", [4], 0, 16)]), b"\0" * 8),
    "shape_disagrees_with_bytes": craft(f32([("a", [3, 3], 0, 32)]), b"\0" * 32),
    "trailing_bytes": craft(f32([("a", [1], 0, 4)]), b"\0" * 4 + b"junk"),
}
BAD_WEIGHTS_MESSAGES = {
    "huge_header_length": f"found {2**62}",
    "overlapping_offsets": "overlapping",
    "out_of_range_offsets": r"expected offsets within 0..8, found \[0, 16\]",
    "shape_disagrees_with_bytes": "needs 36 bytes, its offsets hold 32",
    "trailing_bytes": "4 trailing bytes",
}


@pytest.mark.parametrize("attack", list(BAD_WEIGHTS))
def test_unsafe_safetensors_refused_at_publish(make_client: Any, model: Model, pub_key: PrivateKey,
                                               attack: str) -> None:
    (model.path / SHARD2).write_bytes(BAD_WEIGHTS[attack])
    publisher: Client = make_client("publisher")
    with pytest.raises(UnsafeWeightsError, match=f"'{SHARD2}'.*{BAD_WEIGHTS_MESSAGES[attack]}"):
        publisher.publish(model.path, name=MODEL, version="1.0", license="MIT", key=pub_key)
    assert_vault_clean(publisher)


@pytest.mark.parametrize("attack", list(BAD_WEIGHTS))
def test_unsafe_safetensors_refused_at_import(receiver: Client, model: Model, tmp_path: Path,
                                              pub_key: PrivateKey, attack: str) -> None:
    """A manifest signed by hand over a crafted file: the hashes match, the header does not pass."""
    (model.path / SHARD2).write_bytes(BAD_WEIGHTS[attack])
    envelope = sign_payload(build_manifest(entries_for(model.path)).to_payload(), pub_key)
    forged = write_bundle(tmp_path / "forged", envelope, model.path)
    refuse_import(receiver, forged, UnsafeWeightsError, f"'{SHARD2}'.*{BAD_WEIGHTS_MESSAGES[attack]}")


def test_unsafe_safetensors_refused_by_verify_dir(receiver: Client, model: Model, pub_key: PrivateKey) -> None:
    (model.path / SHARD2).write_bytes(BAD_WEIGHTS["overlapping_offsets"])
    envelope = sign_payload(build_manifest(entries_for(model.path)).to_payload(), pub_key)
    with pytest.raises(UnsafeWeightsError, match="overlapping"):
        receiver.verify_dir(model.path, envelope)


# pickle.dumps of os.system("id"): loading it would run a command. Never unpickled here.
PICKLE = (b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94"
          b"\x8c\x02id\x94\x85\x94R\x94.")


def test_pickle_refused_at_publish(make_client: Any, model: Model, pub_key: PrivateKey) -> None:
    (model.path / "pytorch_model.bin").write_bytes(PICKLE)
    publisher: Client = make_client("publisher")
    with pytest.raises(UnsafeWeightsError, match=r"expected safetensors, found pickle files.*: pytorch_model.bin$"):
        publisher.publish(model.path, name=MODEL, version="1.0", license="MIT", key=pub_key)
    assert_vault_clean(publisher)


def test_pickle_allowed_at_publish_is_never_loaded(make_client: Any, model: Model, pub_key: PrivateKey,
                                                   tmp_path: Path) -> None:
    (model.path / "pytorch_model.bin").write_bytes(PICKLE)
    publisher: Client = make_client("publisher")
    trust(publisher, pub_key)
    publisher.publish(model.path, name=MODEL, version="1.0", license="MIT", key=pub_key, allow_pickle=True)
    with pytest.raises(UnsafeWeightsError, match=r"refusing to load pickle files \(pytorch_model.bin\)"):
        publisher.load(REF)
    receiver: Client = make_client("receiver")
    trust(receiver, pub_key)
    import_bundle(receiver, export_bundle(publisher, REF, tmp_path / "b"))  # carried, verified...
    with pytest.raises(UnsafeWeightsError, match="refusing to load pickle"):
        receiver.load(REF)  # ...but never unpickled


def test_pickle_in_manifest_without_allow_pickle_refused(receiver: Client, model: Model, tmp_path: Path,
                                                         pub_key: PrivateKey) -> None:
    (model.path / "model.ckpt").write_bytes(PICKLE)
    manifest = build_manifest(entries_for(model.path), allow_pickle=True)
    data = manifest.to_dict()
    del data["predicate"]["allow_pickle"]
    forged = write_bundle(tmp_path / "forged", sign_statement(data, pub_key), model.path)
    refuse_import(receiver, forged, UnsafeWeightsError, r"pickle files 'model.ckpt'.*expected none")


def test_nothing_is_loaded_from_a_refused_import(receiver: Client, bundle: Path) -> None:
    make_writable_and_tamper(bundle / "files" / SHARD1, 50)
    with pytest.raises(IntegrityError):
        import_bundle(receiver, bundle)
    with pytest.raises(NotFoundError, match=r"acme/tiny@1.0 is not in the vault"):
        receiver.load(REF)
    assert_no_staging(receiver)


def test_junk_signatures_on_a_known_release_not_stored(receiver: Client, bundle: Path, tmp_path: Path,
                                                      stranger_key: PrivateKey, pub_key: PrivateKey) -> None:
    """Offering an already-held release again with piles of junk signatures (random key ids,
    invalid bytes, a stranger's valid signature) adds none of them to the stored envelope."""
    import_bundle(receiver, bundle)
    stored = receiver.vault.resolve(REF).envelope
    # 60: an envelope holds at most 64 signatures (more is refused whole, at parse).
    junk = tuple(Signature(os.urandom(32).hex(), os.urandom(64)) for _ in range(60))
    bad_by_trusted = Signature(pub_key.key_id, os.urandom(64))
    padded = Envelope(stored.payload, stored.payload_type, (*stored.signatures, *junk, bad_by_trusted))
    padded = padded.sign(stranger_key)
    shutil.copyfile(bundle / "envelope.json", tmp_path / "original.json")
    (bundle / "envelope.json").write_bytes(padded.to_json())
    import_bundle(receiver, bundle)  # accepted: the publisher's signature still verifies
    after = receiver.vault.resolve(REF).envelope
    assert after.signatures == stored.signatures
    assert receiver.verify(REF).publishers == 1
