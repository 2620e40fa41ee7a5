"""Keys and trust bootstrap as a person uses them: key ids shown and checked, keys named by
id, passphrases asked at a real terminal, a bundle's keys trusted only against an id obtained
out of band, trust removed and revocations lifted only when confirmed; SPDX licenses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import World, export_tar, in_terminal, make_world, ok, publish, refused, run, trust_publisher
from conftest import Model


@pytest.fixture
def world(tmp_path: Path, model: Model) -> World:
    return make_world(tmp_path, model)


def policy_ids(home: Path) -> list[str]:
    return [k["id"] for k in ok(home, "trust", "list", "--json").json()["keys"]]


def test_key_id_and_keys_list(world: World) -> None:
    assert ok(world.pub_home, "key", "id", world.key.with_name("acme.key.pub")).out.strip() == world.key_id
    assert ok(world.pub_home, "keys", "id", world.key, "--json").json()["key_id"] == world.key_id  # unencrypted
    r = refused(world.pub_home, 2, "key", "id", world.model / "config.json")
    assert "expected a PEM public key" in r.err
    made = ok(world.pub_home, "keygen", "--json").json()  # into the config's keys/
    assert made["encrypted"] is False
    listed = ok(world.pub_home, "keys", "list", "--json").json()["keys"]
    assert [k["key_id"] for k in listed] == [made["key_id"]]
    assert listed[0]["trusted_as"] == [] and not listed[0]["encrypted"]
    ok(world.pub_home, "trust", "add", made["public_key"], "--role", "publisher", "--scope", "acme/*")
    assert ok(world.pub_home, "keys", "list", "--json").json()["keys"][0]["trusted_as"] == ["publisher"]
    assert made["key_id"] in ok(world.pub_home, "keys", "list").out


def test_key_named_by_id(world: World) -> None:
    made = ok(world.pub_home, "keygen", "--json").json()
    ok(world.pub_home, "trust", "add", made["public_key"], "--role", "publisher", "--scope", "acme/*")
    out = ok(world.pub_home, "publish", world.model, "--name", "acme/tiny", "--version", "1", "--license", "MIT",
             "--key", made["key_id"][:12], "--json").json()
    assert out["key_id"] == made["key_id"]
    r = refused(world.pub_home, 4, "publish", world.model, "--name", "acme/tiny", "--version", "2", "--license",
                "MIT", "--key", "0123456789abcdef")
    assert "no key with that id" in r.err and made["key_id"][:16] in r.err
    # A .pub swapped beside a private key: naming the key by id must not sign with another key.
    other = ok(world.pub_home, "keygen", "--out", world.tmp / "other.key", "--json").json()
    Path(made["public_key"]).unlink()
    shutil.copy(other["public_key"], made["public_key"])
    r = refused(world.pub_home, 2, "publish", world.model, "--name", "acme/tiny", "--version", "3", "--license",
                "MIT", "--key", other["key_id"][:12])
    assert "expected the key pair of" in r.err


def test_trust_add_needs_scope_and_prints_id(world: World) -> None:
    pub = world.key.with_name("acme.key.pub")
    r = refused(world.recv_home, 2, "trust", "add", pub, "--role", "publisher")
    assert "expected --scope" in r.err and "'*' for every namespace" in r.err
    assert policy_ids(world.recv_home) == []
    every = ok(world.recv_home, "trust", "add", pub, "--role", "publisher", "--scope", "*")
    assert world.key_id in every.out and "every namespace" in every.err
    r = refused(world.recv_home, 2, "trust", "add", pub, "--role", "approver", "--scope", "acme/*",
                "--key-id", "00" * 8)
    assert "Do not trust a key whose id does not match" in r.err


def test_bundle_key_trusted_only_with_matching_key_id(world: World) -> None:
    publish(world)
    bundle = export_tar(world)
    recv = world.recv_home
    r = refused(recv, 2, "trust", "add", bundle, "--role", "publisher", "--scope", "acme/*")
    assert "--key-id ID" in r.err and world.key_id in r.err
    r = refused(recv, 2, "trust", "add", bundle, "--role", "publisher", "--scope", "acme/*", "--key-id", "ab" * 8)
    assert "found no key with it" in r.err
    r = refused(recv, 2, "trust", "add", bundle, "--role", "publisher", "--scope", "acme/*", "--key-id", "abc")
    assert "at least the first 16 hex digits" in r.err
    assert policy_ids(recv) == []
    refused(recv, 3, "import", bundle)  # nothing was trusted
    ok(recv, "trust", "add", bundle, "--role", "publisher", "--scope", "acme/*", "--key-id", world.key_id[:16])
    assert policy_ids(recv) == [world.key_id]
    ok(recv, "import", bundle)


def test_key_file_inside_a_bundle_counts_as_the_bundle(world: World) -> None:
    publish(world)
    bundle = world.tmp / "bundle-dir"
    ok(world.pub_home, "export", "acme/tiny@1.0", bundle)
    key_file = bundle / "keys" / f"{world.key_id}.pub"
    assert key_file.is_file()
    r = refused(world.recv_home, 2, "trust", "add", key_file, "--role", "publisher", "--scope", "acme/*")
    assert "--key-id" in r.err
    ok(world.recv_home, "trust", "add", key_file, "--role", "publisher", "--scope", "acme/*", "--key-id",
       world.key_id)
    # A key file renamed to claim another id is refused when read from the bundle.
    other = ok(world.pub_home, "keygen", "--out", world.tmp / "x.key", "--json").json()
    shutil.copy(other["public_key"], bundle / "keys" / f"{'ab' * 32}.pub")
    r = refused(world.recv_home, 3, "trust", "add", bundle, "--role", "approver", "--scope", "acme/*", "--key-id",
                other["key_id"])
    assert "expected the file of key abab" in r.err


def test_bundle_carries_approver_keys(world: World) -> None:
    publish(world)
    approver = world.tmp / "keys" / "sec.key"
    org = world.tmp / "org"
    ok(org, "keygen", "--out", approver)
    trust_publisher(world, org)
    ok(org, "import", export_tar(world))
    ok(org, "trust", "add", approver.with_name("sec.key.pub"), "--role", "approver", "--scope", "acme/*")
    ok(org, "approve", "acme/tiny@1.0", "--key", approver)
    approved = world.tmp / "approved"
    ok(org, "export", "acme/tiny@1.0", approved)
    approver_id = ok(org, "key", "id", approver.with_name("sec.key.pub")).out.strip()
    assert {p.stem for p in (approved / "keys").iterdir()} == {world.key_id, approver_id}
    assert json.loads((approved / "heads.json").read_text())["heads"]
    recv = world.recv_home
    ok(recv, "trust", "add", approved, "--role", "publisher", "--scope", "acme/*", "--key-id", world.key_id)
    ok(recv, "trust", "add", approved, "--role", "approver", "--scope", "acme/*", "--key-id", approver_id)
    ok(recv, "trust", "require", "--approvals", "1")
    assert ok(recv, "import", approved, "--json").json()["approvers"]


def test_trust_remove_and_unrevoke(world: World) -> None:
    pub_home = world.pub_home
    r = refused(pub_home, 2, "trust", "remove", "ffff")
    assert "found 0 matches" in r.err
    publish(world)
    ok(pub_home, "trust", "revoke", world.key_id[:12])
    refused(pub_home, 3, "verify", "acme/tiny@1.0")
    r = refused(pub_home, 2, "trust", "unrevoke", world.key_id[:12])  # no terminal, no --yes
    assert "count again" in r.err and "--yes" in r.err
    refused(pub_home, 3, "verify", "acme/tiny@1.0")
    ok(pub_home, "trust", "unrevoke", world.key_id[:12], "--yes")
    ok(pub_home, "verify", "acme/tiny@1.0")
    ok(pub_home, "trust", "remove", world.key_id[:12])
    assert policy_ids(pub_home) == []
    refused(pub_home, 3, "verify", "acme/tiny@1.0")
    # Removed, not revoked: trusting it again works.
    trust_publisher(world, pub_home)
    ok(pub_home, "verify", "acme/tiny@1.0")


def test_licenses_at_publish_and_in_the_policy(world: World) -> None:
    r = refused(world.pub_home, 2, "publish", world.model, "--name", "acme/tiny", "--version", "1", "--license",
                "apache2", "--key", world.key)
    assert "'apache2' is not an SPDX license id" in r.err and "did you mean Apache-2.0?" in r.err
    assert ok(world.pub_home, "list", "--json").json() == []  # nothing was hashed into the vault
    out = ok(world.pub_home, "publish", world.model, "--name", "acme/tiny", "--version", "1", "--license",
             "apache-2.0", "--key", world.key, "--json").json()
    assert out["license"] == "Apache-2.0"
    r = refused(world.pub_home, 2, "trust", "licenses", "allow", "NOT-A-LICENSE")
    assert "is not an SPDX license id" in r.err
    assert ok(world.pub_home, "trust", "licenses", "allow", "mit").out.strip() == "licenses allowed: MIT"
    r = refused(world.pub_home, 3, "verify", "acme/tiny@1")
    assert "license Apache-2.0 is not allowed" in r.err
    ok(world.pub_home, "trust", "licenses", "allow", "apache-2.0")
    ok(world.pub_home, "verify", "acme/tiny@1")


# ---- at a real terminal ------------------------------------------------------------------

def test_keygen_asks_to_encrypt_and_publish_asks_the_passphrase(world: World) -> None:
    home = world.pub_home
    code, shown = in_terminal(home, "keygen", "--out", world.tmp / "t.key", answers=(
        ("Encrypt the private key with a passphrase?", "y"), ("Passphrase:", "s3cret"),
        ("Repeat for confirmation:", "s3cret")))
    assert code == 0, shown
    assert "s3cret" not in shown  # hidden input
    assert b"ENCRYPTED" in (world.tmp / "t.key").read_bytes()
    key_id = ok(home, "key", "id", world.tmp / "t.key.pub").out.strip()
    assert key_id in shown
    ok(home, "trust", "add", world.tmp / "t.key.pub", "--role", "publisher", "--scope", "acme/*")
    args = ("publish", world.model, "--name", "acme/tiny", "--version", "1", "--license", "MIT",
            "--key", world.tmp / "t.key")
    code, shown = in_terminal(home, *args, answers=((f"Passphrase for {world.tmp / 't.key'}:", "wrong"),))
    assert code == 2 and "wrong passphrase" in shown, shown
    code, shown = in_terminal(home, *args, answers=((f"Passphrase for {world.tmp / 't.key'}:", "s3cret"),))
    assert code == 0, shown
    assert run(home, "verify", "acme/tiny@1").code == 0
    # Not at a terminal, nothing is asked: the error says how to give the passphrase.
    r = refused(home, 2, "publish", world.model, "--name", "acme/tiny", "--version", "2", "--license", "MIT",
                "--key", world.tmp / "t.key")
    assert "encrypted and no passphrase" in r.err


def test_keygen_unencrypted_when_declined(world: World) -> None:
    code, shown = in_terminal(world.pub_home, "keygen", "--out", world.tmp / "plain.key", answers=(
        ("Encrypt the private key with a passphrase?", "n"),))
    assert code == 0 and "NOT encrypted" in shown, shown
    assert b"ENCRYPTED" not in (world.tmp / "plain.key").read_bytes()


def test_bundle_key_confirmed_by_typing_its_id(world: World) -> None:
    publish(world)
    bundle = export_tar(world)
    args = ("trust", "add", bundle, "--role", "publisher", "--scope", "acme/*")
    prompt = "Type that id"
    code, shown = in_terminal(world.recv_home, *args, answers=((prompt, "0123456789abcdef"),))
    assert code == 2 and "found no key with it" in shown, shown
    code, shown = in_terminal(world.recv_home, *args, answers=((prompt, ""),))
    assert code == 2 and "nothing trusted" in shown, shown
    assert policy_ids(world.recv_home) == []
    code, shown = in_terminal(world.recv_home, *args, answers=((prompt, world.key_id[:16]),))
    assert code == 0 and world.key_id in shown and "does not prove who made it" in shown, shown
    assert policy_ids(world.recv_home) == [world.key_id]


def test_unrevoke_asks_at_a_terminal(world: World) -> None:
    ok(world.pub_home, "trust", "revoke", world.key_id)
    code, shown = in_terminal(world.pub_home, "trust", "unrevoke", world.key_id[:10],
                              answers=(("Lift the revocation?", "n"),))
    assert code == 2 and "revocation kept" in shown, shown
    assert world.key_id in ok(world.pub_home, "trust", "list", "--json").json()["revoked"]
    code, shown = in_terminal(world.pub_home, "trust", "unrevoke", world.key_id[:10],
                              answers=(("Lift the revocation?", "y"),))
    assert code == 0, shown
    assert ok(world.pub_home, "trust", "list", "--json").json()["revoked"] == []
