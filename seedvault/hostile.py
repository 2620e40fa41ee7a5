"""A deliberately corrupt peer, for the demo and the tests: it serves bad pieces.

It loads a model's torrent, lets libtorrent confirm it has every piece, then overwrites
bytes on disk behind libtorrent's back. libtorrent does not re-hash what it already
checked, so it uploads the damaged blocks: exactly what a malicious or broken peer does.
Never used outside demonstrations and tests.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from seedvault.errors import TransferError
from seedvault.manifest import Manifest
from seedvault.p2p.session import Swarm, SwarmConfig
from seedvault.p2p.torrent import bound_torrent


class CorruptPeer:
    """A peer on 127.0.0.1 that holds a damaged copy of a model and serves it."""

    def __init__(self, manifest: Manifest, source: Path, workdir: Path, layers: dict[str, bytes]) -> None:
        self.copy = workdir / "corrupt-copy"
        shutil.copytree(source, self.copy)
        self.swarm = Swarm(SwarmConfig())
        ti = bound_torrent(manifest, layers)
        # Not seed mode: libtorrent hashes the intact copy once, then trusts it.
        self.handle = self.swarm.add(ti, self.copy)
        deadline = time.monotonic() + 60
        while not self.handle.status().is_seeding:
            if time.monotonic() > deadline:
                raise TransferError("the corrupt peer never finished checking its copy")
            self.swarm.pop_alerts(wait=0.1)
        piece = manifest.torrent.piece_length
        for f in manifest.files:
            path = self.copy / f.path
            path.chmod(0o644)
            with open(path, "r+b") as fh:  # one flipped byte in every piece
                for offset in range(0, f.size, piece):
                    fh.seek(offset)
                    byte = fh.read(1)
                    fh.seek(offset)
                    fh.write(bytes([byte[0] ^ 0xFF]))

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.swarm.endpoint

    def close(self) -> None:
        self.swarm.remove(self.handle)
        self.swarm.close()
        shutil.rmtree(self.copy, ignore_errors=True)


