"""Issue 17: several registry nodes sharing one index in a real PostgreSQL.

The server is started by the test on 127.0.0.1 in a temporary data directory (see
postgres_helpers; the tests skip, saying why, where PostgreSQL cannot be started). Every
node is a real aiohttp node with its own home, vault and libtorrent session; the kill test
runs nodes as `seedvault serve` processes so that one can be SIGKILLed mid-push.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from postgres_helpers import PostgresServer
from registry_helpers import (
    NodeServer,
    Published,
    free_port,
    make_home,
    policy,
    publish,
    request,
    start,
    tree_bytes,
    wait_for,
)
from tlog_helpers import log_keys

from seedvault.client import Client
from seedvault.errors import DatabaseError, RollbackError, UsageError
from seedvault.p2p import SwarmConfig
from seedvault.registry import RegistryClient
from seedvault.registry.database import PostgresDatabase
from seedvault.registry.index import Index
from seedvault.registry.resolve import resolve
from seedvault.registry.schema import _V1, LATEST
from seedvault.signing import PrivateKey
from seedvault.swarming import pull
from seedvault.tlog.checkpoint import SignedCheckpoint, open_checkpoint
from seedvault.tlog.entry import LogEntry
from seedvault.tlog.merkle import MemoryTree, leaf_hash, root_hash, verify_consistency, verify_inclusion
from seedvault.tlog.note import ED25519, Signer, Verifier, load_or_create_signer
from seedvault.tlog.proof import TlogProof
from seedvault.tlog.store import LogStore

NAME = "acme/tiny"
ADMIN = "correct horse battery staple"
PULL_TIMEOUT = 60.0
FETCH_TIMEOUT = 90.0  # a node fetches what it lacks on its housekeeping pass (every 10 s)
NODE_START = 60.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.start_or_skip()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
def log_key(tmp_path: Path) -> Path:
    """One log key file for every node on the database: they share one log (log_key in node.toml)."""
    path = tmp_path / "shared-log.key"
    load_or_create_signer(path, "registry.test/log", ED25519)
    return path


@pytest.fixture
def approver_key() -> PrivateKey:
    return PrivateKey.generate("ed25519")


def webseed_holds(node_url: str, digest: str, release: Published, torrent_name: str) -> bool:
    """Whether the node serves the release's bytes itself (its web seed answers only for
    releases its own vault holds)."""
    path, data = next(iter(sorted(release.files.items())))
    answer = request(node_url, "GET", f"/webseed/{digest}/{torrent_name}/{path}")
    return answer.status == 200 and answer.body == data


def pull_through(node_url: str, home: Path, pub_key: PrivateKey, release: Published) -> None:
    """What a user does: resolve on that node, pull by its torrent, verify every byte."""
    registry = RegistryClient(node_url)
    with Client(make_home(home, policy((pub_key, "publisher")))) as client:
        ref, envelope = resolve(client, registry, release.name)
        assert envelope.digest == release.envelope.digest
        report = pull(client, ref, envelope, torrent=registry.torrent(release.name, release.version),
                      config=SwarmConfig(), timeout=PULL_TIMEOUT)
        assert report.stats.done == sum(len(b) for b in release.files.values())
        client.verify(ref, fast=False)
        assert tree_bytes(client.vault.snapshot_dir(client.vault.resolve(ref).manifest)) == release.files


# ---- two nodes, one database ------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_push_to_one_node_pull_through_the_other(tmp_path: Path, nodes: list[NodeServer], database_url: str,
                                                 pub_key: PrivateKey, approver_key: PrivateKey,
                                                 log_key: Path) -> None:
    trust = policy((pub_key, "publisher"), (approver_key, "approver"))
    with Client(make_home(tmp_path / "publisher", trust)) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
        a = start(nodes, make_home(tmp_path / "a", trust), database_url=database_url, admin_token=ADMIN,
                  log_key=log_key)
        b = start(nodes, make_home(tmp_path / "b", trust), database_url=database_url, admin_token=ADMIN,
                  log_key=log_key)
        ra, rb = RegistryClient(a.url), RegistryClient(b.url)
        digest = release.envelope.digest

        assert ra.push(release.envelope, release.snapshot)["status"] == "published"
        # B never received a byte of it, and lists and serves it at once.
        assert [(m["name"], m["digest"]) for m in rb.search()] == [(NAME, digest)]
        assert rb.envelope(NAME, "1.0").digest == digest
        pull_through(b.url, tmp_path / "user1", pub_key, release)

        # B then fetches the bytes from A itself: its own web seed serves them.
        detail = json.loads(request(b.url, "GET", f"/v1/models/{NAME}/1.0").body)
        assert detail["digest"] == digest and detail["statement"]["predicate"]["name"] == NAME
        tname = bdecoded_name(rb.torrent(NAME, "1.0"))
        wait_for(lambda: webseed_holds(b.url, digest, release, tname), FETCH_TIMEOUT, "node B to fetch the bytes")

        # An approval given through B is served by A ...
        approved = publisher.approve(release.ref, approver_key)
        assert rb.approve(NAME, "1.0", approved)["ref"] == release.ref
        assert approver_key.key_id in ra.search()[0]["approver_keys"]
        assert approver_key.key_id in {s.keyid for s in ra.envelope(NAME, "1.0").signatures}
        # ... a head (a yank by the publisher) accepted by A is served by B ...
        _, head = publisher.sign_head(NAME, [pub_key], lambda h: h.with_yank("1.0", "leaks training data"))
        ra.put_head(head)
        assert head.digest in {e.digest for e in rb.heads(NAME)}
        assert rb.versions(NAME)[0]["yanked_by_publisher"] == "leaks training data"
        # ... and the admin's yank on B is seen through A.
        rb.yank(NAME, "1.0", ADMIN)
        assert ra.versions(NAME)[0]["yanked_by_admin"] is True


def bdecoded_name(torrent: bytes) -> str:
    import libtorrent as lt

    return str(lt.bdecode(torrent)[b"info"][b"name"].decode())


@pytest.mark.timeout(180)
def test_substitution_through_another_node_refused(tmp_path: Path, nodes: list[NodeServer], database_url: str,
                                                   pub_key: PrivateKey, log_key: Path) -> None:
    """A second build signed as the same name@version, pushed to a node whose vault never saw
    the first: the shared index still knows, and the node refuses it before any byte."""
    trust = policy((pub_key, "publisher"))
    a = start(nodes, make_home(tmp_path / "a", trust), database_url=database_url, log_key=log_key)
    b = start(nodes, make_home(tmp_path / "b", trust), database_url=database_url, log_key=log_key)
    with Client(make_home(tmp_path / "p1", trust)) as one, Client(make_home(tmp_path / "p2", trust)) as two:
        first = publish(one, tmp_path / "1", pub_key, NAME, seed=1)
        other = publish(two, tmp_path / "2", pub_key, NAME, seed=2)
    assert first.envelope.digest != other.envelope.digest
    RegistryClient(a.url).push(first.envelope, first.snapshot)
    with pytest.raises(RollbackError, match=first.envelope.digest):
        RegistryClient(b.url).push(other.envelope, other.snapshot)
    assert [m["digest"] for m in RegistryClient(b.url).search()] == [first.envelope.digest]
    assert not list(b.node.client.vault.incoming.iterdir())  # nothing of the substitute staged


# ---- a node killed mid-push -----------------------------------------------------------------------


class NodeProcess:
    """`seedvault serve` in a process of its own (so it can be SIGKILLed), bounded, reaped."""

    def __init__(self, home: Path, database_url: str, log_key: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = home / "node.toml"
        config.write_text(f'host = "127.0.0.1"\nport = {self.port}\ndatabase_url = "{database_url}"\n'
                          f'log_key = "{log_key}"\n')
        self.log = (home / "node.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen([sys.executable, "-m", "seedvault", "--home", str(home), "serve", "--config",
                                      str(config)], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for(self._up, NODE_START, f"the node on {self.url}")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the node exited with {self.proc.returncode}")
        try:
            return request(self.url, "GET", "/health").status == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    try:
        yield started
    finally:
        for node in started:
            node.stop()


def begin_push(node_url: str, release: Published) -> tuple[str, list[dict[str, Any]]]:
    answer = request(node_url, "POST", "/v1/envelopes", release.envelope.to_json(),
                     headers={"Content-Type": "application/json"})
    assert answer.status == 202, answer.body
    body = answer.json()
    return body["upload_token"], body["needed"]


@pytest.mark.timeout(300)
def test_node_killed_mid_push_other_keeps_serving(tmp_path: Path, processes: list[NodeProcess], database_url: str,
                                                  postgres: PostgresServer, pub_key: PrivateKey,
                                                  log_key: Path) -> None:
    trust = policy((pub_key, "publisher"))
    a = NodeProcess(make_home(tmp_path / "a", trust), database_url, log_key)
    processes.append(a)
    b = NodeProcess(make_home(tmp_path / "b", trust), database_url, log_key)
    processes.append(b)
    with Client(make_home(tmp_path / "publisher", trust)) as publisher:
        kept = publish(publisher, tmp_path, pub_key, NAME, version="1.0")
        cut = publish(publisher, tmp_path, pub_key, NAME, version="2.0", seed=7)
    RegistryClient(a.url).push(kept.envelope, kept.snapshot)
    tname = bdecoded_name(RegistryClient(b.url).torrent(NAME, "1.0"))
    wait_for(lambda: webseed_holds(b.url, kept.envelope.digest, kept, tname), FETCH_TIMEOUT, "B to fetch 1.0")

    # Mid-push of 2.0 to A: one file sent whole, the next one half-way, then A is killed.
    token, needed = begin_push(a.url, cut)
    auth = {"Authorization": f"Bearer {token}"}
    first, second = needed[0]["path"], needed[1]["path"]
    done = request(a.url, "PUT", f"/v1/uploads/{cut.envelope.digest}/{first}", cut.files[first], headers=auth)
    assert done.status < 300 and done.json()["status"] == "uploading", done.body
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/v1/uploads/{cut.envelope.digest}/{second}")
        conn.putheader("Authorization", auth["Authorization"])
        conn.putheader("Content-Length", str(len(cut.files[second])))
        conn.endheaders()
        conn.send(cut.files[second][: len(cut.files[second]) // 2])
        a.kill()
    finally:
        conn.close()

    # B keeps serving: the listing (2.0 was never admitted, so it is not listed) and 1.0's
    # bytes, from B alone (A is gone).
    assert [m["version"] for m in RegistryClient(b.url).versions(NAME)] == ["1.0"]
    pull_through(b.url, tmp_path / "user", pub_key, kept)
    # The push, retried against B, completes there; nothing of A's half push is in the index.
    assert RegistryClient(b.url).push(cut.envelope, cut.snapshot)["status"] == "published"
    assert sorted(m["version"] for m in RegistryClient(b.url).versions(NAME)) == ["1.0", "2.0"]
    rows = postgres.sql("SELECT version, seq FROM releases ORDER BY seq", database_url.rsplit("/", 1)[1])
    assert [r[0] for r in rows] == ["1.0", "2.0"]  # admitted in that order, by the sequence


# ---- the index boundary -------------------------------------------------------------------------------


def test_empty_database_gets_its_schema_older_one_is_migrated(tmp_path: Path, postgres: PostgresServer,
                                                              database_url: str) -> None:
    db = database_url.rsplit("/", 1)[1]
    # An index at schema 1 (before the explicit sequence), with a release in it.
    for statement in _V1:
        postgres.sql(statement, db)
    postgres.sql("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)", db)
    postgres.sql("INSERT INTO releases (digest, name, version, created, license, publisher, publisher_keys, "
                 "approver_keys, size, text) VALUES ('d1', 'acme/old', '1.0', '2024-01-01T00:00:00Z', 'MIT', "
                 "'Acme', 'k', '', 3000000000, 'acme/old')", db)
    index = Index(tmp_path / "unused.db", database_url)
    try:
        assert postgres.sql("SELECT version FROM schema_version", db) == [(LATEST,)]
        [old] = index.search(include_yanked=True)
        assert (old.name, old.size) == ("acme/old", 3_000_000_000)  # BIGINT: a model over 2 GiB
        assert postgres.sql("SELECT seq FROM releases", db)[0][0] is not None
        assert not (tmp_path / "unused.db").exists()  # nothing went to SQLite
    finally:
        index.close()
    # Reopening changes nothing; a schema from a newer seedvault is refused, not guessed at.
    Index(tmp_path / "unused.db", database_url).close()
    postgres.sql(f"UPDATE schema_version SET version = {LATEST + 1}", db)
    with pytest.raises(UsageError, match=f"found {LATEST + 1}"):
        Index(tmp_path / "unused.db", database_url)


def test_fresh_database_two_nodes_at_once(tmp_path: Path, nodes: list[NodeServer], database_url: str,
                                          postgres: PostgresServer, pub_key: PrivateKey, log_key: Path) -> None:
    """Two nodes started together against an empty database: one creates the schema (under
    the advisory lock) and the log, the other finds them; neither fails."""
    trust = policy((pub_key, "publisher"))
    servers = [NodeServer(make_home(tmp_path / n, trust), database_url=database_url, log_key=log_key)
               for n in ("a", "b")]
    nodes.extend(servers)
    errors: list[BaseException] = []

    def run(server: NodeServer) -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(NODE_START)
    assert not errors
    assert postgres.sql("SELECT version FROM schema_version", database_url.rsplit("/", 1)[1]) == [(LATEST,)]
    for server in servers:
        assert request(server.url, "GET", "/v1/models").status == 200


def test_database_failures_are_seedvault_errors(tmp_path: Path, postgres: PostgresServer) -> None:
    # Nothing listening: a clear error naming the database (without its password).
    dead = f"postgresql://seedvault:secret@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(DatabaseError, match="unreachable") as caught:
        Index(tmp_path / "unused.db", dead)
    assert "secret" not in str(caught.value) and "***" in str(caught.value)

    url = postgres.create_database()
    index = Index(tmp_path / "unused.db", url)
    try:
        # Bad input is the caller's fault, not a driver traceback.
        with pytest.raises(UsageError, match="NUL"):
            index.search("a\x00b")
        # The database goes away under a running index: every call says so.
        postgres.drop_database(url)
        with pytest.raises(DatabaseError, match="unreachable or failed"):
            index.search()
    finally:
        index.close()


def test_node_answers_503_when_the_database_is_gone(tmp_path: Path, nodes: list[NodeServer],
                                                    postgres: PostgresServer, pub_key: PrivateKey) -> None:
    url = postgres.create_database()
    node = start(nodes, make_home(tmp_path / "a", policy((pub_key, "publisher"))), database_url=url)
    assert request(node.url, "GET", "/v1/models").status == 200
    postgres.drop_database(url)
    answer = request(node.url, "GET", "/v1/models")
    assert answer.status == 503
    assert answer.error["type"] == "DatabaseError" and "Traceback" not in answer.body.decode()


# ---- one transparency log for the nodes sharing the database ------------------------------------------


def shared_log_key(path: Path) -> Signer:
    """The log key every node of the registry is given a copy of (log_key in node.toml)."""
    return load_or_create_signer(path, "registry.test/log", ED25519)


def served_checkpoint(node_url: str, verifier: Verifier) -> SignedCheckpoint:
    answer = request(node_url, "GET", "/log/checkpoint")
    assert answer.status == 200, answer.body
    return open_checkpoint(answer.body, verifier, [], f"{node_url}/log/checkpoint")


@pytest.mark.timeout(300)
def test_two_nodes_one_log(tmp_path: Path, nodes: list[NodeServer], database_url: str, pub_key: PrivateKey) -> None:
    """Pushes to both nodes at once go into one log: both serve its checkpoint, every
    release's proof verifies against it, no index is numbered twice, sizes only grow."""
    trust = policy((pub_key, "publisher"))
    key = tmp_path / "shared-log.key"
    signer = shared_log_key(key)
    a = start(nodes, make_home(tmp_path / "a", trust), database_url=database_url, log_key=key)
    b = start(nodes, make_home(tmp_path / "b", trust), database_url=database_url, log_key=key)
    assert log_keys(a.url)["log"] == log_keys(b.url)["log"] == signer.verifier.vkey
    with Client(make_home(tmp_path / "publisher", trust)) as publisher:
        releases = [publish(publisher, tmp_path, pub_key, NAME, version=f"{n}.0", seed=n) for n in range(1, 7)]

    seen: dict[str, list[int]] = {a.url: [], b.url: []}
    done = threading.Event()

    def watch() -> None:  # the checkpoint of each node, over and over while the pushes run
        while not done.is_set():
            for url, sizes in seen.items():
                sizes.append(served_checkpoint(url, signer.verifier).checkpoint.size)

    errors: list[BaseException] = []

    def push(node_url: str, release: Published) -> None:
        try:
            assert RegistryClient(node_url).push(release.envelope, release.snapshot)["status"] == "published"
        except BaseException as exc:
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    pushers = [threading.Thread(target=push, args=((a, b)[i % 2].url, r)) for i, r in enumerate(releases)]
    for t in pushers:
        t.start()
    for t in pushers:
        t.join(PULL_TIMEOUT * 2)
    done.set()
    watcher.join(30)
    assert not errors, errors

    # One log: both nodes serve the same checkpoint, of one entry per release.
    final = served_checkpoint(a.url, signer.verifier)
    assert request(b.url, "GET", "/log/checkpoint").body == request(a.url, "GET", "/log/checkpoint").body
    assert final.checkpoint.size == len(releases)
    for sizes in seen.values():
        assert sizes == sorted(sizes) and sizes[-1] <= final.checkpoint.size  # only ever grows
    # Each release's proof, from either node, leads to that one root; no index holds two entries.
    indexes = set()
    for release in releases:
        for node_url in (a.url, b.url):
            answer = request(node_url, "GET", f"/log/proof/{release.envelope.digest}")
            assert answer.status == 200, answer.body
            proof = TlogProof.parse(answer.body, "proof")
            assert proof.checkpoint == request(node_url, "GET", "/log/checkpoint").body
            assert LogEntry.parse(proof.extra, "entry").digest == release.envelope.digest
            verify_inclusion(leaf_hash(proof.extra), proof.index, final.checkpoint.size, proof.path,
                             final.checkpoint.root)
            indexes.add((release.envelope.digest, proof.index))
    assert sorted(i for _, i in indexes) == list(range(len(releases)))


@pytest.mark.timeout(240)
def test_concurrent_appends_from_two_nodes_sequence_once(tmp_path: Path, postgres: PostgresServer,
                                                         database_url: str) -> None:
    """Two stores on their own connection pools (as two nodes have) appending at once: every
    entry at exactly one index, 0..n-1 with no gap, and every checkpoint either signed takes
    is consistent with the last (the log only grows)."""
    signer = shared_log_key(tmp_path / "log.key")
    stores = [LogStore(PostgresDatabase(database_url), signer) for _ in range(2)]
    batches, per_batch = 30, 3
    errors: list[BaseException] = []

    def append(n: int, store: LogStore) -> None:
        try:
            for i in range(batches):
                store.append([LogEntry("release", NAME, f"{n}.{i}.{j}", f"{n:02x}{i:030x}{j:032x}", "0" * 64, (), 1)
                              for j in range(per_batch)])
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=append, args=(n, s)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        db = database_url.rsplit("/", 1)[1]
        rows = postgres.sql("SELECT idx, data FROM log_entries ORDER BY idx", db)
        total = 2 * batches * per_batch
        assert [r[0] for r in rows] == list(range(total))
        blobs = [data for _, data in rows if isinstance(data, bytes)]  # BYTEA: bytes
        assert len(set(blobs)) == len(rows) == total  # each entry once
        tree = MemoryTree()
        for data in blobs:
            tree.append(data)
        notes = postgres.sql("SELECT size, note FROM log_checkpoints ORDER BY size", db)
        previous = None
        for size, note in notes:
            assert isinstance(note, bytes)
            cp = open_checkpoint(note, signer.verifier, [], "stored checkpoint").checkpoint
            assert cp.size == size and cp.root == stores[0].root(cp.size)
            if previous is not None:
                verify_consistency(previous.size, cp.size, stores[1].consistency(previous.size, cp.size),
                                   previous.root, cp.root)
            previous = cp
        assert previous is not None and previous.size == total and previous.root == root_hash(tree, total)
        assert stores[0].checkpoint() == stores[1].checkpoint()
    finally:
        for store in stores:
            store.db.close()


@pytest.mark.timeout(180)
def test_node_with_another_log_key_refused(tmp_path: Path, nodes: list[NodeServer], database_url: str,
                                           pub_key: PrivateKey) -> None:
    trust = policy((pub_key, "publisher"))
    key = tmp_path / "shared-log.key"
    vkey = shared_log_key(key).verifier.vkey
    start(nodes, make_home(tmp_path / "a", trust), database_url=database_url, log_key=key)
    # Its own key (config/log.key, made at its first start): refused, naming both keys.
    with pytest.raises(UsageError, match="created with the log key") as caught:
        start(nodes, make_home(tmp_path / "b", trust), database_url=database_url)
    assert vkey in str(caught.value) and "log_key" in (caught.value.hint or "")
    # As `seedvault serve` says it: exit code 2, the reason on stderr, no traceback.
    home = make_home(tmp_path / "c", trust)
    config = home / "node.toml"
    config.write_text(f'host = "127.0.0.1"\nport = {free_port()}\ndatabase_url = "{database_url}"\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "seedvault", "--home", str(home), "serve", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=NODE_START)
    assert done.returncode == 2, done.stderr
    assert "created with the log key" in done.stderr and "Traceback" not in done.stderr
    # The same key under another file name is the same log key: accepted.
    copy = tmp_path / "copy.key"
    copy.write_bytes(key.read_bytes())
    d = start(nodes, make_home(tmp_path / "d", trust), database_url=database_url, log_key=copy)
    assert log_keys(d.url)["log"] == vkey
