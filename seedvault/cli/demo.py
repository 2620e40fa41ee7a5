"""`seedvault demo`: the main job end to end on one machine, in a temporary directory."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from seedvault.bundle import export_bundle, import_bundle
from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.errors import Error
from seedvault.signing import PrivateKey, TrustedKey

T = TypeVar("T")


def _step(label: str, action: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = action()
    click.echo(f"  {label:<58} {time.perf_counter() - start:6.2f} s")
    return result


def offline_demo(workdir: Path, size_mb: int) -> None:
    """Publisher -> air-gap bundle -> receiver, then a tampered copy refused."""
    model = workdir / "model"
    key = PrivateKey.generate()
    click.echo(f"air-gap demo in {workdir} ({size_mb} MB model)")
    _step(f"generate a {size_mb} MB safetensors model (2 shards)", lambda: generate_model(model, size_mb))
    with Client(workdir / "publisher") as publisher, Client(workdir / "receiver") as receiver:
        published = _step("publisher: hash, sign and store acme/demo@1.0.0", lambda: publisher.publish(
            model, name="acme/demo", version="1.0.0", license="Apache-2.0", key=key, publisher="Acme Labs"))
        click.echo(f"    manifest digest {published.envelope.digest}")
        publisher.save_policy(publisher.policy.with_key(TrustedKey(key.public, "publisher", ("acme/*",), "acme")))
        (workdir / "disk").mkdir()
        bundle = _step("publisher: export a tar bundle for the disk",
                       lambda: export_bundle(publisher, "acme/demo@1.0.0", workdir / "disk" / "demo.tar", as_tar=True))
        receiver.save_policy(receiver.policy.with_key(TrustedKey(key.public, "publisher", ("acme/*",), "acme")))
        click.echo(f"  receiver: trusts key {key.key_id[:16]} for acme/* (and nothing else)")
        admitted = _step("receiver: import the bundle (verify before storing)",
                         lambda: import_bundle(receiver, bundle))
        signer = admitted.verdict.signers[0]
        click.echo(f"    {signer.describe()}")
        _step("receiver: verify acme/demo (signatures, policy, every byte)", lambda: receiver.verify("acme/demo"))
        tensors = _step("receiver: load tensors (hashes the bytes it returns)", lambda: receiver.load("acme/demo"))
        params = sum(int(t.size) for t in tensors.values())
        click.echo(f"    {len(tensors)} tensors, {params:,} parameters")

        tampered = workdir / "tampered"
        export_bundle(publisher, "acme/demo@1.0.0", tampered)
        shard = sorted((tampered / "files").glob("*.safetensors"))[0]
        with open(shard, "r+b") as f:
            f.seek(shard.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x01]))
        click.echo("  attacker: flips one bit in the middle of a shard of another copy")
        with Client(workdir / "victim") as victim:
            victim.save_policy(receiver.policy)
            try:
                import_bundle(victim, tampered)
            except Error as exc:
                click.echo(f"  victim: import REFUSED ({type(exc).__name__}):\n    {exc}")
                left = list(victim.vault.snapshots.rglob("*")) + list(victim.vault.incoming.iterdir())
                click.echo(f"    files left in the victim's vault: {len(left)}")
            else:
                raise click.ClickException("the tampered bundle was accepted: this is a bug")


@click.command()
@click.option("--size", "size_mb", type=click.IntRange(1, 100_000), default=64, show_default=True,
              help="Model size in MB.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory for inspection.")
def demo(size_mb: int, keep: bool) -> None:
    """Run the main job end to end on this machine, in a temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="seedvault-demo-"))
    try:
        offline_demo(workdir, size_mb)
    finally:
        if keep:
            click.echo(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
