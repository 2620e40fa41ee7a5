"""The CLI contract: every command speaks JSON with --json (one complete object per line, and
errors as one JSON object on stderr), exits with the code the README documents for each
failure, and talks to people without Python internals.

Everything is real: the CLI in-process through `main()` (its exit codes), the installed
console script for `serve`, real aiohttp registry nodes on 127.0.0.1, real files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import SCRIPT, Run, World, make_world, ok, publish, refused, run, trust_publisher
from conftest import Model
from registry_helpers import NodeServer, free_port, start

ADMIN = "correct horse battery staple"
PULL_TIMEOUT = "60"


@pytest.fixture
def world(tmp_path: Path, model: Model) -> World:
    """keygen -> trust add -> publish acme/tiny@1.0 in the publisher's home."""
    w = make_world(tmp_path, model)
    publish(w)
    return w


def lines(r: Run) -> list[Any]:
    """Every stdout line parsed as JSON: one complete object per line (JSON Lines). What went
    to stderr (notes, warnings) is JSON Lines too."""
    out = [json.loads(line) for line in r.out.splitlines() if line.strip()]
    assert out, f"no JSON on stdout; stderr: {r.err}"
    for line in r.err.splitlines():
        assert set(json.loads(line)) <= {"note", "warning"}, line
    return out


def json_error(r: Run, code: int, kind: str | None = None) -> dict[str, Any]:
    """The error JSON object (the last line on stderr), checked against the exit code."""
    assert r.code == code, f"expected exit {code}, got {r.code}\nstdout: {r.out}\nstderr: {r.err}"
    *before, last = [json.loads(line) for line in r.err.splitlines() if line.strip()]  # stderr: JSON Lines
    assert all(set(b) <= {"note", "warning"} for b in before), before
    error = last["error"]
    assert set(error) == {"type", "message", "hint", "exit_code"}, error
    assert error["exit_code"] == code
    if kind is not None:
        assert error["type"] == kind, error
    assert "hint:" not in error["message"] and "\n" not in error["message"], error  # the hint is its own field
    assert "Traceback" not in r.err
    for line in r.out.splitlines():  # what it reported before failing (seed's refusals): JSON Lines too
        json.loads(line)
    return error


def node_home(w: World, name: str) -> Path:
    """A registry node's home whose policy trusts the publisher's key for acme/*."""
    home = w.tmp / name
    trust_publisher(w, home)
    return home


def admin_token(w: World) -> Path:
    path = w.tmp / "admin.token"
    path.write_text(ADMIN + "\n")
    return path


# ---- --json: every command that reports anything ------------------------------------------


def test_every_command_reports_json_lines(world: World, nodes: list[NodeServer], monkeypatch: pytest.MonkeyPatch,
                                          model: Model) -> None:
    w, pub = world, world.pub_home
    k2, k3 = w.tmp / "keys" / "k2.key", w.tmp / "keys" / "k3.key"
    bundle, policy_file, torrent = w.tmp / "bundle", w.tmp / "fleet-policy.toml", w.tmp / "t.torrent"
    node_a = start(nodes, node_home(w, "node-a"), admin_token=ADMIN)
    node_b = start(nodes, node_home(w, "node-b"))
    token = admin_token(w)
    k2_id = ""

    # (home, args, what each JSON line must hold); run in order, each on the state the ones before left.
    table: list[tuple[Path, list[str | Path], Callable[[list[Any]], bool]]] = [
        (pub, ["keygen", "--out", k2, "--no-passphrase"], lambda o: len(o[0]["key_id"]) == 64),
        (pub, ["keygen", "--out", k3, "--no-passphrase"], lambda o: o[0]["encrypted"] is False),
        (pub, ["keys", "list"], lambda o: isinstance(o[0]["keys"], list)),
        (pub, ["key", "id", k2.with_name("k2.key.pub")], lambda o: len(o[0]["key_id"]) == 64),
        (pub, ["trust", "add", k2.with_name("k2.key.pub"), "--role", "approver", "--scope", "acme/*"],
         lambda o: o[0]["role"] == "approver" and o[0]["scopes"] == ["acme/*"]),
        (pub, ["trust", "add", k3.with_name("k3.key.pub"), "--role", "publisher", "--scope", "acme/*"],
         lambda o: o[0]["role"] == "publisher"),
        (pub, ["trust", "list"], lambda o: len(o[0]["keys"]) == 3),
        (pub, ["trust", "require", "--approvals", "0"], lambda o: o[0]["approvals"] == 0),
        (pub, ["trust", "licenses", "allow", "apache-2.0"], lambda o: o[0]["licenses"] == ["Apache-2.0"]),
        (pub, ["trust", "licenses", "any"], lambda o: o[0]["licenses"] is None),
        (pub, ["publish", w.model, "--name", "acme/tiny", "--version", "1.0", "--license", "Apache-2.0",
               "--key", w.key, "--publisher", "Acme Corp", "--origin-url", "https://example.com/acme/tiny",
               "--revision", "3f2a9c1"], lambda o: o[0]["already_published"] is True),
        (pub, ["verify", "acme/tiny@1.0"], lambda o: o[0]["ref"] == "acme/tiny@1.0"),
        (pub, ["show", "acme/tiny@1.0"], lambda o: len(o[0]["digest"]) == 64),
        (pub, ["list"], lambda o: o[0][0]["ref"] == "acme/tiny@1.0"),
        (pub, ["export", "acme/tiny@1.0", bundle], lambda o: o[0]["bundle"] == str(bundle)),
        (pub, ["verify", w.model, "--envelope", bundle / "envelope.json"], lambda o: o[0]["ref"] == "acme/tiny@1.0"),
        (pub, ["torrent", "acme/tiny@1.0", "--out", torrent], lambda o: o[0]["torrent"] == str(torrent)),
        (pub, ["head", "acme/tiny"], lambda o: o[0]["sequence"] >= 1),
        (pub, ["approve", "acme/tiny@1.0", "--key", k2], lambda o: o[0]["signatures"] == 2),
        (pub, ["sign", "acme/tiny@1.0", "--key", k3], lambda o: o[0]["signatures"] == 3),
        (pub, ["yank", "acme/tiny@1.0", "--reason", "bad tokenizer", "--key", w.key],
         lambda o: o[0]["yanked"] == "bad tokenizer"),
        (pub, ["unyank", "acme/tiny@1.0", "--key", w.key], lambda o: o[0]["yanked"] is None),
        (pub, ["head", "refresh", "acme/tiny", "--key", w.key], lambda o: o[0]["sequence"] >= 1),
        (pub, ["trust", "export", policy_file], lambda o: o[0]["keys"] == 3),
        (w.recv_home, ["trust", "import", policy_file], lambda o: o[0]["mode"] == "replace" and o[0]["keys"] == 3),
        (w.recv_home, ["import", bundle], lambda o: o[0]["ref"] == "acme/tiny@1.0"),
        (w.recv_home, ["trust", "revoke", "KEY2"], lambda o: o[0]["revoked"] == k2_id),
        (w.recv_home, ["trust", "unrevoke", "KEY2", "--yes"], lambda o: o[0]["unrevoked"] == k2_id),
        (w.recv_home, ["trust", "remove", "KEY2"], lambda o: o[0]["roles"] == ["approver"]),
        (pub, ["push", "acme/tiny@1.0", "--registry", node_a.url], lambda o: o[0]["status"] == "published"),
        (pub, ["push", "acme/tiny@1.0", "--registry", node_b.url], lambda o: o[0]["status"] == "published"),
        (pub, ["search", "tiny", "--registry", node_a.url], lambda o: o[0][0]["name"] == "acme/tiny"),
        (w.tmp / "puller", ["pull", "acme/tiny@1.0", "--registry", node_a.url, "--timeout", PULL_TIMEOUT],
         lambda o: o[0]["ref"] == "acme/tiny@1.0"),
        (w.recv_home, ["seed", "--duration", "1"],
         lambda o: o[0]["seeding"] == ["acme/tiny@1.0"] and o[1]["stopped"] is True),
        (node_home(w, "mirror"), ["mirror", "--upstream", node_a.url, "--upstream", node_b.url, "--timeout",
                                  PULL_TIMEOUT],
         lambda o: [r["upstream"] for r in o] == [node_a.url, node_b.url] and o[0]["added"] == ["acme/tiny@1.0"]
         and o[1]["present"] == ["acme/tiny@1.0"]),
        (pub, ["yank", "acme/tiny@1.0", "--registry", node_a.url, "--admin-token-file", token],
         lambda o: isinstance(o[0], dict)),
        (pub, ["remove", "acme/tiny", "--registry", node_a.url, "--admin-token-file", token],
         lambda o: o[0]["removed_versions"] == 1 and o[0]["frees_after_seconds"] > 0),
        (pub, ["remove", "acme/tiny", "--registry", node_a.url, "--admin-token-file", token, "--purge"],
         lambda o: o[0]["purged_versions"] == 1 and o[0]["freed_bytes"] > 0),
        (w.recv_home, ["list", "acme/*"], lambda o: o[0][0]["status"] == "trusted"),
        (w.recv_home, ["du"], lambda o: o[0]["releases"][0]["unique"] == o[0]["vault"]["blob_bytes"] > 0),
        (w.recv_home, ["rm", "acme/tiny@1.0"], lambda o: o[0]["removed"][0]["ref"] == "acme/tiny@1.0"
         and o[0]["gc_would_free"] > 0),
        (w.recv_home, ["gc", "--dry-run"], lambda o: o[0]["dry_run"] is True and o[0]["counts"]["blob"] == 4),
        (w.recv_home, ["gc"], lambda o: o[0]["dry_run"] is False and o[0]["freed"] > 0),
    ]
    trust_publisher(w, w.tmp / "puller")
    for home, args, check in table:
        if home == w.recv_home and args[:2] == ["trust", "revoke"]:
            k2_id = ok(pub, "key", "id", k2.with_name("k2.key.pub"), "--json").json()["key_id"]
        args = [k2_id if a == "KEY2" else a for a in args]
        r = ok(home, *args, "--json")
        out = lines(r)
        assert check(out), f"seedvault {' '.join(map(str, args))} --json printed {out}"

    # The default registry: SEEDVAULT_REGISTRY, else `registry = "URL"` in config/seedvault.toml.
    monkeypatch.setenv("SEEDVAULT_REGISTRY", node_b.url)
    assert lines(ok(pub, "search", "--json"))[0][0]["name"] == "acme/tiny"
    monkeypatch.delenv("SEEDVAULT_REGISTRY")
    (pub / "config" / "seedvault.toml").write_text(f'registry = "{node_b.url}"\n')
    assert lines(ok(pub, "push", "acme/tiny@1.0", "--json"))[0]["status"] == "present"
    (pub / "config" / "seedvault.toml").write_text("registry = 8470\n")
    assert "registry must be an http(s) URL" in json_error(run(pub, "search", "--json"), 2, "UsageError")["message"]


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed")
def test_serve_says_where_it_serves_once_listening_and_refuses_a_port_in_use(world: World,
                                                                              nodes: list[NodeServer]) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([str(SCRIPT), "--home", str(world.pub_home), "serve", "--port", str(port), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # bounded by the kill below if it never comes
        assert json.loads(first) == {"serving": f"http://127.0.0.1:{port}"}
        busy = subprocess.run([str(SCRIPT), "--home", str(world.recv_home), "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, env=env)
        assert busy.returncode == 2, busy.stderr
        assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in busy.stderr
        assert "registry node on" not in busy.stderr and "Traceback" not in busy.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---- failures: each documented exit code, as JSON with --json -------------------------------


def _bundle_without_envelope(w: World) -> list[str | Path]:
    bundle = w.tmp / "b"
    ok(w.pub_home, "export", "acme/tiny@1.0", bundle)
    (bundle / "envelope.json").unlink()
    return ["import", bundle]


def _envelope_not_json(w: World) -> list[str | Path]:
    bundle = w.tmp / "b"
    ok(w.pub_home, "export", "acme/tiny@1.0", bundle)
    (bundle / "envelope.json").write_text("<html>not an envelope</html>")
    return ["import", bundle]


def _snapshot_removed(w: World) -> list[str | Path]:
    target = Path(ok(w.pub_home, "publish", w.model, "--name", "acme/gone", "--version", "1", "--license", "MIT",
                     "--key", w.key, "--json").json()["snapshot"])
    for p in [target, *target.rglob("*")]:
        p.chmod(0o755)
    shutil.rmtree(target)
    return ["verify", "acme/gone@1"]


def _nothing_verifies(w: World) -> list[str | Path]:
    ok(w.pub_home, "trust", "remove", w.key_id[:16])
    return ["seed", "--duration", "1"]


def _unknown_node_setting(w: World) -> list[str | Path]:
    config = w.tmp / "node.toml"
    config.write_text('hots = "0.0.0.0"\n')
    return ["serve", "--config", config]


def _unrevoke_unconfirmed(w: World) -> list[str | Path]:
    ok(w.pub_home, "trust", "revoke", w.key_id)
    return ["trust", "unrevoke", w.key_id]


def _bad_policy_file(w: World) -> list[str | Path]:
    bad = w.tmp / "policy.toml"
    bad.write_text("requird_approvals = 2\n")  # a misspelt requirement is refused, never dropped
    return ["trust", "import", bad]


def _private_key_as_public(w: World) -> list[str | Path]:
    return ["trust", "add", w.key, "--role", "publisher", "--scope", "acme/*"]


def _closed_port(w: World) -> list[str | Path]:
    return ["push", "acme/tiny@1.0", "--registry", f"http://127.0.0.1:{free_port()}"]


def _args(*args: str | Path) -> Callable[[World], list[str | Path]]:
    return lambda w: [w.model if a == "MODEL" else w.key if a == "KEY" else a for a in args]


# (id, setup -> args, exit code, error type, text the message holds)
FAILURES: list[tuple[str, Callable[[World], list[str | Path]], int, str, str]] = [
    ("publish-invalid-name", _args("publish", "MODEL", "--name", "acme/a..b", "--version", "1", "--license", "MIT",
                                   "--key", "KEY"), 2, "UsageError", "model name: expected"),
    ("publish-invalid-version", _args("publish", "MODEL", "--name", "acme/x", "--version", "1 0", "--license",
                                      "MIT", "--key", "KEY"), 2, "UsageError", "version: expected"),
    ("publish-expires-past", _args("publish", "MODEL", "--name", "acme/x", "--version", "1", "--license", "MIT",
                                   "--key", "KEY", "--expires", "2001-01-01"), 2, "UsageError", "which has passed"),
    ("publish-other-content-same-version", _args("publish", "MODEL", "--name", "acme/tiny", "--version", "1.0",
                                                 "--license", "MIT", "--key", "KEY"), 3, "RollbackError",
     "acme/tiny@1.0"),
    ("import-folder-without-envelope", _bundle_without_envelope, 4, "NotFoundError", "expected envelope.json"),
    ("import-envelope-not-json", _envelope_not_json, 2, "UsageError", "found data that is not JSON"),
    ("import-missing", _args("import", "nope.tar"), 2, "UsageError", "does not exist"),
    ("verify-missing-ref", _args("verify", "acme/none@1"), 4, "NotFoundError", "is not in the vault"),
    ("verify-missing-snapshot", _snapshot_removed, 4, "MissingFilesError", "found nothing"),
    ("show-bad-ref", _args("show", "not-a-ref"), 2, "UsageError", "expected NAMESPACE/NAME"),
    ("seed-nothing-verifies", _nothing_verifies, 3, "VerificationError", "nothing to seed: none of the 1 model"),
    ("trust-add-private-key", _private_key_as_public, 2, "UsageError", "found a private key"),
    ("trust-unrevoke-unconfirmed", _unrevoke_unconfirmed, 2, "UsageError", "Confirm with --yes"),
    ("trust-import-invalid", _bad_policy_file, 2, "UsageError", "unknown field requird_approvals"),
    ("push-no-registry", _args("push", "acme/tiny@1.0"), 2, "UsageError", "push needs a registry node"),
    ("push-unreachable", _closed_port, 5, "TransferError", "could not reach the registry at http://127.0.0.1:"),
    ("serve-unknown-setting", _unknown_node_setting, 2, "UsageError", "unknown setting hots"),
    ("unknown-option", _args("list", "--colour"), 2, "UsageError", "No such option"),
    ("unknown-command", _args("lst"), 2, "UsageError", "No such command"),
    ("export-exists", lambda w: ["export", "acme/tiny@1.0", w.model], 2, "UsageError", "already exists"),
    ("torrent-missing", _args("torrent", "acme/none@1"), 4, "NotFoundError", "is not in the vault"),
    ("keygen-exists", _args("keygen", "--out", "KEY", "--no-passphrase"), 2, "UsageError", "already exists"),
    ("key-id-not-a-key", lambda w: ["key", "id", w.model / "config.json"], 2, "UsageError", "no PEM block"),
    ("trust-add-bad-scope", lambda w: ["trust", "add", w.key.with_name("acme.key.pub"), "--role", "publisher",
                                       "--scope", "acme"], 2, "UsageError", "scope: expected"),
    ("trust-revoke-unknown", _args("trust", "revoke", "abc"), 2, "UsageError", "expected KEY_ID to name one"),
    ("trust-remove-unknown", _args("trust", "remove", "abc"), 2, "UsageError", "expected KEY_ID to name one"),
    ("trust-require-nothing", _args("trust", "require"), 2, "UsageError", "expected at least one of"),
    ("trust-licenses-unknown", _args("trust", "licenses", "allow", "apache2"), 2, "UsageError", "SPDX"),
    ("approve-missing", _args("approve", "acme/none@1", "--key", "KEY"), 4, "NotFoundError", "not in the vault"),
    ("sign-no-key", _args("sign", "acme/tiny@1.0"), 2, "UsageError", "sign needs a signing key"),
    ("yank-no-reason", _args("yank", "acme/tiny@1.0", "--key", "KEY"), 2, "UsageError", "needs --reason"),
    ("unyank-no-key", _args("unyank", "acme/tiny@1.0"), 2, "UsageError", "unyank needs a signing key"),
    ("head-missing", _args("head", "acme/none"), 4, "NotFoundError", "no head of acme/none"),
    ("remove-one-version", _args("remove", "acme/tiny@1.0", "--registry", "http://127.0.0.1:9",
                                 "--admin-token-file", "KEY"), 2, "UsageError", "a node removes a whole model"),
    ("rm-missing", _args("rm", "acme/none@1"), 4, "NotFoundError", "acme/none@1 is not in the vault"),
    ("rm-all-versions-of-one-version", _args("rm", "acme/tiny@1.0", "--all-versions"), 2, "UsageError",
     "--all-versions: expected NS/NAME"),
    ("du-missing", _args("du", "acme/none"), 4, "NotFoundError", "acme/none is not in the vault"),
    ("pull-no-source", _args("pull", "acme/tiny@1.0"), 2, "UsageError",
     "pull without --envelope or --dht-node needs a registry"),
    ("push-missing", _args("push", "acme/none@1", "--registry", "http://127.0.0.1:9"), 4, "NotFoundError",
     "not in the vault"),
    ("search-unreachable", lambda w: ["search", "--registry", f"http://127.0.0.1:{free_port()}"], 5,
     "TransferError", "connection refused"),
    ("mirror-no-upstream", _args("mirror"), 2, "UsageError", "no upstream: give --upstream URL"),
    ("export-hf-missing", lambda w: ["export-hf", "acme/none@1", "--cache-dir", w.tmp / "hf"], 4, "NotFoundError",
     "not in the vault"),
    ("import-hf-not-cached", lambda w: ["import-hf", "org/absent", "--cache-dir", w.tmp / "hf", "--name", "acme/h",
                                        "--version", "1", "--key", w.key], 4, "NotFoundError",
     "expected a complete snapshot"),
]


@pytest.mark.parametrize(("setup", "code", "kind", "text"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_documented_failure_exit_codes(world: World, setup: Callable[[World], list[str | Path]], code: int,
                                       kind: str, text: str) -> None:
    args = setup(world)
    as_text = refused(world.pub_home, code, *args)
    assert "Traceback" not in as_text.err
    for internal in ("<urlopen", "Errno", "['", "Are you sure", "cryptography.io", "local_files_only"):
        assert internal not in as_text.err, as_text.err
    error = json_error(run(world.pub_home, *args, "--json"), code, kind)
    assert text in error["message"], error


def test_seed_with_an_empty_vault_is_not_found(tmp_path: Path) -> None:
    error = json_error(run(tmp_path / "empty", "seed", "--duration", "1", "--json"), 4, "NotFoundError")
    assert error["message"] == "nothing to seed: the vault is empty" and "publish, import or pull" in error["hint"]
    assert "nothing to seed: the vault is empty\n  hint: publish" in refused(tmp_path / "empty", 4, "seed").err


def test_push_refused_by_the_node_says_it_is_the_nodes_policy(world: World, nodes: list[NodeServer]) -> None:
    node = start(nodes, world.tmp / "strict-node")  # trusts nobody
    r = refused(world.pub_home, 3, "push", "acme/tiny@1.0", "--registry", node.url)
    assert f"the registry at {node.url} refused" in r.err and "under the node's trust policy (not yours)" in r.err
    assert "ask the node's operator" in r.err and "hint: seedvault trust list" not in r.err
    error = json_error(run(world.pub_home, "push", "acme/tiny@1.0", "--registry", node.url, "--json"), 3)
    assert error["type"] in ("SignatureError", "PolicyError") and "operator" in error["hint"]


def test_unreachable_registry_names_the_url_and_what_to_check(world: World) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = refused(world.pub_home, 5, "search", "--registry", url)
    assert f"could not reach the registry at {url}" in r.err and "connection refused" in r.err
    assert "check the registry URL" in r.err and "urlopen" not in r.err and "Errno" not in r.err


# ---- habits users bring ---------------------------------------------------------------------


def test_publish_again_is_a_no_op_and_different_files_are_refused(world: World) -> None:
    before = ok(world.pub_home, "head", "acme/tiny", "--json").json()["sequence"]
    again = ok(world.pub_home, "publish", world.model, "--name", "acme/tiny", "--version", "1.0", "--license",
               "Apache-2.0", "--key", world.key, "--publisher", "Acme Corp", "--origin-url",
               "https://example.com/acme/tiny", "--revision", "3f2a9c1")
    assert again.out.startswith("already published acme/tiny@1.0") and "nothing changed" in again.out
    assert ok(world.pub_home, "head", "acme/tiny", "--json").json()["sequence"] == before  # no new head either
    (world.model / "config.json").write_text("{}")
    refused(world.pub_home, 3, "publish", world.model, "--name", "acme/tiny", "--version", "1.0", "--license",
            "Apache-2.0", "--key", world.key)


def test_base_not_in_the_vault_warns_that_the_lineage_is_not_pinned(world: World) -> None:
    r = ok(world.pub_home, "publish", world.model, "--name", "acme/ft", "--version", "1", "--license", "MIT",
           "--key", world.key, "--base", "acme/elsewhere@2", "--relation", "fine-tuned-from")
    assert "warning: base model acme/elsewhere@2 is not in this vault" in r.err and "not pin" in r.err
    r = ok(world.pub_home, "publish", world.model, "--name", "acme/ft", "--version", "2", "--license", "MIT",
           "--key", world.key, "--base", "acme/elsewhere@2", "--relation", "fine-tuned-from", "--json")
    assert "is not in this vault" in json.loads(r.err)["warning"] and r.json()["ref"] == "acme/ft@2"
    lineage = ok(world.pub_home, "show", "acme/ft@1", "--json").json()["statement"]["predicate"]["lineage"]
    assert lineage == [{"relation": "fine-tuned-from", "ref": "acme/elsewhere@2"}]


def test_verify_of_the_published_folder_agrees_with_publish(world: World) -> None:
    """publish leaves out .git/, .cache/ and a top .gitattributes; verify DIR --envelope of that
    same checkout then passes; a file publish would take is still refused."""
    (world.model / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (world.model / ".git").mkdir()
    (world.model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (world.model / ".cache" / "huggingface").mkdir(parents=True)
    ok(world.pub_home, "publish", world.model, "--name", "acme/git", "--version", "1", "--license", "MIT",
       "--key", world.key)
    ok(world.pub_home, "export", "acme/git@1", world.tmp / "g")
    ok(world.pub_home, "verify", world.model, "--envelope", world.tmp / "g" / "envelope.json")
    (world.model / "notes.txt").write_text("added after signing")
    r = refused(world.pub_home, 3, "verify", world.model, "--envelope", world.tmp / "g" / "envelope.json")
    assert "not in the manifest: notes.txt" in r.err


def test_trust_import_merges_or_replaces_and_asks_before_lifting_a_revocation(world: World) -> None:
    fleet = world.tmp / "fleet.toml"
    ok(world.pub_home, "trust", "export", fleet)
    assert refused(world.pub_home, 2, "trust", "export", fleet).err.count("already exists") == 1
    other = world.tmp / "keys" / "other.key"
    ok(world.recv_home, "keygen", "--out", other, "--no-passphrase")
    ok(world.recv_home, "trust", "add", other.with_name("other.key.pub"), "--role", "publisher", "--scope", "x/*")
    merged = ok(world.recv_home, "trust", "import", fleet, "--merge", "--json").json()
    assert merged["mode"] == "merge" and merged["keys"] == 2 and merged["removed"] == []
    ok(world.recv_home, "trust", "revoke", world.key_id)
    r = refused(world.recv_home, 2, "trust", "import", fleet)  # replacing would lift the revocation
    assert "lifts 1 revocation" in r.err and "--yes" in r.err
    assert world.key_id in ok(world.recv_home, "trust", "list", "--json").json()["revoked"]
    replaced = ok(world.recv_home, "trust", "import", fleet, "--yes", "--json").json()
    assert replaced["mode"] == "replace" and replaced["revocations_lifted"] == [world.key_id]
    assert [k["id"] for k in ok(world.recv_home, "trust", "list", "--json").json()["keys"]] == [world.key_id]


def test_torrent_without_out_writes_in_the_current_directory_and_says_where(world: World,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    here = world.tmp / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    r = ok(world.pub_home, "torrent", "acme/tiny@1.0")
    (written,) = here.glob("*.torrent")
    assert f"wrote the torrent of acme/tiny@1.0 to {written}" in r.out and "magnet link: magnet:?" in r.out


def test_completion_scripts_and_refs_from_the_vault(world: World) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert "_SEEDVAULT_COMPLETE" in ok(world.pub_home, "completion", shell).out
    assert "Invalid value for '{bash|zsh|fish}'" in refused(world.pub_home, 2, "completion", "tcsh").err
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "_SEEDVAULT_COMPLETE": "bash_complete",
           "COMP_WORDS": f"seedvault --home {world.pub_home} show acme/t", "COMP_CWORD": "4"}
    if not SCRIPT.exists():
        pytest.skip("console script not installed")
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.split() == ["plain,acme/tiny", "plain,acme/tiny@1.0"], done.stderr
    nowhere = world.tmp / "no-home"
    env["COMP_WORDS"] = f"seedvault --home {nowhere} show a"
    assert subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60, env=env).stdout.strip() == ""
    assert not nowhere.exists()  # completing creates no vault


def test_package_namespace_is_its_api() -> None:
    import seedvault

    assert dir(seedvault) == sorted(seedvault.__all__)
    assert not hasattr(seedvault, "Home") and not hasattr(seedvault, "os")
    for name in seedvault.__all__:
        assert hasattr(seedvault, name)
