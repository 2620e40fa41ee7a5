"""The `seedvault` command end to end: keygen, trust, publish, show, list, export, import, verify.

Commands run in-process through `seedvault.cli.main` (which maps errors to exit codes) inside
click's CliRunner isolation; a few run the installed console script in a real process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from cli_helpers import SCRIPT, World, export_tar, make_world, ok, publish, refused, trust_publisher
from conftest import SHARD1, Model, make_writable_and_tamper


@pytest.fixture
def world(tmp_path: Path, model: Model) -> World:
    """keygen -> trust add -> publish in the publisher's home."""
    return make_world(tmp_path, model)


def test_end_to_end(world: World, model: Model) -> None:
    w = world
    pub = publish(w)
    assert pub["ref"] == "acme/tiny@1.0" and pub["files"] == 4 and pub["key_id"] == w.key_id
    assert pub["parameters"] == sum(a.size for t in model.tensors.values() for a in t.values())
    assert pub["license"] == "Apache-2.0" and pub["publisher"] == "Acme Corp"

    shown = ok(w.pub_home, "show", "acme/tiny@1.0", "--json").json()
    assert shown["digest"] == pub["digest"]
    assert shown["statement"]["predicate"]["origin"]["source_url"] == "https://example.com/acme/tiny"
    assert {s["name"] for s in shown["statement"]["subject"]} == {"LICENSE", "config.json", SHARD1,
                                                                  "model-00002-of-00002.safetensors"}
    assert shown["verdict"]["signers"] == [
        {"key_id": w.key_id, "status": "valid", "role": "publisher", "label": "Acme"}
    ]
    text = ok(w.pub_home, "show", "acme/tiny@1.0").out
    assert "trusted under your policy" in text and SHARD1 in text

    listed = ok(w.pub_home, "list", "--json").json()
    assert [(e["ref"], e["digest"], e["latest"]) for e in listed] == [("acme/tiny@1.0", pub["digest"], True)]

    bundle = export_tar(w)
    # The receiver trusts nothing yet: the import is refused, whatever keys the bundle carries.
    r = refused(w.recv_home, 3, "import", bundle)
    assert "trust policy has no keys" in r.err
    trust_publisher(w, w.recv_home)
    imported = ok(w.recv_home, "import", bundle, "--json").json()
    assert imported["digest"] == pub["digest"] and imported["publishers"] == 1
    assert Path(imported["snapshot"]).is_dir()

    verdict = ok(w.recv_home, "verify", "acme/tiny@1.0", "--json").json()
    assert verdict["ref"] == "acme/tiny@1.0" and verdict["digest"] == pub["digest"]
    assert "verified acme/tiny@1.0" in ok(w.recv_home, "verify", "acme/tiny", "--fast").out
    assert ok(w.recv_home, "list", "--json").json()[0]["digest"] == pub["digest"]


def test_verify_loose_directory_against_envelope(world: World) -> None:
    publish(world)
    trust_publisher(world, world.recv_home)
    bundle = world.tmp / "bundle-dir"
    ok(world.pub_home, "export", "acme/tiny@1.0", bundle)
    env = bundle / "envelope.json"
    assert ok(world.recv_home, "verify", bundle / "files", "--envelope", env, "--json").json()["publishers"] == 1
    make_writable_and_tamper(bundle / "files" / SHARD1, 7)
    r = refused(world.recv_home, 3, "verify", bundle / "files", "--envelope", env)
    assert "expected pieces root" in r.err
    refused(world.recv_home, 2, "verify", env, "--envelope", env)  # TARGET must be a directory


def test_tampered_bundle_import_exits_3(world: World) -> None:
    publish(world)
    bundle = world.tmp / "b"
    ok(world.pub_home, "export", "acme/tiny@1.0", bundle)
    make_writable_and_tamper(bundle / "files" / SHARD1, 1000)
    trust_publisher(world, world.recv_home)
    r = refused(world.recv_home, 3, "import", bundle)
    assert r.err.startswith("error: ") and "content does not match the signed manifest" in r.err
    assert "hint:" in r.err
    assert ok(world.recv_home, "list", "--json").json() == []


def test_revoked_key_refused_after_import(world: World) -> None:
    publish(world)
    bundle = export_tar(world)
    trust_publisher(world, world.recv_home)
    ok(world.recv_home, "import", bundle)
    out = ok(world.recv_home, "trust", "revoke", world.key_id[:12]).out
    assert world.key_id in out
    r = refused(world.recv_home, 3, "verify", "acme/tiny@1.0")
    assert "key is revoked" in r.err
    shown = refused(world.recv_home, 3, "show", "acme/tiny@1.0")
    assert "REFUSED" in shown.out
    assert any(line.startswith("  signer ") and "key is revoked" in line for line in shown.out.splitlines())
    refused_json = refused(world.recv_home, 3, "show", "acme/tiny@1.0", "--json").json()["verdict"]
    assert refused_json["refused"] and refused_json["signers"][0]["status"] == "revoked"
    # Trusting a revoked key again is refused too.
    r = refused(world.recv_home, 2, "trust", "add", world.key.with_name("acme.key.pub"), "--role", "publisher",
                "--scope", "acme/*")
    assert "revoked" in r.err


def test_approval_flow(world: World) -> None:
    w = world
    publish(w)
    bundle = export_tar(w)
    approver_key = w.tmp / "keys" / "sec.key"
    ok(w.tmp / "org", "keygen", "--type", "p256", "--out", approver_key)
    for home in (w.tmp / "org", w.recv_home):
        trust_publisher(w, home)
    ok(w.tmp / "org", "import", bundle)
    approved = ok(w.tmp / "org", "approve", "acme/tiny@1.0", "--key", approver_key, "--json").json()
    assert approved["signatures"] == 2
    ok(w.tmp / "org", "export", "acme/tiny@1.0", w.tmp / "approved.tar", "--tar")

    ok(w.recv_home, "trust", "add", approver_key.with_name("sec.key.pub"), "--role", "approver",
       "--scope", "acme/*")
    ok(w.recv_home, "trust", "require", "--approvals", "1")
    r = refused(w.recv_home, 3, "import", bundle)
    assert "expected 1 approval(s)" in r.err and "found 0" in r.err
    verdict = ok(w.recv_home, "import", w.tmp / "approved.tar", "--json").json()
    assert (verdict["publishers"], verdict["approvers"]) == (1, 1)


def test_license_filter(world: World) -> None:
    publish(world)
    bundle = export_tar(world)
    trust_publisher(world, world.recv_home)
    ok(world.recv_home, "trust", "licenses", "allow", "MIT", "BSD-3-Clause")
    r = refused(world.recv_home, 3, "import", bundle)
    assert "license Apache-2.0 is not allowed" in r.err
    ok(world.recv_home, "trust", "licenses", "allow", "Apache-2.0")
    ok(world.recv_home, "import", bundle)
    policy = ok(world.recv_home, "trust", "list", "--json").json()
    assert policy["allowed_licenses"] == ["MIT", "BSD-3-Clause", "Apache-2.0"]
    assert [k["id"] for k in policy["keys"]] == [world.key_id]
    assert "public_key" not in policy["keys"][0]


def test_substitution_refused_at_publish(world: World, tmp_path: Path) -> None:
    publish(world)
    (world.model / "config.json").write_text('{"changed": true}')
    r = refused(world.pub_home, 3, "publish", world.model, "--name", "acme/tiny", "--version", "1.0",
                "--license", "MIT", "--key", world.key)
    assert "this vault first saw manifest digest" in r.err


def test_lineage_and_expiry_options(world: World) -> None:
    base = publish(world)
    ok(world.pub_home, "publish", world.model, "--name", "acme/tiny-ft", "--version", "1.0", "--license",
       "Apache-2.0", "--key", world.key, "--base", "acme/tiny@1.0", "--relation", "fine-tuned-from",
       "--expires", "2999-01-31")
    statement = ok(world.pub_home, "show", "acme/tiny-ft@1.0", "--json").json()["statement"]["predicate"]
    assert statement["lineage"] == [{"relation": "fine-tuned-from", "ref": "acme/tiny@1.0",
                                     "manifest_digest": base["digest"]}]
    assert statement["expires"] == "2999-01-31T00:00:00Z"
    refused(world.pub_home, 2, "publish", world.model, "--name", "acme/x", "--version", "1", "--license", "MIT",
            "--key", world.key, "--base", "acme/tiny@1.0")
    refused(world.pub_home, 2, "publish", world.model, "--name", "acme/x", "--version", "1", "--license", "MIT",
            "--key", world.key, "--expires", "next week")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["verify", "acme/none@1"], 4, "acme/none@1 is not in the vault"),
        (["show", "acme/none"], 4, "not in the vault"),
        (["export", "acme/none@1", "out"], 4, "not in the vault"),
        (["verify", "not-a-ref"], 2, "expected NAMESPACE/NAME"),
        (["publish", "."], 2, "Missing option"),
        (["trust", "add", "KEY", "--role", "owner"], 2, "Invalid value for '--role'"),
        (["trust", "revoke", "abc"], 2, "expected KEY_ID to name one trusted key, found 0"),
        (["trust", "require", "--approvals", "-1"], 2, "Invalid value"),
        (["no-such-command"], 2, "No such command"),
    ],
    ids=["verify-missing", "show-missing", "export-missing", "bad-ref", "publish-no-key", "bad-role",
         "revoke-unknown", "negative-approvals", "unknown-command"],
)
def test_exit_codes(world: World, args: list[str], code: int, message: str) -> None:
    (world.tmp / "KEY").write_text("x")
    args = [str(world.tmp / "KEY") if a == "KEY" else a for a in args]
    r = refused(world.pub_home, code, *args)
    assert message in r.err


def test_trust_add_bad_scope_and_bad_key(world: World) -> None:
    r = refused(world.recv_home, 2, "trust", "add", world.key.with_name("acme.key.pub"), "--role", "publisher",
                "--scope", "acme")
    assert "scope: expected" in r.err
    r = refused(world.recv_home, 2, "trust", "add", world.key, "--role", "publisher", "--scope", "*")  # private
    assert "expected a PEM public key" in r.err
    assert ok(world.recv_home, "trust", "list", "--json").json()["keys"] == []


def test_keygen_default_location_and_p256(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = ok(home, "keygen", "--type", "p256", "--json").json()
    assert data["type"] == "p256"
    assert Path(data["private_key"]) == home / "config" / "keys" / f"{data['key_id'][:16]}.key"
    assert Path(data["public_key"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    text = ok(home, "keygen").out
    assert text.startswith("key id ")


def test_keygen_refuses_to_overwrite(world: World) -> None:
    before = world.key.read_bytes()
    r = refused(world.pub_home, 2, "keygen", "--out", world.key)
    assert "already exists" in r.err
    assert world.key.read_bytes() == before


def test_encrypted_key(world: World, tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text("s3cret\n")
    key = tmp_path / "keys" / "enc.key"
    ok(world.pub_home, "keygen", "--out", key, "--passphrase-file", secret)
    ok(world.pub_home, "trust", "add", key.with_name("enc.key.pub"), "--role", "publisher", "--scope", "acme/*")
    r = refused(world.pub_home, 2, "publish", world.model, "--name", "acme/enc", "--version", "1", "--license",
                "MIT", "--key", key)
    assert "encrypted and no passphrase" in r.err
    ok(world.pub_home, "publish", world.model, "--name", "acme/enc", "--version", "1", "--license", "MIT",
       "--key", key, "--passphrase-file", secret)


def test_pickle_refused_then_allowed(world: World) -> None:
    (world.model / "pytorch_model.bin").write_bytes(b"\x80\x04N.")
    r = refused(world.pub_home, 3, "publish", world.model, "--name", "acme/pkl", "--version", "1", "--license",
                "MIT", "--key", world.key)
    assert "pickle" in r.err and "--allow-pickle" in r.err
    ok(world.pub_home, "publish", world.model, "--name", "acme/pkl", "--version", "1", "--license", "MIT",
       "--key", world.key, "--allow-pickle")


def test_tar_with_symlink_member_exits_3(world: World) -> None:
    publish(world)
    bundle = world.tmp / "b"
    ok(world.pub_home, "export", "acme/tiny@1.0", bundle)
    evil = world.tmp / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for p in sorted(bundle.rglob("*")):
            if p.is_file() and p.name != "config.json":
                tar.add(p, arcname=p.relative_to(bundle).as_posix())
        link = tarfile.TarInfo("files/config.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    trust_publisher(world, world.recv_home)
    r = refused(world.recv_home, 3, "import", evil)
    assert "found a symlink to '/etc/passwd'" in r.err


def test_truncated_tar_exits_3(world: World) -> None:
    publish(world)
    bundle = export_tar(world)
    trust_publisher(world, world.recv_home)
    cut = world.tmp / "cut.tar"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    r = refused(world.recv_home, 3, "import", cut)
    assert "damaged or truncated" in r.err and "copy the bundle again" in r.err


# ---- the installed console script, in a real process ---------------------------------


def _script(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "--home", str(home), *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_console_script_exit_codes(world: World) -> None:
    publish(world)
    bundle = world.tmp / "b"
    ok(world.pub_home, "export", "acme/tiny@1.0", bundle)
    shutil.copyfile(bundle / "files" / "config.json", world.tmp / "config.bak")
    make_writable_and_tamper(bundle / "files" / "config.json", 0)
    trust_publisher(world, world.recv_home)

    refused_import = _script(world.recv_home, "import", bundle)
    assert refused_import.returncode == 3, refused_import.stderr
    assert "content does not match" in refused_import.stderr and "Traceback" not in refused_import.stderr

    missing = _script(world.recv_home, "verify", "acme/tiny@1.0")
    assert missing.returncode == 4, missing.stderr

    usage = _script(world.recv_home, "verify", "nope")
    assert usage.returncode == 2, usage.stderr

    shutil.copyfile(world.tmp / "config.bak", bundle / "files" / "config.json")
    good = _script(world.recv_home, "import", bundle, "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["ref"] == "acme/tiny@1.0"


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_no_room_to_write_leaves_vault_clean(world: World) -> None:
    """A write that fails for lack of room (here a real file-size limit, RLIMIT_FSIZE, on the
    importing process): a clear message, exit 5, no traceback, nothing partial in the vault."""
    import resource

    from seedvault.demo_model import generate_model

    generate_model(world.tmp / "big-model", 8, shards=2)  # two 4 MiB shards
    ok(world.pub_home, "publish", world.tmp / "big-model", "--name", "acme/big", "--version", "1",
       "--license", "MIT", "--key", world.key)
    trust_publisher(world, world.pub_home)
    bundle = world.tmp / "big-bundle"
    ok(world.pub_home, "export", "acme/big@1", bundle)
    trust_publisher(world, world.recv_home)
    ok(world.recv_home, "list")  # create the vault and its database before the limit applies
    limit = 2 * 1024 * 1024  # room for the database, not for a 4 MiB shard

    def limit_file_size() -> None:  # Python ignores SIGXFSZ, so an oversized write raises EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([str(SCRIPT), "--home", str(world.recv_home), "import", str(bundle)],
                            capture_output=True, text=True, timeout=120, check=False, preexec_fn=limit_file_size)
    assert result.returncode == 5, result.stderr
    assert "no room to write" in result.stderr and "nothing partial was added" in result.stderr
    assert "Traceback" not in result.stderr
    vault = world.recv_home / "data" / "vault"
    assert not list((vault / "snapshots").rglob("*")) and not list((vault / "incoming").iterdir())
    assert not list((vault / "blobs").iterdir())
    ok(world.recv_home, "import", bundle)  # with room again, the same bundle imports


def test_verify_a_bundle_where_it_is(world: World) -> None:
    """`verify BUNDLE` checks a bundle directory or tar under the policy without importing it."""
    publish(world)
    tar = export_tar(world)
    folder = world.tmp / "bundle-dir"
    ok(world.pub_home, "export", "acme/tiny@1.0", folder)
    trust_publisher(world, world.recv_home)
    for bundle in (tar, folder):
        out = ok(world.recv_home, "verify", bundle, "--json").json()
        assert out["ref"] == "acme/tiny@1.0"
    assert ok(world.recv_home, "list", "--json").json() == []  # nothing was imported
    make_writable_and_tamper(folder / "files" / SHARD1, 100)
    r = refused(world.recv_home, 3, "verify", folder)
    assert SHARD1 in r.err
    untrusting = world.tmp / "nobody"
    r = refused(untrusting, 3, "verify", tar)
    assert "trust" in r.err


def test_list_and_show_for_people(world: World) -> None:
    publish(world, "1.0", "--notes", "distilled on 8 GPUs")
    ok(world.pub_home, "publish", world.model, "--name", "acme/tiny-q4", "--version", "1", "--license", "MIT",
       "--key", world.key, "--base", "acme/tiny@1.0", "--relation", "quantized-from")
    listed = ok(world.pub_home, "list").out.splitlines()
    assert listed[0].split() == ["REF", "STATUS", "SIZE", "LICENSE", "DIGEST", "NOTE"]
    assert " kB " in listed[1] or " MB " in listed[1]  # human sizes, not raw byte counts
    assert len({line.index("Apache-2.0" if "Apache" in line else "MIT") for line in listed[1:]}) == 1  # aligned
    shown = ok(world.pub_home, "show", "acme/tiny-q4@1").out
    assert "quantized-from acme/tiny@1.0 (pinned: manifest digest" in shown
    assert "as the publisher wrote it" in shown
    assert "notes      distilled on 8 GPUs" in ok(world.pub_home, "show", "acme/tiny@1.0").out
