"""Issue 8: attacks on a running registry node, by anyone with no key.

Real nodes (create_app behind CappedSite on 127.0.0.1), the real RegistryClient and CLI, and
hostile upstreams that are real aiohttp servers that lie. Each test asserts what a user relies
on: the status and JSON error, the bytes the web seed serves, the index left as it was.
"""

# ruff: noqa: F811 - the fixtures of test_registry.py are imported, then requested by name

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from registry_helpers import NodeServer, make_home, policy, publish, request, wait_for
from test_registry import (  # noqa: F401 - fixtures
    ADMIN,
    JSON,
    NAME,
    Setup,
    StartNode,
    assert_refused,
    begin,
    cli,
    index_state,
    publisher,
    put,
    setup,
    start_node,
)

from seedvault.client import Client
from seedvault.errors import InsufficientStorageError, RemovedError, TransferError
from seedvault.manifest import Manifest
from seedvault.registry import RegistryClient
from seedvault.signing import PrivateKey

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def raw_socket(node: NodeServer) -> socket.socket:
    host, _, port = node.url.removeprefix("http://").partition(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_status(sock: socket.socket) -> tuple[int, bytes]:
    """The status of the answer on `sock`, and what was read of it (b"" if closed unanswered)."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    return int(data[9:12]), data


class Hostile:
    """A real aiohttp server on 127.0.0.1 answering with the given handlers (a lying registry)."""

    def __init__(self, routes: list[web.RouteDef]) -> None:
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.add_routes(routes)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(self.app, handle_signals=False)
        self.url = ""

    def __enter__(self) -> Hostile:
        self.thread.start()

        async def start() -> str:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return f"http://127.0.0.1:{site.port}"

        self.url = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


# ---- 2: an upload stays writable after publication --------------------------------------------


@pytest.mark.timeout(120)
def test_second_put_after_publication_cannot_change_served_bytes(setup: Setup, pub_key: PrivateKey) -> None:
    node = setup.node
    v2 = publish(setup.publisher, setup.tmp, pub_key, NAME, version="2.0", seed=5)
    started = begin(node, v2.envelope)
    digest, token = started["digest"], started["upload_token"]
    shard = next(p for p in v2.files if p.endswith(".safetensors"))
    size = len(v2.files[shard])
    held = raw_socket(node)  # a second PUT of the shard, headers sent, body held back
    held.sendall(f"PUT /v1/uploads/{digest}/{shard} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
                 f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
    answers = [put(node, digest, path, data, token) for path, data in v2.files.items()]
    assert answers[-1].status == 201, answers[-1].body
    held.sendall(b"\xee" * size)  # junk, after publication
    status, _ = read_status(held)
    held.close()
    assert status in (0, 404), status
    name = Manifest.from_payload(v2.envelope.payload).torrent_name
    served = request(node.url, "GET", f"/webseed/{digest}/{name}/{shard}")
    assert served.status == 200 and served.body == v2.files[shard]
    with Client(node.home) as client:
        client.verify(v2.ref)


# ---- 3: uploads have no owner -------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_third_party_abort_refused(setup: Setup, pub_key: PrivateKey) -> None:
    node = setup.node
    v2 = publish(setup.publisher, setup.tmp, pub_key, NAME, version="2.0", seed=5)
    mine = begin(node, v2.envelope)
    digest, token = mine["digest"], mine["upload_token"]
    paths = list(v2.files)
    assert put(node, digest, paths[0], v2.files[paths[0]], token).status == 202
    # A third party holds the public envelope: it can open a session of its own, nothing more.
    theirs = begin(node, v2.envelope)["upload_token"]
    assert theirs != token
    answer = request(node.url, "DELETE", f"/v1/uploads/{digest}")
    assert_refused(answer, 401, "upload token")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert_refused(request(node.url, "DELETE", f"/v1/uploads/{digest}", headers={"Authorization": "Bearer x"}), 404)
    # Their abort ends their own session only.
    aborted = request(node.url, "DELETE", f"/v1/uploads/{digest}", headers={"Authorization": f"Bearer {theirs}"})
    assert aborted.status == 200 and aborted.json()["status"] == "aborted"
    bad = request(node.url, "PUT", f"/v1/uploads/{digest}/{paths[0]}", b"x",
                  headers={"Content-Type": "application/octet-stream"})
    assert_refused(bad, 401)
    assert_refused(put(node, digest, paths[0], b"x", "not-the-token"), 404)
    for path in paths[1:]:
        answer = put(node, digest, path, v2.files[path], token)
    assert answer.status == 201, answer.body
    assert [v["version"] for v in setup.registry.versions(NAME)] == ["1.0", "2.0"]


@pytest.mark.timeout(60)
def test_non_ascii_bearer_token_refused_not_500(setup: Setup) -> None:
    for value in ["Bearer \u00e9t\u00e9".encode(), b"Bearer \xff\xfe", b"Bearer \xc3"]:
        sock = raw_socket(setup.node)
        sock.sendall(b"DELETE /v1/models/acme/tiny/1.0 HTTP/1.1\r\nHost: x\r\nAuthorization: " + value
                     + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        status, data = read_status(sock)
        sock.close()
        assert status in (400, 401), data[:300]


@pytest.mark.timeout(60)
def test_push_fails_when_the_upload_is_lost(tmp_path: Path, publisher: Client, pub_key: PrivateKey) -> None:
    release = publish(publisher, tmp_path, pub_key, NAME)
    needed = [{"path": p, "size": len(b)} for p, b in release.files.items()]

    async def begin_upload(request: web.Request) -> web.Response:
        return web.json_response({"digest": release.envelope.digest, "status": "uploading", "needed": needed,
                                  "upload_token": "t0ken"}, status=202)

    async def lose(request: web.Request) -> web.Response:  # every file "received", none kept
        await request.read()
        return web.json_response({"digest": release.envelope.digest, "status": "uploading", "needed": needed},
                                 status=202)

    routes = [web.post("/v1/envelopes", begin_upload), web.put("/v1/uploads/{d}/{p:.+}", lose),
              web.delete("/v1/uploads/{d}", lose)]
    with Hostile(routes) as hostile:
        with pytest.raises(TransferError, match="expected the release published"):
            RegistryClient(hostile.url).push(release.envelope, release.snapshot)
        code, out, err = cli(publisher.paths.config_dir.parent, "push", release.ref, "--registry", hostile.url)
    assert code != 0, out
    assert "expected the release published" in err + out


# ---- 4: an admin's removal is undone by a re-push -------------------------------------------------


@pytest.mark.timeout(60)
def test_repush_of_removed_release_refused(setup: Setup) -> None:
    node, release = setup.node, setup.release
    assert request(node.url, "DELETE", f"/v1/models/{NAME}", headers=AUTH).status == 200
    before = index_state(node)
    with pytest.raises(RemovedError, match="removed"):
        setup.registry.push(release.envelope, release.snapshot)
    answer = request(node.url, "POST", "/v1/envelopes", release.envelope.to_json(), headers=JSON)
    assert_refused(answer, 410, "removed")
    assert index_state(node) == before
    assert_refused(request(node.url, "DELETE", f"/v1/removed/{NAME}"), 401)
    assert request(node.url, "DELETE", f"/v1/removed/{NAME}", headers=AUTH).json()["lifted_versions"] == 1
    assert setup.registry.push(release.envelope, release.snapshot)["status"] == "published"
    assert [m["version"] for m in setup.registry.search()] == ["1.0"]


# ---- 6: slow clients, no connection cap ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_slow_clients_cannot_starve_the_node(tmp_path: Path, start_node: StartNode, pub_key: PrivateKey,
                                              caplog: pytest.LogCaptureFixture) -> None:
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))), seed=False,
                      max_connections=8, header_timeout=2.0, body_timeout=1.0)
    slow = []
    for _ in range(40):  # five times the cap, each sending half a request head and stopping
        sock = raw_socket(node)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        slow.append(sock)
    answer = request(node.url, "GET", "/health")
    assert answer.status == 200 and answer.json() == {"status": "ok"}
    # A body that stops arriving is answered 408, and the node still serves.
    sock = raw_socket(node)
    sock.sendall(b"POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"payload")
    status, _ = read_status(sock)
    assert status == 408
    for s in [*slow, sock]:
        s.close()
    assert request(node.url, "GET", "/health").status == 200
    assert not [r for r in caplog.records if r.exc_info], "tracebacks in the node's log"


# ---- 7: the tracker is unbounded -----------------------------------------------------------------------


def _announce(node: NodeServer, info_hash: bytes, peer: int, numwant: int = 50, event: str = "started") -> Any:
    from urllib.parse import quote_from_bytes

    from registry_helpers import bdecode
    peer_id = b"-SV0001-" + peer.to_bytes(12, "big")
    query = (f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(peer_id)}&port={peer}"
             f"&left=100&event={event}&compact=1&numwant={numwant}")
    return bdecode(request(node.url, "GET", "/announce?" + query).body)


def _ports(answer: Any) -> list[int]:
    peers = answer[b"peers"]
    return [int.from_bytes(peers[i + 4:i + 6], "big") for i in range(0, len(peers), 6)]


@pytest.mark.timeout(60)
def test_tracker_flooding_refused(setup: Setup) -> None:
    node = setup.node
    refused = _announce(node, b"\x01" * 20, 7000)
    assert b"failure reason" in refused and b"serves" in refused[b"failure reason"]
    manifest = Manifest.from_payload(setup.release.envelope.payload)
    info_hash = bytes.fromhex(manifest.torrent.info_hash_v2)[:20]
    for port in range(7001, 7031):  # 30 peers from one address
        _announce(node, info_hash, port)
    answer = _announce(node, info_hash, 7100, numwant=3)
    ports = _ports(answer)
    assert len(ports) <= 3
    own = node.node.swarm.endpoint[1] if node.node.swarm else None
    others = [p for p in ports if p != own]
    assert others and all(7001 <= p <= 7100 for p in others)
    assert answer[b"incomplete"] <= 8, "one address fills the swarm"
    # Newest first: the peers seen last come before those seen first.
    assert others == sorted(others, reverse=True)


# ---- 8: no global bound on request bodies in memory --------------------------------------------------------


@pytest.mark.timeout(120)
def test_concurrent_large_posts_bounded(tmp_path: Path, start_node: StartNode, publisher: Client,
                                        pub_key: PrivateKey) -> None:
    release = publish(publisher, tmp_path, pub_key, NAME)
    mib = 1024 * 1024
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))), seed=False,
                      max_body_memory=4 * mib)
    held = []
    for _ in range(8):  # each sends all but the last byte of 1 MiB, and holds it
        sock = raw_socket(node)
        sock.sendall(b"POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n{" % mib + b" " * (mib - 2))
        held.append(sock)
    busy = []
    for sock in held:
        sock.settimeout(3)
        status, data = read_status(sock)
        if status:
            busy.append((status, data))
    # Budget is reserved as bytes arrive: at most 4 bodies of ~1 MiB fit in 4 MiB.
    assert 4 <= len(busy) < 8, [s for s, _ in busy]
    assert all(s == 503 and b"Retry-After:" in d and b"BusyError" in d for s, d in busy)
    for sock in held:
        sock.close()
    wait_for(lambda: request(node.url, "POST", "/v1/envelopes", release.envelope.to_json(),
                             headers=JSON).status == 202, 30, "the budget freed once the bodies are gone")


# ---- 9: disk full ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_disk_full_answers_507_and_keeps_nothing(tmp_path: Path, publisher: Client, pub_key: PrivateKey) -> None:
    """A real file-size limit (RLIMIT_FSIZE) on a real `seedvault serve` process: writing a
    shard fails as a full disk does."""
    from registry_helpers import free_port
    release = publish(publisher, tmp_path, pub_key, NAME)
    home = make_home(tmp_path / "node", policy((pub_key, "publisher")))
    port = free_port()
    config = tmp_path / "node.toml"
    config.write_text("seed = false\n")
    limit = 512 * 1024
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from seedvault.cli import main; sys.exit(main())")
    proc = subprocess.Popen([sys.executable, "-c", code, "--home", str(home), "serve", "--port", str(port),
                             "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return request(url, "GET", "/health").status == 200
            except OSError:
                return False
        wait_for(up, 60, "the node to start")
        with pytest.raises(InsufficientStorageError, match="507"):
            RegistryClient(url).push(release.envelope, release.snapshot)
        incoming = home / "data" if (home / "data").exists() else home
        leftovers = [p for p in incoming.rglob("*") if p.is_file() and ".upload" in p.as_posix()]
        assert leftovers == []
        with Client(home) as client:
            assert list(client.vault.entries()) == []
            assert not [p for p in client.vault.incoming.rglob("*") if p.is_file()]
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err[-2000:]


@pytest.mark.timeout(60)
def test_staging_quota_refused_with_507(tmp_path: Path, start_node: StartNode, publisher: Client,
                                        pub_key: PrivateKey) -> None:
    release = publish(publisher, tmp_path, pub_key, NAME)
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))), seed=False,
                      max_staging_bytes=1000)
    with pytest.raises(InsufficientStorageError, match="upload staging"):
        RegistryClient(node.url).push(release.envelope, release.snapshot)


@pytest.mark.timeout(60)
def test_stale_upload_staging_swept_at_start(tmp_path: Path, start_node: StartNode, pub_key: PrivateKey) -> None:
    import os
    import time
    home = make_home(tmp_path / "node", policy((pub_key, "publisher")))
    with Client(home) as client:
        incoming = client.vault.incoming
    stale, fresh = incoming / ("a" * 64 + ".0.upload"), incoming / ("b" * 64 + ".1.upload")
    for d in (stale, fresh):
        d.mkdir(parents=True)
        (d / "shard.safetensors").write_bytes(b"x" * 1000)
    old = time.time() - 7200
    for p in (stale / "shard.safetensors", stale):
        os.utime(p, (old, old))
    start_node(home, seed=False)
    assert not stale.exists() and fresh.exists()


# ---- 10: a hostile upstream -----------------------------------------------------------------------------------


def _entry(i: int) -> dict[str, Any]:
    return {"name": "acme/m", "version": f"1.{i}", "digest": f"{i:064x}", "license": "MIT", "size": 1}


@pytest.mark.timeout(60)
def test_upstream_ignoring_offset_stops(tmp_path: Path, pub_key: PrivateKey) -> None:
    async def same_page(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        return web.json_response({"models": [_entry(i) for i in range(limit)]})

    home = make_home(tmp_path / "mirror", policy((pub_key, "publisher")))
    with Hostile([web.get("/v1/models", same_page)]) as hostile:
        code, out, err = cli(home, "mirror", "--once", "--upstream", hostile.url)
    assert code == TransferError.exit_code, (code, out, err)
    assert "ignores offset" in err


@pytest.mark.timeout(60)
def test_upstream_endless_listing_bounded(tmp_path: Path) -> None:
    pages = []

    async def fresh_page(request: web.Request) -> web.Response:
        offset, limit = int(request.query.get("offset", "0")), int(request.query.get("limit", "100"))
        pages.append(offset)
        return web.json_response({"models": [_entry(offset + i) for i in range(limit)]})

    with Hostile([web.get("/v1/models", fresh_page)]) as hostile, pytest.raises(TransferError, match="at most 5 pages"):
            list(RegistryClient(hostile.url).all_releases(page=10, max_pages=5))
    assert len(pages) == 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry", [{"version": "1.0", "digest": "0" * 64},
                                   {"name": "acme/m", "version": 7, "digest": "0" * 64},
                                   {"name": "../../etc", "version": "1.0", "digest": "0" * 64},
                                   "not an object"])
def test_upstream_malformed_listing_refused(tmp_path: Path, pub_key: PrivateKey, entry: Any) -> None:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"models": [entry]})

    home = make_home(tmp_path / "mirror", policy((pub_key, "publisher")))
    with Hostile([web.get("/v1/models", listing)]) as hostile:
        code, _, err = cli(home, "mirror", "--once", "--upstream", hostile.url)
        code2, _, err2 = cli(home, "search", "--registry", hostile.url)
    assert code == TransferError.exit_code and "entry 1" in err, (code, err)
    assert code2 == TransferError.exit_code and "entry 1" in err2, (code2, err2)
    assert "Traceback" not in err + err2 and "KeyError" not in err + err2


# ---- 11: the contract ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_search_control_characters_refused(setup: Setup) -> None:
    node = setup.node
    for q in ["%00", "a%00", "%01", "%7F", "%C2%85"]:
        assert_refused(request(node.url, "GET", f"/v1/models?q={q}"), 400, "control")
    assert_refused(request(node.url, "GET", "/v1/models?publisher=%00"), 400)
    assert request(node.url, "GET", "/v1/models?q=%25").json()["models"] == []  # '%' matched literally
    assert len(request(node.url, "GET", "/v1/models?q=tiny").json()["models"]) == 1


@pytest.mark.timeout(60)
def test_method_not_allowed_names_allowed_methods(setup: Setup) -> None:
    answer = request(setup.node.url, "POST", "/health")
    assert_refused(answer, 405)
    assert "GET" in answer.headers["allow"]


@pytest.mark.timeout(120)
def test_web_seed_serves_the_file_not_its_gz_sibling(tmp_path: Path, start_node: StartNode, publisher: Client,
                                                     pub_key: PrivateKey) -> None:
    from registry_helpers import PIECE

    from seedvault.demo_model import generate_model
    source = tmp_path / "src"
    generate_model(source, 1, shards=1, seed=3)
    (source / "notes.txt").write_bytes(b"the plain file\n")
    (source / "notes.txt.gz").write_bytes(b"a different file that happens to end in .gz\n")
    admitted = publisher.publish(source, name=NAME, version="1.0", license="Apache-2.0", key=pub_key,
                                 piece_length=PIECE)
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))), seed=False)
    registry = RegistryClient(node.url)
    registry.push(admitted.envelope, admitted.snapshot)
    manifest = admitted.verdict.manifest
    answer = request(node.url, "GET", f"/webseed/{admitted.envelope.digest}/{manifest.torrent_name}/notes.txt",
                     headers={"Accept-Encoding": "gzip, br"})
    assert answer.status == 200 and answer.body == b"the plain file\n"
    assert "content-encoding" not in answer.headers


@pytest.fixture
def live_node(tmp_path: Path, start_node: StartNode, publisher: Client, pub_key: PrivateKey) -> Iterator[NodeServer]:
    release = publish(publisher, tmp_path, pub_key, NAME)
    node = start_node(make_home(tmp_path / "node", policy((pub_key, "publisher"))), seed=False, admin_token=ADMIN)
    RegistryClient(node.url).push(release.envelope, release.snapshot)
    yield node


@pytest.mark.timeout(200)
def test_schemathesis_all_checks_find_nothing(live_node: NodeServer, tmp_path: Path) -> None:
    # A syntactically valid envelope whose signature or manifest is wrong is refused 422 by
    # design: the schema cannot say what verifies. Every other check runs unchanged.
    config = tmp_path / "schemathesis.toml"
    config.write_text('[checks.positive_data_acceptance]\n'
                      'expected-statuses = ["2xx", "401", "403", "404", "409", "410", "422"]\n')
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "--config-file", str(config), "run", live_node.url + "/openapi.json", "--checks", "all",
         "--no-color", "--max-examples", "20", "--seed", "8", "--workers", "1", "--generation-database", "none",
         "--request-timeout", "30"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
