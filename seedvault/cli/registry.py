"""Registry commands: serve, push, search, mirror."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from seedvault._text import cut, human_size
from seedvault.cli._common import REF, REGISTRY_HELP, emit, json_option, registry_url
from seedvault.client import Client
from seedvault.errors import NotFoundError, RollbackError, VerificationError
from seedvault.registry import NodeConfig, RegistryClient, SyncReport, sync
from seedvault.registry.app import serve as serve_node
from seedvault.registry.index import Index
from seedvault.tlog.follow import fetch_proof
from seedvault.tlog.proof import MAX_PROOF_BYTES
from seedvault.tlog.remote import LogReader


def load_config(config_path: Path | None, client: Client, host: str | None, port: int | None) -> NodeConfig:
    """The config file (if any), then the command line; the node's home is the CLI's."""
    config = NodeConfig.load(config_path) if config_path else NodeConfig()
    return replace(
        config,
        host=host if host is not None else config.host,
        port=port if port is not None else config.port,
        home=config.home or client.home,
    )


@click.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8470).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Node config (TOML): host, port, public_url, admin_token, upstreams, mirror_interval ...")
@click.option("--access-log", is_flag=True, help="Log every request (costs about 40% of peak request rate).")
@json_option
@click.pass_obj
def serve(client: Client, host: str | None, port: int | None, config_path: Path | None, access_log: bool,
          as_json: bool) -> None:
    """Run a registry node: API, web seed, tracker, and a seed of every model it holds.

    It accepts, serves and mirrors only what the trust policy of its home accepts. It says
    where it serves once it listens (with --json, one line {"serving": URL} on stdout); a
    port in use is refused first (exit 2).
    """
    config = load_config(config_path, client, host, port)
    client.close()  # the node opens its own handles on the same home
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready(url: str) -> None:
        if as_json:
            emit({"serving": url}, True, "")
            sys.stdout.flush()
        else:
            click.echo(f"registry node on {url} (Ctrl-C to stop)", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_node(config, logging.getLogger("aiohttp.access") if access_log else None, ready))


@click.command()
@click.argument("ref", type=REF)
@click.option("--registry", help=REGISTRY_HELP)
@json_option
@click.pass_obj
def push(client: Client, ref: str, registry: str | None, as_json: bool) -> None:
    """Upload a release from the vault to a registry node."""
    registry = registry_url(client, registry, "push")
    entry = client.vault.resolve(ref)
    client.verify(entry.manifest.ref, fast=True)  # never push bytes that no longer verify
    node = RegistryClient(registry)
    result = node.push(entry.envelope, client.vault.snapshot_dir(entry.manifest))
    heads = push_heads(client, node, entry.manifest.name)
    result["tlog_proof"] = keep_log_proof(client, registry, entry.digest, result.get("tlog_proof"))
    added = result.get("signatures_added") or 0
    emit({**result, "heads": heads}, as_json, f"{entry.manifest.ref}: {result['status']} on {registry}"
         + (f"; {added} new signature(s) merged" if added else "")
         + "".join(f"\n  head: {h}" for h in heads))


@click.command()
@click.argument("text", required=False)
@click.option("--registry", help=REGISTRY_HELP)
@click.option("--publisher", help="Only releases signed by this publisher key id (or prefix).")
@click.option("--license", "license_", help="Only releases under this SPDX license.")
@json_option
@click.pass_obj
def search(client: Client, text: str | None, registry: str | None, publisher: str | None, license_: str | None,
           as_json: bool) -> None:
    """Search a registry node (what it lists is not trusted until you pull and verify)."""
    registry = registry_url(client, registry, "search")
    models = RegistryClient(registry).search(text, publisher=publisher, license=license_)

    def listing_text() -> str:
        if not models:
            return "no matches"
        rows = [(cut(f"{m['name']}@{m['version']}"), cut(str(m["license"])),
                 human_size(m["size"]) if isinstance(m["size"], int) else "?", cut(str(m["publisher"])))
                for m in models]
        ref_w = max(len("REF"), *(len(r[0]) for r in rows))
        lic_w = max(len("LICENSE"), *(len(r[1]) for r in rows))
        lines = [f"{'REF':<{ref_w}}  {'LICENSE':<{lic_w}}  {'SIZE':>9}  PUBLISHER (as listed, unverified)"]
        lines += [f"{r[0]:<{ref_w}}  {r[1]:<{lic_w}}  {r[2]:>9}  {r[3]}" for r in rows]
        return "\n".join(lines)

    emit(models, as_json, listing_text)


@click.command()
@click.option("--upstream", "upstreams", multiple=True, help="Upstream node URL (repeatable; default: config).")
@click.option("--once", "once", is_flag=True, help="Sync once and exit (default).")
@click.option("--interval", type=click.FloatRange(min=1), help="Sync every S seconds until stopped.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=600, show_default=True, help="Per-release download bound.")
@json_option
@click.pass_obj
def mirror(client: Client, upstreams: tuple[str, ...], once: bool, interval: float | None,
           config_path: Path | None, timeout: float, as_json: bool) -> None:
    """Copy from upstream nodes what this node's policy approves (run on the node's home)."""
    config = load_config(config_path, client, None, None)
    sources = upstreams or config.upstreams
    if not sources:
        raise click.UsageError("no upstream: give --upstream URL or set upstreams in --config")
    index = Index(client.paths.data_dir / "registry.db", config.database_url)
    try:
        while True:
            for upstream in sources:
                report = sync(client, index, upstream, timeout=timeout)
                emit(report.to_dict(), as_json, _sync_text(report))
            if interval is None or once:
                return
            time.sleep(interval)
    finally:
        index.close()


def keep_log_proof(client: Client, registry: str, digest: str, answered: object) -> str | None:
    """The node's .tlog-proof of the release (from its answer, else its log), kept with the
    vault for `log verify`, bundles and `trust require --logged`; None from a node without one."""
    if isinstance(answered, str) and len(answered) <= MAX_PROOF_BYTES:
        client.logs.save_proof(digest, answered.encode())
        return answered
    try:
        return fetch_proof(client.logs, LogReader(registry), digest).decode("utf-8", "replace")
    except NotFoundError:
        return None


def push_heads(client: Client, node: RegistryClient, name: str) -> list[str]:
    """Offer the registry the heads held here for `name`, oldest first (the publisher-signed
    one before a timestamp refresh of it): what it accepted or why not, one line each."""
    lines = []
    for envelope in reversed(client.head_envelopes(name)):
        try:
            answer = node.put_head(envelope)
            lines.append(f"sequence {answer.get('sequence')} accepted")
        except RollbackError:
            lines.append("the registry already has this head or a newer one")
        except VerificationError as exc:
            lines.append(f"refused: {exc}")
    return lines


def _sync_text(r: SyncReport) -> str:
    return "\n".join(
        [f"{r.upstream}: {len(r.added)} added, {len(r.present)} already here, "
         f"{len(r.refused)} refused, {len(r.failed)} failed"]
        + [f"  added   {x}" for x in r.added]
        + [f"  refused {x}: {why}" for x, why in r.refused]
        + [f"  failed  {x}: {why}" for x, why in r.failed]
    )
