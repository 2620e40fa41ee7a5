"""Issue 4: the registry node, served for real by aiohttp on 127.0.0.1.

Every node is `create_app(NodeConfig(...))` behind an AppRunner in a background thread (see
registry_helpers.NodeServer), with its own SQLite index, vault and libtorrent session.
Publishers push with RegistryClient or the CLI; clients pull with real libtorrent sessions
from the node's seed (found through its tracker) and its web seed. Nothing is mocked.
Attack tests check the status, the JSON error, and that the node's index did not change.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from click.testing import CliRunner
from registry_helpers import (
    Answer,
    NodeServer,
    Published,
    bdecode,
    make_home,
    policy,
    publish,
    request,
    tree_bytes,
    wait_for,
)

from seedvault.cli import main
from seedvault.client import Client
from seedvault.errors import RemovedError, SignatureError
from seedvault.manifest import Manifest
from seedvault.p2p import SwarmConfig
from seedvault.registry import RegistryClient, create_app, sync
from seedvault.registry.config import NodeConfig
from seedvault.registry.index import Index
from seedvault.registry.pages import PAGE
from seedvault.registry.resolve import resolve
from seedvault.signing import Envelope, PrivateKey, Signature
from seedvault.swarming import pull

NAME = "acme/tiny"
REF = f"{NAME}@1.0"
ADMIN = "correct horse battery staple"
PULL_TIMEOUT = 60.0
MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}

StartNode = Callable[..., NodeServer]


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def start_node() -> Iterator[StartNode]:
    """Start registry nodes; every one is stopped (bounded) at teardown, even on failure."""
    started: list[NodeServer] = []

    def start(home: Path, **settings: Any) -> NodeServer:
        server = NodeServer(home, **settings)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.close()


@dataclass
class Setup:
    """A node that trusts two publisher keys and an approver, holding acme/tiny@1.0 pushed by one."""

    node: NodeServer
    publisher: Client
    release: Published
    tmp: Path

    @property
    def registry(self) -> RegistryClient:
        return RegistryClient(self.node.url)


@pytest.fixture
def publisher(tmp_path: Path, pub_key: PrivateKey) -> Iterator[Client]:
    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as client:
        yield client


@pytest.fixture
def setup(tmp_path: Path, start_node: StartNode, publisher: Client, pub_key: PrivateKey, p256_key: PrivateKey,
          approver_key: PrivateKey) -> Setup:
    release = publish(publisher, tmp_path, pub_key, NAME)
    home = make_home(tmp_path / "node", policy((pub_key, "publisher"), (p256_key, "publisher"),
                                               (approver_key, "approver")))
    node = start_node(home, admin_token=ADMIN)
    result = RegistryClient(node.url).push(release.envelope, release.snapshot)
    assert result["status"] == "published", result
    return Setup(node, publisher, release, tmp_path)


def receiver(home: Path, *keys: tuple[PrivateKey, str], **kw: Any) -> Client:
    return Client(make_home(home, policy(*keys, **kw)))


def index_state(node: NodeServer) -> tuple[Any, ...]:
    """What a refusal must leave as it was: the listing, every indexed release (yanked too),
    the vault's manifests, and no upload staging left behind with bytes in it."""
    listing = RegistryClient(node.url).search()
    indexed = [r.to_dict() for r in node.node.index.search(include_yanked=True, limit=100_000)]
    with Client(node.home) as client:
        vault = sorted(e.digest for e in client.vault.entries())
        staged = sorted(p.relative_to(client.vault.incoming).as_posix()
                        for p in client.vault.incoming.rglob("*") if p.is_file())
    return listing, indexed, vault, staged


def assert_refused(answer: Answer, status: int | tuple[int, ...], *words: str) -> dict[str, Any]:
    """A 4xx with the JSON error document, whose message names what was wrong."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert answer.status in allowed, f"expected {allowed}, got {answer.status}: {answer.body[:400]!r}"
    error = answer.error
    for word in words:
        assert word.lower() in error["message"].lower(), error
    return error


def assert_holds(client: Client, release: Published) -> None:
    """Full re-verification under the client's policy, and the publisher's exact bytes."""
    entry = client.vault.resolve(release.ref)
    client.verify(release.ref, fast=False)
    assert tree_bytes(client.vault.snapshot_dir(entry.manifest)) == release.files
    assert not [p for p in client.vault.incoming.iterdir()], "staging left behind"


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    """`seedvault --home HOME ARGS...` in-process, with main()'s exit codes."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            rv = main(["--home", str(home), *args])
            code = rv if isinstance(rv, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue().decode(), err.getvalue().decode()


def begin(node: NodeServer, envelope: Envelope) -> dict[str, Any]:
    answer = request(node.url, "POST", "/v1/envelopes", envelope.to_json(), headers=JSON)
    assert answer.status == 202, answer.body
    body: dict[str, Any] = answer.json()
    return body


def put(node: NodeServer, digest: str, path: str, data: bytes, token: str, **kw: Any) -> Answer:
    """One file of an upload session, under the session's token (from `begin`)."""
    return request(node.url, "PUT", f"/v1/uploads/{digest}/{path}", data,
                   headers={"Content-Type": "application/octet-stream", "Authorization": f"Bearer {token}"}, **kw)


# ---- publish -> search -> pull -------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_publish_search_pull_round_trip(setup: Setup, tmp_path: Path, pub_key: PrivateKey) -> None:
    registry, release = setup.registry, setup.release
    assert registry.push(release.envelope, release.snapshot)["status"] == "present"  # idempotent

    listed = registry.search()
    assert [(m["name"], m["version"], m["digest"]) for m in listed] == [(NAME, "1.0", release.envelope.digest)]
    assert listed[0]["publisher_keys"] == [pub_key.key_id] and listed[0]["license"] == "Apache-2.0"
    assert [m["name"] for m in registry.search("TINY")] == [NAME]  # text, case-insensitive
    assert [m["name"] for m in registry.search(publisher=pub_key.key_id[:12])] == [NAME]
    assert [m["name"] for m in registry.search(license="Apache-2.0")] == [NAME]
    assert registry.search("no-such-model") == [] and registry.search(license="MIT") == []
    assert [v["version"] for v in registry.versions(NAME)] == ["1.0"]

    with receiver(tmp_path / "receiver", (pub_key, "publisher")) as client:
        ref, envelope = resolve(client, registry, NAME)  # newest version the LOCAL policy trusts
        assert ref == REF and envelope.digest == release.envelope.digest
        torrent = registry.torrent(NAME, "1.0")
        meta = bdecode(torrent)
        assert meta[b"url-list"] == [f"{setup.node.url}/webseed/{envelope.digest}/".encode()]
        assert meta[b"announce"] == f"{setup.node.url}/announce".encode()
        report = pull(client, ref, envelope, torrent=torrent, config=SwarmConfig(), timeout=PULL_TIMEOUT)
        assert not report.already_present
        assert report.stats.done == report.stats.total == sum(len(b) for b in release.files.values())
        assert report.stats.from_seeds + report.stats.from_web > 0  # the node's seed and/or web seed
        assert_holds(client, release)
    # The client asked the node's tracker, which lists the node's own seed.
    wait_for(lambda: ("GET", "/announce") in setup.node.requests, 10, "an announce to the node's tracker")


@pytest.mark.timeout(120)
def test_cli_push_search_pull(tmp_path: Path, start_node: StartNode, publisher: Client, pub_key: PrivateKey,
                              stranger_key: PrivateKey) -> None:
    release = publish(publisher, tmp_path, pub_key, NAME)
    publisher.close()  # the CLI opens the same home
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))))

    code, out, err = cli(tmp_path / "publisher", "push", REF, "--registry", node.url, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "published"

    code, out, err = cli(tmp_path / "anyone", "search", "tiny", "--registry", node.url, "--json")
    assert code == 0, err
    assert [(m["name"], m["digest"]) for m in json.loads(out)] == [(NAME, release.envelope.digest)]

    home = make_home(tmp_path / "receiver", policy((pub_key, "publisher")))
    code, out, err = cli(home, "pull", REF, "--registry", node.url, "--json", "--timeout", str(PULL_TIMEOUT))
    assert code == 0, err
    report = json.loads(out)
    assert report["ref"] == REF and report["done"] == report["total"] > 0
    with Client(home) as client:
        assert_holds(client, release)

    # A client that trusts another publisher gets nothing, whatever the node says.
    stranger_home = make_home(tmp_path / "sceptic", policy((stranger_key, "publisher")))
    code, _out, err = cli(stranger_home, "pull", REF, "--registry", node.url, "--json")
    assert code == 3, err  # verification refused
    assert "Traceback" not in err


# ---- mirroring -------------------------------------------------------------------------------------


@dataclass
class Upstream:
    node: NodeServer
    approved: Published
    gpl: Published
    untrusted: Published


@pytest.fixture
def upstream(tmp_path: Path, start_node: StartNode, pub_key: PrivateKey, approver_key: PrivateKey,
             stranger_key: PrivateKey) -> Upstream:
    """An upstream node holding three models; it trusts both publishers and the approver."""
    home = make_home(tmp_path / "upstream",
                     policy((pub_key, "publisher"), (stranger_key, "publisher"), (approver_key, "approver")))
    node = start_node(home)
    remote = RegistryClient(node.url)
    # Each publisher's home trusts its own key: an approver verifies a release before countersigning.
    with receiver(tmp_path / "pub", (pub_key, "publisher")) as pub, \
            receiver(tmp_path / "stranger", (stranger_key, "publisher")) as other:
        untrusted = publish(other, tmp_path, stranger_key, "acme/untrusted", seed=1)
        other.approve(untrusted.ref, approver_key)  # approved and allowed: only its publisher is unknown
        untrusted.envelope = other.vault.resolve(untrusted.ref).envelope
        gpl = publish(pub, tmp_path, pub_key, "acme/gpl", license="GPL-3.0-only", seed=2)
        gpl.envelope = pub.approve(gpl.ref, approver_key)  # countersigned before the push
        approved = publish(pub, tmp_path, pub_key, "acme/approved", seed=3)
        for release in (untrusted, gpl, approved):
            assert remote.push(release.envelope, release.snapshot)["status"] == "published"
    # The approval of the third goes to the upstream node as a countersignature.
    verdict = remote.approve("acme/approved", "1.0", Envelope(approved.envelope.payload).sign(approver_key))
    assert verdict["verdict"]["approvers"] == 1
    assert sorted(m["name"] for m in remote.search()) == ["acme/approved", "acme/gpl", "acme/untrusted"]
    return Upstream(node, approved, gpl, untrusted)


def mirror_policy(pub_key: PrivateKey, approver_key: PrivateKey) -> Any:
    return policy((pub_key, "publisher"), (approver_key, "approver"), required_approvals=1,
                  allowed_licenses=("Apache-2.0", "MIT"))


@pytest.mark.timeout(180)
def test_mirror_takes_only_what_policy_approves(tmp_path: Path, start_node: StartNode, upstream: Upstream,
                                                pub_key: PrivateKey, approver_key: PrivateKey,
                                                stranger_key: PrivateKey) -> None:
    home = make_home(tmp_path / "mirror", mirror_policy(pub_key, approver_key))
    mirror = start_node(home, admin_token=ADMIN)
    approved, gpl, untrusted = upstream.approved, upstream.gpl, upstream.untrusted

    # `seedvault mirror --once` does this on the node's home: its own Client and Index.
    with Client(home) as client:
        index = Index(client.paths.data_dir / "registry.db")
        try:
            report = sync(client, index, upstream.node.url, timeout=PULL_TIMEOUT)
            assert report.added == [approved.ref], report.to_dict()
            assert report.failed == [] and report.present == []
            reasons = dict(report.refused)
            assert set(reasons) == {gpl.ref, untrusted.ref}
            assert "GPL-3.0-only" in reasons[gpl.ref] and "not allowed" in reasons[gpl.ref]
            assert stranger_key.key_id[:16] in reasons[untrusted.ref] and "publisher" in reasons[untrusted.ref]
            assert [e.manifest.ref for e in client.vault.entries()] == [approved.ref]
            assert not list(client.vault.incoming.iterdir())

            # Again: nothing new, and nothing fetched for what is already here.
            seen = len(upstream.node.requests)
            started = time.monotonic()
            again = sync(client, index, upstream.node.url, timeout=PULL_TIMEOUT)
            elapsed = time.monotonic() - started
            fetched = upstream.node.requests[seen:]
            assert again.added == [] and again.present == [approved.ref] and again.failed == []
            assert {r for r, _ in again.refused} == {gpl.ref, untrusted.ref}
            assert not [p for _m, p in fetched if "/acme/approved/" in p or p.startswith(("/webseed", "/announce"))], \
                fetched
            assert ("GET", "/v1/models") in fetched
            assert elapsed < 10, f"a sync with nothing to do took {elapsed:.1f} s"
        finally:
            index.close()

    listed = RegistryClient(mirror.url).search()
    assert [(m["name"], m["digest"]) for m in listed] == [("acme/approved", approved.envelope.digest)]
    assert listed[0]["approver_keys"] == [approver_key.key_id]  # the mirror's own verdict

    # The running node notices what the sync added behind its back and seeds it too.
    manifest = Manifest.from_payload(approved.envelope.payload)
    swarm = mirror.node.swarm
    assert swarm is not None
    host, port = swarm.endpoint
    own_seed = bytes(map(int, host.split("."))) + port.to_bytes(2, "big")  # BEP 23 compact form
    wait_for(lambda: announce(mirror, bytes.fromhex(manifest.torrent.info_hash_v2)[:20]).get(b"peers") == own_seed,
             30, "the running mirror to seed what `mirror --once` added")

    # Listing pages through everything, whatever the page size.
    pages = list(RegistryClient(upstream.node.url).all_releases(page=2))
    assert sorted(m["name"] for m in pages) == ["acme/approved", "acme/gpl", "acme/untrusted"]
    assert_refused(request(upstream.node.url, "GET", "/v1/models?offset=-1"), 400, "offset")

    # A client of the mirror: its own policy, bytes from the mirror, verified.
    with receiver(tmp_path / "client", (pub_key, "publisher"), (approver_key, "approver"),
                  required_approvals=1) as client:
        registry = RegistryClient(mirror.url)
        ref, envelope = resolve(client, registry, "acme/approved")
        torrent = registry.torrent("acme/approved", "1.0")
        assert bdecode(torrent)[b"url-list"] == [f"{mirror.url}/webseed/{envelope.digest}/".encode()]
        pull(client, ref, envelope, torrent=torrent, config=SwarmConfig(), timeout=PULL_TIMEOUT)
        assert_holds(client, approved)

    # What the mirror's admin removes, the next sync does not bring back.
    removed = request(mirror.url, "DELETE", "/v1/models/acme/approved", headers={"Authorization": f"Bearer {ADMIN}"})
    assert removed.status == 200, removed.body
    with Client(home) as client:
        index = Index(client.paths.data_dir / "registry.db")
        try:
            third = sync(client, index, upstream.node.url, timeout=PULL_TIMEOUT)
        finally:
            index.close()
    assert third.added == [] and "removed" in dict(third.refused)[approved.ref]
    assert RegistryClient(mirror.url).search() == []


@pytest.mark.timeout(180)
def test_node_mirrors_on_schedule_and_seeds(tmp_path: Path, start_node: StartNode, upstream: Upstream,
                                            pub_key: PrivateKey, approver_key: PrivateKey) -> None:
    """`upstreams` + `mirror_interval` in the node's config: the serving node syncs by itself,
    indexes what its policy approves, and seeds it (its tracker lists its own seed)."""
    home = make_home(tmp_path / "mirror", mirror_policy(pub_key, approver_key))
    mirror = start_node(home, upstreams=(upstream.node.url,), mirror_interval=1.0)
    registry = RegistryClient(mirror.url)
    wait_for(lambda: bool(registry.search()), 90, "the scheduled sync to index the approved model")
    assert [m["name"] for m in registry.search()] == ["acme/approved"]

    manifest = Manifest.from_payload(upstream.approved.envelope.payload)
    info_hash = bytes.fromhex(manifest.torrent.info_hash_v2)[:20]  # as libtorrent announces a v2 torrent
    swarm = mirror.node.swarm
    assert swarm is not None
    host, port = swarm.endpoint
    own_seed = bytes(map(int, host.split("."))) + port.to_bytes(2, "big")  # BEP 23 compact form
    # Seeding is queued on the node's worker after the sync.
    wait_for(lambda: announce(mirror, info_hash).get(b"peers") == own_seed, 30,
             "the mirror's tracker to list the mirror's own seed")


def announce(node: NodeServer, info_hash: bytes, port: int = 6881, peer_id: bytes = b"-SV0001-testpeer0001") -> Any:
    query = (f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(peer_id)}"
             f"&port={port}&left=100&event=started&compact=1")
    answer = request(node.url, "GET", "/announce?" + query)
    assert answer.status == 200, answer.body
    return bdecode(answer.body)


# ---- refusals ------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_untrusted_signer_refused(setup: Setup, stranger_key: PrivateKey) -> None:
    before = index_state(setup.node)
    forged = Envelope(setup.release.envelope.payload).sign(stranger_key)  # same manifest, unknown key
    answer = request(setup.node.url, "POST", "/v1/envelopes", forged.to_json(), headers=JSON)
    assert_refused(answer, 403, "signature")
    with Client(setup.tmp / "stranger") as other:
        own = publish(other, setup.tmp, stranger_key, "acme/other", seed=7)
    with pytest.raises(SignatureError, match=r"403.*key not in the local trust policy"):  # the node's class
        setup.registry.push(own.envelope, own.snapshot)
    assert index_state(setup.node) == before


@pytest.mark.timeout(60)
def test_tampered_upload_refused(setup: Setup, pub_key: PrivateKey) -> None:
    before = index_state(setup.node)
    v2 = publish(setup.publisher, setup.tmp, pub_key, NAME, version="2.0", seed=5)
    started = begin(setup.node, v2.envelope)
    digest, token = started["digest"], started["upload_token"]
    needed = [item["path"] for item in started["needed"]]
    assert sorted(needed) == sorted(v2.files)
    shard = next(p for p in needed if p.endswith(".safetensors"))
    answers = []
    for path in needed:
        data = bytearray(v2.files[path])
        if path == shard:
            data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
        answers.append(put(setup.node, digest, path, bytes(data), token))
    assert [a.status for a in answers[:-1]] == [202] * (len(needed) - 1)
    error = assert_refused(answers[-1], 422, shard)
    assert error["type"] == "IntegrityError"
    assert index_state(setup.node) == before
    assert_refused(request(setup.node.url, "GET", f"/v1/models/{NAME}/2.0/envelope"), 404)
    assert_refused(put(setup.node, digest, shard, v2.files[shard], token), 404, "no upload in progress")
    # The refusal left nothing behind that blocks an honest upload of the same release.
    assert setup.registry.push(v2.envelope, v2.snapshot)["status"] == "published"
    assert [v["version"] for v in setup.registry.versions(NAME)] == ["1.0", "2.0"]


@pytest.mark.timeout(60)
def test_path_traversal_refused(setup: Setup, pub_key: PrivateKey) -> None:
    node, digest = setup.node, setup.release.envelope.digest
    before = index_state(node)
    tname = "acme--tiny--1.0"
    for path in [
        "/v1/models/acme/%2e%2e/1.0",
        "/v1/models/%2e%2e/%2e%2e/1.0/envelope",
        "/v1/models/acme/..%2F..%2Fetc/1.0/envelope",
        "/v1/models/acme/tiny/..%2F..%2F..%2Fetc%2Fpasswd/envelope",
        "/v1/models/acme/tiny/1.0%00/torrent",
        "/v1/models/../../etc/passwd",
        f"/webseed/{digest}/{tname}/../../../../etc/passwd",
        f"/webseed/{digest}/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/webseed/{digest}/%2Fetc%2Fpasswd",
        f"/webseed/{digest}//etc/passwd",
        f"/webseed/{digest}/{tname}/config.json%00.txt",
        "/webseed/..%2F..%2Fvault/config.json",
    ]:
        answer = request(node.url, "GET", path)
        assert_refused(answer, (400, 404, 422))
        assert b"root:" not in answer.body

    v2 = publish(setup.publisher, setup.tmp, pub_key, NAME, version="2.0", seed=5)
    started = begin(node, v2.envelope)
    upload, token = started["digest"], started["upload_token"]
    canary = setup.tmp / "escaped"
    for path in ["..%2F..%2F..%2Fescaped", "../../../escaped", "config.json%2F..%2F..%2Fescaped",
                 "%2Ftmp%2Fescaped", "sub%5C..%5C..%5Cescaped", "not-in-the-manifest.safetensors"]:
        assert_refused(put(node, upload, path, b"x" * 10, token), (400, 404, 422))
    assert not canary.exists()
    assert not list(setup.tmp.rglob("escaped")) and not list(setup.tmp.rglob("not-in-the-manifest*"))
    assert index_state(node) == before


@pytest.mark.timeout(120)
def test_oversized_body_refused(setup: Setup, pub_key: PrivateKey) -> None:
    node = setup.node
    before = index_state(node)
    limit = 16 * MiB
    too_big = b" " * (limit + 1)
    assert_refused(request(node.url, "POST", "/v1/envelopes", too_big, headers=JSON), 413)
    assert_refused(request(node.url, "POST", "/v1/envelopes", too_big, headers=JSON, chunked=True), 413)
    name, _, version = REF.partition("@")
    assert_refused(request(node.url, "POST", f"/v1/models/{name}/{version}/approvals", too_big, headers=JSON,
                           chunked=True), 413)
    assert index_state(node) == before

    # A valid envelope of several MiB, streamed in small chunks, is read whole (not cut at the first chunk).
    v2 = publish(setup.publisher, setup.tmp, pub_key, NAME, version="2.0", seed=5)
    padded = b" " * (4 * MiB) + v2.envelope.to_json()
    answer = request(node.url, "POST", "/v1/envelopes", padded, headers=JSON, chunked=True, chunk=64 * 1024)
    assert answer.status == 202, answer.body[:400]
    digest, token = answer.json()["digest"], answer.json()["upload_token"]

    # Uploads are bounded by the size the manifest gives each file.
    path = next(p for p in v2.files if p.endswith(".safetensors"))
    data = v2.files[path]
    assert_refused(put(node, digest, path, data + b"x", token), (400, 413), str(len(data)))
    assert_refused(put(node, digest, path, data + b"x" * MiB, token, chunked=True, chunk=256 * 1024), 413)
    assert_refused(put(node, digest, path, data[:-1], token, chunked=True), 400, str(len(data)))
    assert index_state(node) == before


@pytest.mark.timeout(60)
def test_malformed_json_refused(setup: Setup, pub_key: PrivateKey) -> None:
    node = setup.node
    before = index_state(node)
    good = setup.release.envelope.to_dict()
    not_a_manifest = Envelope(b'{"_type": "nonsense"}').sign(pub_key).to_json()
    for body in [b"{not json", b"", b"\xff\xfe\x00", b"[]", b"null", b'"envelope"',
                 json.dumps({**good, "payloadType": "text/plain"}).encode(),
                 json.dumps({**good, "payload": "***not base64***"}).encode(),
                 json.dumps({**good, "signatures": "none"}).encode(),
                 json.dumps({**good, "signatures": [{"keyid": 7, "sig": "AA=="}]}).encode(),
                 json.dumps({**good, "signatures": []}).encode(),
                 not_a_manifest]:
        answer = request(node.url, "POST", "/v1/envelopes", body, headers=JSON)
        assert_refused(answer, (400, 403, 422))
    for body in [b"{not json", b"[1, 2]"]:
        assert_refused(request(node.url, "POST", f"/v1/models/{NAME}/1.0/approvals", body, headers=JSON), (400, 422))
    assert_refused(request(node.url, "GET", "/v1/models?limit=many"), 400, "limit")
    assert_refused(request(node.url, "GET", "/v1/models?limit=-1"), 400, "limit")
    failure = bdecode(  # the tracker answers in bencode, as BEP 3 clients expect
        request(node.url, "GET", "/announce?info_hash=short&peer_id=x&port=abc").body)
    assert b"failure reason" in failure
    assert index_state(node) == before


@pytest.mark.timeout(60)
def test_admin_operations_need_the_token(setup: Setup, tmp_path: Path, start_node: StartNode,
                                         pub_key: PrivateKey) -> None:
    node = setup.node
    before = index_state(node)
    for method, path in [("DELETE", f"/v1/models/{NAME}/1.0"), ("DELETE", f"/v1/models/{NAME}")]:
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN},
                        {"Authorization": f"Basic {base64.b64encode(ADMIN.encode()).decode()}"},
                        {"Authorization": "Bearer "}]:
            answer = request(node.url, method, path, headers=headers)
            error = assert_refused(answer, 401, "admin")
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert ADMIN not in error["message"]
    assert index_state(node) == before

    auth = {"Authorization": f"Bearer {ADMIN}"}
    yanked = request(node.url, "DELETE", f"/v1/models/{NAME}/1.0", headers=auth)
    assert yanked.status == 200 and yanked.json() == {"ref": REF, "yanked": True}
    assert setup.registry.search() == []  # not listed any more ...
    assert setup.registry.envelope(NAME, "1.0").digest == setup.release.envelope.digest  # ... still fetchable
    removed = request(node.url, "DELETE", f"/v1/models/{NAME}", headers=auth)
    assert removed.status == 200 and removed.json() == {"name": NAME, "removed_versions": 1,
                                                        "frees_after_seconds": 86400.0}  # the default grace
    assert_refused(request(node.url, "GET", f"/v1/models/{NAME}"), 404)
    assert_refused(request(node.url, "GET", f"/v1/models/{NAME}/1.0/envelope"), 404)
    assert_refused(request(node.url, "DELETE", f"/v1/models/{NAME}", headers=auth), 404)
    digest = setup.release.envelope.digest
    first = sorted(setup.release.files)[0]
    torrent_name = Manifest.from_payload(setup.release.envelope.payload).torrent_name
    assert_refused(request(node.url, "GET", f"/webseed/{digest}/{torrent_name}/{first}"), 404)

    # Removal outlives a restart (the node indexes its vault when it starts) ...
    node.close()
    node = start_node(node.home, admin_token=ADMIN)
    assert_refused(request(node.url, "GET", f"/v1/models/{NAME}"), 404)
    assert RegistryClient(node.url).search() == []
    # ... and re-pushing the public envelope and bytes does not undo it (see
    # test_registry_attacks.py for the admin lifting it).
    with pytest.raises(RemovedError, match="removed"):
        RegistryClient(node.url).push(setup.release.envelope, setup.release.snapshot)
    assert RegistryClient(node.url).search() == []

    # A node without an admin token has no admin operations at all.
    other = start_node(make_home(tmp_path / "no-admin", policy((pub_key, "publisher"))))
    RegistryClient(other.url).push(setup.release.envelope, setup.release.snapshot)
    assert_refused(request(other.url, "DELETE", f"/v1/models/{NAME}/1.0", headers=auth), 403, "disabled")


@pytest.mark.timeout(60)
def test_countersignature_by_non_approver_refused(setup: Setup, pub_key: PrivateKey, p256_key: PrivateKey,
                                                  approver_key: PrivateKey, stranger_key: PrivateKey) -> None:
    node, release = setup.node, setup.release
    url = f"/v1/models/{NAME}/1.0/approvals"
    # The publisher's own signature again is nothing new (Ed25519 signatures are deterministic).
    again = Envelope(release.envelope.payload).sign(pub_key)
    assert_refused(request(node.url, "POST", url, again.to_json(), headers=JSON), 403, "new signature")
    before = index_state(node)
    payload = release.envelope.payload
    answer = request(node.url, "POST", url, Envelope(payload).sign(stranger_key).to_json(), headers=JSON)
    assert_refused(answer, 403, "expected at least one new signature", "key not in the local trust policy")
    unsigned = Envelope(payload)
    assert_refused(request(node.url, "POST", url, unsigned.to_json(), headers=JSON), 403, "new signature")
    bad_sig = Envelope(payload, signatures=(Signature(approver_key.key_id, b"\x00" * 64),))
    assert_refused(request(node.url, "POST", url, bad_sig.to_json(), headers=JSON), 403, "does not verify")
    other_payload = payload.replace(b'"1.0"', b'"1.1"', 1)
    answer = request(node.url, "POST", url, Envelope(other_payload).sign(approver_key).to_json(), headers=JSON)
    assert_refused(answer, 422, "stored payload")
    assert_refused(request(node.url, "POST", f"/v1/models/{NAME}/9.9/approvals",
                           Envelope(payload).sign(approver_key).to_json(), headers=JSON), 404)
    assert index_state(node) == before

    # A second trusted publisher's signature counts as what it is: a co-publisher, not an approval.
    cosigned = setup.registry.approve(NAME, "1.0", Envelope(payload).sign(p256_key))
    assert cosigned["verdict"]["approvers"] == 0 and cosigned["verdict"]["publishers"] == 2
    result = setup.registry.approve(NAME, "1.0", Envelope(payload).sign(approver_key))
    assert result["verdict"]["approvers"] == 1 and result["verdict"]["publishers"] == 2
    listed = setup.registry.search()
    assert listed[0]["approver_keys"] == [approver_key.key_id]
    served = setup.registry.envelope(NAME, "1.0")  # the countersignatures are served with the envelope
    assert {s.keyid for s in served.signatures} == {pub_key.key_id, p256_key.key_id, approver_key.key_id}
    detail = request(node.url, "GET", f"/v1/models/{NAME}/1.0").json()
    assert detail["verdict"]["approvers"] == 1


# ---- web seed only ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_pull_from_web_seed_only(tmp_path: Path, start_node: StartNode, publisher: Client,
                                 pub_key: PrivateKey) -> None:
    release = publish(publisher, tmp_path, pub_key, NAME)
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))), seed=False)
    registry = RegistryClient(node.url)
    assert registry.push(release.envelope, release.snapshot)["status"] == "published"
    assert node.node.swarm is None

    with receiver(tmp_path / "receiver", (pub_key, "publisher")) as client:
        ref, envelope = resolve(client, registry, REF)
        torrent = registry.torrent(NAME, "1.0")
        report = pull(client, ref, envelope, torrent=torrent, config=SwarmConfig(), timeout=PULL_TIMEOUT)
        stats = report.stats
        assert stats.from_web > 0 and stats.from_seeds == 0 and stats.from_peers == 0, stats
        assert_holds(client, release)
    webseed = [p for m, p in node.requests if p.startswith("/webseed/")]
    assert webseed and all(p.startswith(f"/webseed/{envelope.digest}/") for p in webseed)
    wait_for(lambda: ("GET", "/announce") in node.requests, 10, "an announce to the node's tracker (no peers)")


# ---- description and liveness ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_openapi_describes_every_route(setup: Setup) -> None:
    answer = request(setup.node.url, "GET", "/openapi.json")
    assert answer.status == 200 and answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    assert doc["openapi"].startswith("3.")
    # The web pages (routes named PAGE...) are HTML for people, not the API the document describes.
    routes = {(r.resource.canonical, r.method.lower()) for r in create_app(NodeConfig()).router.routes()
              if r.method != "HEAD" and r.resource is not None and not (r.resource.name or "").startswith(PAGE)}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes == set(), "/openapi.json documents routes that do not exist"

    health = request(setup.node.url, "GET", "/health")
    assert health.status == 200 and health.json() == {"status": "ok"}
    wrong = request(setup.node.url, "POST", "/health")
    assert_refused(wrong, 405)
