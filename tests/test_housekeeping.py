"""Housekeeping: `rm`, `gc`, `du`, `list` with its status column, and a node's admin removal
freeing its disk.

Everything is real: the CLI in-process through `main()`, files and SQLite on disk, a second
process holding a pull's lock, registry nodes on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import World, make_world, ok, publish, refused, trust_publisher
from conftest import PIECE, Model, blob_names, db_rows, make_model, vault_state
from registry_helpers import NodeServer, start, wait_for

from seedvault._text import human_size
from seedvault.client import Client
from seedvault.errors import BusyError
from seedvault.registry import app as node_app
from seedvault.registry.client import RegistryClient
from seedvault.settings import paths
from seedvault.signing import PrivateKey
from seedvault.vault import Vault

ROOT = Path(__file__).parents[1]
CHILD_TIMEOUT = 30.0
ADMIN = "correct horse battery staple"


@pytest.fixture
def world(tmp_path: Path, model: Model) -> World:
    """keygen -> trust add -> publish acme/tiny@1.0; the model's config.json then changes and
    acme/tiny@2.0 is published: the two versions share both shards and the LICENSE."""
    w = make_world(tmp_path, model)
    publish(w, "1.0")
    (w.tmp / "config-1.0.json").write_bytes((w.model / "config.json").read_bytes())
    (w.model / "config.json").write_text(json.dumps({"hidden": 96, "changed": "in 2.0"}))
    publish(w, "2.0")
    return w


def vault_of(home: Path) -> Path:
    return paths(home).vault_dir


def sizes(directory: Path) -> dict[str, int]:
    return {p.relative_to(directory).as_posix(): p.stat().st_size for p in directory.rglob("*") if p.is_file()}


def roots(home: Path, ref: str) -> set[str]:
    """The blob names (pieces roots) a stored release's files need."""
    with Client(home) as client:
        return {client.vault.blob_path(f).name for f in client.vault.resolve(ref).manifest.files}


def blobs(home: Path) -> set[str]:
    return {p.name for p in (vault_of(home) / "blobs").iterdir()}


# ---- rm and gc ----------------------------------------------------------------------------------


def test_rm_one_of_two_versions_then_gc_frees_only_what_the_other_does_not_use(world: World) -> None:
    home = world.pub_home
    keep = roots(home, "acme/tiny@2.0")
    one_only = roots(home, "acme/tiny@1.0") - keep
    assert len(one_only) == 1  # config.json of 1.0: everything else is shared

    out = ok(home, "rm", "acme/tiny@1.0", "--json").json()
    assert [r["ref"] for r in out["removed"]] == ["acme/tiny@1.0"] and out["removed"][0]["files"] == 4
    config_1 = (world.tmp / "config-1.0.json").stat().st_size
    assert out["gc_would_free"] == config_1  # the one blob 2.0 does not use
    assert not (vault_of(home) / "snapshots" / "acme" / "tiny" / "1.0").exists()
    refused(home, 4, "verify", "acme/tiny@1.0")
    assert ok(home, "list", "--json").json()[0]["ref"] == "acme/tiny@2.0"

    before = vault_state(Client(home))
    dry = ok(home, "gc", "--dry-run", "--json").json()
    assert dry["dry_run"] is True and dry["freed"] == config_1 and dry["counts"]["blob"] == 1
    assert [i["path"] for i in dry["items"]] == [f"blobs/{b}" for b in one_only]
    assert vault_state(Client(home)) == before  # a dry run deletes nothing

    done = ok(home, "gc", "--json").json()
    assert done["dry_run"] is False and done["freed"] == dry["freed"] and done["items"] == dry["items"]
    assert blobs(home) == keep
    with Client(home) as client:
        client.verify("acme/tiny@2.0", fast=False)  # every byte of the other version still verifies
    assert ok(home, "gc", "--json").json()["freed"] == 0  # nothing more to collect

    # The vault still remembers 1.0's digest: other content under acme/tiny@1.0 is refused.
    assert db_rows(Client(home), "SELECT version FROM first_seen WHERE name='acme/tiny' ORDER BY version") == [
        ("1.0",), ("2.0",)]
    r = refused(home, 3, "publish", world.model, "--name", "acme/tiny", "--version", "1.0", "--license", "MIT",
                "--key", world.key)
    assert "acme/tiny@1.0" in r.err


def test_rm_of_the_latest_version_moves_latest_back(world: World) -> None:
    out = ok(world.pub_home, "rm", "acme/tiny", "--json").json()  # NS/NAME: the newest version
    assert [r["ref"] for r in out["removed"]] == ["acme/tiny@2.0"]
    assert ok(world.pub_home, "verify", "acme/tiny", "--json").json()["ref"] == "acme/tiny@1.0"
    listed = ok(world.pub_home, "list", "--json").json()
    assert [(d["ref"], d["latest"]) for d in listed] == [("acme/tiny@1.0", True)]


def test_rm_all_versions_then_gc_empties_blobs_layers_and_snapshots(world: World) -> None:
    home = world.pub_home
    with Client(home) as client:  # small pieces: the shards span several, so their piece layers are kept
        client.publish(world.model, name="acme/tiny", version="3.0", license="MIT",
                       key=PrivateKey.load(world.key), piece_length=PIECE)
    assert any((vault_of(home) / "layers").iterdir())
    out = ok(home, "rm", "acme/tiny", "--all-versions", "--json").json()
    assert sorted(r["ref"] for r in out["removed"]) == ["acme/tiny@1.0", "acme/tiny@2.0", "acme/tiny@3.0"]
    on_disk = sum(p.stat().st_size for p in (vault_of(home) / "blobs").iterdir())
    assert out["gc_would_free"] == on_disk + sum(p.stat().st_size for p in (vault_of(home) / "layers").iterdir())
    assert ok(home, "list").out.strip() == "the vault is empty"

    layers = sum(p.stat().st_size for p in (vault_of(home) / "layers").iterdir())
    assert ok(home, "gc", "--json").json()["freed"] == on_disk + layers
    vault = vault_of(home)
    assert not blob_names(Client(home)) and not any((vault / "layers").iterdir())
    assert not any((vault / "snapshots").iterdir())  # the model's and namespace's directories went too
    assert len(db_rows(Client(home), "SELECT * FROM first_seen")) == 3  # the rollback memory stays


def test_rm_of_a_missing_ref_is_not_found(world: World) -> None:
    r = refused(world.pub_home, 4, "rm", "acme/none@1")
    assert "error: acme/none@1 is not in the vault" in r.err
    r = refused(world.pub_home, 4, "rm", "acme/tiny@9.9", "--json")
    error = json.loads(r.err.splitlines()[-1])["error"]
    assert error["type"] == "NotFoundError" and "versions present: 1.0, 2.0" in error["message"]
    r = refused(world.pub_home, 2, "rm", "acme/tiny@1.0", "--all-versions")
    assert "--all-versions: expected NS/NAME" in r.err
    assert len(ok(world.pub_home, "list", "--json").json()) == 2  # nothing was removed


# ---- gc and pulls in progress ---------------------------------------------------------------------

HOLD_PULL = """
import sys
from pathlib import Path
from seedvault.signing import Envelope
from seedvault.vault import Vault

vault = Vault(Path(sys.argv[1]))
envelope = Envelope.from_json(Path(sys.argv[2]).read_bytes(), "envelope")
with vault.pull_in_progress(envelope) as staging:
    (staging / "model-00001-of-00002.safetensors").write_bytes(b"half a shard")
    (vault.incoming / f"{envelope.digest}.resume").write_bytes(b"resume data")
    print("pulling", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""

HOLD_SHARED = """
import sys
from pathlib import Path
from seedvault.vault import Vault

with Vault(Path(sys.argv[1])).housekeeping_lock(exclusive=False):
    print("admitting", flush=True)
    sys.stdin.read()
"""


class Held:
    """A second process running SNIPPET until `release()`: stdin closed, then waited for, bounded."""

    def __init__(self, snippet: str, *args: str | Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", snippet, *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def wait_for(self, word: str) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + CHILD_TIMEOUT
        line = ""
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline()  # the child prints as soon as it holds the lock
            if not line and self.proc.poll() is not None:
                break
        said = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
        assert line.strip() == word, f"child said {line!r}; stderr: {said}"

    def release(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def held() -> Any:
    started: list[Held] = []

    def start_held(snippet: str, *args: str | Path) -> Held:
        h = Held(snippet, *args)
        started.append(h)
        return h

    yield start_held
    for h in started:
        h.release()


def test_gc_never_touches_a_pull_in_progress_and_removes_an_abandoned_one(world: World, held: Any) -> None:
    home, vault_dir = world.pub_home, vault_of(world.pub_home)
    with Client(home) as client:
        running_env = client.vault.resolve("acme/tiny@1.0").envelope
        abandoned_env = client.vault.resolve("acme/tiny@2.0").envelope
    needed = roots(home, "acme/tiny@1.0")
    ok(home, "rm", "acme/tiny", "--all-versions")  # no release names any blob now
    (world.tmp / "running.json").write_bytes(running_env.to_json())

    # A pull that was stopped: its marker is no longer locked by anyone.
    with Vault(vault_dir) as vault, vault.pull_in_progress(abandoned_env) as staging:
        (staging / "config.json").write_bytes(b"{}")
        (vault.incoming / f"{abandoned_env.digest}.resume").write_bytes(b"old resume data")
        (vault.incoming / f".{abandoned_env.digest}.resume.4242.tmp").write_bytes(b"half written")
    # A pull running in another process holds its marker's lock.
    pull = held(HOLD_PULL, vault_dir, world.tmp / "running.json")
    pull.wait_for("pulling")
    incoming = vault_dir / "incoming"
    running_files = {incoming / running_env.digest / "model-00001-of-00002.safetensors",
                     incoming / f"{running_env.digest}.resume", incoming / f"{running_env.digest}.pull"}

    out = ok(home, "gc", "--json").json()
    assert out["pulls_kept"] == ["acme/tiny@1.0"]
    assert all(p.exists() for p in running_files)  # its staging, resume data and marker are untouched
    assert blobs(home) == needed  # every blob the running pull's manifest names stays
    left = {p.name for p in incoming.iterdir()}
    assert not any(abandoned_env.digest in name for name in left), left  # the abandoned pull is gone
    assert sorted(i["kind"] for i in out["items"]) == ["blob", "pull", "pull", "pull", "pull"]

    pull.release()  # the pull stops: now it is abandoned too
    out = ok(home, "gc", "--json").json()
    assert out["pulls_kept"] == [] and not any(p.exists() for p in running_files)
    assert not blobs(home) and not any(incoming.iterdir())


def test_gc_waits_for_an_admission_and_says_the_vault_is_busy(world: World, held: Any) -> None:
    vault_dir = vault_of(world.pub_home)
    admission = held(HOLD_SHARED, vault_dir)
    admission.wait_for("admitting")
    with Vault(vault_dir) as vault:
        with pytest.raises(BusyError, match=r"is busy: expected adding and cleaning to pause within 0\.3 s"), \
                vault.housekeeping_lock(exclusive=True, timeout=0.3):
            pass
        with vault.housekeeping_lock(exclusive=False, timeout=0.3):
            pass  # admissions share it with each other
        admission.release()
        with vault.housekeeping_lock(exclusive=True, timeout=5):
            pass


def test_gc_removes_leftovers_and_keeps_staging_in_use(world: World) -> None:
    home, vault_dir = world.pub_home, vault_of(world.pub_home)
    incoming, old = vault_dir / "incoming", time.time() - 2 * 3600
    (incoming / ".link-0123456789abcdef").write_bytes(b"link")
    (vault_dir / "snapshots" / "acme" / "tiny" / ".tmp-3.0-0123abcd").mkdir()
    (vault_dir / "snapshots" / "acme" / "ghost" / "1").mkdir(parents=True)  # no release stored there
    (vault_dir / "layers" / ("ab" * 32)).write_bytes(b"layer of nothing")
    (incoming / "publish.0123abcd").mkdir()  # a staging whose command died: nobody holds its lock
    (incoming / "publish.0123abcd" / "shard").write_bytes(b"x" * 100)
    for name, mtime in (("card-young", None), ("card-old", old)):
        (incoming / name).mkdir()
        if mtime is not None:
            os.utime(incoming / name, (mtime, mtime))
    for name, mtime in (("d.1.upload", None), ("d.2.upload", old)):
        (incoming / name).mkdir()
        if mtime is not None:
            os.utime(incoming / name, (mtime, mtime))

    with Vault(vault_dir) as vault, vault.staging("import") as staged:
        (staged / "shard").write_bytes(b"y" * 100)
        out = ok(home, "gc", "--json").json()
        assert staged.is_dir() and (staged / "shard").is_file()  # a staging in use is locked: kept
    removed = sorted(i["path"] for i in out["items"])
    assert removed == sorted([
        "incoming/.link-0123456789abcdef", "incoming/card-old", "incoming/d.2.upload", "incoming/publish.0123abcd",
        "layers/" + "ab" * 32, "snapshots/acme/ghost/1", "snapshots/acme/tiny/.tmp-3.0-0123abcd"])
    assert out["freed"] == 4 + 16 + 100
    assert {p.name for p in incoming.iterdir()} == {"card-young", "d.1.upload"}
    for ref in ("acme/tiny@1.0", "acme/tiny@2.0"):
        ok(home, "verify", ref)


# ---- du ------------------------------------------------------------------------------------------


def test_du_numbers_match_the_files_on_disk(world: World, tmp_path: Path) -> None:
    other = tmp_path / "other"
    make_model(other, seed=1)  # other tensors and config; the same LICENSE text as acme/tiny
    ok(world.pub_home, "publish", other, "--name", "acme/other", "--version", "1", "--license", "MIT",
       "--key", world.key)
    v2 = sizes(world.model)
    v1 = {**v2, "config.json": (world.tmp / "config-1.0.json").stat().st_size}
    theirs = sizes(other)
    license_size = v2["LICENSE"]
    assert (world.model / "LICENSE").read_bytes() == (other / "LICENSE").read_bytes()

    out = ok(world.pub_home, "du", "--json").json()
    releases = {r["ref"]: r for r in out["releases"]}
    assert releases["acme/tiny@1.0"]["total"] == sum(v1.values())
    assert releases["acme/tiny@1.0"]["unique"] == v1["config.json"]  # all else is in 2.0 too
    assert releases["acme/tiny@1.0"]["shared"] == sum(v1.values()) - v1["config.json"]
    assert releases["acme/tiny@2.0"]["unique"] == v2["config.json"]
    assert releases["acme/other@1"]["unique"] == sum(theirs.values()) - license_size  # LICENSE is shared
    models = {m["ref"]: m for m in out["models"]}
    tiny_total = sum(v2.values()) + v1["config.json"]
    assert models["acme/tiny"] == {"ref": "acme/tiny", "name": "acme/tiny", "total": tiny_total,
                                   "unique": tiny_total - license_size, "shared": license_size, "missing_blobs": 0}
    blob_files = list((vault_of(world.pub_home) / "blobs").iterdir())
    assert out["vault"]["blobs"] == len(blob_files)
    assert out["vault"]["blob_bytes"] == sum(p.stat().st_size for p in blob_files) == (
        tiny_total + sum(theirs.values()) - license_size)  # each content stored once

    one = ok(world.pub_home, "du", "acme/tiny@1.0", "--json").json()
    assert [r["ref"] for r in one["releases"]] == ["acme/tiny@1.0"] and one["releases"][0] == releases["acme/tiny@1.0"]
    text = ok(world.pub_home, "du").out.splitlines()
    assert text[0].split() == ["MODEL", "/", "RELEASE", "TOTAL", "UNIQUE", "SHARED"]
    row = next(line for line in text if line.strip().startswith("acme/tiny@1.0"))
    assert row.split()[1:3] == human_size(sum(v1.values())).split()
    assert len({len(line) for line in text[:-1]}) == 1  # sizes right-aligned, to the SHARED column's end
    refused(world.pub_home, 4, "du", "acme/none")


# ---- list: status column, PATTERN, human sizes -------------------------------------------------


def test_list_says_how_each_release_stands_and_filters_by_pattern(world: World) -> None:
    home = world.pub_home
    ok(home, "yank", "acme/tiny@2.0", "--reason", "bad tokenizer", "--key", world.key)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok(home, "publish", world.model, "--name", "acme/brief", "--version", "1", "--license", "MIT", "--key",
       world.key, "--expires", soon)
    ok(home, "publish", world.model, "--name", "beta/x", "--version", "1", "--license", "MIT", "--key", world.key)
    wait_for(lambda: datetime.now(UTC) > datetime.strptime(soon, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
             10, "the expiry to pass")

    listed = {d["ref"]: d for d in ok(home, "list", "--json").json()}
    assert listed["acme/tiny@1.0"]["status"] == "trusted" and listed["acme/tiny@1.0"]["status_reason"] is None
    assert (listed["acme/tiny@2.0"]["status"], listed["acme/tiny@2.0"]["status_reason"]) == ("yanked", "bad tokenizer")
    assert listed["acme/brief@1"]["status"] == "expired" and "expired at" in listed["acme/brief@1"]["status_reason"]
    assert listed["beta/x@1"]["status"] == "refused" and "beta/x" in listed["beta/x@1"]["status_reason"]
    assert {"ref", "digest", "latest", "size", "license", "files", "created"} <= set(listed["acme/tiny@1.0"])

    assert [d["ref"] for d in ok(home, "list", "acme/t*", "--json").json()] == ["acme/tiny@1.0", "acme/tiny@2.0"]
    assert [d["ref"] for d in ok(home, "list", "*@1", "--json").json()] == ["acme/brief@1", "beta/x@1"]
    assert ok(home, "list", "nobody/*").out.strip() == "no release in the vault matches nobody/*"

    lines = ok(home, "list").out.splitlines()
    header = lines[0]
    assert header.split() == ["REF", "STATUS", "SIZE", "LICENSE", "DIGEST", "NOTE"]
    for line in lines[1:]:
        assert line[header.index("STATUS"):].split()[0] in {"trusted", "yanked", "expired", "refused"}
        assert line[:header.index("SIZE") + 4].endswith(("kB", " B"))  # human sizes, right-aligned
    tiny2 = next(line for line in lines if line.startswith("acme/tiny@2.0"))
    assert tiny2.rstrip().endswith("latest, bad tokenizer")


# ---- a registry node's removal frees the disk -----------------------------------------------------


def test_node_removal_frees_the_disk_after_the_grace_period_or_at_once_with_purge(
        world: World, nodes: list[NodeServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_app, "REFRESH_TICKS", 1)  # the node's background pass every 0.5 s
    other = tmp_path / "other"
    make_model(other, seed=1)  # shares only its LICENSE with acme/tiny
    ok(world.pub_home, "publish", other, "--name", "acme/other", "--version", "1", "--license", "MIT",
       "--key", world.key)
    home = tmp_path / "node"
    trust_publisher(world, home)
    grace = 3.0
    node = start(nodes, home, admin_token=ADMIN, removal_grace=grace)
    for ref in ("acme/tiny@2.0", "acme/other@1"):
        ok(world.pub_home, "push", ref, "--registry", node.url)
    token = tmp_path / "admin.token"
    token.write_text(ADMIN)
    tiny = roots(world.pub_home, "acme/tiny@2.0")
    assert blobs(home) == tiny | roots(world.pub_home, "acme/other@1")

    # --purge: freed now, except what another model uses.
    out = ok(world.pub_home, "remove", "acme/other", "--registry", node.url, "--admin-token-file", token,
             "--purge", "--json").json()
    assert out["removed_versions"] == 1 and out["purged_versions"] == 1
    assert out["freed_bytes"] == sum(sizes(other).values()) - sizes(other)["LICENSE"]
    assert blobs(home) == tiny and not (vault_of(home) / "snapshots" / "acme" / "other").exists()
    with Client(home) as client:
        client.verify("acme/tiny@2.0", fast=False)
    assert RegistryClient(node.url).envelope("acme/tiny", "2.0").digest  # still served
    r = refused(world.pub_home, 3, "push", "acme/other@1", "--registry", node.url)  # the removal still stands
    assert "removed from this registry" in r.err

    # Without --purge: not served at once, freed by the node's background work after the grace period.
    removed_at = time.monotonic()
    out = ok(world.pub_home, "remove", "acme/tiny", "--registry", node.url, "--admin-token-file", token,
             "--json").json()
    assert out == {"name": "acme/tiny", "removed_versions": 1, "frees_after_seconds": grace}
    refused(world.tmp / "puller", 4, "pull", "acme/tiny@2.0", "--registry", node.url, "--timeout", "10")
    assert blobs(home) == tiny  # still on disk: the removal can be lifted meanwhile
    wait_for(lambda: not blobs(home), 30, "the node to free acme/tiny after its grace period")
    assert time.monotonic() - removed_at >= grace - 0.5
    assert not (vault_of(home) / "snapshots" / "acme").exists()


def test_removal_grace_is_validated() -> None:
    from seedvault.errors import UsageError
    from seedvault.registry.config import NodeConfig

    assert NodeConfig.from_dict({"removal_grace": 0}).removal_grace == 0.0
    with pytest.raises(UsageError, match="removal_grace must be a number of seconds, 0 or more, found -1"):
        NodeConfig.from_dict({"removal_grace": -1})
    with pytest.raises(UsageError, match='found "soon"'):
        NodeConfig.from_dict({"removal_grace": "soon"})
