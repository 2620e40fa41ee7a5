"""Transparency logs on real registry nodes (127.0.0.1): proofs from a push, offline proofs
in bundles, `trust require --logged`, witnesses, a node that rewrites history, monitoring."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ok, refused
from conftest import MODEL, PIECE, REF, Model, trust
from registry_helpers import start
from tlog_helpers import LyingLog, log_keys, post

from seedvault.client import Client
from seedvault.signing import PrivateKey
from seedvault.tlog.entry import LogEntry
from seedvault.tlog.note import ED25519, Note, load_or_create_signer
from seedvault.tlog.proof import TlogProof
from seedvault.tlog.store import LogStore
from seedvault.tlog.witness import request_body

pytestmark = pytest.mark.timeout(180)


def node_home(path: Path, key: PrivateKey) -> Path:
    with Client(path) as client:
        trust(client, key)
    return path


def pushed(home: Path, url: str, ref: str = REF) -> dict[str, Any]:
    result: dict[str, Any] = ok(home, "push", ref, "--registry", url, "--json").json()
    return result


def test_push_answers_a_proof_that_verifies_offline_and_travels_in_bundles(
        nodes: list[Any], publisher: Client, pub_key: PrivateKey, tmp_path: Path) -> None:
    node = start(nodes, node_home(tmp_path / "node", pub_key), seed=False)
    home = publisher.home
    assert home is not None
    publisher.close()  # the CLI opens the same home
    result = pushed(home, node.url)
    proof = TlogProof.parse(result["tlog_proof"].encode(), "push answer")
    assert LogEntry.parse(proof.extra, "entry").ref == REF

    keys = log_keys(node.url)
    ok(home, "trust", "log", "add", keys["log"], "--name", "our node")
    verified = ok(home, "log", "verify", REF, "--json").json()
    assert (verified["log"], verified["entry"]["ref"], verified["index"]) == ("our node", REF, proof.index)
    shown = ok(home, "log", "show", "--registry", node.url, "--json").json()
    assert shown["verified"] and shown["tree_size"] >= verified["tree_size"] >= 1

    # Across an air gap: the bundle carries the proof, the receiver checks it with no network.
    ok(home, "export", REF, tmp_path / "tiny.tar", "--tar")
    far = tmp_path / "far"
    with Client(far) as client:
        trust(client, pub_key)
    ok(far, "trust", "log", "add", keys["log"])
    ok(far, "trust", "require", "--logged")
    node.close()  # no network from here on
    ok(far, "import", tmp_path / "tiny.tar")
    assert ok(far, "log", "verify", REF, "--json").json()["entry"]["digest"] == proof_digest(proof)
    ok(far, "verify", REF)


def proof_digest(proof: TlogProof) -> str:
    return LogEntry.parse(proof.extra, "entry").digest


def test_release_without_a_valid_proof_refused_under_logged(
        nodes: list[Any], publisher: Client, pub_key: PrivateKey, tmp_path: Path) -> None:
    node = start(nodes, node_home(tmp_path / "node", pub_key), seed=False)
    home = publisher.home
    assert home is not None
    publisher.close()
    pushed(home, node.url)
    vkey = log_keys(node.url)["log"]
    ok(home, "export", REF, tmp_path / "logged")

    def receiver(name: str) -> Path:
        path = tmp_path / name
        with Client(path) as client:
            trust(client, pub_key)
        ok(path, "trust", "log", "add", vkey)
        ok(path, "trust", "require", "--logged")
        return path

    bare = tmp_path / "bare"
    shutil.copytree(tmp_path / "logged", bare)
    (bare / "release.tlog-proof").unlink()
    out = refused(receiver("r1"), 3, "import", bare, "--json")
    assert json.loads(out.err.splitlines()[-1])["error"]["type"] == "PolicyError"
    assert "transparency log" in out.err

    # A proof whose path was changed: the inclusion does not lead to the signed root.
    forged = tmp_path / "forged"
    shutil.copytree(tmp_path / "logged", forged)
    proof = TlogProof.parse((forged / "release.tlog-proof").read_bytes(), "proof")
    bad = TlogProof(proof.index, tuple(bytes(32) for _ in proof.path) or (bytes(32),), proof.checkpoint, proof.extra)
    (forged / "release.tlog-proof").write_bytes(bad.to_bytes())
    refused(receiver("r2"), 3, "import", forged)

    # A proof from a log this receiver does not trust.
    other = tmp_path / "r3"
    with Client(other) as client:
        trust(client, pub_key)
    stranger = load_or_create_signer(tmp_path / "stranger.key", "stranger.example/log", ED25519)
    ok(other, "trust", "log", "add", stranger.verifier.vkey)
    ok(other, "trust", "require", "--logged")
    assert "does not trust" in refused(other, 3, "import", tmp_path / "logged").err

    # Without --logged the same bundle imports: the requirement is the receiver's choice.
    plain = tmp_path / "plain"
    with Client(plain) as client:
        trust(client, pub_key)
    ok(plain, "import", bare)


@pytest.mark.timeout(240)
def test_pull_from_a_registry_under_logged_takes_the_node_proof(
        nodes: list[Any], publisher: Client, pub_key: PrivateKey, tmp_path: Path) -> None:
    node = start(nodes, node_home(tmp_path / "node", pub_key))
    home = publisher.home
    assert home is not None
    publisher.close()
    pushed(home, node.url)
    client_home = tmp_path / "client"
    with Client(client_home) as client:
        trust(client, pub_key)
    ok(client_home, "trust", "log", "add", log_keys(node.url)["log"])
    ok(client_home, "trust", "require", "--logged")
    ok(client_home, "pull", REF, "--registry", node.url, "--json", "--timeout", "60")
    assert ok(client_home, "log", "verify", REF, "--json").json()["entry"]["ref"] == REF


def test_a_node_that_rewrites_history_is_caught_by_a_client_and_by_a_witness(
        nodes: list[Any], publisher: Client, pub_key: PrivateKey, tmp_path: Path) -> None:
    a_home = node_home(tmp_path / "node-a", pub_key)
    key_file = a_home / "config" / "log.key"
    a_signer = load_or_create_signer(key_file, "node-a.test/log", ED25519)
    witness = start(nodes, tmp_path / "witness", seed=False, witness_for=(a_signer.verifier.vkey,))
    w_vkey = log_keys(witness.url)["witness"]
    node = start(nodes, a_home, seed=False, log_origin="node-a.test/log", witnesses=(f"{witness.url} {w_vkey}",))
    home = publisher.home
    assert home is not None
    publisher.close()
    proof = TlogProof.parse(pushed(home, node.url)["tlog_proof"].encode(), "push answer")
    assert len(Note.parse(proof.checkpoint, "cp").signatures) == 2  # the log's and the witness's

    client_home = tmp_path / "client"
    with Client(client_home) as client:
        trust(client, pub_key)
    ok(client_home, "trust", "log", "add", a_signer.verifier.vkey, "--name", "node A")
    ok(client_home, "trust", "witness", "add", w_vkey, "--name", "witness W")
    ok(client_home, "trust", "require", "--logged", "--witnesses", "1")
    honest = ok(client_home, "log", "show", "--registry", node.url, "--json").json()
    assert honest["witnesses"] == ["witness W"]
    size = honest["tree_size"]

    # The operator (or a thief of its log key) shows another history: the same first
    # entries rewritten, and more of them, under the very same key.
    forked = LogStore(tmp_path / "forked.db", a_signer)
    entry = LogEntry("release", MODEL, "1.0", "e" * 64, "f" * 64, (), 1)
    forked.append([LogEntry(entry.kind, entry.name, f"{i}.0", entry.digest, f"{i:064x}", (), 1)
                   for i in range(size + 3)])
    with LyingLog(forked) as liar:
        out = refused(client_home, 3, "log", "show", "--registry", liar.url, "--json")
        assert json.loads(out.err.splitlines()[-1])["error"]["type"] == "SplitViewError"
        # The witness refuses to cosign the fork: its consistency proof does not join W's view.
        status, _ = post(f"{witness.url}/add-checkpoint",
                         request_body(size, forked.consistency(size, forked.size), forked.checkpoint()))
        assert status == 422
        # ... and a same-size fork is refused too.
        same = LogStore(tmp_path / "same.db", a_signer)
        same.append([LogEntry(entry.kind, entry.name, f"{i}.1", entry.digest, f"{i + 7:064x}", (), 1)
                     for i in range(size)])
        status, _ = post(f"{witness.url}/add-checkpoint", request_body(size, [], same.checkpoint()))
        assert status == 422
        same.close()
    # The honest log still extends: the client's held view moves on with it.
    ok(client_home, "log", "show", "--registry", node.url, "--json")
    # A wrong `old` is answered 409 with the witness's size, as tlog-witness says.
    with urllib.request.urlopen(f"{node.url}/log/checkpoint", timeout=30) as resp:
        note = resp.read()
    status, body = post(f"{witness.url}/add-checkpoint", request_body(0, [], note))
    assert (status, body.strip()) == (409, str(size).encode())


def test_monitor_sees_a_release_signed_by_a_stolen_key_within_one_poll(
        nodes: list[Any], publisher: Client, pub_key: PrivateKey, model: Model, tmp_path: Path) -> None:
    node = start(nodes, node_home(tmp_path / "node", pub_key), seed=False)
    home = publisher.home
    assert home is not None
    publisher.close()
    pushed(home, node.url)
    ok(home, "trust", "log", "add", log_keys(node.url)["log"])
    key_id = pub_key.public.key_id
    first = ok(home, "log", "monitor", "--key", key_id[:16], "--registry", node.url, "--json").json()
    assert REF in {e["ref"] for e in first["entries"]}
    assert ok(home, "log", "monitor", "--key", key_id[:16], "--registry", node.url, "--json").json()["entries"] == []

    thief = tmp_path / "thief"
    with Client(thief) as client:
        trust(client, pub_key)
        client.publish(model.path, name=MODEL, version="6.6.6", license="Apache-2.0", key=pub_key,
                       publisher="Acme", piece_length=PIECE)
    pushed(thief, node.url, f"{MODEL}@6.6.6")
    seen = ok(home, "log", "monitor", "--key", key_id[:16], "--registry", node.url, "--json").json()
    assert f"{MODEL}@6.6.6" in {e["ref"] for e in seen["entries"] if e["kind"] == "release"}
    assert REF not in {e["ref"] for e in seen["entries"]}
    assert seen["checked"] >= 1


def test_pull_with_a_bundle_as_envelope_takes_its_proof_under_logged(
        nodes: list[Any], publisher: Client, pub_key: PrivateKey, tmp_path: Path) -> None:
    from seedvault.p2p import Swarm, SwarmConfig, format_endpoint
    from seedvault.swarming import start_seeding

    node = start(nodes, node_home(tmp_path / "node", pub_key), seed=False)
    home = publisher.home
    assert home is not None
    publisher.close()
    pushed(home, node.url)
    keys = log_keys(node.url)
    ok(home, "export", REF, tmp_path / "tiny.tar", "--tar")  # the bundle carries the proof
    client_home = tmp_path / "client"
    with Client(client_home) as client:
        trust(client, pub_key)
    ok(client_home, "trust", "log", "add", keys["log"])
    ok(client_home, "trust", "require", "--logged")
    with Client(home) as seeder, Swarm(SwarmConfig()) as swarm:
        assert start_seeding(seeder, swarm, [REF]).seeding == [REF]
        ok(client_home, "pull", REF, "--envelope", tmp_path / "tiny.tar", "--peer", format_endpoint(swarm.endpoint),
           "--json", "--timeout", "60")
    assert ok(client_home, "log", "verify", REF, "--json").json()["entry"]["ref"] == REF
