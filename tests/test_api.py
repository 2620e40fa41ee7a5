"""The public Python API: seedvault.load / snapshot_path / verify / import_bundle / export_bundle."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MODEL, PIECE, REF, SHARD1, SHARD2, Model, make_model, make_writable_and_tamper, trust
from safetensors.numpy import save_file

import seedvault
from seedvault.client import Client
from seedvault.signing import PrivateKey


def home_of(client: Client) -> Path:
    return client.paths.config_dir.parent


@pytest.fixture
def imported(receiver: Client, bundle: Path) -> Path:
    """The receiver's home, with acme/tiny@1.0 imported through the public API."""
    home = home_of(receiver)
    result = seedvault.import_bundle(bundle, home=home)
    assert result.verdict.manifest.ref == REF
    return home


def _assert_same(loaded: dict[str, Any], saved: dict[str, np.ndarray]) -> None:
    assert set(loaded) == set(saved)
    for name, array in saved.items():
        assert loaded[name].dtype == array.dtype
        assert loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)


def test_load_returns_the_saved_tensors(imported: Path, model: Model) -> None:
    tensors = seedvault.load(REF, home=imported)
    _assert_same(tensors, {**model.tensors[SHARD1], **model.tensors[SHARD2]})


def test_load_per_file(imported: Path, model: Model) -> None:
    per_file = seedvault.load(REF, per_file=True, home=imported)
    assert set(per_file) == {SHARD1, SHARD2}
    for shard, saved in model.tensors.items():
        _assert_same(per_file[shard], saved)


def test_load_fast_uses_the_record_and_returns_the_same(imported: Path, model: Model) -> None:
    seedvault.verify(REF, home=imported)
    tensors = seedvault.load(REF, fast=True, home=imported)
    _assert_same(tensors, {**model.tensors[SHARD1], **model.tensors[SHARD2]})


def test_load_newest_version_by_name(imported: Path, publisher: Client, tmp_path: Path, pub_key: PrivateKey) -> None:
    v2 = tmp_path / "v2"
    saved = make_model(v2, seed=5)
    publisher.publish(v2, name=MODEL, version="2.0", license="Apache-2.0", key=pub_key, piece_length=PIECE)
    seedvault.import_bundle(seedvault.export_bundle(f"{MODEL}@2.0", tmp_path / "b2", tar=True,
                                                    home=home_of(publisher)), home=imported)
    _assert_same(seedvault.load(MODEL, home=imported), {**saved[SHARD1], **saved[SHARD2]})
    assert seedvault.snapshot_path(MODEL, home=imported).name == "2.0"


def test_snapshot_path_is_the_verified_directory(imported: Path, model: Model) -> None:
    path = seedvault.snapshot_path(REF, home=imported)
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in model.path.iterdir())
    for p in model.path.iterdir():
        assert (path / p.name).read_bytes() == p.read_bytes()


def test_snapshot_path_refuses_a_damaged_file(imported: Path) -> None:
    path = seedvault.snapshot_path(REF, home=imported)
    make_writable_and_tamper(path / "config.json", 0)
    with pytest.raises(seedvault.IntegrityError, match=r"'config.json'"):
        seedvault.snapshot_path(REF, home=imported)
    with pytest.raises(seedvault.IntegrityError, match=r"'config.json'"):
        seedvault.verify(REF, home=imported)


def test_verify_returns_the_verdict(imported: Path, pub_key: PrivateKey) -> None:
    verdict = seedvault.verify(REF, home=imported)
    assert isinstance(verdict, seedvault.Verdict)
    assert verdict.manifest.ref == REF
    assert verdict.publishers == 1
    assert [(s.key_id, s.role, s.status) for s in verdict.signers] == [(pub_key.key_id, "publisher", "valid")]


def test_seedvault_home_environment_variable(imported: Path, model: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDVAULT_HOME", str(imported))
    _assert_same(seedvault.load(REF), {**model.tensors[SHARD1], **model.tensors[SHARD2]})
    assert seedvault.snapshot_path(REF).is_relative_to(imported)


def test_unknown_model_not_found(imported: Path) -> None:
    with pytest.raises(seedvault.NotFoundError, match="acme/other@1 is not in the vault") as info:
        seedvault.load("acme/other@1", home=imported)
    assert info.value.exit_code == 4


def test_bad_reference_is_a_usage_error(imported: Path) -> None:
    with pytest.raises(seedvault.UsageError, match="expected NAMESPACE/NAME"):
        seedvault.load("tiny", home=imported)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_pt_framework_without_torch_says_how_to_get_it(imported: Path) -> None:
    with pytest.raises(seedvault.UsageError, match="needs PyTorch") as info:
        seedvault.load(REF, framework="pt", home=imported)
    assert "seedvault[torch]" in info.value.diagnostics()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_pt_framework_returns_torch_tensors(imported: Path, model: Model) -> None:  # pragma: no cover
    tensors = seedvault.load(REF, framework="pt", home=imported)
    for name, array in model.tensors[SHARD1].items():
        np.testing.assert_array_equal(tensors[name].numpy(), array)


def test_tensor_names_in_two_files_need_per_file(make_client: Any, tmp_path: Path, pub_key: PrivateKey) -> None:
    src = tmp_path / "clash"
    src.mkdir()
    save_file({"w": np.zeros(2, np.float32)}, str(src / "a.safetensors"))
    save_file({"w": np.ones(2, np.float32)}, str(src / "b.safetensors"))
    client: Client = make_client("clash")
    trust(client, pub_key)
    client.publish(src, name="acme/clash", version="1", license="MIT", key=pub_key)
    with pytest.raises(seedvault.UsageError, match=r"tensor names appear in several files: w$") as info:
        seedvault.load("acme/clash@1", home=home_of(client))
    assert "per_file=True" in info.value.diagnostics()
    per_file = seedvault.load("acme/clash@1", per_file=True, home=home_of(client))
    np.testing.assert_array_equal(per_file["b.safetensors"]["w"], np.ones(2, np.float32))


def test_model_without_weights_is_not_loadable(make_client: Any, tmp_path: Path, pub_key: PrivateKey) -> None:
    src = tmp_path / "cfg"
    src.mkdir()
    (src / "config.json").write_text("{}")
    client: Client = make_client("cfg")
    trust(client, pub_key)
    client.publish(src, name="acme/cfg", version="1", license="MIT", key=pub_key)
    with pytest.raises(seedvault.NotFoundError, match=r"has no weights files \(safetensors or GGUF\) to load"):
        seedvault.load("acme/cfg@1", home=home_of(client))
    assert (seedvault.snapshot_path("acme/cfg@1", home=home_of(client)) / "config.json").read_text() == "{}"


def test_public_names_exist() -> None:
    for name in seedvault.__all__:
        assert hasattr(seedvault, name), name


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_pt_framework_handles_bfloat16_and_empty_tensors(make_client: Any, tmp_path: Path,
                                                         pub_key: PrivateKey) -> None:  # pragma: no cover
    import torch
    from safetensors.torch import save_file as save_torch

    src = tmp_path / "bf16"
    src.mkdir()
    saved = {"a": torch.randn(3, 5, dtype=torch.bfloat16), "b": torch.arange(7), "e": torch.zeros(0, 4)}
    save_torch(saved, str(src / "model.safetensors"))
    client: Client = make_client("bf16")
    trust(client, pub_key)
    client.publish(src, name="acme/bf16", version="1", license="MIT", key=pub_key)
    loaded = seedvault.load("acme/bf16@1", framework="pt", home=home_of(client))
    for name, tensor in saved.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
    with pytest.raises(seedvault.UsageError, match="BF16, which numpy cannot represent"):
        seedvault.load("acme/bf16@1", home=home_of(client))


def test_empty_tensor_loads_in_numpy(make_client: Any, tmp_path: Path, pub_key: PrivateKey) -> None:
    src = tmp_path / "empty"
    src.mkdir()
    save_file({"e": np.zeros((0, 4), np.float32), "w": np.arange(3, dtype=np.int16)}, str(src / "m.safetensors"))
    client: Client = make_client("empty")
    trust(client, pub_key)
    client.publish(src, name="acme/empty", version="1", license="MIT", key=pub_key)
    loaded = seedvault.load("acme/empty@1", home=home_of(client))
    assert loaded["e"].shape == (0, 4) and loaded["e"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], np.arange(3, dtype=np.int16))
