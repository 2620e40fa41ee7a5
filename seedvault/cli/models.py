"""Model commands: publish, approve, verify, show, export, import (list is in cli/housekeeping.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from seedvault._text import count, human_size, quote
from seedvault.bundle import export_bundle, import_bundle, is_bundle, read_envelope_source, verify_bundle
from seedvault.cli._common import (
    DATE,
    REF,
    byte_progress,
    complete_ref,
    emit,
    json_option,
    key_options,
    load_private_key,
    note,
    signing_keys,
    signing_keys_option,
)
from seedvault.client import Client, scan_model_dir
from seedvault.manifest import LINEAGE_RELATIONS, FileEntry, Manifest, format_time
from seedvault.signing import Verdict
from seedvault.signing.trusted import signer_reports
from seedvault.vault import COPY, HARD_LINK, REFLINK, StoreMode


def _verdict_text(verdict: Verdict) -> str:
    lines = [f"verified {verdict.manifest.ref}", f"  digest    {verdict.digest}"]
    lines += [f"  signer    {s.describe()}" for s in verdict.signers]
    if verdict.yanked is not None:
        lines.append(f"  yanked    by its publisher: {verdict.yanked} (load, snapshot_path and pull refuse it)")
    return "\n".join(lines)


def _manifest_summary(m: Manifest) -> dict[str, Any]:
    return {
        "ref": m.ref,
        "created": format_time(m.created),
        "expires": format_time(m.expires) if m.expires else None,
        "license": m.license.spdx,
        "publisher": m.origin.publisher,
        "files": len(m.files),
        "size": m.total_size,
        "parameters": sum(f.parameters for f in m.files),
    }


def _weights_text(f: FileEntry) -> str:
    """What the signed summary of a weights file says, for `show`."""
    if f.gguf is not None:
        g = f.gguf
        context = f", context {g.context_length}" if g.context_length is not None else ""
        return (f"  GGUF {g.architecture or '(no architecture)'}, {g.tensors} tensors, {g.parameters} params, "
                f"{'/'.join(g.quantization) or 'no tensors'}{context}")
    if f.safetensors is not None:
        return f"  {f.safetensors.tensors} tensors, {f.safetensors.parameters} params"
    return ""


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name, NAMESPACE/NAME.")
@click.option("--version", required=True, help="Release label: 1.2.0, 2024-05-01, 3f2a9c1 ...")
@click.option("--license", "license_", required=True, help="SPDX license expression, e.g. Apache-2.0.")
@signing_keys_option
@click.option("--publisher", default="", help="Publisher display name.")
@click.option("--origin-url", help="Where the model comes from (source repository URL).")
@click.option("--revision", help="Source revision (commit) the files were taken from.")
@click.option("--notes", help="Free-form training or provenance notes.")
@click.option("--base", "base_ref", type=REF, help="The model this one derives from (REF); pinned by digest when "
              "it is in the vault.")
@click.option("--relation", type=click.Choice(sorted(LINEAGE_RELATIONS)), help="How it derives from --base.")
@click.option("--expires", type=DATE, help="Refuse this manifest after this date.")
@click.option("--allow-pickle", is_flag=True, help="Publish pickle files (.bin .pt ...) although they run code.")
@click.option("--copy", "store", flag_value="copy", help="Copy the files into the vault.")
@click.option("--link", "store", flag_value="link",
              help="Hard-link the files into the vault (made read-only) where no reflink can be made, even "
              "as root. By default (neither option) a reflink where the filesystem has them, else a hard link "
              "when read-only protects the file (not for root), else a copy.")
@json_option
@click.pass_obj
def publish(
    client: Client, directory: Path, name: str, version: str, license_: str, key_paths: tuple[Path, ...],
    passphrase_file: Path | None, publisher: str, origin_url: str | None, revision: str | None,
    notes: str | None, base_ref: str | None, relation: str | None, expires: datetime | None,
    allow_pickle: bool, store: StoreMode | None, as_json: bool,
) -> None:
    """Sign DIRECTORY as NAME@VERSION and store it in the vault, with a new head of NAME.

    Several --key options sign it with several keys (a threshold, or old and new key)."""
    if bool(base_ref) != bool(relation):
        raise click.UsageError("--base and --relation go together")
    keys = signing_keys(key_paths, passphrase_file, "publish")
    key, key_path = keys[0], key_paths[0]
    total = sum((directory / p).stat().st_size for p in scan_model_dir(directory))
    with byte_progress(f"publishing {name}@{version}", total, not as_json) as progress:
        result = client.publish(
            directory, name=name, version=version, license=license_, key=keys, publisher=publisher,
            source_url=origin_url, source_revision=revision, notes=notes,
            lineage=[(relation, base_ref)] if base_ref and relation else [],
            expires=expires, allow_pickle=allow_pickle, progress=progress, store=store or "auto",
        )
    m = result.verdict.manifest
    if result.already_present:
        emit({**_manifest_summary(m), "digest": result.envelope.digest, "already_published": True,
              "snapshot": str(result.snapshot), "info_hash_v2": m.torrent.info_hash_v2}, as_json,
             f"already published {m.ref} with these files ({result.envelope.digest}); nothing changed")
        return
    if not any(k.covers(m.name) and k.role == "publisher" for k in client.policy.keys_by_id(key.key_id)):
        note(f"your own policy does not trust key {key.key_id[:16]} for {m.name}, so verify, load, "
                   f"export and seed will refuse it here; to trust it: seedvault trust add {key_path}.pub "
                   f"--role publisher --scope '{m.name.split('/')[0]}/*'", as_json)
    emit(
        {**_manifest_summary(m), "digest": result.envelope.digest, "already_published": False, "key_id": key.key_id,
         "key_ids": [k.key_id for k in keys],
         "snapshot": str(result.snapshot), "info_hash_v2": m.torrent.info_hash_v2, "stored": dict(result.stored)},
        as_json,
        lambda: f"published {m.ref}\n  digest    {result.envelope.digest}\n  files     {len(m.files)} "
        f"({human_size(m.total_size)})\n  signed by {', '.join(k.key_id for k in keys)}\n  snapshot  {result.snapshot}"
        f"\n  stored    {_stored(result.stored, directory)}",
    )


def _stored(stored: Mapping[str, int], directory: Path) -> str:
    """How the files entered the vault, in words (and what a hard link means for the publisher)."""
    parts = [f"{count(n, 'file')} by {how}" for how, n in sorted(stored.items())]
    text = ", ".join(parts) or "nothing new"
    if stored.get(HARD_LINK):
        text += (f"; no second copy: the hard-linked files in {directory} are now read-only and are the vault's "
                 "copy (edit a copy of them, or publish with --copy)")
    elif stored.get(REFLINK) and not stored.get(COPY):
        text += " (copy-on-write clones: no second copy until either side changes)"
    elif stored.get(COPY) and os.geteuid() == 0:
        text += " (as root a read-only file can still be written in place, so nothing was hard-linked; --link to)"
    return text


@click.command()
@click.argument("ref", type=REF)
@key_options
@click.option("--registry", help="Send the approval to this registry node too.")
@json_option
@click.pass_obj
def approve(client: Client, ref: str, key_path: Path, passphrase_file: Path | None, registry: str | None,
            as_json: bool) -> None:
    """Countersign REF's manifest as an approver (after verifying it and every byte)."""
    from seedvault.cli.life import countersign  # imports the registry client only here

    key = load_private_key(key_path, passphrase_file)
    result = countersign(client, ref, key, registry)
    emit(result, as_json, f"approved {result['ref']} with {key.key_id} ({result['signatures']} signatures)"
         + (f"; {registry} took it" if registry else ""))


@click.command()
@click.argument("target", shell_complete=complete_ref)
@click.option("--envelope", "envelope_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Verify a directory TARGET against this envelope instead of a vault REF.")
@click.option("--fast", is_flag=True, help="Trust files unchanged since their last full verification.")
@json_option
@click.pass_obj
def verify(client: Client, target: str, envelope_path: Path | None, fast: bool, as_json: bool) -> None:
    """Verify a model in the vault (REF), a bundle (directory or tar), or a directory (with --envelope)."""
    if envelope_path is not None:
        # A regular file, bounded: a FIFO or device named as the envelope is refused, never read.
        envelope = read_envelope_source(envelope_path)
        directory = Path(target)
        if not directory.is_dir():
            raise click.UsageError(f"with --envelope, TARGET must be a directory; {quote(target)} is not")
        manifest = Manifest.from_payload(envelope.payload)
        with byte_progress(f"verifying {manifest.ref}", manifest.total_size, not as_json) as progress:
            verdict = client.verify_dir(directory, envelope, progress)
    elif is_bundle(Path(target)):  # a bundle checked where it is, not imported
        with byte_progress(f"verifying {Path(target).name}", None, not as_json) as progress:
            verdict = verify_bundle(client, Path(target), progress)
    else:
        ref = REF.convert(target, None, None)
        total = client.vault.resolve(ref).manifest.total_size
        with byte_progress(f"verifying {ref}", total, not as_json) as progress:
            verdict = client.verify(ref, fast=fast, progress=progress)
    emit(verdict.to_dict(), as_json, lambda: _verdict_text(verdict))


@click.command()
@click.argument("ref", type=REF)
@json_option
@click.pass_obj
def show(client: Client, ref: str, as_json: bool) -> None:
    """Show a stored manifest, its signers and roles, and the verdict under your policy."""
    manifest, envelope, verdict = client.show(ref)
    ok = isinstance(verdict, Verdict)
    data = {
        "digest": envelope.digest,
        "statement": manifest.to_dict(),
        "signatures": [s.keyid for s in envelope.signatures],
        "verdict": verdict.to_dict() if isinstance(verdict, Verdict) else {
            "refused": str(verdict),
            "signers": [r.to_dict() for r, _sig in signer_reports(envelope, manifest.name, client.policy)]},
    }

    def text() -> str:
        s = _manifest_summary(manifest)
        lines = [f"{manifest.ref}  ({envelope.digest})",
                 f"  publisher  {s['publisher'] or '(none given)'} (as the publisher wrote it; the signers below "
                 f"are what is checked)",
                 f"  license    {s['license']}   created {s['created']}"
                 + (f"   expires {s['expires']}" if s["expires"] else "")]
        if manifest.origin.source_url:
            lines.append(f"  origin     {manifest.origin.source_url} {manifest.origin.source_revision or ''}")
        if manifest.origin.notes:
            lines.append(f"  notes      {manifest.origin.notes}")
        lines += [f"  lineage    {link.relation} {link.ref} "
                  + (f"(pinned: manifest digest {link.manifest_digest[:16]})" if link.manifest_digest
                     else "(not pinned: no manifest digest, so which release is meant is not signed)")
                  for link in manifest.lineage]
        lines += [f"  file       {f.path}  {human_size(f.size)}{_weights_text(f)}" for f in manifest.files]
        if isinstance(verdict, Verdict):
            lines += [f"  signer     {r.describe()}" for r in verdict.signers]
            lines.append("  verdict    trusted under your policy")
        else:  # who signed, and how each signature stands here, says why as much as the reason
            lines += [f"  signer     {r.describe()}" for r, _sig in signer_reports(envelope, manifest.name,
                                                                                   client.policy)]
            lines.append(f"  verdict    REFUSED: {verdict}")
        return "\n".join(lines)

    emit(data, as_json, text)
    if not ok:
        raise click.exceptions.Exit(3)


@click.command("export")
@click.argument("ref", type=REF)
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--tar", "as_tar", is_flag=True, help="Write one tar file instead of a directory.")
@json_option
@click.pass_obj
def export(client: Client, ref: str, dest: Path, as_tar: bool, as_json: bool) -> None:
    """Write REF as a self-contained bundle (envelope, files, signers' public keys)."""
    path = export_bundle(client, ref, dest, as_tar=as_tar)
    entry = client.vault.resolve(ref)
    emit({"ref": entry.manifest.ref, "digest": entry.digest, "bundle": str(path), "tar": as_tar}, as_json,
         f"exported {entry.manifest.ref} to {path}")


@click.command("import")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--envelope", "envelope_path", type=click.Path(exists=True, path_type=Path),
              help="BUNDLE is a plain directory of the model's files (e.g. fetched by another BitTorrent "
              "client); this is its signed envelope (a JSON file, or a bundle holding one).")
@json_option
@click.pass_obj
def import_(client: Client, bundle: Path, envelope_path: Path | None, as_json: bool) -> None:
    """Verify BUNDLE (or DIR with --envelope) under your policy, then add it to the vault."""
    from seedvault.bundle import import_directory

    with byte_progress(f"verifying {bundle.name}", None, not as_json) as progress:
        result = (import_directory(client, bundle, envelope_path, progress) if envelope_path is not None
                  else import_bundle(client, bundle, progress))
    emit({**result.verdict.to_dict(), "snapshot": str(result.snapshot)}, as_json,
         lambda: _verdict_text(result.verdict) + f"\n  snapshot  {result.snapshot}")
