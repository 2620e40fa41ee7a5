"""`seedvault log ...`: what a registry node's transparency log says, checked here."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from seedvault.cli._common import REF, emit, json_option, registry_url
from seedvault.client import Client
from seedvault.errors import NotFoundError, PolicyError
from seedvault.signing.trusted import check_logged
from seedvault.tlog.follow import MonitorReport, Observed, monitor, observe
from seedvault.tlog.remote import LogReader

MAX_POLLS = 10**6  # --interval polls until interrupted; this only bounds the loop


@click.group("log")
def log_group() -> None:
    """Registry nodes' transparency logs: checkpoints, proofs, monitoring."""


def _observed_text(o: Observed) -> str:
    cp = o.signed.checkpoint
    was = f" (held before: {o.previous[0]} entries, consistent)" if o.previous else " (first seen here)"
    return (f"log {cp.origin} ({o.log}): {cp.size} entries, root {cp.root.hex()}{was}\n"
            f"  cosigned by {len(o.witnesses)} trusted witness(es)"
            + (f": {', '.join(o.witnesses)}" if o.witnesses else "")
            + f"; {len(o.signed.note.signatures) - 1} cosignature line(s) in all")


@log_group.command("show")
@click.option("--registry", help="The registry node whose log to read.")
@json_option
@click.pass_obj
def log_show(client: Client, registry: str | None, as_json: bool) -> None:
    """The node's latest checkpoint, verified under your policy, checked against the largest
    one seen before (a log that forked is refused), and held."""
    url = registry_url(client, registry, "log show")
    observed = observe(client.logs, client.policy, LogReader(url))
    emit(observed.to_dict(), as_json, lambda: _observed_text(observed))


@log_group.command("verify")
@click.argument("ref", type=REF)
@json_option
@click.pass_obj
def log_verify(client: Client, ref: str, as_json: bool) -> None:
    """Inclusion of a release held in the vault in a trusted log, offline, from its .tlog-proof."""
    entry = client.vault.resolve(ref)
    policy = client.policy
    if not policy.logs:
        raise PolicyError("your policy trusts no transparency log, so no proof can be checked",
                          hint="seedvault trust log add VKEY (the node's log key, from its operator)")
    verdict = check_logged(entry.manifest, entry.digest, client.logs.proof(entry.digest), policy, client.logs.held)
    when = _when(verdict.entry.time)
    emit({"ref": entry.manifest.ref, "digest": entry.digest, **verdict.to_dict()}, as_json,
         f"{entry.manifest.ref}: entry {verdict.index} of {verdict.size} in the log {verdict.origin} "
         f"({verdict.log}), logged {when}; cosigned by {len(verdict.witnesses)} trusted witness(es)"
         + (f": {', '.join(verdict.witnesses)}" if verdict.witnesses else ""))


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _monitor_text(r: MonitorReport) -> str:
    cp = r.observed.signed.checkpoint
    lines = [f"log {cp.origin}: read entries {r.start}..{r.start + r.checked - 1 if r.checked else r.start} of "
             f"{cp.size}, each proven in the signed tree; {len(r.matches)} signed by the key"]
    lines += [f"  #{i}  {e.kind:<8} {e.ref}  digest {e.digest[:16]}  logged {_when(e.time)}" for i, e in r.matches]
    return "\n".join(lines)


@log_group.command("monitor")
@click.option("--key", "key_id", required=True, help="The signing key id (8+ hex digits) to watch for.")
@click.option("--registry", help="The registry node whose log to read.")
@click.option("--from", "start", type=click.IntRange(min=0), help="Read from this entry (default: after the "
              "last one this client read for this key; 0 at first).")
@click.option("--interval", type=click.FloatRange(min=1.0), help="Poll every S seconds until interrupted "
              "(default: one poll).")
@json_option
@click.pass_obj
def log_monitor(client: Client, key_id: str, registry: str | None, start: int | None, interval: float | None,
                as_json: bool) -> None:
    """Every release, head and approval the log holds that the key signed: a publisher sees
    a release signed by a stolen key within one poll."""
    url = registry_url(client, registry, "log monitor")
    if not client.policy.logs:
        raise NotFoundError("your policy trusts no transparency log to monitor",
                            hint="seedvault trust log add VKEY (the node's log key, from its operator)")
    for _poll in range(MAX_POLLS if interval else 1):
        report = monitor(client.logs, client.policy, LogReader(url), key_id, start)
        emit(report.to_dict(), as_json, _monitor_text(report))
        start = None
        if interval is None:
            break
        time.sleep(interval)
