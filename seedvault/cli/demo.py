"""`seedvault demo`: the main job end to end on one machine, in a temporary directory.

A publisher publishes and seeds; N peers, each a separate process with its own vault and
trust policy, pull at once from the seed and from each other on 127.0.0.1; each verifies
and loads. Then a corrupt peer is banned, a tampered file is refused, and the release
crosses an air gap as a bundle.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from seedvault.bundle import export_bundle, import_bundle
from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.errors import Error
from seedvault.hostile import CorruptPeer
from seedvault.manifest import Manifest
from seedvault.p2p import SwarmConfig, parse_endpoint
from seedvault.signing import Envelope, PrivateKey, TrustedKey, TrustPolicy
from seedvault.swarming import pull, stored_layers

T = TypeVar("T")
REF = "acme/demo@1.0.0"
PROCESS_TIMEOUT = 300.0


def _step(label: str, action: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = action()
    click.echo(f"  {label:<62} {time.perf_counter() - start:6.2f} s")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Child:
    """A `seedvault` subprocess whose stdout JSON documents are read without blocking."""

    def __init__(self, home: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seedvault", "--home", str(home), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._docs: queue.Queue[Any] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str] | None) -> None:
        buf = ""
        for line in stream or ():
            buf += line
            try:
                self._docs.put(json.loads(buf))
                buf = ""
            except json.JSONDecodeError:
                continue

    def _drain(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            self._stderr.append(line.rstrip())

    def next_doc(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self._docs.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self._docs.empty():
                    break
        raise click.ClickException(
            f"a demo process did not report in time (exit {self.proc.poll()}): " + " | ".join(self._stderr[-5:])
        )

    def stop_and_report(self) -> Any:
        """SIGTERM, then the JSON document the process prints as it exits."""
        self.proc.send_signal(signal.SIGTERM)
        return self.next_doc(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def _trusting(key: PrivateKey) -> TrustPolicy:
    return TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("acme/*",), "acme"))


def _flip_byte(path: Path) -> None:
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


def swarm_demo(workdir: Path, size_mb: int, n_peers: int, seed_limit_mb: int) -> None:
    model = workdir / "model"
    key = PrivateKey.generate()
    click.echo(f"seedvault demo in {workdir}: a {size_mb} MB model, 1 seed + {n_peers} peers on 127.0.0.1\n")
    click.echo("1. publish")
    _step(f"generate a {size_mb} MB safetensors model (2 shards)", lambda: generate_model(model, size_mb))
    pub_home = workdir / "publisher"
    with Client(pub_home) as publisher:
        published = _step(f"publisher: hash, sign and store {REF}", lambda: publisher.publish(
            model, name="acme/demo", version="1.0.0", license="Apache-2.0", key=key, publisher="Acme Labs"))
        publisher.save_policy(_trusting(key))
    envelope_path = workdir / "release.json"
    envelope_path.write_bytes(published.envelope.to_json())
    manifest = published.verdict.manifest
    click.echo(f"    manifest digest {published.envelope.digest}\n    v2 info-hash    {manifest.torrent.info_hash_v2}")

    click.echo(f"\n2. swarm: the seed uploads at most {seed_limit_mb} MB/s; peers also trade pieces")
    seed_port = _free_port()
    seed = _Child(pub_home, "seed", "--json", "--listen", f"127.0.0.1:{seed_port}",
                  "--upload-limit", str(seed_limit_mb * 1_000_000))
    children = [seed]
    try:
        click.echo(f"  seed listening on {seed.next_doc(60)['listening']}")
        ports = [_free_port() for _ in range(n_peers)]
        homes = [workdir / f"peer{i + 1}" for i in range(n_peers)]
        start = time.perf_counter()
        for home, port in zip(homes, ports, strict=True):
            with Client(home) as peer:
                peer.save_policy(_trusting(key))  # each peer trusts the publisher for acme/* only
            others = [a for p in ports if p != port for a in ("--peer", f"127.0.0.1:{p}")]
            children.append(_Child(home, "pull", REF, "--envelope", str(envelope_path), "--peer",
                                   f"127.0.0.1:{seed_port}", *others, "--listen", f"127.0.0.1:{port}",
                                   "--seed", "--json", "--timeout", str(PROCESS_TIMEOUT)))
        reports = [c.next_doc(PROCESS_TIMEOUT) for c in children[1:]]
        wall = time.perf_counter() - start
        _swarm_table(homes, reports)
        sent = sum(seed.stop_and_report()["uploaded"].values())
        click.echo(f"  all {n_peers} peers hold verified copies after {wall:.1f} s; the seed sent "
                   f"{sent / manifest.total_size:.2f}x the model size ({n_peers}.00x without peer-to-peer)")

        click.echo("\n3. a corrupt peer")
        seed_port = _free_port()
        children.append(_Child(pub_home, "seed", "--json", "--listen", f"127.0.0.1:{seed_port}",
                               "--upload-limit", str(seed_limit_mb * 1_000_000)))
        children[-1].next_doc(60)
        _corrupt_peer_demo(workdir, key, published.envelope, manifest, pub_home, seed_port)
    finally:
        for child in children:
            child.stop()

    click.echo("\n4. tampering in a vault")
    snapshot_file = Client(homes[0]).vault.snapshot_dir(manifest) / manifest.files[-1].path
    _flip_byte(snapshot_file)
    click.echo(f"  attacker: flips one bit in peer1's {manifest.files[-1].path}")
    with Client(homes[0]) as victim:
        for action, call in (("verify", lambda: victim.verify(REF)), ("load", lambda: victim.load(REF))):
            try:
                call()
            except Error as exc:
                click.echo(f"  peer1 {action}: REFUSED ({type(exc).__name__}) {exc}")
            else:
                raise click.ClickException(f"the tampered file passed {action}: this is a bug")

    click.echo("\n5. across an air gap")
    _airgap_demo(workdir, key, homes[1])


def _swarm_table(homes: list[Path], reports: list[dict[str, Any]]) -> None:
    click.echo(f"  {'peer':<6} {'from seeds MB':>14} {'from peers MB':>14} {'uploaded MB':>12} {'time s':>7}  verified")
    for home, r in zip(homes, reports, strict=True):
        with Client(home) as peer:
            peer.verify(REF)
            tensors = peer.load(REF)
        verified = f"yes, {len(tensors)} tensors loaded"
        click.echo(f"  {home.name:<6} {_mb(r['from_seeds']):>14} {_mb(r['from_peers']):>14} "
                   f"{_mb(r['uploaded']):>12} {r['elapsed']:7.1f}  {verified}")


def _corrupt_peer_demo(workdir: Path, key: PrivateKey, envelope: Envelope, manifest: Manifest,
                       pub_home: Path, seed_port: int) -> None:
    with Client(pub_home) as publisher:
        layers = stored_layers(publisher, manifest)
        bad = _step("a peer with a damaged copy starts serving it",
                    lambda: CorruptPeer(manifest, publisher.vault.snapshot_dir(manifest), workdir, layers))
    try:
        with Client(workdir / "victim") as victim:
            victim.save_policy(_trusting(key))
            report = _step("a new peer pulls from the corrupt peer and the seed", lambda: pull(
                victim, REF, envelope, peers=[bad.endpoint, parse_endpoint(f"127.0.0.1:{seed_port}")],
                config=SwarmConfig(), timeout=PROCESS_TIMEOUT))
            s = report.stats
            click.echo(f"    hash failures {s.hash_failures}; banned: {', '.join(s.banned) or 'none'}; "
                       f"completed and verified from the good seed")
    finally:
        bad.close()


def _airgap_demo(workdir: Path, key: PrivateKey, source_home: Path) -> None:
    disk = workdir / "disk"
    disk.mkdir()
    with Client(source_home) as source:
        bundle = _step("export a tar bundle onto a disk", lambda: export_bundle(
            source, REF, disk / "demo.tar", as_tar=True))
    with Client(workdir / "airgapped") as site:
        site.save_policy(_trusting(key))
        admitted = _step("offline site: import the bundle (verified before storing)",
                         lambda: import_bundle(site, bundle))
        click.echo(f"    {admitted.verdict.signers[0].describe()}")
        tensors = _step("offline site: load tensors (hashes the bytes it returns)", lambda: site.load(REF))
        click.echo(f"    {len(tensors)} tensors, {sum(int(t.size) for t in tensors.values()):,} parameters")
    tampered = workdir / "tampered"
    with Client(source_home) as source:
        export_bundle(source, REF, tampered)
    _flip_byte(sorted((tampered / "files").glob("*.safetensors"))[0])
    with Client(workdir / "victim2") as victim:
        victim.save_policy(_trusting(key))
        try:
            import_bundle(victim, tampered)
        except Error as exc:
            left = list(victim.vault.snapshots.rglob("*")) + list(victim.vault.incoming.iterdir())
            click.echo(f"  a bundle with one flipped bit: import REFUSED ({type(exc).__name__}); "
                       f"files left in the vault: {len(left)}")
        else:
            raise click.ClickException("the tampered bundle was accepted: this is a bug")


@click.command()
@click.option("--size", "size_mb", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="Model size in MB.")
@click.option("--peers", "n_peers", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Peers pulling at once, each a separate process.")
@click.option("--seed-limit", "seed_limit_mb", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="The seed's upload cap in MB/s, so peers trade pieces as they would over a WAN.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory for inspection.")
def demo(size_mb: int, n_peers: int, seed_limit_mb: int, keep: bool) -> None:
    """Run the main job end to end on this machine, in a temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="seedvault-demo-"))
    start = time.perf_counter()
    try:
        swarm_demo(workdir, size_mb, n_peers, seed_limit_mb)
        click.echo(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    finally:
        if keep:
            click.echo(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
