"""Shared fixtures: temporary homes, a generated model, keys, a publisher and a receiver.

Everything is real: files on disk, SQLite, Ed25519/P-256 signatures. Helpers that tests
import (`from conftest import ...`) build hand-signed manifests and bundles for attacks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from safetensors.numpy import save_file

if TYPE_CHECKING:
    from swarm_helpers import Child

from seedvault import hashing
from seedvault.client import Client
from seedvault.manifest import (
    FileEntry,
    License,
    Manifest,
    Origin,
    TorrentBinding,
    info_hash_v2,
    torrent_name,
)
from seedvault.signing import Envelope, PrivateKey, TrustedKey

MODEL = "acme/tiny"
VERSION = "1.0"
REF = f"{MODEL}@{VERSION}"
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"
# Small pieces so the generated shards span several pieces and leaves.
PIECE = 16 * 1024


# ---- the model ------------------------------------------------------------------------


Tensors = dict[str, dict[str, np.ndarray]]


def make_model(directory: Path, seed: int = 0) -> Tensors:
    """Write 2 safetensors shards, config.json and LICENSE; return the saved tensors per file."""
    rng = np.random.default_rng(seed)
    shards: Tensors = {
        SHARD1: {
            # 64*96*4 = 24 KiB: two 16 KiB leaves, two pieces at PIECE.
            "embed.weight": rng.standard_normal((64, 96)).astype(np.float32),
            "embed.bias": rng.standard_normal(96).astype(np.float32),
        },
        SHARD2: {
            "head.weight": rng.integers(-1000, 1000, (32, 16)).astype(np.int16),
            "head.scale": rng.standard_normal(3).astype(np.float64),
            "head.half": rng.standard_normal(7).astype(np.float16),
            "head.mask": rng.random(5) > 0.5,
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, tensors in shards.items():
        save_file(tensors, str(directory / name), metadata={"format": "np"})
    (directory / "config.json").write_text(json.dumps({"hidden": 96, "seed": seed}))
    (directory / "LICENSE").write_text("Apache License 2.0 (test copy)\n")
    return shards


@dataclass(frozen=True)
class Model:
    path: Path
    tensors: Tensors


@pytest.fixture
def model(tmp_path: Path) -> Model:
    path = tmp_path / "model"
    return Model(path, make_model(path))


# ---- keys and clients ---------------------------------------------------------------


@pytest.fixture(scope="session")
def pub_key() -> PrivateKey:
    return PrivateKey.generate("ed25519")


@pytest.fixture(scope="session")
def p256_key() -> PrivateKey:
    return PrivateKey.generate("p256")


@pytest.fixture(scope="session")
def approver_key() -> PrivateKey:
    return PrivateKey.generate("ed25519")


@pytest.fixture(scope="session")
def stranger_key() -> PrivateKey:
    return PrivateKey.generate("ed25519")


def trust(client: Client, key: PrivateKey, role: str = "publisher", *scopes: str) -> None:
    policy = client.policy.with_key(TrustedKey(key.public, role, scopes or ("acme/*",)))  # type: ignore[arg-type]
    client.save_policy(policy)


@pytest.fixture
def nodes() -> Iterator[list[Any]]:
    """Registry nodes a test starts (registry_helpers.start); each is stopped, bounded, at teardown."""
    started: list[Any] = []
    yield started
    for server in reversed(started):
        server.close()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """Factory: a Client with its own temporary SEEDVAULT_HOME; all closed at teardown."""
    made: list[Client] = []

    def factory(name: str) -> Client:
        client = Client(tmp_path / f"home-{name}")
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def publisher(make_client: Any, model: Model, pub_key: PrivateKey) -> Client:
    """A client that trusts its own key for acme/* and published acme/tiny@1.0."""
    client: Client = make_client("publisher")
    trust(client, pub_key)
    client.publish(model.path, name=MODEL, version=VERSION, license="Apache-2.0", key=pub_key,
                   publisher="Acme", piece_length=PIECE)
    return client


@pytest.fixture
def receiver(make_client: Any, pub_key: PrivateKey) -> Client:
    """A fresh client that trusts the publisher's key for acme/* (and nothing else)."""
    client: Client = make_client("receiver")
    trust(client, pub_key)
    return client


@pytest.fixture
def bundle(publisher: Client, tmp_path: Path) -> Path:
    """acme/tiny@1.0 exported by the publisher as a bundle directory."""
    from seedvault.bundle import export_bundle

    return export_bundle(publisher, REF, tmp_path / "bundle")


# ---- hand-built manifests -----------------------------------------------------------


def entries_for(directory: Path, paths: list[str] | None = None, piece_length: int = PIECE) -> list[FileEntry]:
    """FileEntries with the real digests of files under `directory` (no safetensors summary)."""
    names = paths or sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    out = []
    for name in names:
        d = hashing.hash_file(directory / name, piece_length)
        out.append(FileEntry(name, d.size, d.sha256, d.pieces_root))
    return out


def build_manifest(
    entries: list[FileEntry],
    *,
    name: str = MODEL,
    version: str = VERSION,
    created: datetime | None = None,
    expires: datetime | None = None,
    license: str = "Apache-2.0",
    allow_pickle: bool = False,
    piece_length: int = PIECE,
) -> Manifest:
    return Manifest(
        name=name,
        version=version,
        created=created or datetime.now(UTC).replace(microsecond=0),
        files=tuple(entries),
        license=License(license),
        origin=Origin("Acme"),
        torrent=TorrentBinding(piece_length, info_hash_v2(torrent_name(name, version), entries, piece_length)),
        expires=expires,
        allow_pickle=allow_pickle,
    )


def sign_payload(payload: bytes, *keys: PrivateKey) -> Envelope:
    envelope = Envelope(payload)
    for key in keys:
        envelope = envelope.sign(key)
    return envelope


def sign_statement(statement: Mapping[str, Any], *keys: PrivateKey) -> Envelope:
    """Sign a statement dict as is, without validating it first (attackers do not validate)."""
    return sign_payload(json.dumps(statement, indent=2).encode(), *keys)


def rebind(manifest: Manifest, **changes: Any) -> Manifest:
    """A copy with `changes`, its torrent binding recomputed so that it stays valid."""
    changed = dataclasses.replace(manifest, **changes)
    changed = dataclasses.replace(
        changed, torrent=TorrentBinding(changed.torrent.piece_length, changed.computed_info_hash_v2())
    )
    changed.validate()
    return changed


def resign(manifest: Manifest, key: PrivateKey, **changes: Any) -> tuple[Envelope, Manifest]:
    """A new manifest with `changes` (see `rebind`), signed by `key`."""
    changed = rebind(manifest, **changes)
    return sign_payload(changed.to_payload(), key), changed


def write_bundle(dest: Path, envelope: Envelope, source: Path | None = None,
                 files: Mapping[str, bytes] | None = None) -> Path:
    """A bundle directory: envelope.json, and files/ copied from `source` and/or given bytes."""
    (dest / "files").mkdir(parents=True)
    (dest / "envelope.json").write_bytes(envelope.to_json())
    (dest / "bundle.json").write_text(json.dumps({"format": "seedvault-bundle/1"}))
    if source is not None:
        for p in sorted(source.rglob("*")):
            if p.is_file():
                target = dest / "files" / p.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(p.read_bytes())
    for rel, data in (files or {}).items():
        target = dest / "files" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest


# ---- what the vault holds -----------------------------------------------------------


def db_rows(client: Client, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Query the vault's SQLite database directly, through its own connection to the file."""
    db = sqlite3.connect(client.paths.vault_dir / "index.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def blob_names(client: Client) -> set[str]:
    """Every stored blob (files anywhere under vault/blobs)."""
    blobs = client.paths.vault_dir / "blobs"
    return {p.relative_to(blobs).as_posix() for p in blobs.rglob("*") if p.is_file()} if blobs.is_dir() else set()


def vault_state(client: Client) -> dict[str, Any]:
    """Everything a refused operation must leave as it was: rows, blobs, layers, snapshots."""
    vault = client.paths.vault_dir
    state: dict[str, Any] = {
        "blobs": blob_names(client),
        "layers": _names(vault / "layers"),
        "snapshots": sorted(p.relative_to(vault).as_posix() for p in (vault / "snapshots").rglob("*"))
        if (vault / "snapshots").is_dir() else [],
    }
    for table in ("manifests", "first_seen", "latest"):
        state[table] = (
            sorted(map(str, db_rows(client, f"SELECT * FROM {table}"))) if (vault / "index.db").exists() else []
        )
    return state


def assert_no_staging(client: Client) -> None:
    staged = list(_names(client.paths.vault_dir / "incoming"))
    assert not staged, f"staging left behind in vault/incoming: {staged}"


def assert_unchanged(client: Client, before: dict[str, Any]) -> None:
    assert_no_staging(client)
    after = vault_state(client)
    for key in before:
        assert after[key] == before[key], f"vault {key} changed: before {before[key]}, after {after[key]}"


def assert_vault_clean(client: Client, name: str = MODEL) -> None:
    """Nothing at all in the vault: no snapshot of `name`, no blobs, no layers, no rows, no staging."""
    ns, short = name.split("/")
    snap = client.paths.vault_dir / "snapshots" / ns / short
    assert not snap.exists() or not any(snap.iterdir()), f"snapshot left: {sorted(_names(snap))}"
    state = vault_state(client)
    for key in ("blobs", "layers", "manifests", "first_seen", "latest"):
        assert not state[key], f"vault {key} not empty: {state[key]}"
    assert_no_staging(client)


def make_writable_and_tamper(path: Path, offset: int, *, keep_mtime: bool = True) -> None:
    """Flip one byte in place (same inode, same size); optionally restore the old mtime."""
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.chmod(path, st.st_mode & 0o777)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---- child processes ------------------------------------------------------------------

Spawn = Callable[..., "Child"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `seedvault` child processes; every one is stopped (SIGTERM, then SIGKILL) at teardown."""
    from swarm_helpers import Child

    children: list[Child] = []

    def start(home: Path, *args: str) -> Child:
        child = Child(home, *args)
        children.append(child)
        return child

    yield start
    for child in reversed(children):
        child.stop()
