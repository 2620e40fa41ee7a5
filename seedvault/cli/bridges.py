"""Bridge commands: import-hf, export-hf, oms export/verify/sign-model/verify-model, import-oms."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from seedvault.bridges.hf import export_hf, find_snapshot, import_hf
from seedvault.bridges.oms import export_oms, import_oms, verify_oms
from seedvault.bridges.oms_files import relative_ignores
from seedvault.cli._common import DATE, REF, byte_progress, emit, json_option, key_options, load_private_key
from seedvault.cli.oms_model import METHODS, sign_model_command, trust_from, verify_model_command
from seedvault.client import Client
from seedvault.signing import PublicKey
from seedvault.signing.keys import OMS_KEY_TYPES

_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_model_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("import-hf")
@click.argument("source")
@click.option("--name", required=True, help="Model name in the vault, NAMESPACE/NAME.")
@click.option("--version", required=True, help="Release label: 1.2.0, 2024-05-01 ...")
@key_options
@click.option("--license", "license_", help="SPDX license; required when the model card's has no SPDX id.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Hugging Face cache to look SOURCE up in. Default: huggingface_hub's ($HF_HUB_CACHE).")
@click.option("--revision", help="Branch, tag or commit of repo id SOURCE. Default: main.")
@click.option("--download", is_flag=True, help="Download SOURCE into the cache first (network).")
@click.option("--publisher", default="", help="Publisher display name.")
@click.option("--notes", help="More provenance notes, after the ones recorded from Hugging Face.")
@click.option("--expires", type=DATE, help="Refuse this manifest after this date.")
@click.option("--allow-pickle", is_flag=True, help="Publish pickle files (.bin .pt ...) although they run code.")
@json_option
@click.pass_obj
def import_hf_command(
    client: Client, source: str, name: str, version: str, key_path: Path, passphrase_file: Path | None,
    license_: str | None, cache_dir: Path | None, revision: str | None, download: bool, publisher: str,
    notes: str | None, expires: datetime | None, allow_pickle: bool, as_json: bool,
) -> None:
    """Publish a Hugging Face model (a repo id in the local cache, or a snapshot directory).

    Every file is checked against the cache's content-addressed blob names first.
    """
    key = load_private_key(key_path, passphrase_file)
    snap = find_snapshot(source, cache_dir=cache_dir, revision=revision, download=download)
    total = sum(f.source.stat().st_size for f in snap.files)
    with byte_progress(f"importing {snap.repo_id}", total, not as_json) as progress:
        result = import_hf(
            client, snap.path, name=name, version=version, key=key, license=license_, publisher=publisher,
            notes=notes, expires=expires, allow_pickle=allow_pickle, progress=progress,
        )
    m = result.admitted.verdict.manifest

    def text() -> str:
        lines = [f"published {m.ref} from Hugging Face {snap.repo_id} at {snap.revision}",
                 f"  digest    {result.admitted.envelope.digest}",
                 f"  license   {result.license}" + (f" (model card: {result.card.license})" if result.card.license
                                                     else ""),
                 f"  checked   {result.checked} of {len(snap.files)} files against their cache blob names"]
        lines += [f"  lineage   {relation} {ref}" for relation, ref in result.lineage]
        lines += [f"  base      {b} (not in this vault; not pinned)" for b in result.unknown_bases]
        return "\n".join([*lines, f"  snapshot  {result.admitted.snapshot}"])

    emit(result.to_dict(), as_json, text)


@click.command("export-hf")
@click.argument("ref", type=REF)
@click.option("--cache-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Hugging Face cache directory to write into (created if missing).")
@click.option("--repo-id", help="Repo id to appear under, ORG/NAME. Default: the model's name.")
@json_option
@click.pass_obj
def export_hf_command(client: Client, ref: str, cache_dir: Path, repo_id: str | None, as_json: bool) -> None:
    """Write a verified model into a Hugging Face cache, for loaders that expect one."""
    result = export_hf(client, ref, cache_dir, repo_id)
    emit(result.to_dict(), as_json, lambda: (
        f"exported {result.ref} as Hugging Face repo {result.repo_id}, revision {result.revision}\n"
        f"  refs      {', '.join(result.refs)}"
        + (f" (refs/main moved from {result.main_was[:16]}: loaders of {result.repo_id} without a revision "
           f"now get {result.ref})" if result.main_was else "") + "\n"
        f"  snapshot  {result.snapshot}\n"
        f"  load with HF_HUB_OFFLINE=1 and cache_dir={result.cache_dir}, e.g. "
        f"snapshot_download({result.repo_id!r}, cache_dir=..., local_files_only=True)"))


@click.group()
def oms() -> None:
    """OpenSSF model signing (OMS) bundles, as the `model_signing` tool reads and writes them."""


oms.add_command(sign_model_command)
oms.add_command(verify_model_command)


@oms.command("export")
@click.argument("ref", type=REF)
@key_options
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the bundle (e.g. model.sig).")
@json_option
@click.pass_obj
def oms_export(client: Client, ref: str, key_path: Path, passphrase_file: Path | None, out: Path,
               as_json: bool) -> None:
    """Sign a verified model as an OMS bundle, with an ECDSA P-256, P-384 or P-521 key."""
    key = load_private_key(key_path, passphrase_file, accept=OMS_KEY_TYPES)
    result = export_oms(client, ref, key, out)
    emit(result.to_dict(), as_json, lambda: (
        f"wrote OMS bundle {result.signature} for {result.ref}\n"
        f"  covers    {result.directory}\n"
        f"  root      {result.root}\n"
        f"  key hint  {result.key_hint}\n"
        f"  check it: model_signing verify key {result.directory} --signature {result.signature} "
        "--public_key PUBLIC_KEY"))


@oms.command("verify")
@click.argument("directory", type=_model_dir)
@click.option("--signature", required=True, type=_existing_file, help="The OMS bundle (e.g. model.sig).")
@click.option("--public-key", "public_key", required=True, type=_existing_file, help="Signer's public key (PEM).")
@json_option
def oms_verify(directory: Path, signature: Path, public_key: Path, as_json: bool) -> None:
    """Verify DIRECTORY against an OMS bundle made by `model_signing sign key`."""
    verdict = verify_oms(directory, signature, PublicKey.load(public_key, accept=OMS_KEY_TYPES))
    emit(verdict.to_dict(), as_json, lambda: (
        f"verified {directory} against {signature}\n"
        f"  files     {len(verdict.files)}, root {verdict.root}\n"
        f"  signer    {verdict.key_id} (OMS hint {verdict.key_hint})"))


@click.command("import-oms")
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@click.option("--signature", required=True, type=_existing_file, help="The OMS bundle (e.g. model.sig).")
@click.option("--method", type=click.Choice(METHODS), default="key", show_default=True,
              help="How the bundle was signed: with a key, or a certificate chain.")
@click.option("--public-key", "public_key", type=_existing_file,
              help="key method: the OMS signer's public key (PEM); you decide to trust it by passing it.")
@click.option("--cert-chain", multiple=True, type=_existing_file,
              help="certificate method: a root certificate you trust; repeat.")
@click.option("--ignore-paths", multiple=True, type=click.Path(path_type=Path),
              help="A file or directory of the model to leave out; repeat.")
@click.option("--ignore-unsigned-files", is_flag=True, help="Accept (and leave out) files the bundle does not list.")
@click.option("--name", required=True, help="Model name in the vault, NAMESPACE/NAME.")
@click.option("--version", required=True, help="Release label: 1.2.0, 2024-05-01 ...")
@key_options
@click.option("--license", "license_", required=True, help="SPDX license expression (OMS records none).")
@click.option("--publisher", default="", help="Publisher display name.")
@click.option("--origin-url", help="Where the model comes from.")
@click.option("--notes", help="More provenance notes, after the OMS evidence.")
@click.option("--expires", type=DATE, help="Refuse this manifest after this date.")
@click.option("--allow-pickle", is_flag=True, help="Publish pickle files (.bin .pt ...) although they run code.")
@json_option
@click.pass_obj
def import_oms_command(
    client: Client, directory: Path, signature: Path, method: str, public_key: Path | None,
    cert_chain: tuple[Path, ...], ignore_paths: tuple[Path, ...], ignore_unsigned_files: bool, name: str,
    version: str, key_path: Path, passphrase_file: Path | None, license_: str, publisher: str,
    origin_url: str | None, notes: str | None, expires: datetime | None, allow_pickle: bool, as_json: bool,
) -> None:
    """Verify DIRECTORY (or a single-file model) against an OMS bundle, as `oms verify-model`
    does, then publish it into the vault."""
    key = load_private_key(key_path, passphrase_file)
    admitted, verdict = import_oms(
        client, directory, signature, trust_from(method, public_key, cert_chain), name=name, version=version,
        key=key, license=license_, ignore=relative_ignores(directory, ignore_paths),
        ignore_unsigned=ignore_unsigned_files, publisher=publisher, source_url=origin_url, notes=notes,
        expires=expires, allow_pickle=allow_pickle,
    )
    m = admitted.verdict.manifest
    emit({"ref": m.ref, "digest": admitted.envelope.digest, "snapshot": str(admitted.snapshot),
          "oms": verdict.to_dict()}, as_json, lambda: (
        f"published {m.ref} after verifying its OMS signature\n"
        f"  digest    {admitted.envelope.digest}\n"
        f"  OMS       bundle {verdict.bundle_sha256}, signer {verdict.key_id}\n"
        f"  snapshot  {admitted.snapshot}"))
