"""Issue 3: the swarm, with real libtorrent sessions on 127.0.0.1, real files, no mocks.

A publisher (module fixture) published a generated 24 MB model (2 shards, 1 MiB pieces).
Seeds and pullers are `python -m seedvault` child processes, as a user runs them, or
in-process sessions where the test must watch or steer a transfer. Every wait has a
deadline; every process, session and server is stopped in a fixture or `finally`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import PIECE, SHARD1, make_model, make_writable_and_tamper
from swarm_helpers import (
    Child,
    Published,
    WebSeed,
    Witness,
    disk_bytes,
    free_port,
    new_peer,
    publish,
    publish_generated,
    tree_bytes,
    wait_until,
    web_root,
)

from seedvault.client import Client
from seedvault.errors import IntegrityError, SignatureError, TransferError
from seedvault.hostile import CorruptPeer
from seedvault.p2p import (
    Swarm,
    SwarmConfig,
    TransferStats,
    bound_torrent,
    check_binding,
    format_endpoint,
    parse_endpoint,
    torrent_bytes,
)
from seedvault.p2p.torrent import load_torrent
from seedvault.p2p.transfer import RESUME_EVERY
from seedvault.settings import paths
from seedvault.signing import PrivateKey
from seedvault.swarming import pull, start_seeding, stored_layers

SIZE_MB = 24
SLOW = 2_000_000  # bytes/s: a seed slow enough to interrupt a pull half-way
PROCESS_TIMEOUT = 90.0

Spawn = Callable[..., Child]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, pub_key: PrivateKey) -> Published:
    return publish_generated(tmp_path_factory.mktemp("swarm"), pub_key, SIZE_MB)


def start_seed(spawn: Spawn, published: Published, *extra: str) -> tuple[Child, str]:
    seed = spawn(published.home, "seed", published.ref, "--json", *extra)
    doc = seed.next_doc(30)
    assert doc["seeding"] == [published.ref], doc
    return seed, doc["listening"]


def assert_holds_verified_copy(home: Path, published: Published) -> None:
    """The peer's vault verifies the model (full re-hash) and holds the publisher's exact bytes."""
    with Client(home) as client:
        client.verify(published.ref, fast=False)
        snapshot = client.vault.snapshot_dir(published.manifest)
        assert tree_bytes(snapshot) == published.files
        staged = list(client.vault.incoming.iterdir())
        assert not staged, f"staging left behind: {staged}"


# ---- in-process sessions ---------------------------------------------------------------


@contextmanager
def local_seed(published: Published, upload_limit: int = 0) -> Iterator[Swarm]:
    """The publisher seeding from an in-process session (so a test can change its rate)."""
    config = SwarmConfig(upload_rate_limit=upload_limit, limit_local_peers=upload_limit > 0)
    with Client(published.home) as client, Swarm(config) as swarm:
        report = start_seeding(client, swarm, [published.ref])
        assert report.seeding == [published.ref], report.refused
        yield swarm


def staging_of(home: Path, published: Published) -> Path:
    return paths(home).vault_dir / "incoming" / published.envelope.digest


def incoming_of(home: Path) -> list[str]:
    incoming = paths(home).vault_dir / "incoming"
    return sorted(p.name for p in incoming.iterdir()) if incoming.is_dir() else []


def incoming_dir(home: Path) -> Path:
    return paths(home).vault_dir / "incoming"


def resume_overrides_sources(home: Path) -> bool:
    """Whether the resume data a pull left would replace a torrent's trackers and web seeds."""
    import libtorrent as lt

    saved = list(incoming_dir(home).glob("*.resume"))
    assert len(saved) == 1, saved
    flags = lt.read_resume_data(saved[0].read_bytes()).flags
    return bool(flags & lt.torrent_flags.override_web_seeds and flags & lt.torrent_flags.override_trackers)


def snapshots_of(home: Path) -> list[str]:
    snapshots = paths(home).vault_dir / "snapshots"
    return sorted(p.relative_to(snapshots).as_posix() for p in snapshots.rglob("*")) if snapshots.is_dir() else []


# ---- 1 seed + 3 leechers ---------------------------------------------------------------


@pytest.mark.timeout(150)
def test_three_leechers_share_with_each_other(tmp_path: Path, spawn: Spawn, published: Published,
                                              pub_key: PrivateKey) -> None:
    # The seed uploads at most 5 MB/s, so three copies take >= 15 s from it alone: peers must trade.
    _seed, seed_at = start_seed(spawn, published, "--upload-limit", "5000000")
    ports = [free_port() for _ in range(3)]
    homes = [new_peer(tmp_path / f"peer{i}", pub_key) for i in range(3)]
    pullers = []
    start = time.monotonic()
    for home, port in zip(homes, ports, strict=True):
        others = [a for p in ports if p != port for a in ("--peer", f"127.0.0.1:{p}")]
        pullers.append(spawn(home, "pull", published.ref, "--envelope", str(published.envelope_path),
                             "--peer", seed_at, *others, "--listen", f"127.0.0.1:{port}", "--seed", "--json",
                             "--timeout", str(PROCESS_TIMEOUT)))
    reports = [p.next_doc(PROCESS_TIMEOUT + 10) for p in pullers]
    wall = time.monotonic() - start
    summary = [{k: r[k] for k in ("from_seeds", "from_peers", "uploaded", "downloaded", "elapsed")}
               for r in reports]
    for home, report in zip(homes, reports, strict=True):
        assert report["already_present"] is False and report["resumed"] == 0
        assert report["done"] == report["total"] == published.manifest.total_size
        assert_holds_verified_copy(home, published)
    # Leechers uploaded to each other: both sides of the ledger say so.
    assert sum(r["uploaded"] for r in reports) > 0, summary
    assert sum(r["from_peers"] for r in reports) > 0, summary
    print(f"\n3 leechers done in {wall:.1f} s: {summary}")


# ---- trust comes first -----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_untrusted_envelope_downloads_nothing(tmp_path: Path, spawn: Spawn, published: Published,
                                              pub_key: PrivateKey, stranger_key: PrivateKey) -> None:
    # The witness is the only "peer": a pull that got past the trust check would connect to it.
    witness = Witness()
    try:
        home = new_peer(tmp_path / "stranger", stranger_key)  # trusts another key for acme/*
        with Client(home) as client, pytest.raises(SignatureError, match="trusted publisher keys"):
            pull(client, published.ref, published.envelope, peers=[witness.endpoint], config=SwarmConfig(),
                 timeout=20)
        child = spawn(home, "pull", published.ref, "--envelope", str(published.envelope_path),
                      "--peer", format_endpoint(witness.endpoint), "--json", "--timeout", "20")
        assert child.wait(30) == 3, child.describe()
        errors = "\n".join(child.stderr)
        error = json.loads([line for line in child.stderr if line][-1])["error"]  # --json: the error is JSON
        assert error["type"] == "SignatureError" and error["exit_code"] == 3, errors
        assert "trusted publisher keys" in error["message"] and "Traceback" not in errors, errors
        assert witness.connections(wait=1.0) == 0
        assert incoming_of(home) == [] and snapshots_of(home) == []

        # Control: the same pull by a peer that trusts the publisher does knock on the witness.
        trusted = new_peer(tmp_path / "trusted", pub_key)
        with Client(trusted) as client, pytest.raises(TransferError, match="timed out"):
            pull(client, published.ref, published.envelope, peers=[witness.endpoint], config=SwarmConfig(),
                 timeout=2)
        assert witness.connections(wait=1.0) >= 1
    finally:
        witness.close()


@pytest.mark.timeout(60)
def test_torrent_not_matching_manifest_refused(tmp_path: Path, published: Published, pub_key: PrivateKey) -> None:
    manifest = published.manifest
    good = bound_torrent(manifest)
    check_binding(good, manifest)  # the derived torrent binds

    # Another release's torrent (same files, other version): the info-hash differs.
    other = dataclasses.replace(manifest, version="2.0")
    other_bytes = torrent_bytes(other)
    with pytest.raises(IntegrityError, match=f"expected v2 info-hash {manifest.torrent.info_hash_v2}") as info:
        check_binding(load_torrent(other_bytes), manifest)
    assert info.value.found == str(load_torrent(other_bytes).info_hashes().v2)

    # Same info-hash pinned, but the manifest lists another pieces root for a file (the
    # binding check does not rely on the info-hash alone), or another size.
    first = manifest.files[0]
    bad_root = dataclasses.replace(manifest, files=(dataclasses.replace(first, pieces_root="ab" * 32),
                                                    *manifest.files[1:]))
    with pytest.raises(IntegrityError, match=f"file {first.path!r}: expected") as info:
        check_binding(good, bad_root)
    assert info.value.path == first.path and info.value.expected == "ab" * 32 and info.value.found == first.pieces_root
    bad_size = dataclasses.replace(manifest, files=(dataclasses.replace(first, size=first.size + 1),
                                                    *manifest.files[1:]))
    with pytest.raises(IntegrityError, match="bytes with pieces root"):
        check_binding(good, bad_size)

    # pull refuses a supplied torrent that does not match, before any connection or staging.
    witness = Witness()
    try:
        home = new_peer(tmp_path / "peer", pub_key)
        with Client(home) as client:
            with pytest.raises(IntegrityError, match="expected v2 info-hash"):
                pull(client, published.ref, published.envelope, torrent=other_bytes, peers=[witness.endpoint],
                     config=SwarmConfig(), timeout=20)
            with pytest.raises(TransferError, match=r"expected a BitTorrent v2 \.torrent"):
                pull(client, published.ref, published.envelope, torrent=b"d4:infoi3ee", peers=[witness.endpoint],
                     config=SwarmConfig(), timeout=20)
            # An envelope for another model than the one asked for is a substitution.
            for asked in ("acme/other@1.0", "acme/swarm@2.0", "acme/other"):
                with pytest.raises(IntegrityError, match=f"asked for {asked}, but the envelope is for acme/swarm@1.0"):
                    pull(client, asked, published.envelope, peers=[witness.endpoint], config=SwarmConfig(),
                         timeout=20)
        assert witness.connections(wait=0.5) == 0
        assert incoming_of(home) == [] and snapshots_of(home) == []
    finally:
        witness.close()


# ---- hostile and failing peers ---------------------------------------------------------


@pytest.mark.timeout(120)
def test_corrupt_peer_banned_pull_completes_from_good_peer(tmp_path: Path, published: Published,
                                                           pub_key: PrivateKey) -> None:
    with Client(published.home) as client:
        layers = stored_layers(client, published.manifest)
    bad = CorruptPeer(published.manifest, published.snapshot, tmp_path, layers)
    bad_at = format_endpoint(bad.endpoint)
    try:
        # The good seed is slow (8 MB/s), so the fast corrupt peer gets asked for pieces.
        with local_seed(published, upload_limit=8_000_000) as good:
            home = new_peer(tmp_path / "victim", pub_key)
            with Client(home) as client:
                report = pull(client, published.ref, published.envelope, peers=[bad.endpoint, good.endpoint],
                              config=SwarmConfig(), timeout=90)
    finally:
        bad.close()
    s = report.stats
    assert s.hash_failures > 0, s
    assert s.banned == [bad_at], s
    assert s.from_seeds > 0 and s.done == s.total == published.manifest.total_size, s
    # Shares never exceed what this run fetched (blocks are counted when requested).
    assert s.from_seeds + s.from_peers + s.from_web <= s.done - s.resumed, s
    assert_holds_verified_copy(home, published)


@pytest.mark.timeout(150)
def test_pull_killed_half_way_resumes(tmp_path: Path, spawn: Spawn, published: Published,
                                      pub_key: PrivateKey) -> None:
    total = published.manifest.total_size
    home = new_peer(tmp_path / "peer", pub_key)
    staging = staging_of(home, published)
    with local_seed(published, upload_limit=SLOW) as seed:  # ~12 s for the whole model
        child = spawn(home, "pull", published.ref, "--envelope", str(published.envelope_path),
                      "--peer", format_endpoint(seed.endpoint), "--json", "--timeout", "120")
        wait_until(lambda: staging.is_dir() and disk_bytes(staging) > 0, 30, "the first bytes in staging")
        first_bytes = time.monotonic()
        # Half-way, and after at least one resume-data save (every RESUME_EVERY s).
        wait_until(lambda: disk_bytes(staging) >= 0.4 * total and time.monotonic() - first_bytes > RESUME_EVERY + 1,
                   60, "40% of the model in staging")
        assert child.proc.poll() is None, child.describe()
        on_disk = disk_bytes(staging)
        child.signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        assert on_disk < total, "the pull finished before it was killed; slow the seed down"
        assert snapshots_of(home) == []  # nothing unverified became visible

        seed.session.apply_settings({"upload_rate_limit": 0})
        with Client(home) as client:
            report = pull(client, published.ref, published.envelope, peers=[seed.endpoint], config=SwarmConfig(),
                          timeout=60)
    s = report.stats
    numbers = f"on disk at kill {on_disk}, total {total}, second run: {s}"
    print(f"\nkill -9 then resume: {numbers}")
    assert report.already_present is False
    assert s.resumed > 0, numbers
    assert s.downloaded <= total - s.resumed + 0.15 * total, numbers
    assert s.resumed + s.downloaded >= total, numbers
    # What a kill -9 costs is what arrived since the last resume-data save (RESUME_EVERY s).
    lost = on_disk - s.resumed
    assert lost <= (RESUME_EVERY + 2) * SLOW + 2 * published.manifest.torrent.piece_length, numbers
    assert_holds_verified_copy(home, published)
    assert incoming_of(home) == []  # staging and resume data removed after the move


@pytest.mark.timeout(120)
def test_seed_stops_mid_transfer_web_seed_completes(tmp_path: Path, spawn: Spawn, published: Published,
                                                    pub_key: PrivateKey) -> None:
    root = web_root(tmp_path / "webroot", published.manifest, published.snapshot)
    seed, seed_at = start_seed(spawn, published, "--upload-limit", "4000000")
    home = new_peer(tmp_path / "peer", pub_key)
    stopped_at: list[int] = []
    some = 2 * published.manifest.torrent.piece_length
    # HTTP holds its answers until the seed is gone, so what arrives before came from the seed.
    with WebSeed(root, gate_open=False) as http:

        def on_status(stats: TransferStats) -> None:
            if not stopped_at and stats.done >= some:
                stopped_at.append(stats.done)
                seed.signal(signal.SIGTERM)
                http.open()

        with Client(home) as client:
            report = pull(client, published.ref, published.envelope, peers=[parse_endpoint(seed_at)],
                          web_seeds=[http.url], config=SwarmConfig(), timeout=90, on_status=on_status)
        assert seed.wait(10) == 0, seed.describe()
        assert http.ranged > 0
    s = report.stats
    assert stopped_at and some <= stopped_at[0] < s.total, (stopped_at, s)
    assert s.from_web > 0 and s.from_seeds > 0, s
    assert s.from_seeds + s.from_peers + s.from_web <= s.done - s.resumed, s
    assert_holds_verified_copy(home, published)


# ---- discovery -------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_leecher_finds_seed_through_private_dht(tmp_path: Path, spawn: Spawn, published: Published,
                                                pub_key: PrivateKey) -> None:
    # Three DHT nodes on loopback: a plain bootstrap node here, the seed, the leecher. The
    # leecher is given no peer address at all.
    with Swarm(SwarmConfig(extra={"enable_dht": True})) as bootstrap:
        node = format_endpoint(bootstrap.endpoint)
        _seed, _ = start_seed(spawn, published, "--dht-node", node)
        home = new_peer(tmp_path / "peer", pub_key)
        child = spawn(home, "pull", published.ref, "--envelope", str(published.envelope_path),
                      "--dht-node", node, "--json", "--timeout", "75")
        report = child.next_doc(85)
        assert child.wait(10) == 0, child.describe()
    assert report["done"] == report["total"] == published.manifest.total_size, report
    assert report["from_seeds"] > 0 and report["resumed"] == 0, report
    assert_holds_verified_copy(home, published)


@pytest.mark.timeout(90)
def test_leecher_finds_seed_on_the_lan(tmp_path: Path, spawn: Spawn, published: Published,
                                       pub_key: PrivateKey) -> None:
    """`--lan` (Local Service Discovery) on both sides, and no peer address: the seed is found."""
    _seed, _ = start_seed(spawn, published, "--lan")
    home = new_peer(tmp_path / "peer", pub_key)
    child = spawn(home, "pull", published.ref, "--envelope", str(published.envelope_path),
                  "--lan", "--json", "--timeout", "75")
    report = child.next_doc(85)
    assert child.wait(10) == 0, child.describe()
    assert report["done"] == report["total"] == published.manifest.total_size, report
    assert_holds_verified_copy(home, published)


# ---- seeding ---------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_seed_refuses_damaged_snapshots_and_serves_the_rest(tmp_path: Path, spawn: Spawn,
                                                            pub_key: PrivateKey) -> None:
    pub_home = tmp_path / "publisher"
    releases = {}
    for i, short in enumerate(("damaged", "incomplete", "intact")):
        make_model(tmp_path / short, seed=i)
        releases[short] = publish(pub_home, tmp_path / short, pub_key, f"acme/{short}", "1.0", PIECE,
                                  tmp_path / f"{short}.json")
    damaged, incomplete, intact = releases["damaged"], releases["incomplete"], releases["intact"]
    # One flipped byte, mtime restored (the fast path must still notice); one file deleted.
    make_writable_and_tamper(damaged.snapshot / SHARD1, 100, keep_mtime=True)
    incomplete.snapshot.chmod(0o755)
    (incomplete.snapshot / "config.json").unlink()

    with Client(pub_home) as client, Swarm(SwarmConfig()) as swarm:
        report = start_seeding(client, swarm)
    assert report.seeding == [intact.ref]
    reasons = dict(report.refused)
    assert set(reasons) == {damaged.ref, incomplete.ref}
    assert SHARD1 in reasons[damaged.ref] and "does not match the signed manifest" in reasons[damaged.ref]
    assert "config.json" in reasons[incomplete.ref] and "missing" in reasons[incomplete.ref]

    # The command says why, keeps serving the intact model, and stops cleanly on SIGTERM.
    seed = spawn(pub_home, "seed", "--json")
    doc = seed.next_doc(30)
    assert doc["seeding"] == [intact.ref]
    assert {r["ref"] for r in doc["refused"]} == {damaged.ref, incomplete.ref}
    wait_until(lambda: sum("refusing to seed" in line for line in seed.stderr) == 2, 10, "the refusals on stderr")
    home = new_peer(tmp_path / "peer", pub_key)
    with Client(home) as client:
        pulled = pull(client, intact.ref, intact.envelope, peers=[parse_endpoint(doc["listening"])],
                      config=SwarmConfig(), timeout=30)
    assert pulled.stats.done == intact.manifest.total_size
    assert_holds_verified_copy(home, intact)
    stop = time.monotonic()
    seed.signal(signal.SIGTERM)
    assert seed.wait(10) == 0, seed.describe()
    assert time.monotonic() - stop < 5
    assert not any("Traceback" in line for line in seed.stderr), seed.describe()


@pytest.mark.timeout(90)
def test_python_api_pull_from_a_peer(tmp_path: Path, published: Published, pub_key: PrivateKey) -> None:
    """`seedvault.pull` in Python: envelope file in, verified tensors out; a second pull is a no-op."""
    import seedvault

    with local_seed(published) as seed:
        home = new_peer(tmp_path / "api", pub_key)
        report = seedvault.pull(published.ref, envelope=published.envelope_path,
                                peers=[format_endpoint(seed.endpoint)], timeout=60, home=home)
        again = seedvault.pull(published.ref, envelope=published.envelope_path,
                               peers=[format_endpoint(seed.endpoint)], timeout=60, home=home)
    assert (report.already_present, again.already_present) == (False, True)
    assert report.stats.done == published.manifest.total_size
    assert_holds_verified_copy(home, published)
    assert seedvault.load(published.ref, home=home)
    with pytest.raises(seedvault.UsageError, match="no source for the signed envelope"):
        seedvault.pull(published.ref, home=home)


@pytest.mark.timeout(150)
def test_interrupted_pull_from_torrent_sources_resumes_not_stalls(tmp_path: Path, published: Published,
                                                                  pub_key: PrivateKey) -> None:
    """A registry's torrent names its web seed inside the torrent. A pull interrupted after a
    resume-data save must find that source again on the next run (libtorrent's resume data
    would otherwise override the torrent's sources with none, and the re-run stall)."""
    total = published.manifest.total_size
    home = new_peer(tmp_path / "peer", pub_key)
    root = web_root(tmp_path / "webroot", published.manifest, published.snapshot)
    with Client(published.home) as owner:
        layers = stored_layers(owner, published.manifest)
    with WebSeed(root) as http:
        torrent = torrent_bytes(published.manifest, layers, web_seeds=[http.url])
        started = time.monotonic()

        def interrupt(stats: TransferStats) -> None:
            if stats.done >= 0.3 * total and time.monotonic() - started > RESUME_EVERY + 1:
                raise TransferError("interrupted by the test")

        slow = SwarmConfig(download_rate_limit=SLOW, limit_local_peers=True)
        with Client(home) as client, pytest.raises(TransferError, match="interrupted by the test"):
            pull(client, published.ref, published.envelope, torrent=torrent, config=slow, timeout=60,
                 on_status=interrupt)
        assert snapshots_of(home) == []
        # The precondition of the attack: the saved resume data would override the sources.
        assert resume_overrides_sources(home)
        with Client(home) as client:
            report = pull(client, published.ref, published.envelope, torrent=torrent, config=SwarmConfig(),
                          timeout=60)
    s = report.stats
    assert report.already_present is False
    assert s.from_web > 0 and s.resumed + s.downloaded >= total, s
    assert_holds_verified_copy(home, published)
    assert incoming_of(home) == []


# ---- on a terminal -----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_on_a_terminal_the_pull_bar_fits_one_line_and_seed_shows_its_activity(
        tmp_path: Path, published: Published, pub_key: PrivateKey) -> None:
    """What a person at a terminal sees: the seeder's live table per model (uploaded, ratio),
    and the puller's one-line bar, erased before the report so no bar line is left behind."""
    import threading

    from cli_helpers import in_terminal

    port = free_port()
    seeder: dict[str, tuple[int, str]] = {}
    thread = threading.Thread(target=lambda: seeder.update(shown=in_terminal(
        published.home, "seed", published.ref, "--listen", f"127.0.0.1:{port}", "--duration", "12",
        timeout=60)))
    thread.start()
    try:
        home = new_peer(tmp_path / "peer", pub_key)
        time.sleep(2)
        code, shown = in_terminal(home, "pull", published.ref, "--envelope", published.envelope_path,
                                  "--peer", f"127.0.0.1:{port}", "--timeout", "60", timeout=90)
    finally:
        thread.join(timeout=70)
    assert code == 0, shown
    bar, _, report = shown.rpartition("\x1b[2K")  # the report follows the bar's last erase
    assert report.startswith(f"pulled {published.ref}") and "━" not in report, shown[-800:]
    assert "━" in bar  # the bar was drawn ...
    for frame in bar.split("\r"):  # ... and each redraw stayed one line of at most 80 columns
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame)
        assert "\n" not in text.strip("\n") and len(text.strip()) <= 80, repr(frame)
    code, activity = seeder["shown"]
    assert code == 0, activity
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", activity)
    assert re.search(r"model\s+peers\s+upload\s+uploaded\s+ratio", plain), plain[-800:]
    # Every byte went out once (endgame may repeat a block or two): the ratio reads 1.0x.
    assert re.search(rf"{re.escape(published.ref)}\s+\d+\s+[\d.]+ \S*B/s\s+[\d.]+ [kMG]?B\s+1\.0\d", plain), \
        plain[-800:]
    assert f"stopped seeding; uploaded {published.ref}" in plain
