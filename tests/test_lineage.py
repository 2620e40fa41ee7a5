"""Lineage that is checked: ancestry by manifest digest, transitively, each ancestor judged
under the local policy; `trust lineage deny`, `trust require --verified-lineage`; bundles
that carry their ancestors' envelopes; `seedvault lineage`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ok, refused
from conftest import trust
from gguf_helpers import write_gguf

from seedvault.bundle import ANCESTORS_FILE, export_bundle, import_bundle
from seedvault.client import Client
from seedvault.errors import PolicyError
from seedvault.signing import PrivateKey
from seedvault.signing.policy import TrustPolicy
from seedvault.signing.trusted import judge_ancestor


def _model(tmp_path: Path, name: str, seed: int) -> Path:
    src = tmp_path / "src" / name
    src.mkdir(parents=True)
    write_gguf(src / "model.gguf", seed=seed)
    return src


@pytest.fixture
def chain(tmp_path: Path, make_client: Any, pub_key: PrivateKey, stranger_key: PrivateKey) -> Client:
    """evil/base@1 <-distilled-from- acme/mid@1 <-quantized-from- acme/q@1, all held, keys trusted."""
    client: Client = make_client("chain")
    trust(client, pub_key)
    trust(client, stranger_key, "publisher", "evil/*")
    client.publish(_model(tmp_path, "base", 1), name="evil/base", version="1", license="Apache-2.0", key=stranger_key)
    client.publish(_model(tmp_path, "mid", 2), name="acme/mid", version="1", license="Apache-2.0", key=pub_key,
                   lineage=[("distilled-from", "evil/base@1")])
    client.publish(_model(tmp_path, "q", 3), name="acme/q", version="1", license="Apache-2.0", key=pub_key,
                   lineage=[("quantized-from", "acme/mid@1")])
    return client


def _set(client: Client, **changes: Any) -> None:
    from dataclasses import replace

    client.save_policy(replace(client.policy, **changes))


def test_ancestry_is_followed_by_digest_transitively(chain: Client) -> None:
    entry = chain.resolve("acme/q@1")
    tree = chain.lineage(entry.manifest, entry.digest)
    ancestors = tree.ancestors()
    assert [(a.relation, a.ref, a.status) for a in ancestors] == [
        ("quantized-from", "acme/mid@1", "verified"), ("distilled-from", "evil/base@1", "verified")]
    assert ancestors[1].digest == chain.resolve("evil/base@1").digest
    assert ancestors[1].chain == "acme/q@1 quantized-from acme/mid@1 distilled-from evil/base@1"


def test_denied_ancestor_three_generations_back_refuses_the_model(chain: Client) -> None:
    _set(chain, lineage_deny=("evil/*",))
    for use in (lambda: chain.load("acme/q@1"), lambda: chain.verify("acme/q@1"),
                lambda: chain.snapshot_path("acme/q@1")):
        with pytest.raises(PolicyError, match="ancestor evil/base@1 \\(distilled-from; acme/q@1 quantized-from "
                                              "acme/mid@1 distilled-from evil/base@1\\) is denied") as info:
            use()
        assert "lineage deny 'evil/*'" in str(info.value)
    with pytest.raises(PolicyError, match="evil/base@1"):
        chain.load("acme/mid@1")
    assert chain.load("evil/base@1")  # the denied model itself has no denied ancestor


def test_deny_of_another_namespace_leaves_the_chain_usable(chain: Client) -> None:
    _set(chain, lineage_deny=("other/*",), verified_lineage=True)
    assert chain.load("acme/q@1")


def test_verified_lineage_refuses_an_ancestor_that_does_not_verify(chain: Client, stranger_key: PrivateKey) -> None:
    _set(chain, verified_lineage=True)
    chain.verify("acme/q@1")
    _set(chain, revoked=frozenset({stranger_key.key_id}))
    with pytest.raises(PolicyError, match=r"found distilled-from evil/base@1 .*which does not verify under your "
                                          r"policy"):
        chain.load("acme/q@1")


def test_verified_lineage_with_an_ancestor_missing_is_refused(chain: Client, tmp_path: Path, make_client: Any,
                                                               pub_key: PrivateKey,
                                                               stranger_key: PrivateKey) -> None:
    bundle = export_bundle(chain, "acme/q@1", tmp_path / "bundle")
    assert (bundle / ANCESTORS_FILE).is_file()
    bare = tmp_path / "bare"
    shutil.copytree(bundle, bare)
    (bare / ANCESTORS_FILE).unlink()
    receiver: Client = make_client("receiver")
    trust(receiver, pub_key)
    trust(receiver, stranger_key, "publisher", "evil/*")
    _set(receiver, verified_lineage=True)
    with pytest.raises(PolicyError, match=r"quantized-from acme/mid@1 .*neither in the vault nor in the bundle"):
        import_bundle(receiver, bare)
    assert receiver.vault.entries() == []
    # The same release with its ancestors' envelopes in the bundle: each verifies, so it is admitted.
    import_bundle(receiver, bundle)
    assert receiver.load("acme/q@1")
    stored = {p.stem for p in (receiver.paths.data_dir / "ancestors").iterdir()}
    assert stored == {chain.resolve("acme/mid@1").digest, chain.resolve("evil/base@1").digest}
    # Kept: the lineage still verifies later, without the bundle.
    assert [a.status for a in receiver.lineage(receiver.resolve("acme/q@1").manifest,
                                               receiver.resolve("acme/q@1").digest).ancestors()] == ["verified"] * 2


def test_bundled_ancestor_by_an_untrusted_key_is_refused(chain: Client, tmp_path: Path, make_client: Any,
                                                          pub_key: PrivateKey) -> None:
    bundle = export_bundle(chain, "acme/q@1", tmp_path / "bundle.tar", as_tar=True)
    receiver: Client = make_client("receiver")
    trust(receiver, pub_key)  # not the evil/* key
    _set(receiver, verified_lineage=True)
    with pytest.raises(PolicyError, match=r"distilled-from evil/base@1 .*does not verify"):
        import_bundle(receiver, bundle)
    _set(receiver, verified_lineage=False, lineage_deny=("evil/*",))
    with pytest.raises(PolicyError, match="ancestor evil/base@1"):
        import_bundle(receiver, bundle)


def test_unpinned_base_is_not_a_verified_lineage(tmp_path: Path, make_client: Any, pub_key: PrivateKey) -> None:
    client: Client = make_client("unpinned")
    trust(client, pub_key)
    with pytest.warns(UserWarning, match="not in this vault"):
        client.publish(_model(tmp_path, "u", 4), name="acme/u", version="1", license="MIT", key=pub_key,
                       lineage=[("fine-tuned-from", "meta/llama@3")])
    _set(client, lineage_deny=("meta/*",))
    with pytest.raises(PolicyError, match="ancestor meta/llama@3"):  # denied by its name, though not held
        client.load("acme/u@1")
    _set(client, lineage_deny=(), verified_lineage=True)
    with pytest.raises(PolicyError, match="not pinned by manifest digest"):
        client.load("acme/u@1")


def test_ancestor_envelope_that_is_not_the_named_release_is_a_mismatch(chain: Client) -> None:
    """A link naming evil/base@1 whose digest pins another release: never counted as verified."""
    from seedvault.signing.trusted import check_lineage

    other = chain.resolve("acme/mid@1")
    verdict = judge_ancestor("distilled-from", "evil/base@1", other.digest, other.envelope, chain.policy, "c")
    assert verdict.status == "mismatch" and verdict.verdict is None
    assert verdict.names == {"evil/base", "acme/mid"}  # a deny rule sees both names
    with pytest.raises(PolicyError, match=r"which is not the release its link names \(the link names evil/base@1, "
                                          r"the pinned release is acme/mid@1\)"):
        check_lineage("acme/x@1", [verdict], TrustPolicy(keys=chain.policy.keys, verified_lineage=True))
    with pytest.raises(PolicyError, match="ancestor evil/base@1"):
        check_lineage("acme/x@1", [verdict], TrustPolicy(keys=chain.policy.keys, lineage_deny=("acme/mid",)))


# ---- the CLI -------------------------------------------------------------------------------------


def test_lineage_command_shows_each_ancestor_with_its_verdict(chain: Client) -> None:
    assert chain.home is not None
    home = chain.home
    chain.close()
    data = ok(home, "lineage", "acme/q@1", "--json").json()
    assert data["status"] == "root" and data["policy"] == {"ok": True, "refused": None}
    (mid,) = data["parents"]
    assert (mid["relation"], mid["ref"], mid["status"]) == ("quantized-from", "acme/mid@1", "verified")
    assert mid["parents"][0]["ref"] == "evil/base@1" and mid["parents"][0]["signers"][0]["role"] == "publisher"
    text = ok(home, "lineage", "acme/q").out
    assert "quantized-from acme/mid@1" in text and "distilled-from evil/base@1" in text and "verified" in text
    ok(home, "trust", "lineage", "deny", "evil/*")
    out = refused(home, 3, "lineage", "acme/q@1", "--json")
    assert "ancestor evil/base@1" in out.json()["policy"]["refused"]
    assert "REFUSED" in refused(home, 3, "lineage", "acme/q@1").out
    refused(home, 3, "verify", "acme/q@1")
    ok(home, "trust", "lineage", "allow", "evil/*")
    ok(home, "verify", "acme/q@1")


def test_trust_lineage_and_require_verified_lineage_edit_the_policy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert ok(home, "trust", "lineage", "deny", "evil/*", "bad/model", "--json").json() == {
        "lineage_deny": ["evil/*", "bad/model"]}
    assert ok(home, "trust", "require", "--verified-lineage", "--json").json()["verified_lineage"] is True
    policy = TrustPolicy.load(home / "config" / "policy.toml")
    assert policy.lineage_deny == ("evil/*", "bad/model") and policy.verified_lineage
    assert "lineage denied: evil/*, bad/model; verified lineage required: yes" in ok(home, "trust", "list").out
    refused(home, 2, "trust", "lineage", "deny", "no slash")
    refused(home, 2, "trust", "lineage", "allow", "never/*")
    ok(home, "trust", "require", "--unverified-lineage-ok")
    assert not TrustPolicy.load(home / "config" / "policy.toml").verified_lineage
