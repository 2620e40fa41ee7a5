"""seedvault: signed, verifiable open-weight models, shared peer to peer.

The small public API. Every function uses the state under $SEEDVAULT_HOME (or the
platform's user directories) unless `home` is given, and verifies before it returns:

    import seedvault
    tensors = seedvault.load("acme/tiny@1.0")          # dict name -> numpy array
    path = seedvault.snapshot_path("acme/tiny")         # verified directory, newest version
    verdict = seedvault.verify("acme/tiny@1.0")         # signers, roles, digest
    report = seedvault.pull("acme/tiny@1.0", registry="http://10.0.0.2:8470")
"""

from __future__ import annotations

import os as _os
from collections.abc import Sequence as _Sequence
from pathlib import Path as _Path
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from seedvault.client import Admitted, Client
from seedvault.errors import (
    Error,
    IntegrityError,
    NotFoundError,
    PolicyError,
    SignatureError,
    TransferError,
    UsageError,
    VerificationError,
)
from seedvault.manifest import Manifest, Ref
from seedvault.signing import Verdict

if _TYPE_CHECKING:
    from seedvault.swarming import PullReport

__all__ = [
    "Admitted", "Client", "Error", "IntegrityError", "Manifest", "NotFoundError", "PolicyError", "Ref",
    "SignatureError", "TransferError", "UsageError", "Verdict", "VerificationError", "export_bundle",
    "gguf_path", "import_bundle", "load", "pull", "snapshot_path", "verify",
]  # fmt: skip

# What `home=` takes: a directory (str or path), or None for $SEEDVAULT_HOME / the user dirs.
# A type alias for annotations only, so private: `seedvault.Home` is not an API.
_Home = str | _os.PathLike[str] | None


def __dir__() -> list[str]:
    """The public API only (not the modules and helpers this package imports)."""
    return sorted(__all__)


def load(
    ref: str, framework: str = "numpy", *, per_file: bool = False, fast: bool = False, home: _Home = None
) -> dict[str, _Any]:
    """Tensors of a verified model: `{name: array}`, or `{file: {name: array}}` with per_file.
    A single GGUF file's tensors come with its metadata (`.metadata`) and ggml types
    (`.types`); quantized tensors are their raw blocks (uint8).

    Verifies the signatures under the local policy and hashes the exact bytes it returns.
    `fast=True` trusts a file's verification record while its size, mtime, inode and ctime
    are unchanged (any change means a full check). framework: "numpy" or "pt" (torch).
    """
    with Client(home) as client:
        return client.load(ref, framework=framework, per_file=per_file, fast=fast)


def snapshot_path(ref: str, *, fast: bool = True, home: _Home = None) -> _Path:
    """The verified snapshot directory of `ref`, for path-based loaders (transformers...)."""
    with Client(home) as client:
        return client.snapshot_path(ref, fast=fast)


def gguf_path(ref: str, *, fast: bool = True, home: _Home = None) -> _Path:
    """The verified path of `ref`'s GGUF file, for llama.cpp-style loaders (which take a file)."""
    with Client(home) as client:
        return client.gguf_path(ref, fast=fast)


def verify(ref: str, *, fast: bool = False, home: _Home = None) -> Verdict:
    """Re-check signatures under the current policy and every file's bytes."""
    with Client(home) as client:
        return client.verify(ref, fast=fast)


def import_bundle(bundle: str | _os.PathLike[str], *, home: _Home = None) -> Admitted:
    """Verify an air-gap bundle (directory or tar) under the local policy and store it."""
    from seedvault.bundle import import_bundle as _import

    with Client(home) as client:
        return _import(client, _Path(bundle))


def export_bundle(ref: str, dest: str | _os.PathLike[str], *, tar: bool = False, home: _Home = None) -> _Path:
    """Write a verified release as a self-contained bundle for carrying across an air gap."""
    from seedvault.bundle import export_bundle as _export

    with Client(home) as client:
        return _export(client, ref, _Path(dest), as_tar=tar)


def pull(
    ref: str,
    *,
    envelope: str | _os.PathLike[str] | None = None,
    registry: str | None = None,
    peers: _Sequence[str] = (),
    web_seeds: _Sequence[str] = (),
    trackers: _Sequence[str] = (),
    lan: bool = False,
    dht_nodes: _Sequence[str] = (),
    timeout: float = 600.0,
    home: _Home = None,
) -> PullReport:
    """Fetch `ref` from the swarm into the vault, verified, and return what happened.

    The signed envelope comes from `envelope` (a JSON file, or a bundle directory or tar),
    a `registry` node URL, or (neither given) the DHT joined through `dht_nodes`; it is
    judged under the local policy before any model byte is asked for. Peers are
    `"host:port"` strings; `lan` turns on LAN discovery and `dht_nodes` joins a (private)
    DHT. Bytes are verified before they reach the vault.
    """
    from seedvault.p2p import Swarm, SwarmConfig, parse_endpoint
    from seedvault.sources import release_source
    from seedvault.swarming import pull as _pull

    config = SwarmConfig(lan=lan, dht_nodes=tuple(parse_endpoint(n, "DHT node") for n in dht_nodes))
    with Client(home) as client, Swarm(config) as swarm:
        # With neither an envelope nor a registry, the DHT (through dht_nodes) is the source.
        ref, signed, torrent = release_source(client, ref, envelope=envelope, registry=registry, swarm=swarm,
                                              timeout=min(timeout, 120.0))
        return _pull(client, ref, signed, peers=[parse_endpoint(p, "peer") for p in peers], swarm=swarm,
                     web_seeds=web_seeds, trackers=trackers, torrent=torrent, timeout=timeout)
