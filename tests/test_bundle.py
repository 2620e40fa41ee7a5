"""Air-gap bundles: what export writes, and what import accepts (directories and tars)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    REF,
    SHARD1,
    SHARD2,
    Model,
    assert_no_staging,
    assert_unchanged,
    assert_vault_clean,
    make_writable_and_tamper,
    vault_state,
)

from seedvault.bundle import FORMAT, export_bundle, import_bundle
from seedvault.client import Client
from seedvault.errors import IntegrityError, NotFoundError, SignatureError, UsageError
from seedvault.signing import Envelope, PrivateKey, PublicKey


def test_export_dir_layout(publisher: Client, bundle: Path, pub_key: PrivateKey, model: Model) -> None:
    entry = publisher.vault.resolve(REF)
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta == {"format": FORMAT, "ref": REF, "digest": entry.digest,
                    "files": [f.path for f in entry.manifest.files]}
    assert Envelope.from_json((bundle / "envelope.json").read_bytes()) == entry.envelope
    assert [p.name for p in (bundle / "keys").iterdir()] == [f"{pub_key.key_id}.pub"]
    assert PublicKey.load(bundle / "keys" / f"{pub_key.key_id}.pub").key_id == pub_key.key_id
    files = sorted(p.relative_to(bundle / "files").as_posix() for p in (bundle / "files").rglob("*"))
    assert files == sorted(["LICENSE", "config.json", SHARD1, SHARD2])
    for name in files:
        assert (bundle / "files" / name).read_bytes() == (model.path / name).read_bytes()
    assert not list(bundle.parent.glob(".bundle.*"))  # no temporary left beside it


def test_export_tar_layout(publisher: Client, tmp_path: Path) -> None:
    out = export_bundle(publisher, REF, tmp_path / "b.tar", as_tar=True)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    assert all(m.isfile() for m in members)
    assert {m.name for m in members} >= {"bundle.json", "envelope.json", f"files/{SHARD1}", f"files/{SHARD2}"}


@pytest.mark.parametrize("as_tar", [False, True], ids=["dir", "tar"])
def test_export_import_round_trip(publisher: Client, receiver: Client, model: Model, tmp_path: Path,
                                  as_tar: bool) -> None:
    out = export_bundle(publisher, REF, tmp_path / ("b.tar" if as_tar else "b"), as_tar=as_tar)
    result = import_bundle(receiver, out)
    assert result.verdict.manifest.ref == REF
    assert result.envelope.digest == publisher.vault.resolve(REF).digest
    assert result.snapshot == receiver.vault.snapshot_dir(result.verdict.manifest)
    for name in ("LICENSE", "config.json", SHARD1, SHARD2):
        assert (result.snapshot / name).read_bytes() == (model.path / name).read_bytes()
    per_file = receiver.load(REF, per_file=True)
    for shard, tensors in model.tensors.items():
        for k, v in tensors.items():
            np.testing.assert_array_equal(per_file[shard][k], v)
    assert_no_staging(receiver)


def test_import_same_bundle_twice_is_idempotent(receiver: Client, bundle: Path) -> None:
    import_bundle(receiver, bundle)
    before = vault_state(receiver)
    import_bundle(receiver, bundle)
    assert_unchanged(receiver, before)


def test_import_gzipped_tar(publisher: Client, receiver: Client, tmp_path: Path, bundle: Path) -> None:
    gz = tmp_path / "b.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        for p in sorted(bundle.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(bundle).as_posix())
    assert import_bundle(receiver, gz).verdict.manifest.ref == REF


def test_import_tar_made_with_tar_cli_style_members(receiver: Client, tmp_path: Path, bundle: Path) -> None:
    """`tar -C bundle -cf b.tar .` gives members './', './files/', './files/x': accepted."""
    out = tmp_path / "dot.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(bundle, arcname=".")
    with tarfile.open(out) as tar:
        assert any(m.name in (".", "./") for m in tar.getmembers())
    assert import_bundle(receiver, out).verdict.manifest.ref == REF


def test_tampered_tar_shard_refused(publisher: Client, receiver: Client, tmp_path: Path, bundle: Path) -> None:
    make_writable_and_tamper(bundle / "files" / SHARD1, 123)
    out = tmp_path / "t.tar"
    with tarfile.open(out, "w") as tar:
        for p in sorted(bundle.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(bundle).as_posix())
    expected = publisher.vault.resolve(REF).manifest.file(SHARD1).pieces_root
    with pytest.raises(IntegrityError, match=f"expected pieces root {expected}, found [0-9a-f]{{64}}"):
        import_bundle(receiver, out)
    assert_vault_clean(receiver)


def _retar(bundle: Path, out: Path, skip: str = "", resize: dict[str, int] | None = None) -> Path:
    with tarfile.open(out, "w") as tar:
        for p in sorted(bundle.rglob("*")):
            rel = p.relative_to(bundle).as_posix()
            if not p.is_file() or rel == skip:
                continue
            info = tar.gettarinfo(str(p), arcname=rel)
            data = p.read_bytes()
            if resize and rel in resize:
                data = data[: resize[rel]]
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def test_tar_missing_file_refused(receiver: Client, tmp_path: Path, bundle: Path) -> None:
    out = _retar(bundle, tmp_path / "m.tar", skip="files/config.json")
    with pytest.raises(IntegrityError, match=r"; missing config.json$"):
        import_bundle(receiver, out)
    assert_vault_clean(receiver)


def test_tar_truncated_member_refused(publisher: Client, receiver: Client, tmp_path: Path, bundle: Path) -> None:
    size = publisher.vault.resolve(REF).manifest.file(SHARD2).size
    out = _retar(bundle, tmp_path / "t.tar", resize={f"files/{SHARD2}": size - 10})
    with pytest.raises(IntegrityError, match=f"'{SHARD2}': expected {size} bytes, found {size - 10}"):
        import_bundle(receiver, out)
    assert_vault_clean(receiver)


def test_bundle_without_envelope_refused(receiver: Client, bundle: Path, tmp_path: Path) -> None:
    (bundle / "envelope.json").unlink()
    with pytest.raises(NotFoundError, match=r"expected envelope.json in the bundle, found none"):
        import_bundle(receiver, bundle)
    out = _retar(bundle, tmp_path / "noenv.tar")
    with pytest.raises(NotFoundError, match=r"expected envelope.json"):
        import_bundle(receiver, out)
    assert_vault_clean(receiver)


def test_bundle_envelope_that_is_not_json_refused(receiver: Client, bundle: Path) -> None:
    (bundle / "envelope.json").write_text("<html>")
    with pytest.raises(UsageError, match="expected a signed envelope \\(JSON\\), found data that is not JSON"):
        import_bundle(receiver, bundle)
    assert_vault_clean(receiver)


def test_import_of_something_else_is_a_usage_error(receiver: Client, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="found nothing"):
        import_bundle(receiver, tmp_path / "nope")
    (tmp_path / "f.txt").write_text("hello")
    with pytest.raises(UsageError, match="found another kind of file"):
        import_bundle(receiver, tmp_path / "f.txt")


def test_import_with_empty_policy_refused(make_client: Any, bundle: Path) -> None:
    """A fresh install trusts nothing, not even the keys a bundle carries."""
    fresh: Client = make_client("fresh")
    with pytest.raises(SignatureError, match="trust policy has no keys"):
        import_bundle(fresh, bundle)
    assert_vault_clean(fresh)


def test_export_refuses_existing_destination(publisher: Client, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(UsageError, match="already exists"):
        export_bundle(publisher, REF, tmp_path / "taken")
    assert not any((tmp_path / "taken").iterdir())


def test_export_of_unknown_ref_not_found(publisher: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"acme/tiny@9.9 is not in the vault; versions present: 1.0"):
        export_bundle(publisher, "acme/tiny@9.9", tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("mode", ["w", "w:gz"], ids=["tar", "tar.gz"])
def test_truncated_tar_refused(receiver: Client, bundle: Path, tmp_path: Path, mode: str) -> None:
    """An interrupted copy to the transfer disk: a clean refusal, not a crash."""
    whole = tmp_path / "whole"
    with tarfile.open(whole, mode) as tar:  # type: ignore[call-overload]
        for p in sorted(bundle.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(bundle).as_posix())
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar"
    for size in (len(data) // 2, len(data) * 3 // 4):
        cut.write_bytes(data[:size])
        with pytest.raises(IntegrityError, match="expected a complete tar bundle, found a damaged or truncated one"):
            import_bundle(receiver, cut)
        assert_vault_clean(receiver)
