"""Issue 10: no server needed. A private DHT of 6 real libtorrent nodes on 127.0.0.1, no
registry running: heads found in the DHT (BEP 44 pointers under the publisher's key),
envelopes fetched from the swarm (cards), magnet links. Seeds and pullers are `seedvault`
child processes, as a user runs them; the DHT's plain nodes are in-process sessions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import ok, refused, run
from swarm_helpers import Child, Published, new_peer, publish, publish_generated

from seedvault.client import Client
from seedvault.discovery import DhtSource, Pointer, head_salt
from seedvault.errors import SeedvaultWarning
from seedvault.p2p import Swarm, SwarmConfig, format_endpoint, parse_endpoint
from seedvault.p2p import dht as dht_items
from seedvault.signing import PrivateKey
from seedvault.sources import take_heads

NODES = 6
Spawn = Callable[..., Child]


@pytest.fixture(scope="module")
def private_dht() -> Iterator[list[str]]:
    """Six DHT nodes on 127.0.0.1 that know each other; the seeds and clients join through them."""
    first = Swarm(SwarmConfig(extra={"enable_dht": True}))
    nodes = [first]
    try:
        for _ in range(NODES - 1):
            nodes.append(Swarm(SwarmConfig(dht_nodes=(first.endpoint,))))
        for node in nodes[1:]:
            first.session.add_dht_node(node.endpoint)
        for node in nodes:
            node.wait_for_dht()
        yield [format_endpoint(n.endpoint) for n in nodes]
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def released(tmp_path: Path, pub_key: PrivateKey) -> tuple[Published, Path]:
    """acme/swarm@1.0 (4 MB) published, and the publisher's key as a file for the CLI."""
    published = publish_generated(tmp_path / "pub", pub_key, 4, piece_length=1 << 18)
    key_file = tmp_path / "acme.key"
    pub_key.save(key_file)
    return published, key_file


def start_seed(spawn: Spawn, home: Path, dht: list[str], *extra: str) -> Child:
    seed = spawn(home, "seed", "--dht-node", dht[0], "--json", "--announce-every", "2", *extra)
    doc = seed.next_doc(30)
    assert doc.get("seeding"), doc
    return seed


def wait_announced(seed: Child, what: str, timeout: float = 40) -> dict[str, object]:
    """The seed's next "announced" report that names WHAT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = seed.next_doc(max(1.0, deadline - time.monotonic()))
        if any(what in entry for entry in doc.get("announced", [])):  # type: ignore[union-attr]
            return doc
    raise AssertionError(f"{what} was never announced: {seed.describe()}")


def pull_by_name(spawn: Spawn, home: Path, dht: list[str], ref: str, *extra: str) -> Child:
    return spawn(home, "pull", ref, "--dht-node", dht[3], "--json", "--timeout", "60", *extra)


def test_fresh_client_pulls_by_name_with_no_server(tmp_path: Path, spawn: Spawn, private_dht: list[str],
                                                   released: tuple[Published, Path], pub_key: PrivateKey) -> None:
    published, key_file = released
    seed = start_seed(spawn, published.home, private_dht, "--key", str(key_file))
    wait_announced(seed, "acme/swarm head")
    home = new_peer(tmp_path / "client", pub_key)  # trusts the publisher's key; knows nothing else
    child = pull_by_name(spawn, home, private_dht, "acme/swarm")
    report = child.next_doc(70)
    assert child.wait(10) == 0, child.describe()
    assert report["ref"] == "acme/swarm@1.0" and report["digest"] == published.envelope.digest, report
    assert report["done"] == report["total"] == published.manifest.total_size
    with Client(home) as client:
        client.verify("acme/swarm@1.0", fast=False)
        current = client.current_head("acme/swarm")
        assert current is not None and current.head.latest_version == "1.0"  # the head came along
    # A version asked by name is found by its own pointer.
    other = new_peer(tmp_path / "client2", pub_key)
    child = pull_by_name(spawn, other, private_dht, "acme/swarm@1.0")
    assert child.next_doc(70)["ref"] == "acme/swarm@1.0"
    assert child.wait(10) == 0, child.describe()


def test_newer_version_and_a_later_yank_are_found(tmp_path: Path, spawn: Spawn, private_dht: list[str],
                                                  released: tuple[Published, Path], pub_key: PrivateKey) -> None:
    published, key_file = released
    seed = start_seed(spawn, published.home, private_dht, "--key", str(key_file))
    wait_announced(seed, "acme/swarm head")
    home = new_peer(tmp_path / "client", pub_key)
    child = pull_by_name(spawn, home, private_dht, "acme/swarm")
    assert child.next_doc(70)["ref"] == "acme/swarm@1.0"
    assert child.wait(10) == 0, child.describe()

    # The publisher releases 2.0 while the seed runs: the seed takes it up and announces it.
    newer = publish(published.home, published.snapshot, pub_key, "acme/swarm", "2.0", 1 << 18,
                    tmp_path / "v2.json")
    wait_announced(seed, "acme/swarm@2.0")
    wait_announced(seed, "acme/swarm head")
    child = pull_by_name(spawn, home, private_dht, "acme/swarm")
    report = child.next_doc(70)
    assert child.wait(10) == 0, child.describe()
    assert report["ref"] == "acme/swarm@2.0" and report["digest"] == newer.envelope.digest, report

    # Then yanks it: the next round announces the new head, and a client that refreshes
    # from the DHT refuses to load 2.0, with the reason.
    ok(published.home, "yank", "acme/swarm@2.0", "--reason", "weights corrupted in conversion", "--key", key_file)
    wait_announced(seed, "acme/swarm head")
    shown = ok(home, "head", "acme/swarm", "--dht-node", private_dht[4], "--json").json()
    assert [y["version"] for y in shown["yanked"]] == ["2.0"], shown
    r = run(home, "verify", "acme/swarm@2.0")
    assert "yanked" in r.out + r.err
    with Client(home) as client:
        from seedvault.errors import YankedError

        with pytest.raises(YankedError, match="weights corrupted in conversion"):
            client.snapshot_path("acme/swarm@2.0")
        assert client.resolve("acme/swarm").manifest.version == "1.0"  # NS/NAME skips the yanked


def test_item_under_another_key_is_ignored(tmp_path: Path, spawn: Spawn, private_dht: list[str],
                                           released: tuple[Published, Path], pub_key: PrivateKey) -> None:
    """Mallory publishes her own acme/swarm and announces it under her key in the same DHT;
    a client that trusts Acme never looks under her key, and ends with Acme's release."""
    published, key_file = released
    mallory = PrivateKey.generate()
    fake = publish(tmp_path / "mallory", published.snapshot, mallory, "acme/swarm", "9.0", 1 << 18,
                   tmp_path / "fake.json")  # Mallory's home trusts Mallory (swarm_helpers.publish)
    mallory_key = tmp_path / "mallory.key"
    mallory.save(mallory_key)
    evil = start_seed(spawn, fake.home, private_dht, "--key", str(mallory_key))
    wait_announced(evil, "acme/swarm head")
    seed = start_seed(spawn, published.home, private_dht, "--key", str(key_file))
    wait_announced(seed, "acme/swarm head")
    home = new_peer(tmp_path / "client", pub_key)
    child = pull_by_name(spawn, home, private_dht, "acme/swarm")
    report = child.next_doc(70)
    assert child.wait(10) == 0, child.describe()
    assert report["ref"] == "acme/swarm@1.0" and report["digest"] == published.envelope.digest
    # A client trusting nobody finds nothing to take, and says so.
    nobody = tmp_path / "nobody"
    r = refused(nobody, 4, "pull", "acme/swarm", "--dht-node", private_dht[2], "--timeout", "20")
    assert "acme/swarm" in r.err


def test_replayed_older_item_and_expired_head_refused(tmp_path: Path, private_dht: list[str],
                                                      released: tuple[Published, Path], pub_key: PrivateKey) -> None:
    """The DHT holds an older signed pointer (replayed) or one past its expiry: the client
    keeps its newer head; under --fresh-heads an expired head is refused."""
    published, _key_file = released
    with Client(published.home) as client:
        first = client.current_head("acme/swarm")
        assert first is not None
    node = parse_endpoint(private_dht[1])
    with Swarm(SwarmConfig(dht_nodes=(node,))) as swarm, Client(published.home) as client:
        from seedvault.discovery import Announcer

        announcer = Announcer(client, swarm, [pub_key])
        report = announcer.run(["acme/swarm@1.0"])
        assert any("head" in p for p in report.put), report
        head_value = dht_items.get_item(swarm, dht_items.raw_public_key(pub_key.public), head_salt("acme/swarm"))
        assert head_value is not None
        old = Pointer.decode(head_value.value, "test")

        # A client that already holds a newer head: the publisher refreshed it (sequence up).
        receiver = new_peer(tmp_path / "client", pub_key)
        with Client(receiver) as rc:
            rc.admit_heads(client.head_envelopes("acme/swarm"), "acme/swarm")
        client.sign_head("acme/swarm", [pub_key], lambda h: h)
        with Client(receiver) as rc:
            rc.admit_heads(client.head_envelopes("acme/swarm"), "acme/swarm")
            held = rc.heads.held("acme/swarm")
            assert held is not None and held.head.sequence > (old.sequence or 0)
            # The old pointer is what the DHT holds now (as a replay would leave it).
            dht_items.put_item(swarm, pub_key, head_salt("acme/swarm"), old.encode())
            with pytest.warns(SeedvaultWarning, match="replayed"):
                current = take_heads(rc, [DhtSource(rc, swarm)], "acme/swarm")
            assert current is not None and current.head.sequence == held.head.sequence

        # An expired head, and nothing fresher anywhere: warned by default, refused when required.
        client.sign_head("acme/swarm", [pub_key], lambda h: h, expires=datetime.now(UTC) + timedelta(seconds=2))
        announcer.run(["acme/swarm@1.0"])
        time.sleep(2.5)
        late = new_peer(tmp_path / "late", pub_key)
        r = run(late, "head", "acme/swarm", "--dht-node", private_dht[2], "--json")
        assert r.code == 0 and json.loads(r.out)["stale"] is True and "expired" in r.err, r
        strict = new_peer(tmp_path / "strict", pub_key)
        ok(strict, "trust", "require", "--fresh-heads")
        r = refused(strict, 3, "pull", "acme/swarm", "--dht-node", private_dht[2], "--timeout", "20")
        assert "expired" in r.err
        with Client(strict) as sc:
            assert sc.heads.held("acme/swarm") is None and not sc.vault.entries()


def test_magnet_link_and_a_forged_envelope_card(tmp_path: Path, spawn: Spawn,
                                                released: tuple[Published, Path], pub_key: PrivateKey) -> None:
    published, _key_file = released
    publish(published.home, published.snapshot, pub_key, "acme/swarm", "1.1", 1 << 18, tmp_path / "v11.json")
    seed = spawn(published.home, "seed", "--json")  # no DHT: the peer comes from the link itself
    listening = seed.next_doc(30)["listening"]

    def link(home: Path, ref: str) -> str:
        out = ok(home, "torrent", ref, "--out", tmp_path / f"{ref.replace('/', '_')}.torrent", "--json").json()
        magnet: str = out["magnet"]
        return magnet

    magnet = link(published.home, "acme/swarm@1.0")
    assert "x.envelope=urn:btmh:1220" in magnet
    home = new_peer(tmp_path / "client", pub_key)
    child = spawn(home, "pull", f"{magnet}&x.pe={listening}", "--json", "--timeout", "60")
    report = child.next_doc(70)
    assert child.wait(10) == 0, child.describe()
    assert report["ref"] == "acme/swarm@1.0" and report["digest"] == published.envelope.digest

    # Mallory seeds a card holding her own envelope of acme/swarm: the client judges the
    # envelope before asking for one model byte, and refuses it.
    mallory = PrivateKey.generate()
    fake = publish(tmp_path / "mallory", published.snapshot, mallory, "acme/swarm", "1.2", 1 << 18,
                   tmp_path / "fake.json")
    evil = spawn(fake.home, "seed", "--json")
    evil_at = evil.next_doc(30)["listening"]
    victim = new_peer(tmp_path / "victim", pub_key)
    r = refused(victim, 3, "pull", f"{link(fake.home, 'acme/swarm@1.2')}&x.pe={evil_at}", "--timeout", "30")
    assert "not in the local trust policy" in r.err, r.err
    with Client(victim) as vc:
        assert not vc.vault.entries()
        assert not list(vc.vault.incoming.iterdir())  # not one model byte was asked for

    # A link whose topic is one release and whose card is another's: refused, named.
    other_card = link(published.home, "acme/swarm@1.1").split("&x.envelope=")[1].split("&")[0]
    mixed = magnet.split("&x.envelope=")[0] + "&x.envelope=" + other_card
    r = refused(victim, 3, "pull", f"{mixed}&x.pe={listening}", "--timeout", "30")
    assert "the magnet link names torrent" in r.err and "acme/swarm@1.1" in r.err, r.err
    # A link without a card names no signed envelope: the user is told what to give.
    r = refused(victim, 2, "pull", magnet.split("&x.envelope=")[0], "--timeout", "10")
    assert "not its signed envelope" in r.err


def test_head_pointer_format_is_bounded_and_canonical() -> None:
    pointer = Pointer("acme/" + "n" * 90, "1.0.0-rc.1+" + "b" * 40, "ab" * 32, "cd" * 32, 2**40,
                      datetime(2030, 1, 1, tzinfo=UTC), "ef" * 32)
    raw = pointer.encode()
    assert len(raw) <= dht_items.MAX_ITEM_VALUE
    assert Pointer.decode(raw, "test") == pointer
    from seedvault.errors import ManifestError

    for bad in (raw + b"x", raw.replace(b"1:f", b"1:g"), b"d1:fi2ee", b"le", raw[:-1]):
        with pytest.raises(ManifestError):
            Pointer.decode(bad, "DHT item")


def test_import_files_fetched_by_another_bittorrent_client(tmp_path: Path, spawn: Spawn,
                                                           released: tuple[Published, Path],
                                                           pub_key: PrivateKey) -> None:
    """A plain libtorrent session (as another client would) downloads the .torrent `seedvault
    torrent` wrote; `import DIR --envelope FILE` then admits exactly those files, verified."""
    import libtorrent as lt

    published, _key_file = released
    seed = spawn(published.home, "seed", "--json")
    host, port = parse_endpoint(seed.next_doc(30)["listening"])
    ok(published.home, "torrent", "acme/swarm@1.0", "--out", tmp_path / "model.torrent")
    other = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                        "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
                        "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True})
    try:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(str(tmp_path / "model.torrent"))
        atp.save_path = str(tmp_path / "downloads")
        handle = other.add_torrent(atp)
        handle.connect_peer((host, port))
        deadline = time.monotonic() + 60
        while not handle.status().is_seeding and time.monotonic() < deadline:
            time.sleep(0.1)
        assert handle.status().is_seeding, handle.status().state
        other.remove_torrent(handle)
        time.sleep(0.5)
    finally:
        other.pause()
        del other
    home = new_peer(tmp_path / "receiver", pub_key)
    done = ok(home, "import", tmp_path / "downloads", "--envelope", published.envelope_path, "--json").json()
    assert done["ref"] == "acme/swarm@1.0" and done["digest"] == published.envelope.digest
    with Client(home) as client:
        client.verify("acme/swarm@1.0", fast=False)
    # A file the manifest does not list, or one changed byte: refused, and nothing enters the vault.
    root = tmp_path / "downloads" / published.manifest.torrent_name
    (root / "extra.bin").write_bytes(b"x")
    fresh = new_peer(tmp_path / "fresh", pub_key)
    r = refused(fresh, 3, "import", tmp_path / "downloads", "--envelope", published.envelope_path)
    assert "extra.bin" in r.err
    (root / "extra.bin").unlink()
    victim = next(p for p in root.rglob("*.safetensors"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    r = refused(fresh, 3, "import", tmp_path / "downloads", "--envelope", published.envelope_path)
    assert victim.name in r.err
    with Client(fresh) as client:
        assert not client.vault.entries()
