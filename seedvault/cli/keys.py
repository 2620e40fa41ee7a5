"""`seedvault keys ...` (also `seedvault key ...`): the signing keys you hold, and key ids."""

from __future__ import annotations

from pathlib import Path

import click

from seedvault import keyring
from seedvault.cli._common import emit, json_option
from seedvault.client import Client


@click.group()
def keys() -> None:
    """Your signing keys (in the config's keys/) and the ids of key files."""


@keys.command("list")
@json_option
@click.pass_obj
def keys_list(client: Client, as_json: bool) -> None:
    """List the private keys in the config's keys/, with their ids and what your policy trusts them for."""
    found = keyring.list_keys(client.paths.keys_dir)
    policy = client.policy
    rows = []
    for k in found:
        row = k.to_dict()
        row["trusted_as"] = sorted({t.role for t in policy.keys if t.key_id == k.key_id})
        row["revoked"] = k.key_id in policy.revoked
        rows.append(row)

    def text() -> str:
        if not rows:
            return f"no keys in {client.paths.keys_dir}: make one with seedvault keygen"
        lines = []
        for r in rows:
            state = "encrypted" if r["encrypted"] else "not encrypted"
            trusted = ", ".join(r["trusted_as"]) or "not trusted here"  # type: ignore[arg-type]
            lines.append(f"{r['key_id'] or '(id unknown: no .pub beside it)'}  {r['type'] or '?':<7}  {state:<13}  "
                         f"{trusted}{'  REVOKED' if r['revoked'] else ''}  {r['private_key']}")
        return "\n".join(lines)

    emit({"keys_dir": str(client.paths.keys_dir), "keys": rows}, as_json, text)


@keys.command("id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def keys_id(path: Path, as_json: bool) -> None:
    """Print the id of the key in PATH (a public key, or an unencrypted private key).

    Compare it with the id the key's owner gave you by another channel before trusting it."""
    key = keyring.public_key_of(path)
    emit({"key_id": key.key_id, "type": key.key_type, "path": str(path)}, as_json, key.key_id)
