"""`seedvault trust ...`: edit the local trust policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from seedvault._text import count, listing, quote
from seedvault.bundle import is_bundle, read_bundle_keys
from seedvault.cli._common import emit, json_option, note, terminal
from seedvault.client import Client
from seedvault.signing import ROLES, PublicKey, TrustedKey, TrustPolicy
from seedvault.signing.policy import LogKey, check_scope
from seedvault.tlog.note import COSIGNATURE_V1, ED25519, Verifier


@click.group()
def trust() -> None:
    """Decide which keys you trust, for what, and what else must hold."""


@trust.command("add")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--scope", "scopes", multiple=True,
              help="Namespaces this key is trusted for: 'acme/*', 'acme/model', or '*' for all (repeatable).")
@click.option("--key-id", help="The key's id as its owner told you by another channel; required for a key "
              "taken from a bundle (unless you confirm it at a terminal).")
@click.option("--name", default="", help="A label for people.")
@json_option
@click.pass_obj
def trust_add(client: Client, source: Path, role: str, scopes: tuple[str, ...], key_id: str | None,
              name: str, as_json: bool) -> None:
    """Trust a public key for a role: a .pub file, or one of the keys a bundle carries.

    A bundle is not evidence of who made it: its keys are trusted only when --key-id gives
    the id you obtained from the key's owner out of band, or you type it at a terminal."""
    if not scopes:
        raise click.UsageError("expected --scope: the namespaces to trust this key for, such as 'acme/*' or "
                               "'acme/model', or '*' for every namespace (said explicitly), found none")
    checked = tuple(check_scope(s) for s in scopes)
    from_bundle = is_bundle(source) or _inside_bundle(source)
    offered = read_bundle_keys(source) if is_bundle(source) else [PublicKey.load(source)]
    key = _choose(offered, key_id, from_bundle, source)
    policy = client.policy
    if key.key_id in policy.revoked:
        raise click.UsageError(f"key {key.key_id} is revoked in your policy; refusing to trust it again "
                               "(seedvault trust unrevoke KEYID first, if you are sure)")
    client.save_policy(policy.with_key(TrustedKey(key, role, checked, name)))  # type: ignore[arg-type]
    emit({"trusted": key.key_id, "type": key.key_type, "role": role, "scopes": list(checked), "name": name},
         as_json, f"trusted {key.key_id} ({key.key_type}) as {role} for {', '.join(checked)}")
    if "*" in checked:
        note("trusted for every namespace (--scope '*')", as_json)


def _inside_bundle(path: Path) -> bool:
    """A key file in a bundle directory's keys/: it came with the bundle, so it counts as one."""
    return path.parent.name == "keys" and (path.parent.parent / "envelope.json").exists()


def _choose(offered: list[PublicKey], key_id: str | None, from_bundle: bool, source: Path) -> PublicKey:
    ids = [k.key_id for k in offered]
    if not offered:
        raise click.UsageError(f"{source}: expected the bundle to carry a public key (keys/*.pub), found none")
    if key_id is not None:
        return _matching(offered, key_id, f"--key-id {key_id}", source)
    if not from_bundle:
        return offered[0]
    if not terminal():
        raise click.UsageError(
            f"{source}: a key from a bundle is trusted only with --key-id ID, the id its owner gave you by "
            f"another channel (this bundle carries {listing(ids)}); or run this at a terminal to confirm it")
    click.echo(f"{source} carries {count(len(ids), 'key')}:", err=True)
    for k in offered:
        click.echo(f"  {k.key_id}  ({k.key_type})", err=True)
    click.echo("A bundle does not prove who made it. Compare with the id the key's owner gave you by another "
               "channel (their site, a call, a signed mail).", err=True)
    typed = click.prompt("Type that id (at least its first 16 characters) to trust the key, or nothing to stop",
                         default="", show_default=False, err=True).strip()
    if not typed:
        raise click.UsageError("nothing trusted: no key id was typed")
    return _matching(offered, typed, "the id you typed", source)


def _matching(offered: list[PublicKey], given: str, what: str, source: Path) -> PublicKey:
    wanted = given.strip().lower()
    if len(wanted) < 16 or not all(c in "0123456789abcdef" for c in wanted):
        raise click.UsageError(f"{what}: expected at least the first 16 hex digits of a key id, found {quote(given)}")
    matches = [k for k in offered if k.key_id.startswith(wanted)]
    if len(matches) != 1:
        raise click.UsageError(
            f"{what}: expected the id of the key in {source}, found no key with it; {source} carries "
            f"{listing([k.key_id for k in offered])}. Do not trust a key whose id does not match what its owner "
            "gave you")
    return matches[0]


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
        lines.append(f"lineage denied: {', '.join(policy.lineage_deny) or 'none'}; verified lineage required: "
                     f"{'yes' if policy.verified_lineage else 'no'}")
        lines += [f"revoked: {r}" for r in sorted(policy.revoked)]
        lines += [f"log: {k.label}  {k.vkey}" for k in policy.logs]
        lines += [f"witness: {k.label}  {k.vkey}" for k in policy.witnesses]
        if policy.require_logged:
            lines.append(f"transparency-log proofs required, cosigned by {policy.required_witnesses} witness(es)")
        return "\n".join(lines)

    data = policy.to_dict()
    for k in data["keys"]:
        k.pop("public_key")
    emit(data, as_json, text)


def _one_key(key_id: str, known: set[str], what: str, *, ahead: bool = False) -> str:
    """The one id among KNOWN that KEY_ID names (its full id, or a unique prefix); with
    AHEAD, any full id (a key never trusted here can be revoked ahead of time)."""
    wanted = key_id.lower()
    matches = {k for k in known if k.startswith(wanted)} if wanted else set()
    if ahead and len(wanted) == 64 and all(c in "0123456789abcdef" for c in wanted):
        matches.add(wanted)
    if len(matches) != 1:
        raise click.UsageError(f"expected KEY_ID to name one {what}, found {len(matches)} matches"
                               + ("" if matches else " (see: seedvault trust list)")
                               + ("; give the full 64-hex id" if len(matches) > 1 else ""))
    (full,) = matches
    return full


@trust.command("revoke")
@click.argument("key_id")
@json_option
@click.pass_obj
def trust_revoke(client: Client, key_id: str, as_json: bool) -> None:
    """Revoke a key (full id, or a unique prefix of a trusted key's id)."""
    policy = client.policy
    full = _one_key(key_id, {k.key_id for k in policy.keys}, "trusted key", ahead=True)
    client.save_policy(policy.revoke(full))
    emit({"revoked": full}, as_json,
         f"revoked {full}: its signatures no longer count, including on models already in the vault")


@trust.command("remove")
@click.argument("key_id")
@click.option("--role", type=click.Choice(ROLES), help="Stop trusting it for this role only (default: every role).")
@json_option
@click.pass_obj
def trust_remove(client: Client, key_id: str, role: str | None, as_json: bool) -> None:
    """Stop trusting a key (without revoking it: trusting it again later stays possible)."""
    policy = client.policy
    full = _one_key(key_id, {k.key_id for k in policy.keys if role in (None, k.role)}, "trusted key")
    kept = tuple(k for k in policy.keys if not (k.key_id == full and role in (None, k.role)))
    client.save_policy(replace(policy, keys=kept))
    roles = sorted({k.role for k in policy.keys if k.key_id == full and role in (None, k.role)})
    emit({"removed": full, "roles": roles}, as_json,
         f"no longer trusted{f' as {role}' if role else ''}: {full}; models it alone signed no longer verify")


@trust.command("unrevoke")
@click.argument("key_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@json_option
@click.pass_obj
def trust_unrevoke(client: Client, key_id: str, yes: bool, as_json: bool) -> None:
    """Lift a revocation: every signature the key ever made counts again."""
    policy = client.policy
    full = _one_key(key_id, set(policy.revoked), "revoked key")
    warning = (f"{full} was revoked. Lifting it makes every signature it made count again, including any made "
               "after it was lost or stolen.")
    if not yes:
        if not terminal():
            raise click.UsageError(f"{warning} Confirm with --yes, or run this at a terminal")
        click.echo(warning, err=True)
        if not click.confirm("Lift the revocation?", default=False, err=True):
            raise click.UsageError("revocation kept")
    client.save_policy(replace(policy, revoked=policy.revoked - {full}))
    emit({"unrevoked": full}, as_json, f"revocation lifted: {full}")


@trust.command("require")
@click.option("--approvals", type=click.IntRange(min=0),
              help="Approver signatures (distinct keys) every model needs.")
@click.option("--logged/--not-logged", default=None,
              help="Every release must carry a proof that a trusted transparency log holds it.")
@click.option("--witnesses", type=click.IntRange(min=0),
              help="With --logged: trusted witnesses that must have cosigned the log's checkpoint.")
@click.option("--fresh-heads/--stale-heads-ok", default=None,
              help="Refuse a model's head past its expiry (freeze defence), or only warn (the default).")
@click.option("--yanked", type=click.Choice(["refuse", "warn"]),
              help="What load, snapshot_path and pull do with a yanked release (default: refuse).")
@click.option("--verified-lineage/--unverified-lineage-ok", default=None,
              help="Refuse a model unless every ancestor is held (or in its bundle) and verifies here.")
@json_option
@click.pass_obj
def trust_require(client: Client, approvals: int | None, fresh_heads: bool | None, yanked: str | None,
                  verified_lineage: bool | None, logged: bool | None, witnesses: int | None,
                  as_json: bool) -> None:
    """Require approvals, fresh heads, a verified lineage, transparency-log proofs, and what a
    yank means here."""
    if (approvals is None and fresh_heads is None and yanked is None and verified_lineage is None
            and logged is None and witnesses is None):
        raise click.UsageError("expected at least one of --approvals N, --fresh-heads/--stale-heads-ok, "
                               "--yanked refuse|warn, --verified-lineage/--unverified-lineage-ok, "
                               "--logged/--not-logged, --witnesses K")
    policy = client.policy
    if logged is not None or witnesses is not None:
        _require_logged(client, logged, witnesses, as_json)
        if approvals is None and fresh_heads is None and yanked is None and verified_lineage is None:
            return
        policy = client.policy
    policy = replace(policy, required_approvals=policy.required_approvals if approvals is None else approvals,
                     fresh_heads=policy.fresh_heads if fresh_heads is None else fresh_heads,
                     yanked=policy.yanked if yanked is None else yanked)  # type: ignore[arg-type]
    policy = _with_verified_lineage(policy, verified_lineage)
    client.save_policy(policy)
    emit({"approvals": policy.required_approvals, "fresh_heads": policy.fresh_heads, "yanked": policy.yanked,
          "verified_lineage": policy.verified_lineage},
         as_json, f"approvals required: {policy.required_approvals}; fresh heads required: "
         f"{'yes' if policy.fresh_heads else 'no (stale heads warn)'}; yanked releases: {policy.yanked}; "
         f"verified lineage required: {'yes' if policy.verified_lineage else 'no'}")


def _with_verified_lineage(policy: TrustPolicy, verified: bool | None) -> TrustPolicy:
    return policy if verified is None else replace(policy, verified_lineage=verified)


@trust.group("lineage")
def lineage_rules() -> None:
    """Which ancestries are acceptable: refuse models derived (at any distance) from some namespaces."""


@lineage_rules.command("deny")
@click.argument("scopes", nargs=-1, required=True)
@json_option
@click.pass_obj
def lineage_deny(client: Client, scopes: tuple[str, ...], as_json: bool) -> None:
    """Refuse any model with an ancestor in SCOPES ('ns/*', 'ns/name'), however far back."""
    policy = client.policy
    added = tuple(s for s in (check_scope(x) for x in scopes) if s not in policy.lineage_deny)
    policy = replace(policy, lineage_deny=(*policy.lineage_deny, *added))
    client.save_policy(policy)
    emit({"lineage_deny": list(policy.lineage_deny)}, as_json,
         f"models with an ancestor in {', '.join(policy.lineage_deny)} are refused")


@lineage_rules.command("allow")
@click.argument("scopes", nargs=-1, required=True)
@json_option
@click.pass_obj
def lineage_allow(client: Client, scopes: tuple[str, ...], as_json: bool) -> None:
    """Lift a `trust lineage deny` for SCOPES."""
    policy = client.policy
    unknown = [s for s in scopes if s not in policy.lineage_deny]
    if unknown:
        raise click.UsageError(f"expected scopes your policy denies ({listing(list(policy.lineage_deny))}), found "
                               f"{listing(unknown)}")
    policy = replace(policy, lineage_deny=tuple(s for s in policy.lineage_deny if s not in scopes))
    client.save_policy(policy)
    emit({"lineage_deny": list(policy.lineage_deny)}, as_json,
         "lineage denied: " + (", ".join(policy.lineage_deny) or "none"))


@trust.group("licenses")
def licenses() -> None:
    """Which licenses are acceptable (default: any)."""


@licenses.command("allow")
@click.argument("spdx", nargs=-1, required=True)
@json_option
@click.pass_obj
def licenses_allow(client: Client, spdx: tuple[str, ...], as_json: bool) -> None:
    """Add SPDX licenses to the allowed list (creating the list turns the filter on).

    Ids match case-insensitively (apache-2.0 is Apache-2.0); LicenseRef-NAME names a license
    SPDX does not list. A model under `A OR B` needs one of them allowed, under `A AND B` both."""
    policy = client.policy.allow_licenses(spdx)
    client.save_policy(policy)
    emit({"licenses": list(policy.allowed_licenses or ())}, as_json,
         f"licenses allowed: {', '.join(policy.allowed_licenses or ())}")


@licenses.command("any")
@json_option
@click.pass_obj
def licenses_any(client: Client, as_json: bool) -> None:
    """Accept any license again."""
    client.save_policy(replace(client.policy, allowed_licenses=None))
    emit({"licenses": None}, as_json, "licenses allowed: any")


@trust.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@json_option
@click.pass_obj
def trust_export(client: Client, file: Path, force: bool, as_json: bool) -> None:
    """Write the whole trust policy (keys with their public keys, revocations, requirements)
    to FILE, for `seedvault trust import FILE` on other machines."""
    if file.exists() and not force:
        raise click.UsageError(f"{file} already exists; choose another file, or --force to overwrite it")
    policy = client.policy
    policy.save(file)
    emit({"file": str(file.absolute()), "keys": len(policy.keys), "revoked": len(policy.revoked)}, as_json,
         f"wrote the trust policy to {file.absolute()}: {count(len(policy.keys), 'trusted key')}, "
         f"{count(len(policy.revoked), 'revocation')}")


def _entries(policy: TrustPolicy) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(k.key_id, k.role, k.scopes) for k in policy.keys}


@trust.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--merge", is_flag=True, help="Add FILE's keys and revocations to your policy, keeping your other "
              "keys and your requirements (default: replace your policy with FILE's).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation when revocations would be lifted (scripts).")
@json_option
@click.pass_obj
def trust_import(client: Client, file: Path, merge: bool, yes: bool, as_json: bool) -> None:
    """Take a trust policy written by `trust export` (a fleet's policy).

    FILE is read and validated whole (every key, scope, license, setting) before anything
    changes. By default it replaces your policy; with --merge its keys and revocations are
    added to yours. Lifting a revocation you hold asks for confirmation, like trust unrevoke."""
    incoming = TrustPolicy.load(file)
    current = client.policy
    if merge:
        new = current
        for k in incoming.keys:
            new = new.with_key(k)
        new = replace(new, revoked=current.revoked | incoming.revoked)
    else:
        new = incoming
    lifted = sorted(current.revoked - new.revoked)
    if lifted and not yes:
        warning = (f"importing {file} lifts {count(len(lifted), 'revocation')} ({listing(lifted)}): every signature "
                   "those keys made counts again, including any made after they were lost or stolen.")
        if not terminal():
            raise click.UsageError(f"{warning} Confirm with --yes, or run this at a terminal")
        click.echo(warning, err=True)
        if not click.confirm("Import it?", default=False, err=True):
            raise click.UsageError("policy unchanged")
    client.save_policy(new)
    added = sorted({e[0] for e in _entries(new) - _entries(current)})
    dropped = sorted({e[0] for e in _entries(current) - _entries(new)})
    newly = sorted(new.revoked - current.revoked)
    data = {"file": str(file), "mode": "merge" if merge else "replace", "keys": len(new.keys),
            "added": added, "removed": dropped, "revocations_lifted": lifted, "revoked": newly}
    emit(data, as_json, f"{'merged' if merge else 'replaced your policy with'} {file}: "
         f"{count(len(new.keys), 'trusted key')}; added or changed {listing(added)}; no longer trusted "
         f"{listing(dropped)}; newly revoked {listing(newly)}; revocations lifted {listing(lifted)}")


# ---- transparency logs ----------------------------------------------------------------------


def _add_log_key(client: Client, vkey: str, name: str, kind: int, as_json: bool) -> None:
    verifier = Verifier.from_vkey(vkey, "VKEY")
    noun = "log" if kind == ED25519 else "witness"
    if verifier.kind != kind:
        other = "witness" if noun == "log" else "log"
        raise click.UsageError(f"VKEY is a {other} key (type {verifier.kind:02x}); expected a {noun} key "
                               f"(type {kind:02x}): use seedvault trust {other} add")
    policy = client.policy
    current: tuple[LogKey, ...] = policy.logs if kind == ED25519 else policy.witnesses
    kept = (*(k for k in current if k.verifier.name != verifier.name), LogKey(verifier.vkey, name))
    client.save_policy(replace(policy, logs=kept) if kind == ED25519 else replace(policy, witnesses=kept))
    emit({"trusted": verifier.vkey, "kind": noun, "name": name or verifier.name, "key_id": verifier.key_id.hex()},
         as_json, f"trusted {noun} {verifier.name} (key id {verifier.key_id.hex()})"
         + (f" as {quote(name)}" if name else ""))
    if any(k.verifier.name == verifier.name and k.vkey != verifier.vkey for k in current):
        note(f"this replaces the key you trusted before for {verifier.name}", as_json)


@trust.group("log")
def trust_log() -> None:
    """Transparency logs whose checkpoints you trust (signed-note verifier keys)."""


@trust_log.command("add")
@click.argument("vkey")
@click.option("--name", default="", help="A label for people.")
@json_option
@click.pass_obj
def trust_log_add(client: Client, vkey: str, name: str, as_json: bool) -> None:
    """Trust a log's key, written NAME+KEYID+KEY (GET /log/keys of the node; check it out of band)."""
    _add_log_key(client, vkey, name, ED25519, as_json)


@trust.group("witness")
def trust_witness() -> None:
    """Witnesses whose cosignatures on logs' checkpoints count."""


@trust_witness.command("add")
@click.argument("vkey")
@click.option("--name", default="", help="A label for people.")
@json_option
@click.pass_obj
def trust_witness_add(client: Client, vkey: str, name: str, as_json: bool) -> None:
    """Trust a witness's cosigning key (a vkey of type 04)."""
    _add_log_key(client, vkey, name, COSIGNATURE_V1, as_json)


def _require_logged(client: Client, logged: bool | None, witnesses: int | None, as_json: bool) -> None:
    policy = client.policy
    logged = policy.require_logged if logged is None else logged
    witnesses = policy.required_witnesses if witnesses is None else witnesses
    if logged and not policy.logs:
        raise click.UsageError("--logged needs a trusted log first (seedvault trust log add VKEY), or nothing "
                               "would verify")
    if witnesses > len(policy.witnesses):
        raise click.UsageError(f"--witnesses {witnesses}: your policy trusts {len(policy.witnesses)} witness(es); "
                               "trust them first (seedvault trust witness add VKEY)")
    client.save_policy(replace(policy, require_logged=logged, required_witnesses=witnesses))
    emit({"logged": logged, "witnesses": witnesses}, as_json,
         f"transparency-log proofs required: {'yes' if logged else 'no'}; witnesses required: {witnesses}")
