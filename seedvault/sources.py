"""Where a pull's signed envelope (and, from a registry, its torrent) comes from.

Either is untrusted input: the envelope is judged under the local policy and the torrent
checked against the signed binding by `swarming.pull`, whatever served them.
"""

from __future__ import annotations

import os
from pathlib import Path

from seedvault.client import Client
from seedvault.errors import UsageError
from seedvault.registry.client import RegistryClient
from seedvault.registry.resolve import resolve
from seedvault.signing import Envelope
from seedvault.swarming import read_envelope_source


def release_source(
    client: Client, ref: str, *, envelope: str | os.PathLike[str] | None, registry: str | None
) -> tuple[str, Envelope, bytes | None]:
    """`(ref, envelope, torrent or None)`: from an envelope file or bundle, or a registry
    (where `NS/NAME` resolves to the newest version the local policy trusts)."""
    if (envelope is None) == (registry is None):
        raise UsageError("give exactly one of an envelope file (--envelope) or a registry URL (--registry)")
    if registry is not None:
        node = RegistryClient(registry)
        resolved, signed = resolve(client, node, ref)
        name, _, version = resolved.partition("@")
        return resolved, signed, node.torrent(name, version)
    assert envelope is not None
    return ref, read_envelope_source(Path(envelope)), None
