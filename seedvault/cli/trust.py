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
                     f"approvals required: {policy.required_approvals}; "
                     f"fresh heads: {'required' if policy.fresh_heads else 'not required'}; "
                     f"yanked releases: {policy.yanked}")
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
@click.option("--approvals", type=click.IntRange(min=0),
              help="Approver signatures (distinct keys) every model needs.")
@click.option("--fresh-heads/--stale-heads-ok", default=None,
              help="Refuse a model's head past its expiry (freeze defence), or only warn (the default).")
@click.option("--yanked", type=click.Choice(["refuse", "warn"]),
              help="What load, snapshot_path and pull do with a yanked release (default: refuse).")
@click.pass_obj
def trust_require(client: Client, approvals: int | None, fresh_heads: bool | None, yanked: str | None) -> None:
    """Require approvals, fresh heads, and what a yank means here."""
    if approvals is None and fresh_heads is None and yanked is None:
        raise click.UsageError("expected at least one of --approvals N, --fresh-heads/--stale-heads-ok, "
                               "--yanked refuse|warn")
    policy = client.policy
    policy = replace(policy, required_approvals=policy.required_approvals if approvals is None else approvals,
                     fresh_heads=policy.fresh_heads if fresh_heads is None else fresh_heads,
                     yanked=policy.yanked if yanked is None else yanked)  # type: ignore[arg-type]
    client.save_policy(policy)
    click.echo(f"approvals required: {policy.required_approvals}; fresh heads required: "
               f"{'yes' if policy.fresh_heads else 'no (stale heads warn)'}; yanked releases: {policy.yanked}")


@trust.group("licenses")
def licenses() -> None:
    """Which licenses are acceptable (default: any)."""


@licenses.command("allow")
@click.argument("spdx", nargs=-1, required=True)
@click.pass_obj
def licenses_allow(client: Client, spdx: tuple[str, ...]) -> None:
    """Add SPDX licenses to the allowed list (creating the list turns the filter on).

    Ids match case-insensitively (apache-2.0 is Apache-2.0); LicenseRef-NAME names a license
    SPDX does not list. A model under `A OR B` needs one of them allowed, under `A AND B` both."""
    policy = client.policy.allow_licenses(spdx)
    client.save_policy(policy)
    click.echo(f"licenses allowed: {', '.join(policy.allowed_licenses or ())}")


@licenses.command("any")
@click.pass_obj
def licenses_any(client: Client) -> None:
    """Accept any license again."""
    client.save_policy(replace(client.policy, allowed_licenses=None))
    click.echo("licenses allowed: any")
