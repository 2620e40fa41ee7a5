"""Air-gap bundles: a self-contained directory or tar that carries one release across.

    bundle.json          format marker, ref, manifest digest
    envelope.json        the DSSE envelope with every signature
    keys/<keyid>.pub     the signers' public keys, for the receiver to decide to trust
    files/<path>         the model's files

A bundle is never trusted for what it says: import judges the envelope under the local
policy first (bundled keys are NOT trusted automatically), copies files into staging
while refusing symlinks, links, devices and any member outside `files/`, then verifies.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from seedvault.client import Admitted, Client, Progress, check_exact_files, copy_files
from seedvault.errors import IntegrityError, ManifestError, UnsafePathError, UsageError
from seedvault.manifest import Manifest, check_relative_path
from seedvault.settings import MAX_ENVELOPE_BYTES, READ_CHUNK
from seedvault.signing import Envelope
from seedvault.signing.dsse import check_envelope_size

FORMAT = "seedvault-bundle/1"


def export_bundle(client: Client, ref: str, dest: Path, *, as_tar: bool = False) -> Path:
    """Write a verified release as a bundle directory, or a tar file with `as_tar`."""
    verdict = client.verify(ref, fast=True)  # never export bytes that no longer verify
    manifest = verdict.manifest
    entry = client.vault.resolve(ref)
    snapshot = client.vault.snapshot_dir(manifest)
    if dest.exists():
        raise UsageError(f"{dest} already exists; choose a new destination")
    policy = client.policy
    keys = {}
    for sig in entry.envelope.signatures:
        for trusted in policy.keys_by_id(sig.keyid):
            keys[sig.keyid] = trusted.key.pem()
    meta = {"format": FORMAT, "ref": manifest.ref, "digest": entry.digest}
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if as_tar:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                _tar_bytes(tar, "bundle.json", json.dumps(meta, indent=2).encode())
                _tar_bytes(tar, "envelope.json", entry.envelope.to_json())
                for key_id, pem in sorted(keys.items()):
                    _tar_bytes(tar, f"keys/{key_id}.pub", pem.encode())
                for f in manifest.files:
                    info = tarfile.TarInfo(f"files/{f.path}")
                    info.size = f.size
                    info.mode = 0o644
                    with open(snapshot / f.path, "rb") as src:
                        tar.addfile(info, src)
        else:
            tmp.mkdir(parents=True)
            (tmp / "bundle.json").write_text(json.dumps(meta, indent=2))
            (tmp / "envelope.json").write_bytes(entry.envelope.to_json())
            (tmp / "keys").mkdir()
            for key_id, pem in keys.items():
                (tmp / "keys" / f"{key_id}.pub").write_text(pem)
            for f in manifest.files:
                target = tmp / "files" / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(snapshot / f.path, target)
        os.rename(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return dest


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def import_bundle(client: Client, source: Path, progress: Progress | None = None) -> Admitted:
    """Verify a bundle under the local policy and admit it into the vault."""
    if source.is_dir():
        return _import_dir(client, source, progress)
    if source.is_file() and tarfile.is_tarfile(source):
        try:
            return _import_tar(client, source, progress)
        except (tarfile.TarError, EOFError) as exc:  # staging is already cleaned up by then
            raise IntegrityError(
                f"{source}: expected a complete tar bundle, found a damaged or truncated one ({exc})",
                hint="copy the bundle again from its source",
            ) from None
    raise UsageError(
        f"{source}: expected a bundle directory or tar file, found "
        + ("nothing" if not source.exists() else "another kind of file")
    )


def _read_envelope(raw: bytes, source: str) -> Envelope:
    return Envelope.from_json(raw, source)


def _import_dir(client: Client, source: Path, progress: Progress | None) -> Admitted:
    envelope_path = source / "envelope.json"
    if envelope_path.is_symlink() or not envelope_path.is_file():
        raise ManifestError(f"{source}: expected envelope.json in the bundle, found none")
    check_envelope_size(envelope_path.stat().st_size, str(envelope_path))
    envelope = _read_envelope(envelope_path.read_bytes(), str(envelope_path))
    files_dir = source / "files"

    def fill(manifest: Manifest, staged: Path) -> None:
        _refuse_links(files_dir)
        check_exact_files(files_dir, manifest)
        copy_files(files_dir, manifest, staged)

    return client.admit(envelope, fill, progress)


def _refuse_links(root: Path) -> None:
    if root.is_symlink():
        raise UnsafePathError(f"{root}: expected a directory, found a symlink")
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise UnsafePathError(
                    f"bundle member {p.relative_to(root).as_posix()!r}: expected a regular file, found a "
                    f"symlink to {os.readlink(p)!r}"
                )


def _members(tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """Every member, validated before anything is read: regular files and dirs, safe names."""
    for m in tar.getmembers():
        name = m.name.removeprefix("./").rstrip("/") if m.isdir() else m.name.removeprefix("./")
        if m.issym() or m.islnk():
            raise UnsafePathError(
                f"tar member {m.name!r}: expected a regular file, found a "
                f"{'symlink' if m.issym() else 'hard link'} to {m.linkname!r}"
            )
        if not (m.isfile() or m.isdir()):
            raise UnsafePathError(f"tar member {m.name!r}: expected a regular file, found a special file")
        if m.isdir() and name in ("", "."):  # the archive's root, as `tar -C BUNDLE -cf X .` writes it
            continue
        check_relative_path(name, f"tar member {m.name!r}")
        yield name, m


def _import_tar(client: Client, source: Path, progress: Progress | None) -> Admitted:
    with tarfile.open(source, "r:*") as tar:
        members = dict(_members(tar))
        env_member = members.get("envelope.json")
        if env_member is None or not env_member.isfile():
            raise ManifestError(f"{source}: expected envelope.json in the bundle, found none")
        check_envelope_size(env_member.size, f"{source}:envelope.json")
        envelope = _read_envelope(_read_member(tar, env_member), f"{source}:envelope.json")

        def fill(manifest: Manifest, staged: Path) -> None:
            present = {n.removeprefix("files/") for n, m in members.items()
                       if n.startswith("files/") and m.isfile()}
            wanted = {f.path for f in manifest.files}
            if present != wanted:
                raise IntegrityError(
                    f"{source}: expected exactly the {len(wanted)} files the manifest lists; "
                    f"missing: {sorted(wanted - present)}; not in the manifest: {sorted(present - wanted)}",
                    hint="a file was added, removed or renamed after signing",
                )
            for f in manifest.files:
                member = members[f"files/{f.path}"]
                if member.size != f.size:
                    raise IntegrityError(
                        f"file {f.path!r}: expected {f.size} bytes, found {member.size}",
                        path=f.path, expected=str(f.size), found=str(member.size),
                    )
                target = staged / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise UnsafePathError(f"tar member {member.name!r}: cannot be read as a file")
                with src, open(target, "xb") as dst:
                    _copy(src, dst)

        return client.admit(envelope, fill, progress)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise UnsafePathError(f"tar member {member.name!r}: cannot be read as a file")
    with f:
        return f.read(MAX_ENVELOPE_BYTES + 1)


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while chunk := src.read(READ_CHUNK):
        dst.write(chunk)
    dst.flush()
    os.fsync(dst.fileno())
