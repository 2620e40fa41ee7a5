"""Where a pull's signed statements come from, and the one place that picks among them.

A **source** offers, for a model, the heads it knows and the envelope of a version; an
envelope file or bundle, a registry node and the DHT are sources (`EnvelopeSource`). None is
trusted: `choose_release` judges everything they offer under the local policy, takes the
newest head (never a lower sequence than the one held), resolves `NS/NAME` through it, checks
each envelope is for what was asked (and, for the head's latest, has the digest the head
pins), and never resolves to a release older than the vault holds or to a yanked one.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from seedvault.bundle import is_bundle, read_bundle_heads, read_envelope_source, stash_bundle_proof
from seedvault.client import Client
from seedvault.errors import (
    ExpiredError,
    IntegrityError,
    NotFoundError,
    SeedvaultWarning,
    UsageError,
    VerificationError,
)
from seedvault.manifest import Manifest, Ref
from seedvault.signing import Envelope, Verdict
from seedvault.signing.trusted import AcceptedHead, is_newer

if TYPE_CHECKING:
    from seedvault.p2p.session import Swarm


class EnvelopeSource(Protocol):
    """What a source of signed statements offers. Every answer is unjudged."""

    @property
    def label(self) -> str:
        """Who is speaking, for messages (a file, a registry URL, "the DHT")."""
        ...

    def heads(self, name: str) -> list[Envelope]:
        """The heads of model NAME this source knows (none: an empty list)."""
        ...

    def envelope(self, name: str, version: str) -> Envelope | None:
        """The envelope of NAME@VERSION, or None when this source has none."""
        ...

    def candidates(self, name: str) -> list[Envelope]:
        """Envelopes of other versions of NAME worth judging when no head names the latest."""
        ...

    def torrent(self, name: str, version: str) -> bytes | None:
        """The release's .torrent, if this source serves one (checked against the manifest)."""
        ...


@dataclass(frozen=True)
class Chosen:
    ref: str  # NS/NAME@VERSION
    envelope: Envelope
    verdict: Verdict
    source: EnvelopeSource

    def torrent(self) -> bytes | None:
        name, _, version = self.ref.partition("@")
        return self.source.torrent(name, version)


class FileSource:
    """An envelope file, or a bundle directory or tar (which also carries the model's heads)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._envelope = read_envelope_source(self.path)
        self._manifest = Manifest.from_payload(self._envelope.payload)

    @property
    def label(self) -> str:
        return str(self.path)

    def heads(self, name: str) -> list[Envelope]:
        return read_bundle_heads(self.path) if is_bundle(self.path) and name == self._manifest.name else []

    def envelope(self, name: str, version: str) -> Envelope | None:
        return self._envelope if (name, version) == (self._manifest.name, self._manifest.version) else None

    def candidates(self, name: str) -> list[Envelope]:
        return [self._envelope] if name == self._manifest.name else []

    def torrent(self, name: str, version: str) -> bytes | None:
        return None


def _labels(sources: Sequence[EnvelopeSource], joiner: str = "or") -> str:
    return f" {joiner} ".join(s.label for s in sources)


def take_heads(client: Client, sources: Sequence[EnvelopeSource], name: str) -> AcceptedHead | None:
    """Judge the heads every source offers for NAME, keep the highest accepted one, and return
    the head held afterwards. A stale head warns, or raises under `fresh_heads` when no
    source has a fresh one."""
    stale: ExpiredError | None = None
    for source in sources:
        _current, refusals = client.admit_heads(source.heads(name), name)
        for exc in refusals:
            if isinstance(exc, ExpiredError):
                stale = stale or exc
            else:
                warnings.warn(SeedvaultWarning(f"{source.label}: refused a head of {name}: {exc}"), stacklevel=2)
    current = client.current_head(name)
    if current is None and stale is not None:
        raise stale  # the policy requires fresh heads, and the sources serve only stale ones
    if current is not None and current.stale:
        warnings.warn(SeedvaultWarning(
            f"{current.head.ref} expired at {current.head.expires:%Y-%m-%d %H:%M} UTC: a newer release or yank "
            f"may exist that {_labels(sources)} does not show"), stacklevel=2)
    return current


def choose_release(client: Client, ref: str, sources: Sequence[EnvelopeSource]) -> Chosen:
    """The release REF names, from SOURCES, judged under the local policy (see the module)."""
    if not sources:
        raise UsageError("no source of envelopes", hint="give --envelope FILE, --registry URL or --dht-node H:P")
    wanted = Ref.parse(ref)
    current = take_heads(client, sources, wanted.name)
    if wanted.version is not None:
        return _exact(client, wanted, sources)
    if current is not None and current.head.yank_reason(current.head.latest_version) is None:
        head = current.head
        for source in sources:
            envelope = source.envelope(wanted.name, head.latest_version)
            if envelope is None:
                continue
            if envelope.digest != head.latest_digest:
                warnings.warn(SeedvaultWarning(
                    f"{source.label}: {wanted.name}@{head.latest_version} has manifest digest {envelope.digest}, "
                    f"but the signed head pins {head.latest_digest}: ignored"), stacklevel=2)
                continue
            verdict = client.judge(envelope)
            return _not_older_than_held(client, Chosen(str(Ref(wanted.name, head.latest_version)), envelope,
                                                       verdict, source))
        raise NotFoundError(
            f"{wanted.name}: its signed head ({head.ref}) names {head.latest_version} as the latest release, "
            f"which {_labels(sources)} does not serve",
            hint=f"the source is behind, or hiding it: try another, or pull a version by name ({wanted.name}@VERSION)")
    if current is None:
        warnings.warn(SeedvaultWarning(
            f"{_labels(sources, 'and')}: no signed head of {wanted.name} this policy accepts: "
            "taking the newest version offered that it trusts, which a source can choose to hide"), stacklevel=2)
    return _not_older_than_held(client, _newest_offered(client, wanted.name, sources, current))


def _exact(client: Client, wanted: Ref, sources: Sequence[EnvelopeSource]) -> Chosen:
    assert wanted.version is not None
    mismatched: list[str] = []
    for source in sources:
        envelope = source.envelope(wanted.name, wanted.version)
        if envelope is None:
            continue
        verdict = client.judge(envelope)
        if verdict.manifest.name != wanted.name or verdict.manifest.version != wanted.version:
            mismatched.append(f"{source.label} offered {verdict.manifest.ref}")
            continue
        return Chosen(str(wanted), envelope, verdict, source)
    if mismatched:
        raise IntegrityError(f"asked for {wanted}, but {'; '.join(mismatched)}",
                             hint="the source offered a different model; check the envelope or registry")
    raise NotFoundError(f"{wanted}: not offered by {_labels(sources)}")


def _newest_offered(client: Client, name: str, sources: Sequence[EnvelopeSource],
                    current: AcceptedHead | None) -> Chosen:
    best: Chosen | None = None
    refusals: list[str] = []
    for source in sources:
        for envelope in source.candidates(name):
            try:
                verdict = client.judge(envelope)
            except VerificationError as exc:
                refusals.append(f"{source.label}: {exc}")
                continue
            manifest = verdict.manifest
            if manifest.name != name:
                refusals.append(f"{source.label}: offered {manifest.ref}, not a version of {name}")
                continue
            if client.yank_reason(manifest) is not None:
                continue
            if best is None or is_newer(manifest, best.verdict.manifest):
                best = Chosen(manifest.ref, envelope, verdict, source)
    if best is None:
        yanked = current is not None and current.head.yank_reason(current.head.latest_version) is not None
        raise NotFoundError(
            f"{name}: no version offered that your policy trusts and is not yanked"
            + (f" (the latest, {current.head.latest_version}, is yanked: "
               f"{current.head.yank_reason(current.head.latest_version)})" if yanked and current else "")
            + (f" ({'; '.join(refusals)})" if refusals else ""),
        )
    return best


def _not_older_than_held(client: Client, chosen: Chosen) -> Chosen:
    """Never resolve to a release older than the newest one the vault holds and may use."""
    try:
        held = client.resolve(chosen.verdict.manifest.name)
    except NotFoundError:
        return chosen
    if client.yank_reason(held.manifest) is None and is_newer(held.manifest, chosen.verdict.manifest):
        try:
            return Chosen(held.manifest.ref, held.envelope, client.judge(held.envelope), chosen.source)
        except VerificationError:
            return chosen  # the newer release held no longer verifies here (e.g. its key was revoked)
    return chosen


def release_source(
    client: Client, ref: str, *, envelope: str | os.PathLike[str] | None = None, registry: str | None = None,
    swarm: Swarm | None = None, timeout: float | None = None,
) -> tuple[str, Envelope, bytes | None]:
    """`(ref, envelope, torrent or None)` for a pull: from an envelope file or bundle, a
    registry, or (with a swarm in a DHT and neither of those) the DHT."""
    if envelope is not None and registry is not None:
        raise UsageError("give one of an envelope file (--envelope) or a registry URL (--registry), not both")
    sources: list[EnvelopeSource] = []
    if envelope is not None:
        sources.append(FileSource(envelope))
        if is_bundle(Path(envelope)):
            stash_bundle_proof(client, Path(envelope))  # its log proof, judged like any (trust require --logged)
    elif registry is not None:
        from seedvault.registry.resolve import RegistrySource

        sources.append(RegistrySource(registry, client))
    elif swarm is not None and swarm.config.dht_nodes:
        from seedvault.discovery import DhtSource

        sources.append(DhtSource(client, swarm, **({"timeout": timeout} if timeout is not None else {})))
    else:
        raise UsageError("no source for the signed envelope",
                         hint="give --envelope FILE, --registry URL, or --dht-node HOST:PORT to find it in a DHT")
    chosen = choose_release(client, ref, sources)
    client.check_usable(chosen.verdict.manifest)  # a yanked release is not pulled
    return chosen.ref, chosen.envelope, chosen.torrent()
