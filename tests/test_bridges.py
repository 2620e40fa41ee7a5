"""Bridges: Hugging Face cache in and out, OpenSSF model signing (OMS) both ways.

Hugging Face caches are built by hand with the real layout (LFS blobs named by SHA-256,
other blobs by git blob SHA-1, snapshots of relative symlinks, refs/main) and checked with
huggingface_hub's own functions before anything is imported from them. OMS bundles are
checked with the real `model_signing` command in both directions. No network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import MODEL, PIECE, REF, SHARD1, SHARD2, Model, assert_vault_clean, make_writable_and_tamper, trust
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache

from seedvault.bridges.hf import export_hf, hf_revision, import_hf
from seedvault.bridges.oms import export_oms, import_oms, verify_oms
from seedvault.cli import main
from seedvault.client import Client
from seedvault.errors import IntegrityError, SignatureError, UnsafePathError, UsageError
from seedvault.signing import PrivateKey

BIN = Path(sys.executable).parent
MODEL_SIGNING = BIN / "model_signing"  # from the test extra, model-signing==1.1.1
HF_REPO = "acme-hf/tiny"
HF_REV = "0123456789abcdef0123456789abcdef01234567"
CARD = "---\nlicense: apache-2.0\nbase_model: acme-hf/base\nbase_model_relation: quantized\n---\n# tiny\n"


# ---- a hand-built Hugging Face cache --------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith(".safetensors")


def make_hf_cache(cache: Path, repo_id: str, files: Mapping[str, bytes], revision: str = HF_REV) -> Path:
    """The layout huggingface_hub writes: blobs by content address, relative links, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for path, data in files.items():
        blob = repo / "blobs" / (sha256(data) if is_lfs(path) else git_blob_id(data))
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / revision / path
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def hf_files(model: Model, card: str = CARD) -> dict[str, bytes]:
    return {**files_of(model.path), "README.md": card.encode(), ".gitattributes": b"*.safetensors filter=lfs\n"}


@dataclass(frozen=True)
class HfCache:
    cache: Path
    snapshot: Path
    files: dict[str, bytes]


@pytest.fixture
def hf_cache(tmp_path: Path, model: Model) -> HfCache:
    files = hf_files(model)
    return HfCache(tmp_path / "hf", make_hf_cache(tmp_path / "hf", HF_REPO, files), files)


@pytest.fixture
def importer(make_client: Any, pub_key: PrivateKey) -> Client:
    client: Client = make_client("importer")
    trust(client, pub_key)
    return client


def blob_of(snapshot: Path, path: str) -> Path:
    return (snapshot / path).parent / os.readlink(snapshot / path)


def vault_files(client: Client, ref: str) -> dict[str, bytes]:
    return files_of(client.snapshot_path(ref, fast=False))


# ---- Hugging Face in ------------------------------------------------------------------


def test_hand_built_cache_is_what_huggingface_hub_reads(hf_cache: HfCache) -> None:
    info = scan_cache_dir(hf_cache.cache)
    assert not info.warnings, info.warnings
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type) == (HF_REPO, "model")
    (revision,) = repo.revisions
    assert revision.commit_hash == HF_REV and revision.refs == frozenset({"main"})
    assert {f.file_path.relative_to(revision.snapshot_path).as_posix() for f in revision.files} == set(hf_cache.files)
    for path, data in hf_cache.files.items():
        got = hf_hub_download(HF_REPO, path, cache_dir=hf_cache.cache, local_files_only=True)
        assert Path(got).read_bytes() == data
    cached = try_to_load_from_cache(HF_REPO, SHARD1, cache_dir=hf_cache.cache)
    assert isinstance(cached, str) and Path(cached).read_bytes() == hf_cache.files[SHARD1]
    assert snapshot_download(HF_REPO, cache_dir=hf_cache.cache, local_files_only=True) == str(hf_cache.snapshot)


@pytest.mark.parametrize("by", ["repo id", "snapshot directory"])
def test_import_hf(importer: Client, hf_cache: HfCache, pub_key: PrivateKey, by: str) -> None:
    source = HF_REPO if by == "repo id" else str(hf_cache.snapshot)
    result = import_hf(importer, source, cache_dir=hf_cache.cache, name="acme/tiny-hf", version="1.0",
                       key=pub_key, piece_length=PIECE)
    m = result.admitted.verdict.manifest
    assert m.license.spdx == "Apache-2.0"
    assert m.origin.source_url == f"https://huggingface.co/{HF_REPO}"
    assert m.origin.source_revision == HF_REV
    assert m.origin.notes and "acme-hf/base" in m.origin.notes  # a base the vault does not know: named, not pinned
    assert m.lineage == () and result.unknown_bases == ("acme-hf/base",)
    published = {p: d for p, d in hf_cache.files.items() if p != ".gitattributes"}
    assert result.checked == len(published)  # every file matched its blob's name; .gitattributes left out
    assert vault_files(importer, "acme/tiny-hf@1.0") == published
    assert {f.path: f.sha256 for f in m.files} == {p: sha256(d) for p, d in published.items()}


def test_import_hf_license_mapping(importer: Client, tmp_path: Path, model: Model, pub_key: PrivateKey) -> None:
    cache = tmp_path / "hf"
    for i, (card_license, given, expected) in enumerate([
        ("llama3", None, "LicenseRef-llama3"),
        ("mit", None, "MIT"),
        ("other", "LicenseRef-acme-research", "LicenseRef-acme-research"),
        ("gpl-3.0", "GPL-3.0-only", "GPL-3.0-only"),
    ]):
        repo = f"acme-hf/lic{i}"
        make_hf_cache(cache, repo, hf_files(model, f"---\nlicense: {card_license}\n---\n"))
        result = import_hf(importer, repo, cache_dir=cache, name=f"acme/lic{i}", version="1.0", key=pub_key,
                           license=given, piece_length=PIECE)
        assert result.admitted.verdict.manifest.license.spdx == expected
        if given:  # the card's own word is kept beside the one signed
            assert f"Model card license: {card_license}" in (result.admitted.verdict.manifest.origin.notes or "")


@pytest.mark.parametrize("card", ["---\nlicense: other\n---\n", "---\nlicense: gpl-3.0\n---\n", "# no front matter\n",
                                  "---\nlicense: [mit, apache-2.0]\n---\n"])
def test_import_hf_unmapped_license_refused(
    make_client: Any, tmp_path: Path, model: Model, pub_key: PrivateKey, card: str
) -> None:
    client: Client = make_client("strict")
    make_hf_cache(tmp_path / "hf", HF_REPO, hf_files(model, card))
    with pytest.raises(UsageError, match="license") as info:
        import_hf(client, HF_REPO, cache_dir=tmp_path / "hf", name="acme/x", version="1.0", key=pub_key)
    assert "--license" in (info.value.hint or "")
    assert_vault_clean(client, "acme/x")


def test_import_hf_base_model_known_to_vault_becomes_lineage(
    importer: Client, tmp_path: Path, model: Model, pub_key: PrivateKey
) -> None:
    cache = tmp_path / "hf"
    make_hf_cache(cache, "acme-hf/base", hf_files(model, "---\nlicense: mit\n---\n"))
    base = import_hf(importer, "acme-hf/base", cache_dir=cache, name="acme/base", version="2.0", key=pub_key,
                     piece_length=PIECE)
    make_hf_cache(cache, HF_REPO, hf_files(model))  # CARD: quantized from acme-hf/base
    child = import_hf(importer, HF_REPO, cache_dir=cache, name="acme/tiny-q", version="1.0", key=pub_key,
                      piece_length=PIECE)
    (link,) = child.admitted.verdict.manifest.lineage
    assert (link.relation, link.ref, link.manifest_digest) == (
        "quantized-from", "acme/base@2.0", base.admitted.envelope.digest)


@pytest.mark.parametrize("path", [SHARD1, "config.json"], ids=["lfs-sha256", "git-sha1"])
def test_hf_blob_mismatch_refused(importer: Client, hf_cache: HfCache, pub_key: PrivateKey, path: str) -> None:
    blob = blob_of(hf_cache.snapshot, path)
    good = blob.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    blob.write_bytes(bytes(bad))
    # huggingface_hub hands out the corrupted bytes without a word: its loaders never re-hash.
    assert Path(hf_hub_download(HF_REPO, path, cache_dir=hf_cache.cache, local_files_only=True)).read_bytes() == bad
    with pytest.raises(IntegrityError) as info:
        import_hf(importer, HF_REPO, cache_dir=hf_cache.cache, name="acme/tiny-hf", version="1.0", key=pub_key)
    exc = info.value
    expected = sha256(good) if is_lfs(path) else git_blob_id(good)
    found = sha256(bytes(bad)) if is_lfs(path) else git_blob_id(bytes(bad))
    assert (exc.path, exc.expected, exc.found) == (path, expected, found)
    assert expected in str(exc) and found in str(exc) and path in str(exc)
    assert_vault_clean(importer, "acme/tiny-hf")


@pytest.mark.parametrize("how", ["snapshot link", "blob link", "other repo"])
def test_hf_symlink_escaping_cache_refused(
    importer: Client, hf_cache: HfCache, tmp_path: Path, pub_key: PrivateKey, how: str
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"api_key": "do-not-publish"}')
    link = hf_cache.snapshot / "config.json"
    if how == "snapshot link":  # the entry itself points out of the cache
        link.unlink()
        os.symlink(os.path.relpath(secret, link.parent), link)
    elif how == "blob link":  # the entry looks right, the blob it names is a link out
        blob = blob_of(hf_cache.snapshot, "config.json")
        blob.unlink()
        os.symlink(secret, blob)
    else:  # into another repo's blobs, where content is not this repo's to vouch for
        other = make_hf_cache(hf_cache.cache, "evil/other", {"config.json": secret.read_bytes()})
        link.unlink()
        os.symlink(os.path.relpath(blob_of(other, "config.json"), link.parent), link)
    with pytest.raises(UnsafePathError, match=r"config\.json"):
        import_hf(importer, HF_REPO, cache_dir=hf_cache.cache, name="acme/tiny-hf", version="1.0", key=pub_key)
    assert_vault_clean(importer, "acme/tiny-hf")


def test_hf_shared_blob_store_accepted(importer: Client, hf_cache: HfCache, pub_key: PrivateKey) -> None:
    """huggingface_hub 2 may keep a payload once per cache, the repo blob linking to it."""
    store = hf_cache.cache / "blobs"
    (store / "ab").mkdir(parents=True)
    (store / ".huggingface-shared-blobs").write_text("1\n")
    blob = blob_of(hf_cache.snapshot, SHARD1)
    payload = store / "ab" / ("ab" + "0" * 62)
    shutil.move(blob, payload)
    os.symlink(os.path.relpath(payload, blob.parent), blob)
    result = import_hf(importer, HF_REPO, cache_dir=hf_cache.cache, name="acme/tiny-hf", version="1.0",
                       key=pub_key, piece_length=PIECE)
    assert result.checked == len(hf_cache.files) - 1  # all but .gitattributes, which is not part of a model


# ---- Hugging Face out -----------------------------------------------------------------

OFFLINE_READER = """
import hashlib, json, sys
from huggingface_hub import constants, hf_hub_download, scan_cache_dir, snapshot_download
from pathlib import Path
cache, repo, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
assert constants.HF_HUB_OFFLINE
def digest(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()
out = {"snapshot": snapshot_download(repo, cache_dir=cache, local_files_only=True)}
out["by_version"] = snapshot_download(repo, cache_dir=cache, revision=sys.argv[4], local_files_only=True)
out["files"] = {f: digest(hf_hub_download(repo, f, cache_dir=cache, local_files_only=True)) for f in files}
out["snapshot_files"] = {f: digest(Path(out["snapshot"]) / f) for f in files}
info = scan_cache_dir(cache)
out["scan"] = [[r.repo_id, sorted(rev.commit_hash for rev in r.revisions), sorted(r.refs)] for r in info.repos]
out["warnings"] = [str(w) for w in info.warnings]
print(json.dumps(out))
"""


def read_offline(cache: Path, repo: str, files: list[str], version: str) -> dict[str, Any]:
    """What huggingface_hub returns for the cache, in a fresh process with HF_HUB_OFFLINE=1."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cache.parent / "hf-home")}
    proc = subprocess.run([sys.executable, "-c", OFFLINE_READER, str(cache), repo, json.dumps(files), version],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_export_hf_read_offline_by_huggingface_hub(publisher: Client, model: Model, tmp_path: Path) -> None:
    cache = tmp_path / "exported"
    result = export_hf(publisher, REF, cache)
    digest = publisher.vault.resolve(REF).digest
    assert result.revision == hf_revision(digest) == digest[:40]
    repo = cache / "models--acme--tiny"
    assert (repo / "refs" / "main").read_text() == result.revision
    for path in files_of(model.path):
        target = os.readlink(result.snapshot / path)
        assert not os.path.isabs(target) and target.startswith("../../blobs/")
    manifest = publisher.vault.resolve(REF).manifest
    signed = {f.path: f.sha256 for f in manifest.files}
    got = read_offline(cache, MODEL, sorted(signed), "1.0")
    assert got["files"] == signed and got["snapshot_files"] == signed
    assert got["snapshot"] == got["by_version"] == str(result.snapshot)
    assert got["scan"] == [[MODEL, [result.revision], ["1.0", "main"]]] and not got["warnings"]
    assert {p: sha256(d) for p, d in files_of(model.path).items()} == signed  # the publisher's bytes


def test_export_hf_twice_is_the_same_entry(publisher: Client, tmp_path: Path) -> None:
    first = export_hf(publisher, REF, tmp_path / "c", repo_id="someone/renamed")
    second = export_hf(publisher, REF, tmp_path / "c", repo_id="someone/renamed")
    assert first == second
    repo = tmp_path / "c" / "models--someone--renamed"
    assert sorted(p.name for p in repo.iterdir()) == ["blobs", "refs", "snapshots"]  # no staging left
    assert not [p for p in (repo / "blobs").iterdir() if p.name.startswith(".")]
    assert first.main_was is None  # refs/main did not move


def test_export_hf_says_when_refs_main_moves(publisher: Client, model: Model, pub_key: PrivateKey,
                                            tmp_path: Path) -> None:
    """A newer release exported into the same repo moves refs/main; the export says from what."""
    first = export_hf(publisher, REF, tmp_path / "c", repo_id="acme/tiny")
    publisher.publish(model.path, name=MODEL, version="2.0", license="Apache-2.0", key=pub_key, piece_length=PIECE)
    second = export_hf(publisher, f"{MODEL}@2.0", tmp_path / "c", repo_id="acme/tiny")
    assert second.main_was == first.revision and second.revision != first.revision
    assert (tmp_path / "c" / "models--acme--tiny" / "refs" / "main").read_text() == second.revision


@pytest.mark.parametrize("when", ["before verification", "after verification"])
def test_export_hf_refuses_damaged_vault_copy(
    publisher: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    snapshot = publisher.snapshot_path(REF)
    if when == "before verification":
        make_writable_and_tamper(snapshot / SHARD2, 100)
    else:  # a race: the bytes change between the check and the copy, so the copy is hashed too
        verify = Client.verify

        def verify_then_tamper(self: Client, ref: str, **kw: Any) -> Any:
            verdict = verify(self, ref, **kw)
            make_writable_and_tamper(snapshot / SHARD2, 100)
            return verdict

        monkeypatch.setattr(Client, "verify", verify_then_tamper)
    with pytest.raises(IntegrityError) as info:
        export_hf(publisher, REF, tmp_path / "c")
    assert info.value.path == SHARD2
    repo = tmp_path / "c" / "models--acme--tiny"
    assert not (repo / "refs").exists() and not (repo / "snapshots").exists()
    assert not [p for p in (repo / "blobs").glob("*") if p.name.startswith(".")]  # no partial blob left


def test_export_hf_then_import_hf(publisher: Client, importer: Client, model: Model, tmp_path: Path,
                                  pub_key: PrivateKey) -> None:
    """Out and back in: every blob of an export is named by SHA-256, and all of them check."""
    cache = tmp_path / "c"
    exported = export_hf(publisher, REF, cache)
    result = import_hf(importer, MODEL, cache_dir=cache, name="acme/tiny-again", version="1.0", key=pub_key,
                       license="Apache-2.0", piece_length=PIECE)
    assert result.snapshot.revision == exported.revision and result.checked == len(files_of(model.path))
    assert vault_files(importer, "acme/tiny-again@1.0") == files_of(model.path)


# ---- OpenSSF model signing ------------------------------------------------------------


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path


def save_key(key: PrivateKey, path: Path) -> KeyFiles:
    return KeyFiles(path, key.save(path))


@pytest.fixture
def oms_key(tmp_path: Path, p256_key: PrivateKey) -> KeyFiles:
    return save_key(p256_key, tmp_path / "keys" / "oms.pem")


def model_signing(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MODEL_SIGNING), *map(str, args)], capture_output=True, text=True, timeout=120)


def ms_verify(directory: Path, signature: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return model_signing("verify", "key", directory, "--signature", signature, "--public_key", public)


def ms_sign(directory: Path, signature: Path, private: Path) -> None:
    proc = model_signing("sign", "key", directory, "--signature", signature, "--private_key", private)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def flip(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_oms_export_accepted_by_model_signing(publisher: Client, oms_key: KeyFiles, p256_key: PrivateKey,
                                              tmp_path: Path) -> None:
    sig = tmp_path / "model.sig"
    result = export_oms(publisher, REF, p256_key, sig)
    proc = ms_verify(result.directory, sig, oms_key.public)
    assert proc.returncode == 0 and "Verification succeeded" in proc.stdout, proc.stdout + proc.stderr
    assert verify_oms(result.directory, sig, p256_key.public).root == result.root
    bundle = json.loads(sig.read_bytes())
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == sha256(oms_key.public.read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["subject"][0]["annotations"]["seedvault"]["manifest_digest"] == result.digest
    assert "seedvault" not in statement["predicate"]  # OMS v1.0: the predicate holds serialization and resources only


def test_oms_tampered_file_refused_by_both_tools(publisher: Client, oms_key: KeyFiles, p256_key: PrivateKey,
                                                 tmp_path: Path) -> None:
    """Both directions: our bundle over a changed copy, and model_signing's bundle over a changed file."""
    ours = tmp_path / "ours.sig"
    copy = tmp_path / "copy"
    shutil.copytree(export_oms(publisher, REF, p256_key, ours).directory, copy)
    theirs = tmp_path / "theirs.sig"
    ms_sign(copy, theirs, oms_key.private)
    good = hashlib.sha256((copy / SHARD1).read_bytes()).hexdigest()
    os.chmod(copy / SHARD1, 0o644)
    flip(copy / SHARD1, 200)
    bad = hashlib.sha256((copy / SHARD1).read_bytes()).hexdigest()
    for sig in (ours, theirs):
        proc = ms_verify(copy, sig, oms_key.public)
        assert proc.returncode != 0 and "Verification succeeded" not in proc.stdout
        with pytest.raises(IntegrityError) as info:
            verify_oms(copy, sig, p256_key.public)
        assert (info.value.path, info.value.expected, info.value.found) == (SHARD1, good, bad)
        assert good in str(info.value) and bad in str(info.value)  # hex, not b'...' reprs


def test_model_signing_bundle_verified_and_imported(
    importer: Client, model: Model, oms_key: KeyFiles, p256_key: PrivateKey, pub_key: PrivateKey
) -> None:
    (model.path / ".gitattributes").write_text("*.safetensors filter=lfs\n")  # ignored by both tools
    sig = model.path / "model.sig"  # inside the directory, as model_signing's default puts it
    ms_sign(model.path, sig, oms_key.private)
    verdict = verify_oms(model.path, sig, p256_key.public)
    expected = {p: sha256(d) for p, d in files_of(model.path).items() if p not in ("model.sig", ".gitattributes")}
    assert verdict.files == expected and verdict.key_id == p256_key.key_id
    admitted, _ = import_oms(importer, model.path, sig, p256_key.public, name="acme/oms", version="1.0",
                             key=pub_key, license="Apache-2.0", piece_length=PIECE)
    m = admitted.verdict.manifest
    assert {f.path: f.sha256 for f in m.files} == expected
    notes = m.origin.notes or ""
    assert verdict.bundle_sha256 in notes and p256_key.key_id in notes and verdict.root in notes
    # ... and as structured data, signed, that survives a round trip through the envelope.
    stored = importer.vault.resolve("acme/oms@1.0").manifest.origin.extra["oms"]
    assert stored == {"format": "OMS v1.0", "bundle_sha256": verdict.bundle_sha256, "key_id": p256_key.key_id,
                      "key_hint": verdict.key_hint, "root_digest": verdict.root, "model_name": verdict.model_name}
    assert vault_files(importer, "acme/oms@1.0") == {p: d for p, d in files_of(model.path).items() if p in expected}


def test_oms_tampered_bundle_refused(model: Model, oms_key: KeyFiles, p256_key: PrivateKey, tmp_path: Path) -> None:
    sig = tmp_path / "model.sig"
    ms_sign(model.path, sig, oms_key.private)
    bundle = json.loads(sig.read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    # A consistent lie: the attacker's file digest, and the root recomputed to match it.
    statement["predicate"]["resources"][0]["digest"] = sha256(b"attacker's weights")
    raw = b"".join(bytes.fromhex(r["digest"]) for r in statement["predicate"]["resources"])
    statement["subject"][0]["digest"]["sha256"] = sha256(raw)
    forged = {**bundle, "dsseEnvelope": {**bundle["dsseEnvelope"],
                                         "payload": base64.b64encode(json.dumps(statement).encode()).decode()}}
    payload_sig = tmp_path / "payload.sig"
    payload_sig.write_text(json.dumps(forged))
    broken = json.loads(json.dumps(bundle))
    raw_sig = bytearray(base64.b64decode(broken["dsseEnvelope"]["signatures"][0]["sig"]))
    raw_sig[-1] ^= 0x01
    broken["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw_sig)).decode()
    sig_sig = tmp_path / "sig.sig"
    sig_sig.write_text(json.dumps(broken))
    for tampered in (payload_sig, sig_sig):
        with pytest.raises(SignatureError, match="does not verify"):
            verify_oms(model.path, tampered, p256_key.public)
    assert ms_verify(model.path, payload_sig, oms_key.public).returncode != 0


def test_oms_wrong_key_refused(model: Model, oms_key: KeyFiles, p256_key: PrivateKey, tmp_path: Path,
                               pub_key: PrivateKey) -> None:
    sig = tmp_path / "model.sig"
    ms_sign(model.path, sig, oms_key.private)
    other = PrivateKey.generate("p256")
    other_files = save_key(other, tmp_path / "keys" / "other.pem")
    with pytest.raises(SignatureError, match="hint") as info:
        verify_oms(model.path, sig, other.public)
    assert sha256(oms_key.public.read_bytes()) in str(info.value)
    assert ms_verify(model.path, sig, other_files.public).returncode != 0
    # Without the hint to give it away, the signature itself refuses the wrong key.
    bundle = json.loads(sig.read_bytes())
    del bundle["verificationMaterial"]["publicKey"]["hint"]
    sig.write_text(json.dumps(bundle))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_oms(model.path, sig, other.public)
    with pytest.raises(UsageError, match="P-256"):  # OMS verifiers refuse Ed25519
        verify_oms(model.path, sig, pub_key.public)


def test_oms_import_refuses_tampered_file_and_stores_nothing(
    make_client: Any, model: Model, oms_key: KeyFiles, p256_key: PrivateKey, pub_key: PrivateKey, tmp_path: Path
) -> None:
    client: Client = make_client("oms")
    sig = tmp_path / "model.sig"
    ms_sign(model.path, sig, oms_key.private)
    (model.path / "extra.txt").write_text("not signed")
    with pytest.raises(IntegrityError, match=r"not signed: extra\.txt"):
        import_oms(client, model.path, sig, p256_key.public, name="acme/oms", version="1.0", key=pub_key,
                   license="MIT")
    (model.path / "extra.txt").unlink()
    flip(model.path / "config.json", 1)
    with pytest.raises(IntegrityError) as info:
        import_oms(client, model.path, sig, p256_key.public, name="acme/oms", version="1.0", key=pub_key,
                   license="MIT")
    assert info.value.path == "config.json"
    assert_vault_clean(client, "acme/oms")


# ---- the commands ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run(home: Path, *args: str | Path) -> Run:
    """`seedvault --home HOME ARGS...` in-process, with main()'s error handling and exit codes."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(["--home", str(home), *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return Run(code, out.getvalue().decode(), err.getvalue().decode())


def ok(home: Path, *args: str | Path) -> Any:
    result = run(home, *args, "--json")
    assert result.code == 0, f"exit {result.code}\n{result.out}\n{result.err}"
    return json.loads(result.out)


def test_cli_hf_round_trip(hf_cache: HfCache, tmp_path: Path, pub_key: PrivateKey) -> None:
    home = tmp_path / "home"
    key = save_key(pub_key, tmp_path / "keys" / "pub.pem")
    assert run(home, "trust", "add", key.public, "--role", "publisher", "--scope", "acme/*").code == 0
    imported = ok(home, "import-hf", HF_REPO, "--cache-dir", hf_cache.cache, "--name", "acme/tiny-hf",
                  "--version", "1.0", "--key", key.private)
    assert imported["license"] == "Apache-2.0"
    assert imported["cross_checked"] == len(hf_cache.files) - 1  # all but .gitattributes (not part of a model)
    exported = ok(home, "export-hf", "acme/tiny-hf@1.0", "--cache-dir", tmp_path / "out", "--repo-id", "org/tiny")
    for path, data in hf_cache.files.items():
        if path != ".gitattributes":
            got = hf_hub_download("org/tiny", path, cache_dir=tmp_path / "out", local_files_only=True)
            assert Path(got).read_bytes() == data
    assert exported["revision"] == imported["digest"][:40]
    flip(blob_of(hf_cache.snapshot, SHARD2), 50)
    refused = run(home, "import-hf", HF_REPO, "--cache-dir", hf_cache.cache, "--name", "acme/tiny-hf",
                  "--version", "2.0", "--key", key.private)
    assert refused.code == 3 and "expected SHA-256" in refused.err and "Traceback" not in refused.err


def test_cli_oms_round_trip(publisher: Client, tmp_path: Path, pub_key: PrivateKey, oms_key: KeyFiles) -> None:
    home = Path(publisher.paths.config_dir).parent
    sig = tmp_path / "model.sig"
    exported = ok(home, "oms", "export", REF, "--key", oms_key.private, "--out", sig)
    proc = ms_verify(Path(exported["directory"]), sig, oms_key.public)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verified = ok(home, "oms", "verify", exported["directory"], "--signature", sig, "--public-key", oms_key.public)
    assert verified["root_digest"] == exported["root_digest"]
    key = save_key(pub_key, tmp_path / "keys" / "pub.pem")
    imported = ok(home, "import-oms", exported["directory"], "--signature", sig, "--public-key", oms_key.public,
                  "--name", "acme/tiny-oms", "--version", "1.0", "--key", key.private, "--license", "Apache-2.0")
    assert imported["oms"]["bundle_sha256"] == sha256(sig.read_bytes())
    copy = tmp_path / "copy"
    shutil.copytree(exported["directory"], copy)
    os.chmod(copy / SHARD1, 0o644)
    flip(copy / SHARD1)
    # The installed console script, as a user runs it: exit 3, a message in hex, no traceback.
    proc = subprocess.run([str(BIN / "seedvault"), "oms", "verify", str(copy), "--signature", str(sig),
                           "--public-key", str(oms_key.public)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and f"{SHARD1}: expected sha256" in proc.stderr and "Traceback" not in proc.stderr
