"""Where a pull's signed envelope (and, from a registry, its torrent) comes from.

Either is untrusted input: the envelope is judged under the local policy and the torrent
checked against the signed binding by `swarming.pull`, whatever served them.
"""

from __future__ import annotations

import os
from pathlib import Path

from seedvault.bundle import read_bundle_heads
from seedvault.client import Client
from seedvault.errors import UsageError
from seedvault.manifest import Manifest
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
        client.check_usable(Manifest.from_payload(signed.payload))  # a yanked release is not pulled
        name, _, version = resolved.partition("@")
        return resolved, signed, node.torrent(name, version)
    assert envelope is not None
    source = Path(envelope)
    signed = read_envelope_source(source)
    manifest = Manifest.from_payload(signed.payload)
    if source.is_dir() or source.suffix == ".tar":  # a bundle carries the model's heads
        client.admit_heads(read_bundle_heads(source), manifest.name)
    client.check_usable(manifest)
    return ref, signed, None
