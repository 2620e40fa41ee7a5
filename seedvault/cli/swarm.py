"""Swarm commands: seed, pull, torrent."""

from __future__ import annotations

import json
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

from seedvault._text import count, human_size
from seedvault.bridges.hf import export_hf
from seedvault.cli._common import KEY, REF, emit, json_option, load_private_key, note, registry_url
from seedvault.client import Client
from seedvault.errors import Error, IntegrityError, NotFoundError, UsageError, VerificationError
from seedvault.manifest import Ref
from seedvault.p2p import Swarm, SwarmConfig, TransferStats, format_endpoint, magnet_link, parse_endpoint, torrent_bytes
from seedvault.p2p.torrent import Magnet, parse_magnet
from seedvault.signing import Envelope, PrivateKey
from seedvault.sources import release_source
from seedvault.swarming import SeedReport, seed_torrent, start_seeding, stop_yanked, stored_layers
from seedvault.swarming import pull as pull_model

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


def _serve(swarm: Swarm, stop: threading.Event, duration: float | None, loop: _SeedLoop | None = None,
           as_json: bool = True) -> None:
    """Pump the session until stopped, handing its alerts to LOOP and running its rounds; on
    a terminal, the live activity of each model seeded."""
    deadline = time.monotonic() + duration if duration else None
    last = time.monotonic()
    with _SeedActivity(loop.report.handles if loop else {}, not as_json) as activity:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            alerts = swarm.pop_alerts(wait=0.5)
            activity.update()
            if loop is None:
                continue
            loop.take(alerts)
            if time.monotonic() - last >= loop.every:
                loop.round()
                last = time.monotonic()


class _SeedActivity:
    """On a terminal: one live line per model seeded (peers, upload rate, uploaded, ratio to
    the model's size), redrawn each second below what the seeder says. Off with --json or
    when stderr is not a terminal: a log stays a log."""

    def __init__(self, handles: dict[str, Any], enabled: bool) -> None:
        self.handles = handles  # the seed loop's own dict: models it takes up later show up too
        self.enabled = enabled and sys.stderr.isatty()
        self._live: Any = None
        self._last = 0.0

    def __enter__(self) -> _SeedActivity:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), auto_refresh=False, transient=True,
                              redirect_stdout=True, redirect_stderr=True)
            self._live.__enter__()
        return self

    def update(self) -> None:
        if self._live is None or time.monotonic() - self._last < 1.0:
            return
        from rich.table import Table

        self._last = time.monotonic()
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("model", "peers", "upload", "uploaded", "ratio"):
            table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True,
                             overflow="ellipsis")
        for ref, handle in list(self.handles.items()):
            st = handle.status()
            size = max(int(st.total_wanted), 1)
            up = int(st.total_payload_upload)
            table.add_row(ref, str(st.num_peers), f"{human_size(int(st.upload_payload_rate))}/s", human_size(up),
                          f"{up / size:.2f}")
        self._live.update(table, refresh=True)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)


class _SeedLoop:
    """The rounds of a seeder: stop serving what was yanked since, take up what was published
    or pulled since (when seeding every model), seed the cards, and with a DHT and keys put the
    pointers (a new head or yank goes out at the next round). What the DHT took is reported
    as its answers arrive."""

    def __init__(self, client: Client, swarm: Swarm, report: SeedReport, *, everything: bool,
                 keys: list[PrivateKey], every: float, as_json: bool) -> None:
        from seedvault.discovery import Announcer

        self.client, self.swarm, self.report = client, swarm, report
        self.everything, self.every, self.as_json = everything, every, as_json
        self.announcer = Announcer(client, swarm, keys)  # cards always (magnet links); pointers with keys
        self.passed_over = {ref for ref, _ in report.refused}
        self.cards: dict[str, str] = {}

    def _say(self, doc: dict[str, Any], text: str) -> None:
        if self.as_json:
            emit(doc, True, "")  # one JSON line on stdout
        else:
            click.echo(text, err=True)
        sys.stdout.flush()

    def round(self) -> None:
        for ref, reason in stop_yanked(self.client, self.swarm, self.report):
            self._say({"stopped_seeding": ref, "reason": reason}, f"stopped seeding {ref}: {reason}")
        if self.everything:
            new = [e.manifest.ref for e in self.client.vault.entries()
                   if e.manifest.ref not in self.report.handles and e.manifest.ref not in self.passed_over]
            if new:
                added = start_seeding(self.client, self.swarm, new)
                self.passed_over.update(ref for ref, _ in added.refused)
                self.report.seeding += added.seeding
                self.report.handles.update(added.handles)
                if added.seeding:
                    self._say({"seeding": added.seeding}, f"now seeding {', '.join(added.seeding)}")
        try:
            self.cards = self.announcer.refresh(list(self.report.handles)).cards
        except Error as exc:  # a card that cannot be built: said, and seeding goes on
            note(f"not announced: {exc.diagnostics()}", self.as_json)
        self.take([])

    def take(self, alerts: list[Any]) -> None:
        for alert in alerts:
            self.announcer.handle(alert)
        done = self.announcer.poll()
        for reason in done.refused:
            note(f"not announced: {reason}", self.as_json)
        if done.put:
            self._say({"announced": done.put, "cards": self.cards}, f"announced in the DHT: {', '.join(done.put)}")


@click.command()
@click.argument("refs", nargs=-1, type=REF)
@swarm_options
@click.option("--duration", type=float, help="Stop after this many seconds (default: until SIGINT/SIGTERM).")
@click.option("--key", "key_paths", multiple=True, type=KEY,
              help="With --dht-node: an Ed25519 key trusted as publisher or timestamp to put the models' DHT "
              "pointers with (repeatable). Without one, the cards are seeded but no pointer is put.")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the keys' passphrase (or set SEEDVAULT_KEY_PASSPHRASE).")
@click.option("--announce-every", "announce_every", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds between rounds: yanked releases stop being served, new ones (when seeding every "
              "model) start, and with --dht-node new heads and yanks go out.")
@json_option
@click.pass_obj
def seed(client: Client, refs: tuple[str, ...], listen: str, lan: bool, dht_nodes: tuple[tuple[str, int], ...],
         upload_limit: int, super_seed: bool, duration: float | None, key_paths: tuple[Path, ...],
         passphrase_file: Path | None, announce_every: float, as_json: bool) -> None:
    """Share verified models from the vault with peers (all of them, or REFS).

    With --dht-node it also seeds each release's envelope card and its model's head card,
    so clients find them with no server; with --key it puts their DHT pointers."""
    if key_paths and not dht_nodes:
        raise click.UsageError("--key signs DHT pointers: give --dht-node HOST:PORT too")
    keys = [load_private_key(p, passphrase_file) for p in key_paths]
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
        loop = _SeedLoop(client, swarm, report, everything=not refs, keys=keys, every=announce_every, as_json=as_json)
        loop.round()
        _serve(swarm, stop, duration, loop, as_json)
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
            from rich.table import Column

            def fixed() -> Column:
                return Column(no_wrap=True)

            # Narrow, unwrapped columns: the line must stay one line on an 80-column terminal
            # (a wrapped line is redrawn as two and the last one is left behind); the model's
            # name gives way first.
            self._progress = Progress(
                TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                BarColumn(bar_width=12, table_column=fixed()), DownloadColumn(table_column=fixed()),
                TransferSpeedColumn(table_column=fixed()), TextColumn("{task.fields[sources]}", table_column=fixed()),
                console=Console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=None, sources="")
        return self

    def update(self, stats: TransferStats) -> None:
        if self._progress is not None:
            parts = [count(stats.peers, "peer")]
            for label, n in (("seeds", stats.from_seeds), ("peers", stats.from_peers), ("web", stats.from_web)):
                if n:
                    parts.append(f"{label} {_mb(n)}")
            sources = ", ".join(parts)
            self._progress.update(self._task, total=stats.total, completed=stats.done, sources=sources)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


def _mb(n: int) -> str:
    return human_size(n)


@click.command()
@click.argument("refs", metavar="REF|MAGNET...", nargs=-1, required=True)
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
def pull(client: Client, refs: tuple[str, ...], envelope_path: Path | None, registry: str | None,
         peers: tuple[tuple[str, int], ...],
         web_seeds: tuple[str, ...], trackers: tuple[str, ...], listen: str, lan: bool,
         dht_nodes: tuple[tuple[str, int], ...], upload_limit: int, super_seed: bool, keep_seeding: bool,
         timeout: float, hf_cache: Path | None, hf_repo_id: str | None, as_json: bool) -> None:
    """Fetch REF (or the release a magnet link names) from peers, verified, into the vault.

    The signed envelope comes from --envelope, --registry, the DHT (--dht-node alone: no
    server at all), or the envelope card a `seedvault torrent` magnet link names. Whichever,
    it is judged under your policy before any model byte is asked for, and the bytes are
    verified before they are used.

    Several REFs are pulled one after another through one swarm; each is reported as it
    ends (with --json, one JSON line each), a failure does not stop the others, and the exit
    code is the first failure's.
    """
    if len(refs) > 1:
        if envelope_path is not None:
            raise click.UsageError("--envelope names one release: pull one REF with it, or use --registry")
        if keep_seeding or hf_cache is not None:
            raise click.UsageError("--seed and --hf-cache take one REF: pull the others first")
        _pull_several(client, refs, registry=registry, peers=peers, web_seeds=web_seeds, trackers=trackers,
                      config=_config(listen, lan, dht_nodes, upload_limit, super_seed), timeout=timeout,
                      as_json=as_json)
        return
    ref = refs[0]
    magnet = parse_magnet(ref) if ref.startswith("magnet:") else None
    if magnet is not None:
        peers += tuple(parse_endpoint(p, "x.pe in the magnet link") for p in magnet.peers)
        web_seeds += magnet.web_seeds
    elif envelope_path is None and registry is None and not dht_nodes:
        registry = registry_url(client, None, "pull without --envelope or --dht-node")
    config = _config(listen, lan, dht_nodes, upload_limit, super_seed)
    with _stop_on_signals() as stop, Swarm(config) as swarm:
        if magnet is not None and envelope_path is None and registry is None:
            ref, envelope = _from_magnet(client, swarm, magnet, peers, timeout)
            torrent_data = None
        else:
            # With neither --envelope nor --registry, the DHT (through --dht-node) is the source.
            wanted = _magnet_ref(client, magnet, envelope_path, registry) if magnet else str(Ref.parse(ref))
            ref, envelope, torrent_data = release_source(client, wanted, envelope=envelope_path, registry=registry,
                                                         swarm=swarm, timeout=min(timeout, 120.0))
        _pull_and_report(client, ref, envelope, torrent_data, swarm, stop, peers=peers, web_seeds=web_seeds,
                         trackers=trackers, timeout=timeout, hf_cache=hf_cache, hf_repo_id=hf_repo_id,
                         keep_seeding=keep_seeding, as_json=as_json)


def _pull_several(client: Client, refs: tuple[str, ...], *, registry: str | None,
                  peers: tuple[tuple[str, int], ...], web_seeds: tuple[str, ...], trackers: tuple[str, ...],
                  config: SwarmConfig, timeout: float, as_json: bool) -> None:
    """Each REF in turn through one swarm; each failure said as it happens, the others go on."""
    if any(r.startswith("magnet:") for r in refs):
        raise click.UsageError("pull one magnet link at a time")
    wanted = [str(Ref.parse(r)) for r in refs]  # every name checked before anything is fetched
    if registry is None and not config.dht_nodes:
        registry = registry_url(client, None, "pull without --envelope or --dht-node")
    failures: list[tuple[str, Error]] = []
    with _stop_on_signals() as stop, Swarm(config) as swarm:
        for want in wanted:
            try:
                ref, envelope, torrent_data = release_source(client, want, registry=registry, swarm=swarm,
                                                             timeout=min(timeout, 120.0))
                _pull_and_report(client, ref, envelope, torrent_data, swarm, stop, peers=peers,
                                 web_seeds=web_seeds, trackers=trackers, timeout=timeout, hf_cache=None,
                                 hf_repo_id=None, keep_seeding=False, as_json=as_json)
            except Error as exc:
                failures.append((want, exc))
                if as_json:
                    click.echo(json.dumps({"ref": want, "error": {"type": type(exc).__name__, "message": str(exc),
                                                                   "hint": exc.hint, "exit_code": exc.exit_code}},
                                          ensure_ascii=False), err=True)
                else:
                    click.echo(f"failed {want}: {exc.diagnostics()}", err=True)
            sys.stdout.flush()
    if failures:
        first = failures[0][1]
        names = ", ".join(ref for ref, _ in failures)
        raise type(first)(f"{count(len(failures), 'model')} of {len(wanted)} not pulled: {names} "
                          "(the reasons are above)", hint=first.hint)


def _from_magnet(client: Client, swarm: Swarm, magnet: Magnet, peers: tuple[tuple[str, int], ...],
                 timeout: float) -> tuple[str, Envelope]:
    """The release a magnet link names: its envelope card fetched from peers and judged, before
    any model byte; the envelope must bind the torrent the link names."""
    from seedvault.discovery import fetch_envelope_card

    if magnet.envelope_card is None:
        raise UsageError("this magnet link names the model's files but not its signed envelope (no x.envelope)",
                         hint="use the link `seedvault torrent REF` prints, or give --envelope FILE or --registry URL")
    envelope = fetch_envelope_card(client, swarm, magnet.envelope_card, peers=peers, timeout=min(timeout, 60.0))
    manifest = client.judge(envelope).manifest
    if manifest.torrent.info_hash_v2 != magnet.info_hash_v2:
        raise IntegrityError(
            f"the magnet link names torrent {magnet.info_hash_v2[:16]}, but the envelope it points to is for "
            f"{manifest.ref}, whose torrent is {manifest.torrent.info_hash_v2[:16]}",
            hint="the link was altered or assembled by hand: get it again from its source")
    client.check_usable(manifest)
    return manifest.ref, envelope


def _magnet_ref(client: Client, magnet: Magnet, envelope_path: Path | None, registry: str | None) -> str:
    """With --envelope or --registry beside a magnet link: the release that envelope names
    (checked against the link's torrent by the pull)."""
    if envelope_path is not None:
        from seedvault.bundle import read_envelope_source
        from seedvault.manifest import Manifest

        manifest = Manifest.from_payload(read_envelope_source(envelope_path).payload)
        if manifest.torrent.info_hash_v2 != magnet.info_hash_v2:
            raise IntegrityError(f"the magnet link names torrent {magnet.info_hash_v2[:16]}, but {envelope_path} is "
                                 f"for {manifest.ref}, whose torrent is {manifest.torrent.info_hash_v2[:16]}")
        return manifest.ref
    raise UsageError("a magnet link with --registry: give the model's name instead (NS/NAME or NS/NAME@VERSION)")


def _pull_and_report(client: Client, ref: str, envelope: Envelope, torrent_data: bytes | None, swarm: Swarm,
                     stop: threading.Event, *, peers: tuple[tuple[str, int], ...], web_seeds: tuple[str, ...],
                     trackers: tuple[str, ...], timeout: float, hf_cache: Path | None, hf_repo_id: str | None,
                     keep_seeding: bool, as_json: bool) -> None:
    # The bar is gone (and its line ended) before anything else is written to the terminal.
    with _Bar(f"pulling {ref}", not as_json) as bar:
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
           + (f"  already in the vault (same files, verified), not fetched: {_mb(s.reused)}\n" if s.reused else "")
           + f"  hash failures {s.hash_failures}; banned peers: {', '.join(s.banned) or 'none'}\n")
        + f"  snapshot {report.snapshot}"
        + (f"\n  hf cache {hf.snapshot} ({hf.repo_id} @ {hf.revision})" if hf else "")))
    if keep_seeding:
        seeded = start_seeding(client, swarm, [report.ref])
        refused = _refusals(seeded.refused, as_json)
        emit({"listening": format_endpoint(swarm.endpoint), "seeding": seeded.seeding, "refused": refused},
             as_json,
             f"seeding {report.ref} on {format_endpoint(swarm.endpoint)} (Ctrl-C to stop)")
        sys.stdout.flush()
        loop = _SeedLoop(client, swarm, seeded, everything=False, keys=[], every=300.0, as_json=as_json)
        loop.round()
        _serve(swarm, stop, None, loop, as_json)


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
    from seedvault.p2p import cards

    card, _ = cards.build_card(client.vault.root / "cards",
                               {cards.ENVELOPE_CARD: client.vault.resolve(manifest.ref).envelope.to_json()})
    magnet = magnet_link(manifest, web_seeds=web_seeds, envelope_card=cards.card_info_hash(card))
    emit({"ref": manifest.ref, "torrent": str(path), "info_hash_v2": manifest.torrent.info_hash_v2,
          "magnet": magnet}, as_json, f"wrote the torrent of {manifest.ref} to {path}\nmagnet link: {magnet}")
