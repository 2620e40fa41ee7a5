"""`seedvault trust ...`: edit the local trust policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from seedvault.cli._common import emit, json_option
from seedvault.client import Client
from seedvault.signing import ROLES, PublicKey, TrustedKey
from seedvault.signing.policy import check_scope


@click.group()
def trust() -> None:
    """Decide which keys you trust, for what, and what else must hold."""


@trust.command("add")
@click.argument("pubfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--scope", "scopes", multiple=True,
              help="Namespaces this key is trusted for, e.g. 'acme/*' (repeatable). Default: all.")
@click.option("--name", default="", help="A label for people.")
@click.pass_obj
def trust_add(client: Client, pubfile: Path, role: str, scopes: tuple[str, ...], name: str) -> None:
    """Trust the public key in PUBFILE for a role."""
    key = PublicKey.load(pubfile)
    checked = tuple(check_scope(s) for s in scopes) or ("*",)
    policy = client.policy
    if key.key_id in policy.revoked:
        raise click.UsageError(f"key {key.key_id} is revoked in your policy; refusing to trust it again")
    client.save_policy(policy.with_key(TrustedKey(key, role, checked, name)))  # type: ignore[arg-type]
    click.echo(f"trusted {key.key_id} as {role} for {', '.join(checked)}")
    if checked == ("*",):
        click.echo("note: trusted for every namespace; narrow it with --scope 'ns/*'", err=True)


@trust.command("list")
@json_option
@click.pass_obj
def trust_list(client: Client, as_json: bool) -> None:
    """Show trusted keys, revocations, thresholds and allowed licenses."""
    policy = client.policy

    def text() -> str:
        lines = [f"{k.key_id}  {k.role:<9}  {','.join(k.scopes):<16}  {k.name}" for k in policy.keys]
        lines = lines or ["no trusted keys (nothing will verify): seedvault trust add KEY.pub --role publisher"]
        lines.append(f"publisher threshold: {policy.publisher_threshold}; "
                     f"approvals required: {policy.required_approvals}")
        lines.append("licenses: " + (", ".join(policy.allowed_licenses) if policy.allowed_licenses is not None
                                     else "any"))
        lines += [f"revoked: {r}" for r in sorted(policy.revoked)]
        return "\n".join(lines)

    data = policy.to_dict()
    for k in data["keys"]:
        k.pop("public_key")
    emit(data, as_json, text)


@trust.command("revoke")
@click.argument("key_id")
@click.pass_obj
def trust_revoke(client: Client, key_id: str) -> None:
    """Revoke a key (full id, or a unique prefix of a trusted key's id)."""
    policy = client.policy
    matches = {k.key_id for k in policy.keys if k.key_id.startswith(key_id)}
    if len(key_id) == 64:
        matches.add(key_id)
    if len(matches) != 1:
        raise click.UsageError(
            f"expected KEY_ID to name one key, found {len(matches)} matches; give the full 64-hex id"
        )
    (full,) = matches
    client.save_policy(policy.revoke(full))
    click.echo(f"revoked {full}: its signatures no longer count, including on models already in the vault")


@trust.command("require")
@click.option("--approvals", type=click.IntRange(min=0), required=True,
              help="Approver signatures (distinct keys) every model needs.")
@click.pass_obj
def trust_require(client: Client, approvals: int) -> None:
    """Require approvals by trusted approver keys."""
    client.save_policy(replace(client.policy, required_approvals=approvals))
    click.echo(f"approvals required: {approvals}")


@trust.group("licenses")
def licenses() -> None:
    """Which licenses are acceptable (default: any)."""


@licenses.command("allow")
@click.argument("spdx", nargs=-1, required=True)
@click.pass_obj
def licenses_allow(client: Client, spdx: tuple[str, ...]) -> None:
    """Add SPDX license ids to the allowed list (creating the list turns the filter on)."""
    policy = client.policy
    current = list(policy.allowed_licenses or ())
    current += [s for s in spdx if s not in current]
    client.save_policy(replace(policy, allowed_licenses=tuple(current)))
    click.echo(f"licenses allowed: {', '.join(current)}")


@licenses.command("any")
@click.pass_obj
def licenses_any(client: Client) -> None:
    """Accept any license again."""
    client.save_policy(replace(client.policy, allowed_licenses=None))
    click.echo("licenses allowed: any")
