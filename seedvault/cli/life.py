"""The life of a release after publish: heads, yanks, countersignatures, admin actions.

A publisher's yank, unyank or refresh is a new signed head (held here, and sent to the
registry with --registry); a node admin's yank or removal is that node's own business
(--admin-token-file), kept apart from the publisher's word.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from seedvault._text import quote
from seedvault.cli._common import (
    DATE,
    REF,
    complete_ref,
    emit,
    json_option,
    registry_url,
    signing_keys,
    signing_keys_option,
)
from seedvault.client import Client
from seedvault.errors import Error, NotFoundError, UsageError, VerificationError
from seedvault.head import Head
from seedvault.manifest import Ref, format_time
from seedvault.registry.client import RegistryClient
from seedvault.registry.resolve import refresh_head
from seedvault.signing import PrivateKey
from seedvault.signing.trusted import accept_head

_REGISTRY_HELP = "Also send it to this registry node (its current head is taken into account first)."


def _admin_token(path: Path) -> str:
    token = path.read_text(errors="replace").strip()
    if not token:
        raise UsageError(f"admin token file {path}: expected the node's admin token, found an empty file")
    return token


class _HeadGroup(click.Group):
    """`seedvault head NS/NAME` shows; `seedvault head refresh NS/NAME` re-signs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]  # `head NS/NAME ...` and `head --registry URL NS/NAME` both show
        return super().parse_args(ctx, args)


@click.group(cls=_HeadGroup)
def head() -> None:
    """A model's signed head: its latest version, its yanks, and how fresh it is."""


def _head_report(client: Client, name: str) -> dict[str, Any]:
    held = client.heads.held(name)
    if held is None:
        raise NotFoundError(f"no head of {name} is held here",
                            hint=f"fetch it: seedvault head {name} --registry URL (or --dht-node HOST:PORT), "
                            "or import a bundle of it")
    current = client.current_head(name)
    if current is not None:
        return {**current.to_dict(), "trusted": True}
    try:  # why the held head does not count now: the trust core says it
        accept_head(client.head_envelopes(name)[0], client.policy, None)
        reason = "signed by timestamp keys only, and the publisher-signed head it refreshes is not trusted"
    except VerificationError as exc:
        reason = str(exc)
    h = held.head
    return {"name": name, "sequence": h.sequence, "issued": format_time(h.issued), "expires": format_time(h.expires),
            "latest": {"version": h.latest_version, "manifest_digest": h.latest_digest},
            "yanked": [y.to_dict() for y in h.yanked], "digest": held.digest, "trusted": False, "refused": reason}


def _head_text(r: dict[str, Any]) -> str:
    lines = [f"head of {r['name']}: sequence {r['sequence']}, issued {r['issued']}",
             f"  latest   {r['latest']['version']}  ({r['latest']['manifest_digest'][:16]})",
             f"  expires  {r['expires']}" + ("  STALE: a newer head may exist" if r.get("stale") else "")]
    lines += [f"  yanked   {y['version']}: {y['reason']}" for y in r["yanked"]] or ["  yanked   none"]
    if r["trusted"]:
        lines.append(f"  signed by {r['signed_by']} keys: " + ", ".join(
            f"{s['label'] or s['key_id'][:16]} ({s['role']})" for s in r["signers"] if s["status"] == "valid"))
    else:
        lines.append(f"  NOT TRUSTED here: {r['refused']}")
    return "\n".join(lines)


@head.command("show")
@click.argument("name", shell_complete=complete_ref)
@click.option("--registry", help="Fetch the registry's heads first (judged under your policy).")
@click.option("--dht-node", "dht_nodes", multiple=True,
              help="Fetch what the DHT says first (judged under your policy), joining it through HOST:PORT.")
@json_option
@click.pass_obj
def head_show(client: Client, name: str, registry: str | None, dht_nodes: tuple[str, ...], as_json: bool) -> None:
    """Show the head known here for NAME, its signers, and whether it is stale."""
    name = Ref.parse(name).name
    if registry is not None:
        refresh_head(client, RegistryClient(registry), name)
    if dht_nodes:
        from seedvault.discovery import DhtSource
        from seedvault.p2p import Swarm, SwarmConfig, parse_endpoint
        from seedvault.sources import take_heads

        config = SwarmConfig(dht_nodes=tuple(parse_endpoint(n, "--dht-node") for n in dht_nodes))
        with Swarm(config) as swarm:
            take_heads(client, [DhtSource(client, swarm)], name)
    report = _head_report(client, name)
    emit(report, as_json, lambda: _head_text(report))


def _next_head(client: Client, name: str, keys: list[PrivateKey], registry: str | None, change: Any,
               expires: datetime | None = None) -> tuple[Head, dict[str, Any]]:
    """Sign the next head of `name` (after the registry's, when given) and send it there."""
    node = RegistryClient(registry) if registry is not None else None
    if node is not None:
        refresh_head(client, node, name)
    new, envelope = client.sign_head(name, keys, change, expires=expires)
    sent: dict[str, Any] = {}
    if node is not None:
        sent = node.put_head(envelope)
    return new, sent


def _check_version_known(client: Client, ref: Ref, registry: str | None) -> None:
    assert ref.version is not None
    try:
        client.vault.resolve(ref)
        return
    except NotFoundError:
        pass
    if registry is not None:
        versions = {str(v["version"]) for v in RegistryClient(registry).versions(ref.name)}
        if ref.version in versions:
            return
    raise NotFoundError(f"{ref} is neither in the vault" + (f" nor on {registry}" if registry else ""),
                        hint="check the version: seedvault list, or seedvault head NS/NAME")


def _exact(ref: str) -> Ref:
    parsed = Ref.parse(ref)
    if parsed.version is None:
        raise click.UsageError(f"expected NS/NAME@VERSION (one release), found {quote(ref)}")
    return parsed


@click.command()
@click.argument("ref", type=REF)
@click.option("--reason", help="Why it is yanked, for the people who would use it (publisher yank).")
@signing_keys_option
@click.option("--registry", help=_REGISTRY_HELP)
@click.option("--admin-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Yank on that registry node only, as its admin (not the publisher's word).")
@json_option
@click.pass_obj
def yank(client: Client, ref: str, reason: str | None, key_paths: tuple[Path, ...], passphrase_file: Path | None,
         registry: str | None, admin_token_file: Path | None, as_json: bool) -> None:
    """Yank a release: load, snapshot_path and pull refuse it; seed stops serving it.

    With --key, the publisher signs a new head that says so (it travels everywhere the
    model does). With --registry and --admin-token-file, that node's admin hides it there."""
    wanted = _exact(ref)
    if admin_token_file is not None:
        registry = registry_url(client, registry, "an admin's yank (--admin-token-file)")
        result = RegistryClient(registry).yank(wanted.name, str(wanted.version), _admin_token(admin_token_file))
        emit(result, as_json, f"yanked {wanted} on {registry} (node admin; the publisher's head is unchanged)")
        return
    if not reason or not reason.strip():
        raise click.UsageError("a publisher's yank needs --reason TEXT: the people who hold it need to know why")
    keys = signing_keys(key_paths, passphrase_file, "a publisher's yank")
    _check_version_known(client, wanted, registry)
    version, why = str(wanted.version), reason.strip()
    new, sent = _next_head(client, wanted.name, keys, registry, lambda h: h.with_yank(version, why))
    emit({"ref": str(wanted), "yanked": why, "sequence": new.sequence, "registry": sent or None}, as_json,
         f"yanked {wanted}: {why}\n  head of {wanted.name} now at sequence {new.sequence}"
         + (f"; sent to {registry}" if registry else "; not sent anywhere yet (push, or pass --registry)"))


@click.command()
@click.argument("ref", type=REF)
@signing_keys_option
@click.option("--registry", help=_REGISTRY_HELP)
@json_option
@click.pass_obj
def unyank(client: Client, ref: str, key_paths: tuple[Path, ...], passphrase_file: Path | None,
           registry: str | None, as_json: bool) -> None:
    """Lift a publisher's yank: a new head without it."""
    wanted = _exact(ref)
    keys = signing_keys(key_paths, passphrase_file, "unyank")
    version = str(wanted.version)
    new, sent = _next_head(client, wanted.name, keys, registry, lambda h: h.without_yank(version))
    emit({"ref": str(wanted), "yanked": None, "sequence": new.sequence, "registry": sent or None}, as_json,
         f"unyanked {wanted}; head of {wanted.name} now at sequence {new.sequence}")


@head.command("refresh")
@click.argument("name", shell_complete=complete_ref)
@signing_keys_option
@click.option("--expires", type=DATE, help="When the new head goes stale (default: in 30 days).")
@click.option("--registry", help=_REGISTRY_HELP)
@json_option
@click.pass_obj
def head_refresh(client: Client, name: str, key_paths: tuple[Path, ...], passphrase_file: Path | None,
                 expires: datetime | None, registry: str | None, as_json: bool) -> None:
    """Re-sign NAME's head unchanged, with a higher sequence and a new expiry (a publisher
    or timestamp key)."""
    name = Ref.parse(name).name
    keys = signing_keys(key_paths, passphrase_file, "head refresh")
    new, sent = _next_head(client, name, keys, registry, lambda h: h, expires)
    emit({"name": name, "sequence": new.sequence, "expires": format_time(new.expires), "registry": sent or None},
         as_json, f"refreshed the head of {name}: sequence {new.sequence}, fresh until {format_time(new.expires)}")


def countersign(client: Client, ref: str, key: PrivateKey, registry: str | None) -> dict[str, Any]:
    """Add `key`'s signature to a release held here, and send it to a registry node."""
    envelope = client.countersign(ref, key)
    manifest = client.vault.get(envelope.digest).manifest
    out: dict[str, Any] = {"ref": manifest.ref, "digest": envelope.digest, "key_id": key.key_id,
                           "signatures": len(envelope.signatures)}
    if registry is not None:
        try:
            answer = RegistryClient(registry).approve(manifest.name, manifest.version, envelope)
        except Error as exc:
            raise type(exc)(f"signed here, but {registry} did not take the signature: {exc}",
                            hint=getattr(exc, "hint", None)) from None
        out["registry"] = {"url": registry, "verdict": answer.get("verdict")}
    return out


@click.command()
@click.argument("ref", type=REF)
@signing_keys_option
@click.option("--registry", help="Send the signature to this registry node too.")
@json_option
@click.pass_obj
def sign(client: Client, ref: str, key_paths: tuple[Path, ...], passphrase_file: Path | None,
         registry: str | None, as_json: bool) -> None:
    """Add another publisher key's signature to a release (key rotation: once every release
    carries the new key's signature, the old key can be revoked)."""
    keys = signing_keys(key_paths, passphrase_file, "sign")
    results = [countersign(client, ref, k, registry) for k in keys]
    last = results[-1]
    emit(last, as_json, f"signed {last['ref']} with {', '.join(r['key_id'][:16] for r in results)} "
         f"({last['signatures']} signatures)" + (f"; sent to {registry}" if registry else ""))


@click.command()
@click.argument("ref", type=REF)
@click.option("--registry", help="The registry node to remove it from (default: $SEEDVAULT_REGISTRY, or "
              "registry = \"URL\" in config/seedvault.toml).")
@click.option("--admin-token-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The node's admin token.")
@click.option("--purge", is_flag=True, help="Free the model's disk on the node now, not after its grace period.")
@json_option
@click.pass_obj
def remove(client: Client, ref: str, registry: str | None, admin_token_file: Path, purge: bool,
           as_json: bool) -> None:
    """Remove a model (every version) from a registry node, as its admin: no longer served at
    once, its bytes freed after the node's removal_grace (or now, with --purge)."""
    registry = registry_url(client, registry, "remove")
    wanted = Ref.parse(ref)
    if wanted.version is not None:
        raise click.UsageError("a node removes a whole model: give NS/NAME (to hide one version, yank it)")
    result = RegistryClient(registry).remove(wanted.name, _admin_token(admin_token_file), purge=purge)
    emit(result, as_json, lambda: _removed_text(wanted.name, registry, result))


def _removed_text(name: str, registry: str, result: dict[str, Any]) -> str:
    from seedvault._text import human_size

    text = f"removed {name} from {registry} ({result.get('removed_versions')} versions)"
    if "freed_bytes" in result:
        return text + (f"; purged {result.get('purged_versions')} from its disk, freeing "
                       f"{human_size(int(result['freed_bytes']))}")
    grace = float(result.get("frees_after_seconds") or 0)
    return text + f"; the node frees its disk in {grace:g} s (or now with --purge)"
