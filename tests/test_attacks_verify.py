"""Issue 8, "the vault and the verifier": verified state stays verified.

What is verified must be regular files inside the vault; every entry point checks exactly
the listed files; every admission checks both digests; bundles say nothing the envelope
contradicts; refusals are short text for people. Each test plays the attack through the
real CLI (in-process with main()'s exit codes, or a child process where blocking matters)
and the library, and checks the exit code, the message and that the vault is unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run
from conftest import (
    PIECE,
    REF,
    SHARD1,
    Model,
    assert_unchanged,
    assert_vault_clean,
    build_manifest,
    resign,
    sign_payload,
    vault_state,
    write_bundle,
)

from seedvault import _text, hashing
from seedvault.bridges.hf import export_hf
from seedvault.bundle import export_bundle, import_bundle, read_envelope_source
from seedvault.client import Client
from seedvault.errors import IntegrityError, ManifestError, UnsafePathError, VerificationError
from seedvault.manifest import FileEntry, Manifest
from seedvault.signing import Envelope, PrivateKey
from seedvault.swarming import seed_torrent

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CLI_TIMEOUT = 120  # a child process that blocks (on a FIFO, say) fails the test instead of hanging it


def imported(receiver: Client, bundle: Path) -> Path:
    """The receiver holds acme/tiny@1.0 from `bundle`; its snapshot directory."""
    return import_bundle(receiver, bundle).snapshot


def cli_refuses(home: Path, *args: str | Path, code: int = 3) -> str:
    """The CLI exits with `code`, no traceback; its stderr."""
    result = run(home, *args)
    assert result.code == code, f"expected exit {code}, got {result.code}\n{result.out}\n{result.err}"
    assert "Traceback" not in result.out + result.err
    return result.err


def child_cli(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python -m seedvault --home HOME ARGS` in a real process, bounded in time."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                     os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "seedvault", "--home", str(home), *map(str, args)],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env, check=False)


def published(client: Client) -> tuple[Envelope, Manifest]:
    entry = client.vault.resolve(REF)
    return entry.envelope, entry.manifest


def every_entry_point(client: Client, tmp_path: Path) -> dict[str, Callable[[], Any]]:
    """Everything that reads or hands out a stored snapshot: each must refuse alike."""
    return {
        "verify": lambda: client.verify(REF),
        "verify --fast": lambda: client.verify(REF, fast=True),
        "load": lambda: client.load(REF),
        "load --fast": lambda: client.load(REF, fast=True),
        "snapshot_path": lambda: client.snapshot_path(REF),
        "seed": lambda: seed_torrent(client, REF),
        "export": lambda: export_bundle(client, REF, tmp_path / "out-bundle"),
        "export --tar": lambda: export_bundle(client, REF, tmp_path / "out.tar", as_tar=True),
        "export-hf": lambda: export_hf(client, REF, tmp_path / "hf-cache"),
    }


def assert_every_entry_point_refuses(client: Client, tmp_path: Path, match: str) -> None:
    before = vault_state(client)
    for name, call in every_entry_point(client, tmp_path).items():
        with pytest.raises(IntegrityError, match=match) as info:
            call()
        assert info.value.exit_code == 3, name
    assert not (tmp_path / "out-bundle").exists() and not (tmp_path / "out.tar").exists()
    assert not list((tmp_path / "hf-cache").rglob("*.safetensors")) if (tmp_path / "hf-cache").exists() else True
    assert_unchanged(client, before)


def verified_before(client: Client) -> None:
    """A full verification first, so fast mode has records it could wrongly trust."""
    client.verify(REF)
    client.load(REF)


# ---- 14: only regular files inside the vault ------------------------------------------


def test_symlinked_snapshot_dir_refused_by_load_and_verify(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    """The snapshot directory moved out of the vault and linked back: same bytes, same inodes,
    but no longer the vault's to keep; every entry point refuses, the CLI too."""
    snapshot = imported(receiver, bundle)
    verified_before(receiver)
    outside = tmp_path / "elsewhere"
    snapshot.rename(outside)
    snapshot.symlink_to(outside, target_is_directory=True)
    assert_every_entry_point_refuses(receiver, tmp_path, r"snapshot: expected a directory at .*, found a symlink")
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "verify", REF)
    assert "found a symlink" in err and "1.0" in err


def test_symlinked_namespace_dir_refused_by_load_and_verify(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    """A path component above the snapshot (snapshots/acme) swapped for a link."""
    snapshot = imported(receiver, bundle)
    verified_before(receiver)
    namespace = snapshot.parent.parent
    outside = tmp_path / "ns-elsewhere"
    namespace.rename(outside)
    namespace.symlink_to(outside, target_is_directory=True)
    assert_every_entry_point_refuses(receiver, tmp_path, r"expected '.*snapshots/acme' to be a directory of "
                                     r"the vault, found a symlink")


def test_symlinked_file_to_its_own_blob_refused_even_in_fast_mode(receiver: Client, bundle: Path,
                                                                   tmp_path: Path) -> None:
    """A snapshot file replaced by a symlink to its own blob: same inode, size, mtime and
    ctime as the verification record, so only the file type gives it away."""
    snapshot = imported(receiver, bundle)
    verified_before(receiver)
    target = snapshot / SHARD1
    blob = Path(os.path.realpath(target))
    blob = next(p for p in receiver.vault.blobs.iterdir() if p.stat().st_ino == target.stat().st_ino) \
        if blob == target else blob
    target.unlink()
    target.symlink_to(blob)
    assert_every_entry_point_refuses(receiver, tmp_path, rf"file '{SHARD1}': expected a regular file, found a "
                                     r"symlink to '.*blobs/")
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "verify", REF, "--fast")
    assert f"'{SHARD1}': expected a regular file, found a symlink" in err


def test_fifo_in_snapshot_refused_without_blocking(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    snapshot = imported(receiver, bundle)
    (snapshot / "config.json").unlink()
    os.mkfifo(snapshot / "config.json")
    before = vault_state(receiver)
    assert_every_entry_point_refuses(receiver, tmp_path, r"file 'config.json': expected a regular file, found a "
                                     r"FIFO \(named pipe\)")
    proc = child_cli(receiver.paths.vault_dir.parent.parent, "verify", REF)  # a blocking open would time out
    assert proc.returncode == 3 and "'config.json': expected a regular file, found a FIFO" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_unchanged(receiver, before)


def _empty_file_release(model_dir: Path, key: PrivateKey) -> tuple[Envelope, Manifest]:
    """A release with an empty file, the case a link to /dev/null or a FIFO matched by size."""
    (model_dir / "empty.txt").write_bytes(b"")
    entries = [FileEntry("config.json", (model_dir / "config.json").stat().st_size,
                         hashing.sha256_file(model_dir / "config.json"),
                         hashing.hash_file(model_dir / "config.json", PIECE).pieces_root),
               FileEntry("empty.txt", 0, EMPTY_SHA256, None)]
    manifest = build_manifest(entries)
    return sign_payload(manifest.to_payload(), key), manifest


def _make_char_device(path: Path) -> bool:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except (PermissionError, OSError):
        return False
    return True


@pytest.mark.parametrize("special", ["fifo", "symlink-to-dev-null", "dev-null-device", "symlink-to-file"])
def test_fifo_in_verify_dir_refused_without_blocking(receiver: Client, tmp_path: Path, pub_key: PrivateKey,
                                                     special: str) -> None:
    """`verify DIR --envelope` certified an empty file that was a FIFO, a link to /dev/null
    or /dev/null itself: each is now refused by name, and a FIFO never blocks the open."""
    directory = tmp_path / "loose"
    directory.mkdir()
    (directory / "config.json").write_text('{"hidden": 1}')
    envelope, _ = _empty_file_release(directory, pub_key)
    (directory / "empty.txt").unlink()
    found = {"fifo": "a FIFO (named pipe)", "symlink-to-dev-null": "a symlink to '/dev/null'",
             "dev-null-device": "a character device", "symlink-to-file": "a symlink to"}[special]
    if special == "fifo":
        os.mkfifo(directory / "empty.txt")
    elif special == "symlink-to-dev-null":
        (directory / "empty.txt").symlink_to("/dev/null")
    elif special == "dev-null-device":
        if not _make_char_device(directory / "empty.txt"):
            pytest.skip("creating a device node needs privileges this run does not have")
    else:
        (tmp_path / "real-empty").write_bytes(b"")
        (directory / "empty.txt").symlink_to(tmp_path / "real-empty")
    env_file = tmp_path / "envelope.json"
    env_file.write_bytes(envelope.to_json())
    before = vault_state(receiver)
    with pytest.raises(IntegrityError, match=f"file 'empty.txt': expected a regular file, found {re.escape(found)}"):
        receiver.verify_dir(directory, envelope)
    proc = child_cli(receiver.paths.vault_dir.parent.parent, "verify", directory, "--envelope", env_file)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"'empty.txt': expected a regular file, found {found}" in proc.stderr and "Traceback" not in proc.stderr
    assert_unchanged(receiver, before)


def test_fifo_as_envelope_file_refused_without_blocking(receiver: Client, tmp_path: Path, model: Model) -> None:
    fifo = tmp_path / "envelope.json"
    os.mkfifo(fifo)
    home = receiver.paths.vault_dir.parent.parent
    proc = child_cli(home, "verify", model.path, "--envelope", fifo)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"envelope {fifo}: expected a regular file, found a FIFO (named pipe)" in proc.stderr
    proc = child_cli(home, "pull", REF, "--envelope", fifo, "--peer", "127.0.0.1:9")
    assert proc.returncode == 3 and "found a FIFO (named pipe)" in proc.stderr, proc.stdout + proc.stderr
    with pytest.raises(ManifestError, match=r"found a FIFO"):
        read_envelope_source(fifo)


def test_fifo_in_bundle_dir_refused_without_blocking(receiver: Client, bundle: Path) -> None:
    (bundle / "files" / "config.json").unlink()
    os.mkfifo(bundle / "files" / "config.json")
    proc = child_cli(receiver.paths.vault_dir.parent.parent, "import", bundle)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "'config.json': expected a regular file, found a FIFO (named pipe)" in proc.stderr
    assert_vault_clean(receiver)


# ---- 15: every entry point checks exactly the listed files ----------------------------


def test_extra_file_in_snapshot_refused_by_load(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    """`verify` refused an extra file while `load` returned tensors: now every entry point refuses."""
    snapshot = imported(receiver, bundle)
    verified_before(receiver)
    (snapshot / "evil.py").write_text("import os\n")
    assert_every_entry_point_refuses(receiver, tmp_path, r"expected exactly the 4 files the manifest of "
                                     r"acme/tiny@1.0 lists; not in the manifest: evil.py$")
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "verify", REF, "--fast")
    assert "not in the manifest: evil.py" in err


def test_extra_directory_with_file_in_snapshot_refused_by_load(receiver: Client, bundle: Path,
                                                                tmp_path: Path) -> None:
    snapshot = imported(receiver, bundle)
    (snapshot / "sub").mkdir()
    (snapshot / "sub" / "x.safetensors").write_bytes(b"junk")
    assert_every_entry_point_refuses(receiver, tmp_path, r"not in the manifest: sub/x.safetensors$")


def test_missing_file_in_snapshot_refused_by_load(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    snapshot = imported(receiver, bundle)
    verified_before(receiver)
    os.chmod(snapshot, 0o755)
    (snapshot / "LICENSE").unlink()
    assert_every_entry_point_refuses(receiver, tmp_path, r"lists; missing LICENSE$")


# ---- 16: both digests bound at every admission ----------------------------------------


def _false_sha256(publisher: Client, key: PrivateKey, path: str = "config.json") -> tuple[Envelope, Manifest]:
    """The published release re-signed with one file's SHA-256 false and its pieces root right."""
    _, manifest = published(publisher)
    files = tuple(dataclasses.replace(f, sha256="ab" * 32) if f.path == path else f for f in manifest.files)
    return resign(manifest, key, files=files)


SHA_REFUSAL = (r"file 'config.json': its pieces root matches the signed manifest but its SHA-256 does not; "
               r"expected sha256 (ab){32}, found [0-9a-f]{64}")


@pytest.mark.parametrize("form", ["dir", "tar"])
def test_false_sha256_with_right_pieces_root_refused(receiver: Client, publisher: Client, pub_key: PrivateKey,
                                                     model: Model, tmp_path: Path, form: str) -> None:
    envelope, _ = _false_sha256(publisher, pub_key)
    source = write_bundle(tmp_path / "forged", envelope, model.path)
    if form == "tar":
        tar_path = tmp_path / "forged.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(source, arcname=".")
        source = tar_path
    with pytest.raises(IntegrityError, match=SHA_REFUSAL) as info:
        import_bundle(receiver, source)
    assert info.value.path == "config.json" and info.value.expected == "ab" * 32
    assert_vault_clean(receiver)
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "import", source)
    assert "its pieces root matches the signed manifest but its SHA-256 does not" in err
    assert_vault_clean(receiver)


def test_false_sha256_with_right_pieces_root_refused_by_verify_dir(receiver: Client, publisher: Client,
                                                                    pub_key: PrivateKey, model: Model,
                                                                    tmp_path: Path) -> None:
    envelope, _ = _false_sha256(publisher, pub_key)
    env_file = tmp_path / "forged.json"
    env_file.write_bytes(envelope.to_json())
    with pytest.raises(IntegrityError, match=SHA_REFUSAL):
        receiver.verify_dir(model.path, envelope)
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "verify", model.path, "--envelope", env_file)
    assert "its pieces root matches the signed manifest but its SHA-256 does not" in err


def test_false_sha256_of_an_empty_file_refused(receiver: Client, pub_key: PrivateKey, tmp_path: Path) -> None:
    """An empty file has no pieces root to check: its SHA-256 is all that binds it."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "empty.txt").write_bytes(b"")
    _, manifest = _empty_file_release(source, pub_key)
    files = tuple(dataclasses.replace(f, sha256="cd" * 32) if f.path == "empty.txt" else f for f in manifest.files)
    forged, _ = resign(manifest, pub_key, files=files)
    with pytest.raises(IntegrityError, match=r"file 'empty.txt': its pieces root matches .* SHA-256 does not"):
        import_bundle(receiver, write_bundle(tmp_path / "b", forged, source))
    assert_vault_clean(receiver)


def test_false_pieces_root_with_right_sha256_refused(receiver: Client, publisher: Client, pub_key: PrivateKey,
                                                     model: Model, tmp_path: Path) -> None:
    _, manifest = published(publisher)
    files = tuple(dataclasses.replace(f, pieces_root="ef" * 32) if f.path == SHARD1 else f for f in manifest.files)
    forged, _ = resign(manifest, pub_key, files=files)
    with pytest.raises(IntegrityError, match=rf"file '{SHARD1}': its SHA-256 matches the signed manifest but its "
                       r"pieces root does not; expected pieces root (ef){32}"):
        import_bundle(receiver, write_bundle(tmp_path / "forged", forged, model.path))
    assert_vault_clean(receiver)


@pytest.mark.timeout(150)
def test_false_sha256_with_right_pieces_root_refused_by_registry_upload(
    publisher: Client, pub_key: PrivateKey, tmp_path: Path
) -> None:
    """A push to a real node: the node's admission refuses it with the same class and text."""
    from registry_helpers import NodeServer, make_home

    from seedvault.registry.client import RegistryClient

    envelope, forged = _false_sha256(publisher, pub_key)
    home = make_home(tmp_path / "node", publisher.policy)
    with NodeServer(home) as node, pytest.raises(IntegrityError, match=SHA_REFUSAL):
        RegistryClient(node.url).push(envelope, publisher.vault.snapshot_dir(forged))
    with Client(home) as node_client:
        assert_vault_clean(node_client)


# ---- 17: bundles -------------------------------------------------------------------------


def _with_meta(bundle: Path, **changes: Any) -> Path:
    meta = json.loads((bundle / "bundle.json").read_text())
    meta.update(changes)
    (bundle / "bundle.json").write_text(json.dumps(meta))
    return bundle


def _tar(source: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for p in sorted(source.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(source).as_posix())
    return dest


CONTRADICTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "ref": ({"ref": "acme/other@1.0"}, r"bundle.json ref: expected \"acme/tiny@1.0\" .*, found \"acme/other@1.0\""),
    "name": ({"name": "acme/other"}, r"bundle.json name: expected \"acme/tiny\""),
    "version": ({"version": "2.0"}, r"bundle.json version: expected \"1.0\" .*, found \"2.0\""),
    "digest": ({"digest": "00" * 32}, r"bundle.json digest: expected \"[0-9a-f]{64}\" .*, found \"(00){32}\""),
    "files-missing": ({"files": ["LICENSE"]}, r"bundle.json files: .* found 1 entry \(missing config.json, "),
    "files-extra": ({"files": ["LICENSE", "config.json", "model-00001-of-00002.safetensors",
                               "model-00002-of-00002.safetensors", "evil.py"]}, r"not in the manifest: evil.py"),
    "files-null": ({"files": None}, r"bundle.json files: expected \"an array of paths\" .*, found \"null\""),
    "format": ({"format": True}, r"bundle.json format: expected \"seedvault-bundle/1\", found true$"),
    "ref-null": ({"ref": None}, r"bundle.json ref: expected \"acme/tiny@1.0\" .*, found null$"),
}


@pytest.mark.parametrize("form", ["dir", "tar"])
@pytest.mark.parametrize("case", list(CONTRADICTIONS))
def test_bundle_json_contradicting_envelope_refused(receiver: Client, bundle: Path, tmp_path: Path, case: str,
                                                    form: str) -> None:
    changes, message = CONTRADICTIONS[case]
    source = _with_meta(bundle, **changes)
    if form == "tar":
        source = _tar(bundle, tmp_path / "b.tar")
    with pytest.raises(ManifestError, match=message) as info:
        import_bundle(receiver, source)
    assert "None" not in str(info.value) and "True" not in str(info.value)
    assert_vault_clean(receiver)
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "import", source)
    assert "bundle.json" in err
    assert_vault_clean(receiver)


def test_bundle_json_with_duplicate_member_refused(receiver: Client, bundle: Path) -> None:
    (bundle / "bundle.json").write_text('{"format": "seedvault-bundle/1", "ref": "acme/tiny@1.0", '
                                        '"ref": "acme/other@9"}')
    with pytest.raises(ManifestError, match=r"bundle.json: expected each member name once per object, "
                       r"found 'ref' twice"):
        import_bundle(receiver, bundle)
    assert_vault_clean(receiver)


def test_export_writes_a_bundle_json_that_import_checks(publisher: Client, receiver: Client, tmp_path: Path) -> None:
    out = export_bundle(publisher, REF, tmp_path / "b")
    meta = json.loads((out / "bundle.json").read_text())
    entry = publisher.vault.resolve(REF)
    assert meta == {"format": "seedvault-bundle/1", "ref": REF, "digest": entry.digest,
                    "files": [f.path for f in entry.manifest.files]}
    assert import_bundle(receiver, out).verdict.manifest.ref == REF


def _tar_with_twice(bundle: Path, dest: Path, name: str, second: bytes) -> Path:
    """A tar of `bundle` where member `name` appears a second time, with other bytes."""
    _tar(bundle, dest)
    with tarfile.open(dest, "a") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(second)
        tar.addfile(info, io.BytesIO(second))
    return dest


def test_tar_with_duplicate_member_refused(receiver: Client, publisher: Client, bundle: Path,
                                           tmp_path: Path) -> None:
    """files/config.json twice: Python's tarfile reads the last copy, GNU tar extracts both in
    turn; a verifier and an extractor could see different bytes, so the tar is refused."""
    config = (bundle / "files" / "config.json").read_bytes()
    evil = _tar_with_twice(bundle, tmp_path / "dup.tar", "files/config.json", config.replace(b"96", b"97"))
    with pytest.raises(UnsafePathError, match=r"tar member 'files/config.json': expected each name once, "
                       r"found it twice"):
        import_bundle(receiver, evil)
    assert_vault_clean(receiver)
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "import", evil)
    assert "expected each name once, found it twice" in err
    # The same bytes twice are refused too: the rule is about names, not content.
    same = _tar_with_twice(bundle, tmp_path / "same.tar", "./files/config.json", config)
    with pytest.raises(UnsafePathError, match="found it twice"):
        import_bundle(receiver, same)
    assert_vault_clean(receiver)


def test_tar_with_duplicate_envelope_refused_by_pull_and_import(receiver: Client, bundle: Path,
                                                                 tmp_path: Path, pub_key: PrivateKey,
                                                                 model: Model) -> None:
    """pull --envelope reads bundles with the import reader: envelope.json twice is refused
    there too (before, pull took the last copy and import another)."""
    _, manifest = published_from_bundle(bundle)
    other, _ = resign(manifest, pub_key, version="6.6")
    evil = _tar_with_twice(bundle, tmp_path / "dup-env.tar", "envelope.json", other.to_json())
    with pytest.raises(UnsafePathError, match=r"tar member 'envelope.json': expected each name once"):
        read_envelope_source(evil)
    with pytest.raises(UnsafePathError, match="found it twice"):
        import_bundle(receiver, evil)
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "pull", REF, "--envelope", evil,
                      "--peer", "127.0.0.1:9")
    assert "'envelope.json': expected each name once, found it twice" in err
    assert_vault_clean(receiver)


def published_from_bundle(bundle: Path) -> tuple[Envelope, Manifest]:
    envelope = Envelope.from_json((bundle / "envelope.json").read_bytes())
    return envelope, Manifest.from_payload(envelope.payload)


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


@pytest.mark.parametrize(("kind", "found"), [
    (tarfile.FIFOTYPE, "a FIFO (named pipe)"),
    (tarfile.BLKTYPE, "a block device"),
    (tarfile.CONTTYPE, "a special file"),
    (tarfile.GNUTYPE_SPARSE, "a special file"),
], ids=["fifo", "block-device", "contiguous", "sparse"])
def test_tar_special_member_refused(receiver: Client, bundle: Path, tmp_path: Path, kind: bytes, found: str) -> None:
    dest = _tar(bundle, tmp_path / "special.tar")
    with tarfile.open(dest, "a") as tar:
        tar.addfile(_special("files/extra", kind))
    with pytest.raises(UnsafePathError, match=rf"tar member 'files/extra': expected a regular file, found "
                       rf"{re.escape(found)}"):
        import_bundle(receiver, dest)
    assert_vault_clean(receiver)


def test_tar_member_larger_than_signed_refused_before_copy(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    (bundle / "files" / "config.json").write_bytes(b"x" * 50_000)
    with pytest.raises(IntegrityError, match=r"file 'config.json': expected \d+ bytes, found 50000"):
        import_bundle(receiver, _tar(bundle, tmp_path / "big.tar"))
    assert_vault_clean(receiver)


def test_tar_with_too_many_members_refused(receiver: Client, bundle: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The member count is bounded (lowered here so the test tar stays small)."""
    import seedvault.bundle

    monkeypatch.setattr(seedvault.bundle, "MAX_TAR_MEMBERS", 8)
    dest = _tar(bundle, tmp_path / "many.tar")
    with tarfile.open(dest, "a") as tar:
        for i in range(10):
            info = tarfile.TarInfo(f"keys/junk{i}.pub")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(VerificationError, match=r"expected at most 8 members, found more"):
        import_bundle(receiver, dest)
    assert_vault_clean(receiver)


# ---- 18: messages for people --------------------------------------------------------------


def test_refusal_of_40000_missing_paths_is_one_short_line(receiver: Client, pub_key: PrivateKey,
                                                          tmp_path: Path) -> None:
    """A release of 40,000 files whose bundle carries none: before, a 360 KB line."""
    entries = [FileEntry(f"shard/{i:05d}.txt", 0, EMPTY_SHA256, None) for i in range(40_000)]
    envelope = sign_payload(build_manifest(entries).to_payload(), pub_key)
    source = write_bundle(tmp_path / "b", envelope)
    with pytest.raises(IntegrityError) as info:
        import_bundle(receiver, source)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert message.endswith("expected exactly the 40,000 files the manifest of acme/tiny@1.0 lists; missing "
                            "shard/00000.txt, shard/00001.txt, shard/00002.txt, shard/00003.txt, "
                            "shard/00004.txt and 39,995 more")
    err = cli_refuses(receiver.paths.vault_dir.parent.parent, "import", source)
    assert len(err) < 800 and err.count("\n") <= 2, err
    assert_vault_clean(receiver)


def test_control_characters_in_names_are_escaped_in_refusals(receiver: Client, bundle: Path) -> None:
    """A file named with terminal escapes shows as text, not as commands to the terminal."""
    (bundle / "files" / "\x1b[2Jevil\n.py").write_text("x")
    with pytest.raises(IntegrityError) as info:
        import_bundle(receiver, bundle)
    message = str(info.value)
    assert "\x1b" not in message and "\n" not in message
    assert r"not in the manifest: \x1b[2Jevil\n.py" in message
    assert_vault_clean(receiver)


def test_text_helpers_speak_json_and_cut() -> None:
    assert _text.kind(None) == "null" and _text.kind({}) == "an object" and _text.kind(True) == "true"
    assert _text.show(None) == "null" and _text.show(True) == "true" and _text.show(["a.bin"]) == '["a.bin"]'
    assert _text.show(b"junk") == "4 bytes 'junk'" and _text.show(b"\xff\x00") == "2 bytes 0xff00"
    assert _text.quote("a'b\x07") == r"'a\'b\x07'"
    assert _text.quote("x" * 500).endswith("… (380 more characters)'")
    assert _text.listing([]) == "none" and _text.listing(["a"]) == "a" and _text.listing(["a", "b"]) == "a and b"
    assert _text.listing([f"{i}.bin" for i in range(40_000)], 2) == "0.bin, 1.bin and 39,998 more"


def test_refusals_name_no_python_reprs(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    """Each refusal of this file's attacks, collected: no None, True, b'...', ['...'] or type names."""
    (bundle / "files" / "evil.py").write_text("x")
    messages = []
    for call in (lambda: import_bundle(receiver, bundle),
                 lambda: import_bundle(receiver, _with_meta(bundle, ref=None, format=True))):
        with pytest.raises(VerificationError) as info:
            call()
        messages.append(info.value.diagnostics())
    for message in messages:
        for python in ("None", "True", "False", "b'", "['", "dict", "NoneType"):
            assert python not in message, (python, message)
    shutil.rmtree(bundle / "files")
    assert_vault_clean(receiver)
