"""Reading a node's log over HTTP: checkpoint, tiles, entry bundles, proofs, keys.

Every answer is bounded in size and time, and nothing it says is trusted: checkpoints are
judged under the local policy, and tiles only feed proofs checked against signed roots.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from seedvault.errors import NotFoundError, TransferError
from seedvault.tlog.merkle import HASH_SIZE
from seedvault.tlog.note import MAX_NOTE_BYTES
from seedvault.tlog.proof import MAX_PROOF_BYTES
from seedvault.tlog.tiles import TILE_WIDTH

TIMEOUT = 30.0
MAX_TILE = TILE_WIDTH * HASH_SIZE
MAX_BUNDLE = TILE_WIDTH * (2 + 0xFFFF)


class LogReader:
    def __init__(self, base_url: str, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, limit: int) -> bytes:
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # the registry the user named
                data: bytes = resp.read(limit + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFoundError(f"{url}: not found on the registry") from None
            raise TransferError(f"{url}: the registry answered HTTP {exc.code}") from None
        except (OSError, urllib.error.URLError) as exc:
            raise TransferError(f"{url}: could not be reached ({getattr(exc, 'reason', exc)})",
                                hint="check the URL and that the node is running") from None
        if len(data) > limit:
            raise TransferError(f"{url}: expected at most {limit:,} bytes, found more")
        return data

    def checkpoint(self) -> bytes:
        return self.get("log/checkpoint", MAX_NOTE_BYTES)

    def tile(self, path: str) -> bytes:
        return self.get(f"log/{path}", MAX_BUNDLE if path.startswith("tile/entries/") else MAX_TILE)

    def proof(self, digest: str) -> bytes:
        return self.get(f"log/proof/{digest}", MAX_PROOF_BYTES)

    def keys(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.get("log/keys", 16 * 1024))
        except ValueError:
            raise TransferError(f"{self.base_url}/log/keys: expected JSON, found something else") from None
        if not isinstance(doc, dict):
            raise TransferError(f"{self.base_url}/log/keys: expected a JSON object")
        return doc
