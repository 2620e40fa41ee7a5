"""Issue 8, the trust core: what every admission keeps, and what holds once a release is in.

Attacks by anyone holding a release's public envelope (no key): padding it with junk
signatures at the node, at a client's import and pull, and at an approval; racing two
substitutes for one name@version; a registry that lies about the class of its refusals.
Real nodes on 127.0.0.1, real vaults and SQLite, the real CLI.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import REF, Model, db_rows, resign, trust, write_bundle
from registry_helpers import NodeServer, make_home, policy, publish, request, start
from test_registry import cli

from seedvault.bundle import import_bundle
from seedvault.client import Client
from seedvault.errors import (
    Error,
    IntegrityError,
    NotFoundError,
    OversizeError,
    PolicyError,
    RollbackError,
    SignatureError,
    TransferError,
    VerificationError,
)
from seedvault.registry import RegistryClient
from seedvault.signing import Envelope, PrivateKey, Signature

NAME = "acme/tiny"
JSON = {"Content-Type": "application/json"}


def padded(envelope: Envelope, trusted: PrivateKey, stranger: PrivateKey, junk: int = 40) -> Envelope:
    """The attacker's envelope: the publisher's signature, then junk under the trusted key id,
    random key ids, a stranger's valid signature and the publisher's signature repeated."""
    bogus = tuple(Signature(trusted.key_id, os.urandom(64)) for _ in range(junk // 2))
    random_ids = tuple(Signature(os.urandom(32).hex(), os.urandom(64)) for _ in range(junk // 2))
    sigs = (*envelope.signatures, *bogus, *random_ids, *envelope.signatures)
    return Envelope(envelope.payload, envelope.payload_type, sigs).sign(stranger)


def home_of(client: Client) -> Path:
    assert client.home is not None
    return client.home


def keyids(envelope: Envelope) -> list[str]:
    return [s.keyid for s in envelope.signatures]


# ---- junk signatures -----------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_junk_signature_padding_at_first_push_stores_one_signature_per_key(
        tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey, stranger_key: PrivateKey) -> None:
    """The first admission at a node keeps only what verifies under a key it trusts, once;
    the release stays readable on every route and after the node restarts."""
    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
    home = make_home(tmp_path / "node", policy((pub_key, "publisher")))
    node = start(nodes, home)
    attack = padded(release.envelope, pub_key, stranger_key)
    assert len(attack.signatures) > 40
    result = RegistryClient(node.url).push(attack, release.snapshot)
    assert result["status"] == "published", result

    served = RegistryClient(node.url).envelope(NAME, "1.0")
    assert keyids(served) == [pub_key.key_id]
    assert served.payload == release.envelope.payload
    with Client(home) as client:
        assert keyids(client.vault.resolve(release.ref).envelope) == [pub_key.key_id]
    node.close()
    again = start(nodes, home)  # the node that held junk used to exit at its next start
    assert keyids(RegistryClient(again.url).envelope(NAME, "1.0")) == [pub_key.key_id]
    assert [(r["name"], r["version"]) for r in RegistryClient(again.url).search()] == [(NAME, "1.0")]


def test_junk_signature_padding_at_first_import_stores_one_signature_per_key(
        make_client: Any, publisher: Client, tmp_path: Path, pub_key: PrivateKey,
        stranger_key: PrivateKey) -> None:
    """A bundle's envelope padded with junk before the receiver ever saw the release."""
    entry = publisher.vault.resolve(REF)
    source = write_bundle(tmp_path / "bundle", padded(entry.envelope, pub_key, stranger_key),
                          publisher.vault.snapshot_dir(entry.manifest))
    receiver = make_client("receiver")
    trust(receiver, pub_key)
    import_bundle(receiver, source)
    assert keyids(receiver.vault.resolve(REF).envelope) == [pub_key.key_id]
    assert receiver.verify(REF).publishers == 1


def test_junk_signatures_offered_as_approval_never_stored(
        tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey, approver_key: PrivateKey,
        stranger_key: PrivateKey) -> None:
    """An approval carrying junk beside the approver's signature: the approver's is added,
    nothing else; junk alone is refused and leaves the stored envelope as it was."""
    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
    home = make_home(tmp_path / "node", policy((pub_key, "publisher"), (approver_key, "approver")))
    node = start(nodes, home)
    registry = RegistryClient(node.url)
    registry.push(release.envelope, release.snapshot)

    junk_only = padded(Envelope(release.envelope.payload), approver_key, stranger_key)
    with pytest.raises(PolicyError, match="expected at least one new signature"):
        registry.approve(NAME, "1.0", junk_only)
    assert keyids(registry.envelope(NAME, "1.0")) == [pub_key.key_id]

    approval = padded(Envelope(release.envelope.payload).sign(approver_key), approver_key, stranger_key)
    result = registry.approve(NAME, "1.0", approval)
    assert result["verdict"]["approvers"] == 1
    assert sorted(keyids(registry.envelope(NAME, "1.0"))) == sorted([pub_key.key_id, approver_key.key_id])


def test_damaged_stored_envelope_never_takes_down_the_vault(
        make_client: Any, publisher: Client, model: Model, tmp_path: Path, pub_key: PrivateKey) -> None:
    """One stored envelope that no longer reads (written by an older version, or damaged on
    disk): `list` still shows every other release and names the damaged one; a fresh
    import of the same release repairs it."""
    entry = publisher.vault.resolve(REF)
    source = write_bundle(tmp_path / "bundle", entry.envelope, publisher.vault.snapshot_dir(entry.manifest))
    receiver = make_client("receiver")
    trust(receiver, pub_key)
    import_bundle(receiver, source)
    second = publisher.publish(model.path, name="acme/other", version="1.0", license="Apache-2.0", key=pub_key)
    import_bundle(receiver, write_bundle(tmp_path / "bundle2", second.envelope, second.snapshot))
    with receiver.vault._tx() as db:  # white box: what an older node left on disk
        db.execute("UPDATE manifests SET envelope=? WHERE digest=?", (b'{"payload": 1', entry.digest))
    assert [e.manifest.ref for e in receiver.vault.entries()] == ["acme/other@1.0"]

    code, out, err = cli(home_of(receiver), "list")
    assert code == 0, err
    assert "acme/other@1.0" in out
    assert f"{REF}" in out and "DAMAGED" in out and "Traceback" not in out + err
    with pytest.raises(Error):
        receiver.load(REF)

    import_bundle(receiver, source)  # the verified release again: the stored envelope is repaired
    assert receiver.vault.resolve(REF).digest == entry.digest
    assert receiver.vault.damaged() == []


# ---- substitution race -------------------------------------------------------------------------


def test_two_admissions_racing_with_different_digests_one_wins(
        make_client: Any, publisher: Client, tmp_path: Path, pub_key: PrivateKey) -> None:
    """Two threads (two connections to one vault) admit two different signed manifests for
    the same name@version at once: exactly one is stored, the other is a RollbackError."""
    entry = publisher.vault.resolve(REF)
    snapshot = publisher.vault.snapshot_dir(entry.manifest)
    substitute, _ = resign(entry.manifest, pub_key, created=entry.manifest.created + timedelta(seconds=1))
    assert substitute.digest != entry.digest
    first = write_bundle(tmp_path / "a", entry.envelope, snapshot)
    second = write_bundle(tmp_path / "b", substitute, snapshot)
    receiver = make_client("receiver")
    trust(receiver, pub_key)
    home = home_of(receiver)
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, BaseException | None] = {}

    def admit(label: str, source: Path) -> None:
        with Client(home) as client:
            barrier.wait()
            try:
                import_bundle(client, source)
                outcomes[label] = None
            except BaseException as exc:
                outcomes[label] = exc

    threads = [threading.Thread(target=admit, args=(label, src)) for label, src in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["a", "b"]
    failures = [exc for exc in outcomes.values() if exc is not None]
    assert len(failures) == 1 and isinstance(failures[0], RollbackError), outcomes
    rows = db_rows(receiver, "SELECT digest FROM manifests WHERE name=? AND version=?", "acme/tiny", "1.0")
    assert len(rows) == 1
    assert rows[0][0] in (entry.digest, substitute.digest)
    receiver.verify(REF, fast=False)


# ---- errors over HTTP ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_refusals_over_http_raise_the_class_the_node_raised(
        tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey, stranger_key: PrivateKey) -> None:
    """The registry client raises exactly the class the node raised, with its message and hint."""
    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher"), (stranger_key, "publisher"),
                                                         scope="*"))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
        outsider = publish(publisher, tmp_path, stranger_key, "other/model")
    node = start(nodes, make_home(tmp_path / "node", policy((pub_key, "publisher"))))
    registry = RegistryClient(node.url)
    registry.push(release.envelope, release.snapshot)

    with pytest.raises(Error) as info:
        registry.push(outsider.envelope, outsider.snapshot)
    assert type(info.value) in (PolicyError, SignatureError)
    assert "other/model" in str(info.value)
    with pytest.raises(NotFoundError):
        registry.envelope(NAME, "9.9")
    second = publish_other_version(tmp_path, pub_key)
    forged = Envelope(second.envelope.payload, second.envelope.payload_type,
                      (Signature(pub_key.key_id, bytes(64)),))
    with pytest.raises(SignatureError):
        registry.push(forged, second.snapshot)
    manifest = release_manifest(node, release.ref)
    substitute, _ = resign(manifest, pub_key, created=manifest.created + timedelta(seconds=1))
    with pytest.raises(RollbackError) as rollback:
        registry.push(substitute, release.snapshot)
    assert rollback.value.hint
    huge = request(node.url, "POST", "/v1/envelopes", b"{" + b" " * (17 << 20) + b"}", headers=JSON)
    assert huge.status == 413 and huge.error["type"] in ("OversizeError", "HTTPRequestEntityTooLarge")


def publish_other_version(tmp_path: Path, key: PrivateKey) -> Any:
    with Client(make_home(tmp_path / "publisher2", policy((key, "publisher")))) as publisher:
        return publish(publisher, tmp_path / "v2", key, NAME, version="2.0", seed=3)


def release_manifest(node: NodeServer, ref: str) -> Any:
    with Client(node.home) as client:
        return client.vault.resolve(ref).manifest


class LyingRegistry:
    """A real aiohttp server whose every answer is a refusal of its own choosing."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def app(self) -> web.Application:
        async def answer(_: web.Request) -> web.Response:
            return web.Response(status=self.status, body=self.body, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app


@pytest.mark.parametrize(("kind", "status", "size", "expected"), [
    ("SystemExit", 403, 20_000, PolicyError),  # not seedvault's: never built from a server's word
    ("KeyboardInterrupt", 500, 20_000, TransferError),
    ("IntegrityError", 422, 20_000, IntegrityError),
    ("NoSuchClass", 409, 20_000, RollbackError),
    ("IntegrityError", 422, 5_000_000, VerificationError),  # too long to read: judged by its status
    ("deep", 404, 60_000, NotFoundError),  # not JSON seedvault reads (nested 60,000 deep): by its status
])
def test_lying_registry_cannot_choose_a_foreign_exception_class(
        kind: str, status: int, size: int, expected: type[Error], tmp_path: Path) -> None:
    """A registry's refusal is rebuilt as seedvault's class of that name, never another
    Python class; its text is cut, whatever the registry sends."""
    import asyncio


    body = (b"[" * size if kind == "deep" else
            json.dumps({"error": {"type": kind, "message": "x\x1b[2J" * (size // 5), "hint": "y" * size}}).encode())
    lying = LyingRegistry(status, body)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(lying.app(), access_log=None, handle_signals=False, shutdown_timeout=1)

    async def up() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    try:
        port = asyncio.run_coroutine_threadsafe(up(), loop).result(10)
        with pytest.raises(Error) as info:
            RegistryClient(f"http://127.0.0.1:{port}").search()
        assert type(info.value) is expected
        assert len(str(info.value)) < 10_000 and len(info.value.hint or "") < 10_000  # cut, even escaped
        assert "\x1b" not in str(info.value)  # a server's words never drive the user's terminal
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_oversize_envelope_is_one_class_everywhere(tmp_path: Path, publisher: Client) -> None:
    """An envelope past the cap is an OversizeError read from a file, a bundle or a body."""
    entry = publisher.vault.resolve(REF)
    big = tmp_path / "big.json"
    big.write_bytes(b'{"payload": "' + b"A" * (17 << 20) + b'"}')
    with pytest.raises(OversizeError):
        Envelope.from_json(big.read_bytes(), "big envelope")
    source = write_bundle(tmp_path / "bundle", entry.envelope, publisher.vault.snapshot_dir(entry.manifest))
    shutil.copyfile(big, source / "envelope.json")
    code, _out, err = cli(home_of(publisher), "import", str(source))
    assert code != 0 and "Traceback" not in err


def test_readme_error_table_is_the_hierarchy() -> None:
    """The README's table of exit codes and HTTP statuses is what the classes carry."""
    import re

    import seedvault.errors as errors

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^\| `(\w+)` \| (\d+) \| (\d+) \|", readme, re.M)}

    def hierarchy(cls: type[Error]) -> Iterator[type[Error]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from hierarchy(sub)

    actual = {c.__name__: (c.exit_code, c.http_status) for c in hierarchy(errors.Error)}
    assert rows == actual


@pytest.mark.timeout(120)
def test_heavy_junk_envelope_refused_by_size_before_any_check(
        tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey, stranger_key: PrivateKey) -> None:
    """The attack of the review: the public envelope padded with thousands of signatures
    under the trusted key id, posted as a release and as an approval. Refused 413 by count
    (in the screening process, off the node's worker), nothing stored; a killed screening
    process is replaced, and the request it had is a 503, never an unchecked admission."""
    import signal

    from seedvault.registry.app import SCREENER

    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
    home = make_home(tmp_path / "node", policy((pub_key, "publisher")))
    node = start(nodes, home)
    registry = RegistryClient(node.url)
    registry.push(release.envelope, release.snapshot)
    doc = release.envelope.to_dict()  # built by hand: seedvault itself never writes more than 64
    doc["signatures"] += [{"keyid": pub_key.key_id, "sig": base64.b64encode(os.urandom(64)).decode()}
                          for _ in range(10_000)]
    heavy = json.dumps(doc).encode()
    for path in ("/v1/envelopes", f"/v1/models/{NAME}/1.0/approvals"):
        answer = request(node.url, "POST", path, heavy, headers=JSON)
        assert answer.status == 413, answer.body[:300]
        assert answer.error["type"] == "OversizeError" and "at most 64 signatures" in answer.error["message"]
    assert keyids(registry.envelope(NAME, "1.0")) == [pub_key.key_id]

    app = node._app
    assert app is not None
    for pid in list(app[SCREENER]._pool._processes):  # white box: kill the screening process
        os.kill(pid, signal.SIGKILL)
    answers = [request(node.url, "POST", "/v1/envelopes", release.envelope.to_json(), headers=JSON).status
               for _ in range(3)]
    assert answers[-1] == 200, answers  # replaced: the release is recognized as present
    assert set(answers) <= {200, 503}, answers


def test_disk_full_while_recording_leaves_no_orphan_blob_or_snapshot(
        receiver: Client, publisher: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up as the vault records a release (after its blobs moved in): the
    import fails with the OS's words, and no blob or snapshot is left that no record names."""
    import errno

    entry = publisher.vault.resolve(REF)
    source = write_bundle(tmp_path / "bundle", entry.envelope, publisher.vault.snapshot_dir(entry.manifest))
    blobs = receiver.vault.root / "blobs"
    before = sorted(p.name for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(receiver.vault, "_record", disk_full)  # fault injection at the last step
    with pytest.raises(OSError, match="No space left"):
        import_bundle(receiver, source)
    monkeypatch.undo()
    after = sorted(p.name for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []
    assert after == before
    assert not receiver.vault.snapshot_dir(entry.manifest).exists()
    import_bundle(receiver, source)  # room again: the same import succeeds
    receiver.verify(REF, fast=False)


@pytest.mark.timeout(120)
def test_web_seed_range_requests_log_no_traceback(
        tmp_path: Path, nodes: list[NodeServer], pub_key: PrivateKey, caplog: pytest.LogCaptureFixture) -> None:
    """Every web-seed GET (libtorrent sends many) used to log an AssertionError traceback:
    a log anyone could grow. The bytes served are the release's, and the log stays quiet."""
    import logging

    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
    node = start(nodes, make_home(tmp_path / "node", policy((pub_key, "publisher"))))
    RegistryClient(node.url).push(release.envelope, release.snapshot)
    path, data = next((p, d) for p, d in release.files.items() if len(d) > 100)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            answer = request(node.url, "GET", f"/webseed/{release.envelope.digest}/{path}",
                             headers={"Range": "bytes=10-99"})
            assert answer.status == 206 and answer.body == data[10:100]
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]


@pytest.mark.timeout(120)
def test_slow_trickled_body_dropped_and_holds_no_budget(tmp_path: Path, nodes: list[NodeServer],
                                                        pub_key: PrivateKey) -> None:
    """A body that declares 16 MiB and trickles a byte at a time (under the per-read timeout)
    is answered 408 once it falls below the minimum rate, and meanwhile reserves only what
    arrived: honest envelopes posted beside four such trickles are not told the node is busy."""
    import socket
    import time

    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
    server = NodeServer(make_home(tmp_path / "node", policy((pub_key, "publisher"))), body_timeout=1.0)
    nodes.append(server)
    node = server.start()
    host, port = node.url.removeprefix("http://").split(":")
    trickles = []
    for _ in range(4):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(b"POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 16000000\r\n\r\n{")
        trickles.append(sock)
    try:
        honest = request(node.url, "POST", "/v1/envelopes", release.envelope.to_json(), headers=JSON)
        assert honest.status == 202, honest.body[:300]
        answers = []
        deadline = time.monotonic() + 30
        for sock in trickles:
            answer = b""
            while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")
                sock.settimeout(0.6)
                try:
                    answer += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
            answers.append(answer.split(b"\r\n", 1)[0])
        assert all(b" 408 " in a for a in answers), answers
    finally:
        for sock in trickles:
            sock.close()


def test_index_never_relists_a_removed_release(tmp_path: Path, nodes: list[NodeServer],
                                               pub_key: PrivateKey) -> None:
    """The index itself refuses to list what the admin removed (one statement: check and
    insert), so a mirror sync that pulled a release while it was removed cannot list it."""
    from seedvault.errors import RemovedError
    from seedvault.signing import evaluate

    with Client(make_home(tmp_path / "publisher", policy((pub_key, "publisher")))) as publisher:
        release = publish(publisher, tmp_path, pub_key, NAME)
    server = NodeServer(make_home(tmp_path / "node", policy((pub_key, "publisher"))), admin_token="t0ken")
    nodes.append(server)
    node = server.start()
    RegistryClient(node.url).push(release.envelope, release.snapshot)
    answer = request(node.url, "DELETE", f"/v1/models/{NAME}", headers={"Authorization": "Bearer t0ken"})
    assert answer.status == 200, answer.body[:300]
    with Client(node.home) as client:
        verdict = evaluate(release.envelope, client.policy)
    with pytest.raises(RemovedError, match="removed from this registry"):  # what a racing mirror would do
        node.node.index.put(verdict.manifest, verdict)
    assert RegistryClient(node.url).search() == []
