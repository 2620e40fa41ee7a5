"""Lineage: a release's ancestry, followed by manifest digest, each ancestor judged here.

A release's signed lineage names the models it derives from and pins each by manifest
digest; those releases pin theirs, and so on. `ancestry` walks that graph, finding each
envelope by its digest wherever it is at hand (a bundle's ancestors, the vault, the
ancestor store), and asks the trust core for each node's verdict
(`signing.trusted.judge_ancestor`); the policy's rules over the whole ancestry are
`signing.trusted.check_lineage`. Fetching lives here; deciding does not.

The walk is bounded (MAX_ANCESTORS nodes, MAX_DEPTH links deep): a longer ancestry is
refused, never cut short, since the part left out could hold a denied ancestor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedvault.errors import ManifestError, OversizeError
from seedvault.manifest import Manifest, check_hex_digest
from seedvault.settings import MAX_ENVELOPE_BYTES
from seedvault.signing import Envelope, TrustPolicy
from seedvault.signing.trusted import AncestorVerdict, judge_ancestor

MAX_ANCESTORS = 256
MAX_DEPTH = 32

Lookup = Callable[[str], Envelope | None]


@dataclass(frozen=True)
class LineageNode:
    """A release in an ancestry tree: the model itself at the root (no `ancestor`), each
    base below the release that pins it."""

    ref: str
    digest: str | None
    ancestor: AncestorVerdict | None  # None at the root
    envelope: Envelope | None
    parents: tuple[LineageNode, ...] = ()

    def walk(self) -> Iterator[LineageNode]:
        """Every node below this one, depth first."""
        for p in self.parents:
            yield p
            yield from p.walk()

    def ancestors(self) -> list[AncestorVerdict]:
        return [n.ancestor for n in self.walk() if n.ancestor is not None]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = (self.ancestor.to_dict() if self.ancestor is not None
                               else {"ref": self.ref, "digest": self.digest, "status": "root"})
        out["parents"] = [p.to_dict() for p in self.parents]
        return out


def ancestry(manifest: Manifest, digest: str, lookup: Lookup, policy: TrustPolicy) -> LineageNode:
    """The ancestry tree of a release, each ancestor with its verdict under `policy`.

    Raises OversizeError for an ancestry over MAX_ANCESTORS releases or MAX_DEPTH links."""
    seen = 0
    judged: dict[tuple[str, str, str | None, str], AncestorVerdict] = {}

    def parents(m: Manifest, chain: str, depth: int, path: frozenset[str]) -> tuple[LineageNode, ...]:
        nonlocal seen
        out = []
        for link in m.lineage:
            seen += 1
            if seen > MAX_ANCESTORS:
                raise OversizeError(f"lineage of {manifest.ref}: expected at most {MAX_ANCESTORS} ancestors, "
                                    "found more", hint="an ancestry this large is refused rather than cut short")
            if depth > MAX_DEPTH:
                raise OversizeError(f"lineage of {manifest.ref}: expected at most {MAX_DEPTH} generations, found "
                                    f"more ({chain})")
            link_chain = f"{chain} {link.relation} {link.ref}"
            envelope = lookup(link.manifest_digest) if link.manifest_digest else None
            key = (link.relation, link.ref, link.manifest_digest, link_chain)
            verdict = judged.get(key) or judge_ancestor(link.relation, link.ref, link.manifest_digest, envelope,
                                                        policy, link_chain)
            judged[key] = verdict
            grand: tuple[LineageNode, ...] = ()
            # A digest already on the way here would be a cycle (SHA-256 makes one unforgeable; stop anyway).
            if verdict.manifest is not None and link.manifest_digest not in path:
                assert link.manifest_digest is not None
                grand = parents(verdict.manifest, link_chain, depth + 1, path | {link.manifest_digest})
            out.append(LineageNode(link.ref, link.manifest_digest, verdict, envelope, grand))
        return tuple(out)

    return LineageNode(manifest.ref, digest, None, None, parents(manifest, manifest.ref, 1, frozenset({digest})))


class AncestorStore:
    """Envelopes of ancestors this vault holds no files of (a bundle carried them), one file
    per manifest digest, read back only when the payload hashes to its name.

    Nothing here is trusted: each envelope is judged whenever a lineage uses it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / f"{check_hex_digest(digest, 'ancestor digest')}.json"

    def get(self, digest: str) -> Envelope | None:
        path = self._path(digest)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_ENVELOPE_BYTES + 1)
        except FileNotFoundError:
            return None
        try:
            envelope = Envelope.from_json(raw, f"ancestor envelope {path}")
        except ManifestError:
            return None  # damaged: as if absent (it can be imported again)
        return envelope if envelope.digest == digest else None

    def put(self, envelope: Envelope) -> None:
        path = self._path(envelope.digest)
        if path.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
