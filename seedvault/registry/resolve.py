"""A registry node as a source of signed statements (`sources.EnvelopeSource`).

What the node says about trust is ignored: its heads, listings and envelopes are judged by
`sources.choose_release` under the LOCAL policy and against the head already held, so a
registry can neither move `NS/NAME` back to an older release nor hide a yank from a client
that has seen it; a head past its expiry is reported (a registry withholding newer heads is
noticed within the head's lifetime).
"""

from __future__ import annotations

import contextlib

from seedvault.client import Client
from seedvault.errors import Error, NotFoundError
from seedvault.registry.client import RegistryClient
from seedvault.signing import Envelope
from seedvault.signing.trusted import AcceptedHead
from seedvault.sources import choose_release, take_heads
from seedvault.tlog.follow import fetch_proof
from seedvault.tlog.remote import LogReader

MAX_LISTED_CANDIDATES = 64  # versions judged when no head names the latest


class RegistrySource:
    def __init__(self, registry: str | RegistryClient, client: Client | None = None) -> None:
        self.node = registry if isinstance(registry, RegistryClient) else RegistryClient(registry)
        # A client that trusts transparency logs also takes each envelope's .tlog-proof from
        # the node (kept unjudged; judged with the envelope, see Client.check_logged).
        self.logs = client.logs if client is not None and client.policy.logs else None

    @property
    def label(self) -> str:
        return self.node.base_url

    def heads(self, name: str) -> list[Envelope]:
        return self.node.heads(name)

    def envelope(self, name: str, version: str) -> Envelope | None:
        try:
            envelope = self.node.envelope(name, version)
        except NotFoundError:
            return None
        if self.logs is not None:
            with contextlib.suppress(Error):  # no proof: refused by the judgement, if the policy needs one
                fetch_proof(self.logs, LogReader(self.node.base_url), envelope.digest)
        return envelope

    def candidates(self, name: str) -> list[Envelope]:
        listed = [r for r in self.node.versions(name) if not r.get("yanked")]
        found = (self.envelope(name, str(r["version"])) for r in listed[:MAX_LISTED_CANDIDATES])
        return [e for e in found if e is not None]

    def torrent(self, name: str, version: str) -> bytes | None:
        return self.node.torrent(name, version)


def refresh_head(client: Client, registry: RegistryClient, name: str) -> AcceptedHead | None:
    """Take the registry's heads of `name` into the vault (judged), and return the head held."""
    return take_heads(client, [RegistrySource(registry, client)], name)


def resolve(client: Client, registry: RegistryClient, ref: str) -> tuple[str, Envelope]:
    """`(NS/NAME@VERSION, envelope)` for `ref`, judged under the local policy."""
    chosen = choose_release(client, ref, [RegistrySource(registry, client)])
    return chosen.ref, chosen.envelope
