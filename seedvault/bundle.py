"""Air-gap bundles: a self-contained directory or tar that carries one release across.

    bundle.json          format marker, ref, manifest digest, file list (unsigned: it must
                         agree with the envelope, or the bundle is refused)
    envelope.json        the DSSE envelope with every signature
    keys/<keyid>.pub     the signers' public keys, for the receiver to decide to trust
    ancestors.json       the envelopes of the release's ancestors the exporter holds (its
                         lineage, followed by manifest digest), for the receiver to judge
    release.tlog-proof   the release's transparency-log proof, when the sender holds one
                         (judged like any proof: `trust require --logged`)
    files/<path>         the model's files

A bundle is never trusted for what it says: import judges the envelope under the local
policy first (bundled keys are NOT trusted automatically), copies files into staging
while refusing symlinks, links, devices, FIFOs, members held twice and anything in
`files/` the manifest does not list, then verifies both digests of every file.
"""

from __future__ import annotations

import contextlib
import io
import json
import lzma
import os
import shutil
import tarfile
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from seedvault import _json, hashing
from seedvault._text import count, cut, kind, listing, quote, show
from seedvault.client import Admitted, Client, Progress, check_exact_files, compare_file_sets, copy_files
from seedvault.errors import IntegrityError, ManifestError, NotFoundError, OversizeError, UnsafePathError, UsageError
from seedvault.manifest import Manifest, check_relative_path
from seedvault.settings import MAX_ENVELOPE_BYTES, MAX_FILES_PER_MANIFEST, READ_CHUNK
from seedvault.signing import Envelope, PublicKey, Verdict
from seedvault.signing.dsse import check_envelope_size
from seedvault.tlog.proof import MAX_PROOF_BYTES

FORMAT = "seedvault-bundle/1"
HEADS_FILE = "heads.json"  # the model's heads: its head, and the publisher-signed one it refreshes
MAX_BUNDLE_HEADS = 4
MAX_HEADS_FILE = 4 * 1024 * 1024
PROOF_FILE = "release.tlog-proof"


def export_bundle(client: Client, ref: str, dest: Path, *, as_tar: bool = False) -> Path:
    """Write a verified release as a bundle directory, or a tar file with `as_tar`."""
    verdict = client.verify(ref, fast=True)  # never export bytes that no longer verify
    manifest = verdict.manifest
    entry = client.vault.resolve(ref)
    snapshot = client.vault.snapshot_dir(manifest)
    if dest.exists():
        raise UsageError(f"{dest} already exists; choose a new destination")
    policy = client.policy
    held = client.head_envelopes(manifest.name)
    # The public keys of every locally trusted signer: of the release (publishers, approvers)
    # and of its heads (a timestamp key, a publisher's new key), for the receiver to judge.
    signers = [sig.keyid for env in (entry.envelope, *held) for sig in env.signatures]
    keys = {key_id: t.key.pem() for key_id in signers for t in policy.keys_by_id(key_id)}
    heads = heads_file(held) if held else b""
    ancestors = [n.envelope for n in client.lineage(manifest, entry.digest).walk() if n.envelope is not None]
    keys.update({sig.keyid: t.key.pem() for env in ancestors for sig in env.signatures
                 for t in policy.keys_by_id(sig.keyid)})
    lineage = ancestors_file(ancestors) if ancestors else b""
    proof = client.logs.proof(entry.digest)
    meta = {"format": FORMAT, "ref": manifest.ref, "digest": entry.digest, "files": [f.path for f in manifest.files]}
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if as_tar:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                _tar_bytes(tar, "bundle.json", json.dumps(meta, indent=2).encode())
                _tar_bytes(tar, "envelope.json", entry.envelope.to_json())
                if heads:
                    _tar_bytes(tar, HEADS_FILE, heads)
                if lineage:
                    _tar_bytes(tar, ANCESTORS_FILE, lineage)
                if proof:
                    _tar_bytes(tar, PROOF_FILE, proof)
                for key_id, pem in sorted(keys.items()):
                    _tar_bytes(tar, f"keys/{key_id}.pub", pem.encode())
                for f in manifest.files:
                    info = tarfile.TarInfo(f"files/{f.path}")
                    info.size = f.size
                    info.mode = 0o644
                    with hashing.open_regular_file(snapshot / f.path, f.path, f.size) as src:
                        tar.addfile(info, src)
        else:
            tmp.mkdir(parents=True)
            (tmp / "bundle.json").write_text(json.dumps(meta, indent=2))
            (tmp / "envelope.json").write_bytes(entry.envelope.to_json())
            if heads:
                (tmp / HEADS_FILE).write_bytes(heads)
            if lineage:
                (tmp / ANCESTORS_FILE).write_bytes(lineage)
            if proof:
                (tmp / PROOF_FILE).write_bytes(proof)
            (tmp / "keys").mkdir()
            for key_id, pem in keys.items():
                (tmp / "keys" / f"{key_id}.pub").write_text(pem)
            for f in manifest.files:
                target = tmp / "files" / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with hashing.open_regular_file(snapshot / f.path, f.path, f.size) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, READ_CHUNK)
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
    """Verify a bundle under the local policy and admit it into the vault, with the model's
    heads it carries (each judged like a head from anywhere: a lower sequence is ignored)."""
    ancestors = read_bundle_ancestors(source)
    stash_bundle_proof(client, source)
    if source.is_dir():
        admitted = _import_dir(client, source, progress, ancestors)
    elif _is_tar(source):
        with _open_tar(source) as tar:
            admitted = _import_tar(client, source, tar, progress, ancestors)
    else:
        _not_a_bundle(source)
    client.admit_heads(read_bundle_heads(source), admitted.verdict.manifest.name)
    return admitted


def import_directory(client: Client, directory: Path, envelope_source: Path,
                     progress: Progress | None = None) -> Admitted:
    """Admit a model whose files another tool fetched (another BitTorrent client, a copy by
    hand) into DIRECTORY, with its envelope from a file or bundle: the envelope judged first,
    then exactly the manifest's files copied and verified, as for a bundle. A BitTorrent client
    writes a torrent's files under its name, so `DIRECTORY/<torrent name>/` is taken when it
    exists."""
    envelope = read_envelope_source(envelope_source)
    if not directory.is_dir():
        raise UsageError(f"{directory}: expected a directory holding the model's files, found "
                         + ("nothing" if not os.path.lexists(directory) else "another kind of file"))

    def fill(manifest: Manifest, staged: Path) -> None:
        root = directory / manifest.torrent_name
        files_dir = root if root.is_dir() and not root.is_symlink() else directory
        _refuse_links(files_dir)
        check_exact_files(files_dir, manifest, str(files_dir))
        copy_files(files_dir, manifest, staged)

    return client.admit(envelope, fill, progress)


def stash_bundle_proof(client: Client, source: Path) -> None:
    """Keep the bundle's release.tlog-proof (unjudged, bounded) where the client's judgement
    of the release looks for it; a bundle without one leaves the client's proofs as they are."""
    raw = _side_file(source, PROOF_FILE, MAX_PROOF_BYTES)
    if raw is None:
        return
    client.logs.save_proof(read_envelope_source(source).digest, raw)


def read_bundle_heads(source: Path) -> list[Envelope]:
    """The heads a bundle carries (`heads.json`), unjudged; none if it has none."""
    raw = _side_file(source, HEADS_FILE, MAX_HEADS_FILE)
    return [] if raw is None else parse_heads_file(raw, f"{source}: bundle: {HEADS_FILE}")


def _side_file(source: Path, name: str, limit: int) -> bytes | None:
    """An optional small file a bundle (directory or tar) carries beside its envelope, read
    with its size bounded; None when the bundle has none (or SOURCE is not a bundle)."""
    where = f"{source}: bundle"
    if source.is_dir():
        if not os.path.lexists(source / name):
            return None
        return _read_small_file(source / name, name, limit, where)
    if _is_tar(source):
        with _open_tar(source) as tar:
            member = _members(tar).get(name)
            if member is None:
                return None
            if not member.isfile() or member.size > limit:
                raise OversizeError(f"{where}: {name}: expected a file of at most {limit:,} bytes")
            return _read_member(tar, member)
    return None


def _envelope_list(raw: bytes, where: str, key: str, limits: tuple[int, int], label: str) -> list[Envelope]:
    """The envelopes under KEY of a small JSON file (`heads.json`, `ancestors.json`), unjudged;
    LIMITS bound its bytes and its count."""
    max_bytes, max_count = limits
    if len(raw) > max_bytes:
        raise OversizeError(f"{where}: expected at most {max_bytes:,} bytes, found {len(raw):,}")
    doc = _json.load_object(raw, where)
    items = doc.get(key)
    if not isinstance(items, list) or len(items) > max_count:
        raise ManifestError(f"{where}: expected a list \"{key}\" of at most {max_count} envelopes, found "
                            "something else")
    return [Envelope.from_dict(item, f"{where}, {label} {i + 1}") for i, item in enumerate(items)]


def heads_file(heads: list[Envelope]) -> bytes:
    """`heads.json` as bundles and head cards carry it."""
    return json.dumps({"heads": [h.to_dict() for h in heads]}, indent=2).encode()


def parse_heads_file(raw: bytes, where: str) -> list[Envelope]:
    """The head envelopes of a `heads.json` (a bundle's, or a head card's), unjudged."""
    return _envelope_list(raw, where, "heads", (MAX_HEADS_FILE, MAX_BUNDLE_HEADS), "head")


ANCESTORS_FILE = "ancestors.json"
MAX_BUNDLE_ANCESTORS = 64
MAX_ANCESTORS_FILE = 2 * MAX_ENVELOPE_BYTES


def ancestors_file(ancestors: list[Envelope]) -> bytes:
    """`ancestors.json`: the envelopes of a release's ancestors, unjudged."""
    return json.dumps({"ancestors": [e.to_dict() for e in ancestors[:MAX_BUNDLE_ANCESTORS]]}, indent=2).encode()


def read_bundle_ancestors(source: Path) -> list[Envelope]:
    """The ancestors' envelopes a bundle carries (`ancestors.json`), unjudged; none if it has none."""
    raw = _side_file(source, ANCESTORS_FILE, MAX_ANCESTORS_FILE)
    return [] if raw is None else _envelope_list(raw, f"{source}: bundle: {ANCESTORS_FILE}", "ancestors",
                                                  (MAX_ANCESTORS_FILE, MAX_BUNDLE_ANCESTORS), "ancestor")


MAX_BUNDLE_KEYS = 64
MAX_KEY_FILE = 16 * 1024


def is_bundle(source: Path) -> bool:
    return (source.is_dir() and os.path.lexists(source / "envelope.json")) or _is_tar(source)


def read_bundle_keys(source: Path) -> list[PublicKey]:
    """The public keys a bundle carries (`keys/*.pub`), unjudged: whoever trusts one must
    check its id against one obtained out of band. A key file whose name claims another id
    than its key's is refused."""
    where = f"{source}: bundle"
    found: list[tuple[str, bytes]] = []
    if source.is_dir():
        keys_dir = source / "keys"
        if keys_dir.is_dir() and not keys_dir.is_symlink():
            for i, entry in enumerate(sorted(keys_dir.iterdir())):
                if i >= MAX_BUNDLE_KEYS:
                    raise OversizeError(f"{where}: expected at most {MAX_BUNDLE_KEYS} keys, found more")
                found.append((entry.name, _read_small_file(entry, f"keys/{entry.name}", MAX_KEY_FILE, where)))
    elif _is_tar(source):
        with _open_tar(source) as tar:
            members = [m for n, m in sorted(_members(tar).items()) if n.startswith("keys/") and m.isfile()]
            if len(members) > MAX_BUNDLE_KEYS:
                raise OversizeError(f"{where}: expected at most {MAX_BUNDLE_KEYS} keys, found {len(members)}")
            for m in members:
                if m.size > MAX_KEY_FILE:
                    raise OversizeError(f"{where}: {m.name}: expected at most {MAX_KEY_FILE:,} bytes, found {m.size:,}")
                found.append((m.name.removeprefix("keys/"), _read_member(tar, m)))
    else:
        _not_a_bundle(source)
    keys = []
    for name, pem in found:
        key = PublicKey.from_pem(pem, f"{where}: keys/{name}")
        if name.removesuffix(".pub") != key.key_id:
            raise ManifestError(f"{where}: keys/{name}: expected the file of key {name.removesuffix('.pub')}, "
                                f"found key {key.key_id}", hint="the bundle was altered; get it again from its source")
        keys.append(key)
    return keys


def _not_a_bundle(source: Path) -> NoReturn:
    raise UsageError(
        f"{source}: expected a bundle directory or tar file, found "
        + ("nothing" if not source.exists() else "another kind of file")
    )


def read_envelope_source(source: Path) -> Envelope:
    """The envelope of an envelope file, a bundle directory or a bundle tar, read by the
    same rules as `import_bundle` (a tar holding a member twice, or a link or special file
    where envelope.json should be, is refused): what `pull --envelope` and `verify` read is
    what import would judge."""
    if source.is_dir():
        return _read_envelope_file(source / "envelope.json", f"{source}: bundle")
    if _is_tar(source):
        with _open_tar(source) as tar:
            members = _members(tar)
            return _tar_envelope(tar, members, source)
    if not os.path.lexists(source):
        raise NotFoundError(f"envelope {source} does not exist")
    return _read_envelope_file(source, None)


def _is_tar(source: Path) -> bool:
    # is_file follows links and says False for FIFOs: a FIFO is never opened here.
    return source.is_file() and tarfile.is_tarfile(source)


@contextlib.contextmanager
def _open_tar(source: Path) -> Iterator[tarfile.TarFile]:
    """The tar, any damage (truncation, bad headers, bad compression) a clean refusal."""
    try:
        with tarfile.open(source, "r:*") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a real I/O failure (disk, permissions) says so itself; bad gzip/bz2 data has no errno
        raise IntegrityError(
            f"{source}: expected a complete tar bundle, found a damaged or truncated one ({cut(str(exc))})",
            hint="copy the bundle again from its source",
        ) from None


def _read_small_file(path: Path, name: str, limit: int, where: str | None) -> bytes:
    """A bounded read of a regular file (not a link, FIFO or device)."""
    label = where or str(path.parent)
    try:
        f = hashing.open_regular_file(path, name)
    except IntegrityError as exc:
        if exc.found == "no file":
            raise ManifestError(f"{label}: expected {name} in the bundle, found none") from None
        raise ManifestError(f"{label}: expected {name} to be a regular file, found {exc.found}") from None
    with f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OversizeError(f"{label}: {name}: expected at most {limit:,} bytes, found more")
    return data


def _read_envelope_file(path: Path, where: str | None) -> Envelope:
    name = path.name if where is not None else str(path)
    if where is None:
        try:
            f = hashing.open_regular_file(path, str(path))
        except IntegrityError as exc:
            raise ManifestError(f"envelope {path}: expected a regular file, found {exc.found}") from None
        with f:  # read past the bound by one byte: from_json refuses it by size
            return envelope_of(f.read(MAX_ENVELOPE_BYTES + 1), str(path))
    if not os.path.lexists(path):
        raise NotFoundError(f"{where}: expected {name} in the bundle, found none",
                            hint="is this a seedvault bundle? seedvault export REF DEST writes one")
    return envelope_of(_read_small_file(path, name, MAX_ENVELOPE_BYTES, where), str(path))


def envelope_of(raw: bytes, source: str) -> Envelope:
    """The envelope in a file the user named. Data that is not JSON at all is the wrong file
    (a usage error, exit 2), not a malformed envelope; JSON that breaks the envelope rules
    (strict JSON, fields, sizes) is refused as a ManifestError (exit 3)."""
    check_envelope_size(len(raw), source)
    try:
        json.loads(raw)
    except RecursionError:
        pass  # JSON nested too deep: the strict reader refuses it by its own rule
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        found = (f"data that is not JSON (at line {exc.lineno}, column {exc.colno})"
                 if isinstance(exc, json.JSONDecodeError) else "data that is not JSON text")
        raise UsageError(f"{source}: expected a signed envelope (JSON), found {found}",
                         hint="name the envelope.json, bundle directory or bundle tar the publisher gave you") from None
    return Envelope.from_json(raw, source)


def _import_dir(client: Client, source: Path, progress: Progress | None,
                ancestors: list[Envelope] | None = None) -> Admitted:
    envelope = _read_envelope_file(source / "envelope.json", str(source))
    meta = _read_meta(source / "bundle.json", str(source)) if os.path.lexists(source / "bundle.json") else None
    files_dir = source / "files"

    def fill(manifest: Manifest, staged: Path) -> None:
        if meta is not None:
            check_meta(meta, envelope, manifest, str(source))
        _refuse_links(files_dir)
        check_exact_files(files_dir, manifest, f"{source}: bundle")
        copy_files(files_dir, manifest, staged)

    return client.admit(envelope, fill, progress, ancestors or ())


def _read_meta(path: Path, where: str) -> dict[str, Any]:
    return _parse_meta(_read_small_file(path, "bundle.json", MAX_ENVELOPE_BYTES, where), where)


def _parse_meta(raw: bytes, where: str) -> dict[str, Any]:
    """bundle.json as strict JSON (the one reader: unique member names, no NaN, ...)."""
    return _json.load_object(raw, f"{where}: bundle.json")


def check_meta(meta: dict[str, Any], envelope: Envelope, manifest: Manifest, where: str) -> None:
    """bundle.json says nothing the envelope contradicts: its format, and whichever of the
    release's ref (or name and version), manifest digest and file list it states.

    bundle.json is not signed, so it decides nothing; but a tool reading it must not see a
    different release than the one seedvault verified, so a contradiction is refused."""

    def refuse(field: str, expected: object, found: object) -> ManifestError:
        return ManifestError(
            f"{where}: bundle.json {field}: expected {show(expected)} (as the signed envelope says), "
            f"found {show(found)}",
            hint="bundle.json contradicts the envelope it travels with; the bundle was altered or assembled "
            "by hand: get it again from its source",
        )

    if meta.get("format") != FORMAT:
        raise ManifestError(f"{where}: bundle.json format: expected {show(FORMAT)}, found {show(meta.get('format'))}",
                            hint="this is not a seedvault bundle, or one of a newer format")
    stated = {"ref": manifest.ref, "name": manifest.name, "version": manifest.version, "digest": envelope.digest}
    for field, expected in stated.items():
        if field in meta and meta[field] != expected:
            raise refuse(field, expected, meta[field])
    if "files" in meta:
        files = meta["files"]
        wanted = [f.path for f in manifest.files]
        if not isinstance(files, list) or not all(isinstance(p, str) for p in files):
            raise refuse("files", "an array of paths", kind(files))
        if files != wanted:
            missing = [p for p in wanted if p not in set(files)]
            extra = [p for p in files if p not in set(wanted)]
            found = "; ".join(([f"missing {listing(missing)}"] if missing else [])
                              + ([f"not in the manifest: {listing(extra)}"] if extra else []))
            raise ManifestError(
                f"{where}: bundle.json files: expected the manifest's {count(len(wanted), 'file')} in its order, "
                f"found {count(len(files), 'entry', 'entries')}" + (f" ({found})" if found else " (another order)"),
                hint="bundle.json contradicts the envelope it travels with; get the bundle again from its source",
            )


def _refuse_links(root: Path) -> None:
    if root.is_symlink():
        raise UnsafePathError(f"{root}: expected a directory, found a symlink")
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise UnsafePathError(
                    f"bundle member {quote(p.relative_to(root).as_posix())}: expected a regular file, found a "
                    f"symlink to {quote(os.readlink(p))}"
                )


# Members a bundle tar holds: bundle.json, envelope.json, keys, the files, and directories.
MAX_TAR_MEMBERS = MAX_FILES_PER_MANIFEST * 2 + 1_000


def _member_kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"a symlink to {quote(m.linkname)}"
    if m.islnk():
        return f"a hard link to {quote(m.linkname)}"
    if m.ischr():
        return "a character device"
    if m.isblk():
        return "a block device"
    if m.isfifo():
        return "a FIFO (named pipe)"
    return "a special file"


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Every member, validated before anything is read: only regular files and
    directories, safe relative names, each name once, a bounded count.

    A name held twice is refused, not resolved: tar tools disagree about which copy wins
    (Python's `getmember` takes the last, others the first), so a verifier and a later
    extractor could see different bytes under one name."""
    found: dict[str, tarfile.TarInfo] = {}
    seen = 0
    while (m := tar.next()) is not None:
        seen += 1
        if seen > MAX_TAR_MEMBERS:
            raise OversizeError(f"tar bundle: expected at most {MAX_TAR_MEMBERS:,} members, found more")
        name = m.name.removeprefix("./").rstrip("/") if m.isdir() else m.name.removeprefix("./")
        # Only plain regular files: no links, devices, FIFOs, nor sparse or continued members
        # (whose stored bytes differ from what extraction writes).
        if not (m.type in (tarfile.REGTYPE, tarfile.AREGTYPE) or m.isdir()):
            raise UnsafePathError(
                f"tar member {quote(m.name)}: expected a regular file, found {_member_kind(m)}")
        if m.isdir() and name in ("", "."):  # the archive's root, as `tar -C BUNDLE -cf X .` writes it
            continue
        check_relative_path(name, f"tar member {quote(m.name)}")
        previous = found.get(name)
        if previous is not None and not (previous.isdir() and m.isdir()):
            raise UnsafePathError(
                f"tar member {quote(name)}: expected each name once, found it twice",
                hint="tools disagree about which copy of a repeated member counts; make the tar again",
            )
        found[name] = m
    return found


def _tar_envelope(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], source: Path) -> Envelope:
    member = members.get("envelope.json")
    if member is None:
        raise NotFoundError(f"{source}: expected envelope.json in the bundle, found none",
                            hint="is this a seedvault bundle? seedvault export REF DEST --tar writes one")
    if not member.isfile():
        raise ManifestError(f"{source}: expected envelope.json to be a regular file, found {_member_kind(member)}")
    check_envelope_size(member.size, f"{source}:envelope.json")
    return envelope_of(_read_member(tar, member), f"{source}:envelope.json")


def _import_tar(client: Client, source: Path, tar: tarfile.TarFile, progress: Progress | None,
                ancestors: list[Envelope] | None = None) -> Admitted:
    members = _members(tar)
    envelope = _tar_envelope(tar, members, source)
    meta_member = members.get("bundle.json")
    meta = None
    if meta_member is not None:
        if not meta_member.isfile():
            raise ManifestError(f"{source}: bundle.json: expected a regular file, found a directory")
        if meta_member.size > MAX_ENVELOPE_BYTES:
            raise OversizeError(f"{source}: bundle.json: expected at most {MAX_ENVELOPE_BYTES:,} bytes, "
                                f"found {meta_member.size:,}")
        meta = _parse_meta(_read_member(tar, meta_member), str(source))

    def fill(manifest: Manifest, staged: Path) -> None:
        if meta is not None:
            check_meta(meta, envelope, manifest, str(source))
        _extract_files(tar, members, manifest, staged, source)

    return client.admit(envelope, fill, progress, ancestors or ())


def _extract_files(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], manifest: Manifest, staged: Path,
                   source: Path) -> None:
    """Exactly the manifest's files from a bundle tar into STAGED, every size checked first."""
    present = {n.removeprefix("files/") for n, m in members.items() if n.startswith("files/") and m.isfile()}
    compare_file_sets(present, manifest, f"{source}: bundle")
    for f in manifest.files:  # every size checked before a byte is copied
        member = members[f"files/{f.path}"]
        if member.size != f.size:
            raise IntegrityError(
                f"file {quote(f.path)}: expected {f.size} bytes, found {member.size}",
                path=f.path, expected=str(f.size), found=str(member.size),
            )
    for f in manifest.files:
        member = members[f"files/{f.path}"]
        target = staged / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        if src is None:
            raise UnsafePathError(f"tar member {quote(member.name)}: cannot be read as a file")
        with src, open(target, "xb") as dst:
            _copy(src, dst)


def verify_bundle(client: Client, source: Path, progress: Progress | None = None) -> Verdict:
    """Check a bundle (directory or tar) under the local policy without importing it: the
    envelope judged, then every file against both signed digests (a tar's files are read
    through a private staging copy, removed afterwards)."""
    stash_bundle_proof(client, source)
    if source.is_dir():
        envelope = _read_envelope_file(source / "envelope.json", str(source))
        manifest = Manifest.from_payload(envelope.payload)
        if os.path.lexists(source / "bundle.json"):
            check_meta(_read_meta(source / "bundle.json", str(source)), envelope, manifest, str(source))
        _refuse_links(source / "files")
        return client.verify_dir(source / "files", envelope, progress, read_bundle_ancestors(source))
    if not _is_tar(source):
        _not_a_bundle(source)
    with _open_tar(source) as tar:
        members = _members(tar)
        envelope = _tar_envelope(tar, members, source)
        ancestors = read_bundle_ancestors(source)
        client.judge(envelope, ancestors)  # untrusted: nothing is extracted
        manifest = Manifest.from_payload(envelope.payload)
        with client.vault.staging(f"verify-{envelope.digest[:16]}") as staged:
            _extract_files(tar, members, manifest, staged, source)
            return client.verify_dir(staged, envelope, progress, ancestors)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise UnsafePathError(f"tar member {quote(member.name)}: cannot be read as a file")
    with f:
        return f.read(MAX_ENVELOPE_BYTES + 1)


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while chunk := src.read(READ_CHUNK):
        dst.write(chunk)
    dst.flush()
    os.fsync(dst.fileno())
