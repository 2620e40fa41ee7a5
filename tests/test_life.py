"""The life of a release after publish: signed heads, yanks, approvals and signatures that
travel, and registries that lie about them.

Real nodes (aiohttp on 127.0.0.1), real vaults, the real CLI; a hostile registry is a small
real aiohttp server that serves the listings, envelopes and heads a test chooses.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cli_helpers import ok, refused
from registry_helpers import NodeServer, free_port, make_home, policy, publish, start

from seedvault.client import Client
from seedvault.errors import ExpiredError, PolicyError, RollbackError, SeedvaultWarning, SignatureError, YankedError
from seedvault.head import Head
from seedvault.registry import RegistryClient, sync
from seedvault.registry.index import Index
from seedvault.signing import Envelope, PrivateKey
from seedvault.signing.trusted import accept_head

NAME = "acme/tiny"
ADMIN = "correct horse battery staple"
PULL_TIMEOUT = 60.0


# ---- fixtures -------------------------------------------------------------------------------


def key_file(tmp: Path, key: PrivateKey, name: str) -> Path:
    path = tmp / "keys" / name
    if not path.exists():
        key.save(path)
    return path


def signed_head(key: PrivateKey, head: Head) -> Envelope:
    return Envelope(head.to_payload()).sign(key)


class HostileRegistry:
    """A registry that lies: it answers each path from `routes` (status, JSON), 404 otherwise."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {}
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request) -> web.Response:
        status, body = self.routes.get(request.path, (404, {"error": {"type": "NotFoundError",
                                                                       "message": "not here"}}))
        return web.json_response(body, status=status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def serve_release(self, envelope: Envelope, *, listed: bool = True) -> None:
        from seedvault.manifest import Manifest

        m = Manifest.from_payload(envelope.payload)
        self.routes[f"/v1/models/{m.name}/{m.version}/envelope"] = (200, envelope.to_dict())
        if listed:
            versions = self.routes.get(f"/v1/models/{m.name}", (200, {"name": m.name, "versions": []}))[1]
            versions["versions"].append({"name": m.name, "version": m.version, "digest": envelope.digest})
            self.routes[f"/v1/models/{m.name}"] = (200, versions)

    def serve_heads(self, name: str, *heads: Envelope) -> None:
        self.routes[f"/v1/models/{name}/head"] = (200, {"name": name, "heads": [h.to_dict() for h in heads]})


def _two_versions(tmp: Path, pub_key: PrivateKey) -> Client:
    """A publisher's home holding acme/tiny 1.0 and 1.1 (each publish signs a new head)."""
    client = Client(make_home(tmp / "pub", policy((pub_key, "publisher"))))
    publish(client, tmp, pub_key, NAME, version="1.0", seed=0, size_mb=1)
    publish(client, tmp, pub_key, NAME, version="1.1", seed=1, size_mb=1)
    return client


# ---- the head, in one vault -------------------------------------------------------------------


def test_publish_signs_a_head_naming_the_newest_release(tmp_path: Path, pub_key: PrivateKey) -> None:
    with _two_versions(tmp_path, pub_key) as client:
        current = client.current_head(NAME)
        assert current is not None and current.by_publishers and not current.stale
        assert current.head.latest_version == "1.1"
        assert current.head.latest_digest == client.vault.resolve(f"{NAME}@1.1").digest
        first = current.head.sequence
        # Publishing an older patch release later does not move `latest` back.
        publish(client, tmp_path, pub_key, NAME, version="1.0.1", seed=2, size_mb=1)
        after = client.current_head(NAME)
        assert after is not None and after.head.latest_version == "1.1" and after.head.sequence > first


def test_yanked_release_refused_at_load_with_its_reason(tmp_path: Path, pub_key: PrivateKey) -> None:
    with _two_versions(tmp_path, pub_key) as client:
        client.sign_head(NAME, [pub_key], lambda h: h.with_yank("1.1", "tokenizer emits wrong ids"))
        with pytest.raises(YankedError, match="yanked by its publisher: tokenizer emits wrong ids"):
            client.load(f"{NAME}@1.1")
        with pytest.raises(YankedError, match="tokenizer emits wrong ids"):
            client.snapshot_path(f"{NAME}@1.1")
        # verify and show report it; NS/NAME resolves past it to the newest usable release.
        assert client.verify(f"{NAME}@1.1").yanked == "tokenizer emits wrong ids"
        assert client.resolve(NAME).manifest.version == "1.0"
        assert client.load(NAME)  # 1.0 loads
        # Under `yanked = "warn"` it loads, with a warning.
        client.save_policy(replace(client.policy, yanked="warn"))
        with pytest.warns(SeedvaultWarning, match="yanked by its publisher"):
            assert client.load(f"{NAME}@1.1")


def test_yank_through_cli_reported_by_verify_show_and_refused_by_load(tmp_path: Path, pub_key: PrivateKey) -> None:
    _two_versions(tmp_path, pub_key).close()
    home = tmp_path / "pub"
    key = key_file(tmp_path, pub_key, "pub.key")
    r = ok(home, "yank", f"{NAME}@1.1", "--reason", "leaks training data", "--key", key)
    assert "yanked acme/tiny@1.1: leaks training data" in r.out and "not sent anywhere" in r.out
    shown = ok(home, "show", f"{NAME}@1.1", "--json").json()
    assert shown["verdict"]["yanked"] == "leaks training data"
    assert ok(home, "verify", f"{NAME}@1.1", "--json").json()["yanked"] == "leaks training data"
    head = ok(home, "head", NAME, "--json").json()
    assert head["yanked"] == [{"version": "1.1", "reason": "leaks training data"}] and head["trusted"]
    assert "yanked   1.1: leaks training data" in ok(home, "head", NAME).out
    ok(home, "unyank", f"{NAME}@1.1", "--key", key)
    assert ok(home, "head", NAME, "--json").json()["yanked"] == []
    # A publisher's yank without a reason, or of a version nobody has, is a usage error / not found.
    refused(home, 2, "yank", f"{NAME}@1.1", "--key", key)
    refused(home, 4, "yank", f"{NAME}@9.9", "--reason", "x", "--key", key)


def test_timestamp_key_refreshes_a_head_but_cannot_change_it(tmp_path: Path, pub_key: PrivateKey,
                                                              approver_key: PrivateKey) -> None:
    timestamp = approver_key  # any Ed25519 key, trusted here as timestamp only
    trust = policy((pub_key, "publisher"), (timestamp, "timestamp"))
    with _two_versions(tmp_path, pub_key) as client:
        client.save_policy(trust)
        _, yanked = client.sign_head(NAME, [pub_key], lambda h: h.with_yank("1.0", "superseded"))
        held = client.heads.held(NAME)
        assert held is not None
        # A refresh by the timestamp key alone: same content, higher sequence, accepted.
        _, refresh = client.sign_head(NAME, [timestamp], lambda h: h)
        current = client.current_head(NAME)
        assert current is not None and current.digest == refresh.digest and not current.by_publishers
        # The timestamp key dropping the yank is refused, whoever offers it.
        unyank = signed_head(timestamp, current.head.without_yank("1.0").successor())
        with pytest.raises(PolicyError, match="timestamp key may refresh a head, never change"):
            accept_head(unyank, trust, client.heads.held(NAME))
        # A verifier new to the model needs the publisher-signed head beside the refresh.
        with Client(make_home(tmp_path / "fresh", trust)) as fresh:
            got, refusals = fresh.admit_heads([refresh], NAME)
            assert got is None and "timestamp keys only" in str(refusals[0])
            got, refusals = fresh.admit_heads([refresh, yanked], NAME)
            assert got is not None and got.digest == refresh.digest and refusals == []
            assert got.head.yank_reason("1.0") == "superseded"


def test_head_rollback_and_equivocation_refused(tmp_path: Path, pub_key: PrivateKey) -> None:
    with _two_versions(tmp_path, pub_key) as client:
        held = client.heads.held(NAME)
        assert held is not None
        older = signed_head(pub_key, replace(held.head, sequence=held.head.sequence - 1))
        same_sequence = signed_head(pub_key, held.head.with_yank("1.0", "other content, same sequence"))
        for offered, words in ((older, "refusing an older head"), (same_sequence, "same sequence")):
            got, refusals = client.admit_heads([offered], NAME)
            assert got is not None and got.digest == held.digest  # the held head stands
            assert isinstance(refusals[0], RollbackError) and words in str(refusals[0])


# ---- through registries -----------------------------------------------------------------------


def _node_with_two_versions(tmp: Path, nodes: list[NodeServer], pub_key: PrivateKey, *extra: tuple[PrivateKey, str],
                            **kw: Any) -> NodeServer:
    _two_versions(tmp, pub_key).close()
    node = start(nodes, make_home(tmp / "node", policy((pub_key, "publisher"), *extra, **kw)), admin_token=ADMIN)
    for version in ("1.0", "1.1"):
        r = ok(tmp / "pub", "push", f"{NAME}@{version}", "--registry", node.url, "--json").json()
        assert r["status"] == "published" and "accepted" in r["heads"][0]
    return node


@pytest.mark.timeout(240)
def test_yank_travels_from_publisher_through_node_to_client(tmp_path: Path, nodes: list[NodeServer],
                                                            pub_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key)
    key = key_file(tmp_path, pub_key, "pub.key")
    ok(tmp_path / "pub", "yank", f"{NAME}@1.1", "--reason", "broken tokenizer", "--key", key,
       "--registry", node.url)
    versions = {v["version"]: v for v in RegistryClient(node.url).versions(NAME)}
    assert versions["1.1"]["yanked_by_publisher"] == "broken tokenizer" and not versions["1.1"]["yanked_by_admin"]
    assert versions["1.0"].get("yanked_by_publisher") is None

    recv = make_home(tmp_path / "recv", policy((pub_key, "publisher")))
    r = ok(recv, "pull", NAME, "--registry", node.url, "--timeout", str(PULL_TIMEOUT), "--json")
    assert r.json()["ref"] == f"{NAME}@1.0"  # NS/NAME skips the yanked latest
    r = refused(recv, 3, "pull", f"{NAME}@1.1", "--registry", node.url, "--timeout", str(PULL_TIMEOUT))
    assert "yanked by its publisher: broken tokenizer" in r.err
    with Client(recv) as client:
        assert [e.manifest.version for e in client.vault.entries()] == ["1.0"]


def test_admin_yank_is_the_nodes_own_and_kept_apart(tmp_path: Path, nodes: list[NodeServer],
                                                    pub_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key)
    token = tmp_path / "admin-token"
    token.write_text(ADMIN + "\n")
    ok(tmp_path / "admin", "yank", f"{NAME}@1.0", "--registry", node.url, "--admin-token-file", token)
    v = {v["version"]: v for v in RegistryClient(node.url).versions(NAME)}["1.0"]
    assert v["yanked"] and v["yanked_by_admin"] and v.get("yanked_by_publisher") is None
    wrong = tmp_path / "wrong-token"
    wrong.write_text("nope")
    refused(tmp_path / "admin", 3, "remove", NAME, "--registry", node.url, "--admin-token-file", wrong)
    ok(tmp_path / "admin", "remove", NAME, "--registry", node.url, "--admin-token-file", token)
    assert RegistryClient(node.url).search() == []


def test_node_refuses_older_head_and_one_by_another_key(tmp_path: Path, nodes: list[NodeServer],
                                                        pub_key: PrivateKey, stranger_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key)
    remote = RegistryClient(node.url)
    served = Head.from_payload(remote.heads(NAME)[0].payload)
    with pytest.raises(RollbackError):
        remote.put_head(signed_head(pub_key, replace(served, sequence=served.sequence - 1)))
    forged = signed_head(stranger_key, served.with_yank("1.0", "forged").successor())
    with pytest.raises(SignatureError, match="key not in the local trust policy"):  # the node's policy
        remote.put_head(forged)
    assert Head.from_payload(remote.heads(NAME)[0].payload) == served


def test_hostile_registry_hiding_the_newest_release_is_noticed(tmp_path: Path, nodes: list[NodeServer],
                                                               pub_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key)
    recv = make_home(tmp_path / "recv", policy((pub_key, "publisher")))
    ok(recv, "head", "--registry", node.url, NAME)  # the honest node's head: latest 1.1
    real = RegistryClient(node.url)
    with HostileRegistry() as liar:
        liar.serve_release(real.envelope(NAME, "1.0"))  # lists only 1.0 and serves no head
        r = refused(recv, 4, "pull", NAME, "--registry", liar.url, "--timeout", "10")
        assert "names 1.1 as the latest release" in r.err and liar.url in r.err
        # Serving only an old head of its own choosing does not help it: that is a rollback.
        liar.serve_heads(NAME, real.heads(NAME)[0])
        assert refused(recv, 4, "pull", NAME, "--registry", liar.url, "--timeout", "10").code == 4


def test_hostile_registry_replaying_an_old_head_cannot_unyank(tmp_path: Path, nodes: list[NodeServer],
                                                              pub_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key)
    old_head = RegistryClient(node.url).heads(NAME)[0]  # before the yank
    ok(tmp_path / "pub", "yank", f"{NAME}@1.1", "--reason", "bad weights", "--key",
       key_file(tmp_path, pub_key, "pub.key"), "--registry", node.url)
    recv = make_home(tmp_path / "recv", policy((pub_key, "publisher")))
    ok(recv, "head", NAME, "--registry", node.url)
    with HostileRegistry() as liar:
        liar.serve_heads(NAME, old_head)
        r = ok(recv, "head", NAME, "--registry", liar.url, "--json")
        assert "refusing an older head" in r.err
        assert r.json()["yanked"] == [{"version": "1.1", "reason": "bad weights"}]


def test_withheld_yank_is_noticed_by_the_heads_expiry(tmp_path: Path, pub_key: PrivateKey) -> None:
    with _two_versions(tmp_path, pub_key) as client:
        envelope = client.vault.resolve(f"{NAME}@1.1").envelope
        held = client.heads.held(NAME)
        assert held is not None
    now = datetime.now(UTC).replace(microsecond=0)
    stale = signed_head(pub_key, replace(held.head, issued=now - timedelta(days=40),
                                         expires_at=now - timedelta(days=10)))
    recv = make_home(tmp_path / "recv", policy((pub_key, "publisher")))
    with HostileRegistry() as liar:
        liar.serve_release(envelope)
        liar.serve_heads(NAME, stale)  # a registry freezing the client on an old head
        r = ok(recv, "head", NAME, "--registry", liar.url, "--json")
        assert r.json()["stale"] is True and "expired" in r.err
        ok(recv, "trust", "require", "--fresh-heads")
        r = refused(recv, 3, "pull", NAME, "--registry", liar.url, "--timeout", "10")
        assert "policy requires fresh heads" in r.err
    with Client(recv) as client, pytest.raises(ExpiredError):
        accept_head(stale, client.policy, None)


@pytest.mark.timeout(240)
def test_approval_sent_from_another_machines_home(tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey,
                                                  approver_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key, (approver_key, "approver"))
    # The approver's machine: it trusts the publisher, pulls the release, checks it, signs it.
    approver_home = make_home(tmp_path / "approver", policy((pub_key, "publisher")))
    ok(approver_home, "pull", f"{NAME}@1.1", "--registry", node.url, "--timeout", str(PULL_TIMEOUT))
    r = ok(approver_home, "approve", f"{NAME}@1.1", "--key", key_file(tmp_path, approver_key, "approver.key"),
           "--registry", node.url, "--json").json()
    assert r["registry"]["verdict"]["approvers"] == 1
    v = {v["version"]: v for v in RegistryClient(node.url).versions(NAME)}["1.1"]
    assert v["approver_keys"] == [approver_key.key_id]
    # A client that requires one approval now takes it from the node.
    strict = make_home(tmp_path / "strict", policy((pub_key, "publisher"), (approver_key, "approver"),
                                                   required_approvals=1))
    ok(strict, "pull", f"{NAME}@1.1", "--registry", node.url, "--timeout", str(PULL_TIMEOUT))


@pytest.mark.timeout(240)
def test_key_rotation_end_to_end(tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey,
                                 p256_key: PrivateKey) -> None:
    new_key = p256_key
    node = _node_with_two_versions(tmp_path, nodes, pub_key, (new_key, "publisher"))
    pub = tmp_path / "pub"
    with Client(pub) as c:  # the publisher's own policy learns the new key
        c.save_policy(policy((pub_key, "publisher"), (new_key, "publisher")))
    # The new key signs the release; a second push carries the signature to the node.
    ok(pub, "sign", f"{NAME}@1.1", "--key", key_file(tmp_path, new_key, "new.key"))
    r = ok(pub, "push", f"{NAME}@1.1", "--registry", node.url, "--json").json()
    assert r["status"] == "present" and r["signatures_added"] == 1
    # A client that trusts the new key and has revoked the old one still takes it.
    recv = make_home(tmp_path / "recv", replace(policy((pub_key, "publisher"), (new_key, "publisher")),
                                                revoked=frozenset({pub_key.key_id})))
    ok(recv, "pull", f"{NAME}@1.1", "--registry", node.url, "--timeout", str(PULL_TIMEOUT))
    with Client(recv) as client:
        verdict = client.verify(f"{NAME}@1.1")
        assert verdict.publishers == 1
        assert [s.key_id for s in verdict.signers if s.status == "valid"] == [new_key.key_id]


def test_publish_with_two_keys_meets_a_threshold_of_two(tmp_path: Path, pub_key: PrivateKey,
                                                        p256_key: PrivateKey) -> None:
    from conftest import make_model

    src = tmp_path / "src"
    make_model(src)
    home = make_home(tmp_path / "pub", replace(policy((pub_key, "publisher"), (p256_key, "publisher")),
                                               publisher_threshold=2))
    r = ok(home, "publish", src, "--name", NAME, "--version", "1.0", "--license", "MIT",
           "--key", key_file(tmp_path, pub_key, "a.key"), "--key", key_file(tmp_path, p256_key, "b.key"), "--json")
    assert r.json()["key_ids"] == [pub_key.key_id, p256_key.key_id]
    assert ok(home, "verify", f"{NAME}@1.0", "--json").json()["publishers"] == 2
    assert ok(home, "head", NAME, "--json").json()["trusted"]


def test_bundle_carries_the_head_and_its_yank(tmp_path: Path, pub_key: PrivateKey) -> None:
    with _two_versions(tmp_path, pub_key) as client:
        client.sign_head(NAME, [pub_key], lambda h: h.with_yank("1.1", "license problem"))
    pub = tmp_path / "pub"
    ok(pub, "export", f"{NAME}@1.1", tmp_path / "b.tar", "--tar")
    recv = make_home(tmp_path / "recv", policy((pub_key, "publisher")))
    ok(recv, "import", tmp_path / "b.tar")
    with Client(recv) as client, pytest.raises(YankedError, match="license problem"):
        client.load(f"{NAME}@1.1")


@pytest.mark.timeout(300)
def test_mirror_propagates_a_yank_and_a_late_approval(tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey,
                                                      approver_key: PrivateKey) -> None:
    upstream = _node_with_two_versions(tmp_path, nodes, pub_key, (approver_key, "approver"))
    mirror_home = make_home(tmp_path / "mirror", policy((pub_key, "publisher"), (approver_key, "approver"),
                                                        required_approvals=1))
    remote = RegistryClient(upstream.url)
    with Client(mirror_home) as client:
        index = Index(client.paths.data_dir / "registry.db")
        try:
            first = sync(client, index, upstream.url, timeout=PULL_TIMEOUT)
            assert first.added == [] and {r for r, _ in first.refused} == {f"{NAME}@1.0", f"{NAME}@1.1"}
            # The approver countersigns 1.1 upstream, after the mirror refused it.
            approver = make_home(tmp_path / "approver", policy((pub_key, "publisher")))
            ok(approver, "pull", f"{NAME}@1.1", "--registry", upstream.url, "--timeout", str(PULL_TIMEOUT))
            ok(approver, "approve", f"{NAME}@1.1", "--key", key_file(tmp_path, approver_key, "approver.key"),
               "--registry", upstream.url)
            second = sync(client, index, upstream.url, timeout=PULL_TIMEOUT)
            assert second.added == [f"{NAME}@1.1"], second.to_dict()
            assert NAME in second.heads
            # The publisher yanks it upstream; the mirror learns on its next sync.
            ok(tmp_path / "pub", "yank", f"{NAME}@1.1", "--reason", "recalled", "--key",
               key_file(tmp_path, pub_key, "pub.key"), "--registry", upstream.url)
            third = sync(client, index, upstream.url, timeout=PULL_TIMEOUT)
            assert third.heads == [NAME]
            release = index.get(NAME, "1.1")
            assert release is not None and release.publisher_yank == "recalled"
            with pytest.raises(YankedError, match="recalled"):
                client.snapshot_path(f"{NAME}@1.1")
            # Unchanged upstream: no head is fetched again.
            seen = len(upstream.requests)
            sync(client, index, upstream.url, timeout=PULL_TIMEOUT)
            assert not [p for _m, p in upstream.requests[seen:] if p.endswith("/head")]
        finally:
            index.close()
    assert remote.heads(NAME)


def test_head_show_without_any_head_says_how_to_get_one(tmp_path: Path) -> None:
    r = refused(tmp_path / "empty", 4, "head", NAME)
    assert "no head of acme/tiny is held here" in r.err and "--registry" in r.err
    assert "refresh" in ok(tmp_path / "empty", "head", "--help").out


@pytest.mark.timeout(240)
def test_pull_of_several_refs_reports_each_and_goes_on_past_a_failure(tmp_path: Path, nodes: list[NodeServer],
                                                                      pub_key: PrivateKey) -> None:
    node = _node_with_two_versions(tmp_path, nodes, pub_key)
    recv = make_home(tmp_path / "recv", policy((pub_key, "publisher")))
    r = refused(recv, 4, "pull", f"{NAME}@1.0", "acme/absent@1.0", f"{NAME}@1.1", "--registry", node.url,
                "--timeout", str(PULL_TIMEOUT), "--json")
    pulled = [json.loads(line) for line in r.out.splitlines()]  # JSON Lines: one complete object per model
    assert [p["ref"] for p in pulled] == [f"{NAME}@1.0", f"{NAME}@1.1"]
    errors = [json.loads(line) for line in r.err.splitlines()]
    failed = [e for e in errors if "ref" in e]
    assert [e["ref"] for e in failed] == ["acme/absent@1.0"] and failed[0]["error"]["exit_code"] == 4
    assert "1 model of 3 not pulled: acme/absent@1.0" in errors[-1]["error"]["message"]
    with Client(recv) as client:
        assert sorted(e.manifest.version for e in client.vault.entries()) == ["1.0", "1.1"]
    # One envelope names one release: several REFs with --envelope is a usage error.
    (tmp_path / "x.json").write_text("{}")
    r = refused(recv, 2, "pull", f"{NAME}@1.0", f"{NAME}@1.1", "--envelope", tmp_path / "x.json")
    assert "--envelope names one release" in r.err
