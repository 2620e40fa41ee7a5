"""Swarm commands: seed, pull, torrent."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from seedvault._text import count
from seedvault.bridges.hf import export_hf
from seedvault.cli._common import REF, emit, json_option, note, registry_url
from seedvault.client import Client
from seedvault.errors import NotFoundError, UsageError, VerificationError
from seedvault.p2p import Swarm, SwarmConfig, TransferStats, format_endpoint, magnet_link, parse_endpoint, torrent_bytes
from seedvault.sources import release_source
from seedvault.swarming import pull as pull_model
from seedvault.swarming import seed_torrent, start_seeding, stored_layers

F = TypeVar("F", bound=Callable[..., Any])


class EndpointType(click.ParamType[tuple[str, int]]):
    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        try:
            return parse_endpoint(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


ENDPOINT = EndpointType()


def swarm_options(f: F) -> F:
    for option in reversed([
        click.option("--listen", default="127.0.0.1:0", show_default=True,
                     help="Address to accept peers on (port 0 = any free port)."),
        click.option("--lan", is_flag=True, help="Find peers on the local network (LSD multicast)."),
        click.option("--dht-node", "dht_nodes", multiple=True, type=ENDPOINT,
                     help="Join a (private) DHT through this node; repeatable. No DHT without it."),
        click.option("--upload-limit", type=click.IntRange(min=0), default=0,
                     help="Upload cap in bytes/s, applied to LAN peers too (0 = none)."),
        click.option("--super-seed", is_flag=True,
                     help="BEP 16: hand each peer pieces nobody has yet (an origin with a thin uplink)."),
    ]):
        f = option(f)
    return f


def _config(listen: str, lan: bool, dht_nodes: tuple[tuple[str, int], ...], upload_limit: int,
            super_seed: bool) -> SwarmConfig:
    return SwarmConfig(listen=listen, lan=lan, dht_nodes=tuple(dht_nodes), upload_rate_limit=upload_limit,
                       limit_local_peers=upload_limit > 0, super_seed=super_seed)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set an event instead of killing the process mid-write."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve(swarm: Swarm, stop: threading.Event, duration: float | None) -> None:
    deadline = time.monotonic() + duration if duration else None
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        swarm.pop_alerts(wait=0.5)


@click.command()
@click.argument("refs", nargs=-1, type=REF)
@swarm_options
@click.option("--duration", type=float, help="Stop after this many seconds (default: until SIGINT/SIGTERM).")
@json_option
@click.pass_obj
def seed(client: Client, refs: tuple[str, ...], listen: str, lan: bool, dht_nodes: tuple[tuple[str, int], ...],
         upload_limit: int, super_seed: bool, duration: float | None, as_json: bool) -> None:
    """Share verified models from the vault with peers (all of them, or REFS)."""
    with _stop_on_signals() as stop, Swarm(_config(listen, lan, dht_nodes, upload_limit, super_seed)) as swarm:
        if not refs and not client.vault.entries():
            raise NotFoundError("nothing to seed: the vault is empty",
                                hint="publish, import or pull a model first (seedvault list shows the vault)")
        report = start_seeding(client, swarm, refs or None)
        refused = _refusals(report.refused, as_json)
        if not report.seeding:
            where = "asked for" if refs else "in the vault"
            raise VerificationError(f"nothing to seed: none of the {count(len(report.refused), 'model')} {where} "
                                    "verifies or may be seeded (see the reasons above)",
                                    hint="seedvault verify REF says why; seedvault trust list shows your policy")
        endpoint = format_endpoint(swarm.endpoint)
        emit({"listening": endpoint, "seeding": report.seeding, "refused": refused}, as_json,
             f"seeding {', '.join(report.seeding)} on {endpoint} (Ctrl-C to stop)")
        sys.stdout.flush()
        _serve(swarm, stop, duration)
        uploaded = {ref: int(h.status().total_payload_upload) for ref, h in report.handles.items()}
    emit({"stopped": True, "uploaded": uploaded}, as_json,
         "stopped seeding; uploaded " + ", ".join(f"{r} {_mb(n)}" for r, n in uploaded.items()))


def _refusals(refused: list[tuple[str, str]], as_json: bool) -> list[dict[str, Any]]:
    """Each model not seeded, and why, said on stderr (a {"note"} line with --json); returned
    for the JSON report, the hint its own field."""
    out = []
    for ref, reason in refused:
        text, _, hint = reason.partition("\n  hint: ")
        if as_json:
            note(f"refusing to seed {ref}: {text}", True)
        else:
            click.echo(f"refusing to seed {ref}: {reason}", err=True)
        out.append({"ref": ref, "reason": text, "hint": hint or None})
    return out


class _Bar:
    """One progress line per model: bytes, rate, peers, where the bytes came from."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TransferSpeedColumn(), TextColumn("{task.fields[sources]}"),
                                      console=Console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=None, sources="")
        return self

    def update(self, stats: TransferStats) -> None:
        if self._progress is not None:
            sources = (f"{stats.peers} peers  seed {_mb(stats.from_seeds)}  peers {_mb(stats.from_peers)}"
                       + (f"  web {_mb(stats.from_web)}" if stats.from_web else ""))
            self._progress.update(self._task, total=stats.total, completed=stats.done, sources=sources)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.command()
@click.argument("ref", type=REF)
@click.option("--envelope", "envelope_path", type=click.Path(exists=True, path_type=Path),
              help="The signed envelope (JSON), or a bundle directory or tar holding one.")
@click.option("--registry", help="A registry node to get the envelope and torrent from (it is not trusted); "
              "without --envelope, default $SEEDVAULT_REGISTRY or registry = \"URL\" in config/seedvault.toml.")
@click.option("--peer", "peers", multiple=True, type=ENDPOINT, help="A peer to fetch from; repeatable.")
@click.option("--web-seed", "web_seeds", multiple=True, help="HTTP web seed base URL (BEP 19); repeatable.")
@click.option("--tracker", "trackers", multiple=True, help="BitTorrent tracker announce URL; repeatable.")
@swarm_options
@click.option("--seed", "keep_seeding", is_flag=True, help="Keep seeding after the download, until stopped.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Give up after this many seconds.")
@click.option("--hf-cache", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the verified model into this Hugging Face cache directory.")
@click.option("--hf-repo-id", help="Repo id in that cache (default: the model's name).")
@json_option
@click.pass_obj
def pull(client: Client, ref: str, envelope_path: Path | None, registry: str | None,
         peers: tuple[tuple[str, int], ...],
         web_seeds: tuple[str, ...], trackers: tuple[str, ...], listen: str, lan: bool,
         dht_nodes: tuple[tuple[str, int], ...], upload_limit: int, super_seed: bool, keep_seeding: bool,
         timeout: float, hf_cache: Path | None, hf_repo_id: str | None, as_json: bool) -> None:
    """Fetch REF from peers, verified against its signed manifest, into the vault.

    The envelope comes from --envelope or --registry; either way it is judged under your
    policy before any connection is made, and the bytes are verified before they are used.
    """
    if envelope_path is None and registry is None:
        registry = registry_url(client, None, "pull without --envelope")
    ref, envelope, torrent_data = release_source(client, ref, envelope=envelope_path, registry=registry)
    config = _config(listen, lan, dht_nodes, upload_limit, super_seed)
    with _stop_on_signals() as stop, Swarm(config) as swarm, _Bar(f"pulling {ref}", not as_json) as bar:
        # A signal during the download interrupts it; resume data is written on the way out.
        previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            report = pull_model(client, ref, envelope, peers=peers, web_seeds=web_seeds, trackers=trackers,
                                torrent=torrent_data, timeout=timeout, on_status=bar.update, swarm=swarm)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        s = report.stats
        hf = export_hf(client, report.ref, hf_cache, hf_repo_id) if hf_cache is not None else None
        emit({**report.to_dict(), **({"hf": hf.to_dict()} if hf else {})}, as_json, lambda: (
            f"{'already had' if report.already_present else 'pulled'} {report.ref} ({report.digest[:16]}), verified\n"
            + ("  already verified in the vault: nothing downloaded\n" if report.already_present else
               f"  {_mb(s.done)} in {s.elapsed:.1f} s: from seeds {_mb(s.from_seeds)}, from peers {_mb(s.from_peers)}, "
               f"from web seeds {_mb(s.from_web)}; resumed {_mb(s.resumed)}; uploaded {_mb(s.uploaded)}\n"
               f"  hash failures {s.hash_failures}; banned peers: {', '.join(s.banned) or 'none'}\n")
            + f"  snapshot {report.snapshot}"
            + (f"\n  hf cache {hf.snapshot} ({hf.repo_id} @ {hf.revision})" if hf else "")))
        if keep_seeding:
            seeded = start_seeding(client, swarm, [report.ref])
            refused = _refusals(seeded.refused, as_json)
            emit({"listening": format_endpoint(swarm.endpoint), "seeding": seeded.seeding, "refused": refused},
                 as_json,
                 f"seeding {report.ref} on {format_endpoint(swarm.endpoint)} (Ctrl-C to stop)")
            sys.stdout.flush()
            _serve(swarm, stop, None)


@click.command()
@click.argument("ref", type=REF)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the .torrent here.")
@click.option("--web-seed", "web_seeds", multiple=True, help="Web seed URL to list in the torrent.")
@click.option("--tracker", "trackers", multiple=True, help="Tracker URL to list in the torrent.")
@json_option
@click.pass_obj
def torrent(client: Client, ref: str, out: Path | None, web_seeds: tuple[str, ...], trackers: tuple[str, ...],
            as_json: bool) -> None:
    """Write REF's BitTorrent v2 .torrent (derived from its manifest) and print its magnet link."""
    manifest, _ti, _snapshot = seed_torrent(client, ref)
    data = torrent_bytes(manifest, stored_layers(client, manifest), web_seeds=web_seeds, trackers=trackers)
    path = (out or Path(f"{manifest.torrent_name}.torrent")).absolute()  # default: the current directory
    path.write_bytes(data)
    magnet = magnet_link(manifest, web_seeds=web_seeds)
    emit({"ref": manifest.ref, "torrent": str(path), "info_hash_v2": manifest.torrent.info_hash_v2,
          "magnet": magnet}, as_json, f"wrote the torrent of {manifest.ref} to {path}\nmagnet link: {magnet}")
