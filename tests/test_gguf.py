"""GGUF: strict header validation (attacks named after the attack), the signed summary,
`load` and `gguf_path` of a verified GGUF release. Valid files come from the `gguf`
package's own writer; hostile ones are built byte by byte."""

from __future__ import annotations

import hashlib
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import trust
from gguf import GGUFReader
from gguf_helpers import write_gguf

import seedvault
from seedvault.client import Client
from seedvault.errors import ManifestError, SeedvaultWarning, UnsafeWeightsError, UsageError
from seedvault.manifest import Manifest
from seedvault.signing import PrivateKey
from seedvault.summaries import GGUFSummary
from seedvault.weights import format_of
from seedvault.weights import gguf as g

F32, Q8_0 = 0, 8
U32, STRING, ARRAY, BOOL = 4, 8, 9, 7


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str | bytes, vtype: int, value: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + value


def ti(name: str | bytes, dims: list[int], ggml_type: int = F32, offset: int = 0) -> bytes:
    return (s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<I", ggml_type) + struct.pack("<Q", offset))


def raw_gguf(kvs: list[bytes] = (), tis: list[bytes] | None = None, data: bytes | None = None, *,  # type: ignore[assignment]
             version: int = 3, n_tensors: int | None = None, n_kv: int | None = None, alignment: int = 32) -> bytes:
    """A GGUF file exactly as given; by default one F32 tensor 'a' of 8 values."""
    tis = [ti("a", [8])] if tis is None else tis
    data = bytes(32) if data is None else data
    head = (b"GGUF" + struct.pack("<I", version) + struct.pack("<Q", len(tis) if n_tensors is None else n_tensors)
            + struct.pack("<Q", len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(tis))
    return head + bytes(-len(head) % alignment) + data


def parse(blob: bytes) -> g.GGUFHeader:
    return g.parse(blob, len(blob), "m.gguf")


def refused(blob: bytes, fragment: str) -> UnsafeWeightsError:
    with pytest.raises(UnsafeWeightsError, match=fragment) as info:
        parse(blob)
    assert "m.gguf" in str(info.value)
    return info.value


# ---- valid files -----------------------------------------------------------------------------


def test_hand_built_baseline_is_valid() -> None:
    header = parse(raw_gguf())
    assert [t.name for t in header.tensors] == ["a"] and header.tensors[0].nbytes == 32


def test_writer_file_validates_and_its_summary_says_what_the_file_says(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", base_models=({"name": "Tiny", "organization": "Acme", "version": "1.0"},))
    header = g.read_header(path)
    summary = header.summary()
    assert summary.architecture == "llama" and summary.context_length == 2048 and summary.file_type == 7
    assert summary.types == {"F32": 1, "Q8_0": 1, "F16": 1} and summary.tensors == 3
    assert summary.parameters == 64 + 4 * 64 + 4 * 64
    assert summary.license == "apache-2.0"
    assert summary.base_models == ({"name": "Tiny", "organization": "Acme", "version": "1.0"},)
    blob = path.read_bytes()
    assert header.header_end <= header.data_start < header.header_end + 32
    assert hashlib.sha256(blob[: header.header_end]).hexdigest() == summary.header_sha256
    assert header.metadata["tokenizer.ggml.tokens"] == ["<s>", "</s>", "hello", "world"]


def test_tensors_are_what_the_gguf_reader_reads(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    ours = g.tensors_from_buffer(np.fromfile(path, dtype=np.uint8), "m.gguf")
    theirs = {t.name: t for t in GGUFReader(path).tensors}
    assert set(ours) == set(theirs)
    for name, array in ours.items():
        assert array.dtype == theirs[name].data.dtype and np.array_equal(array, theirs[name].data), name
    assert ours.types["blk.0.attn_q.weight"] == "Q8_0"  # type: ignore[attr-defined]
    assert ours["blk.0.attn_q.weight"].shape == (4, 2 * 34)  # 64 values = 2 blocks of 34 bytes per row


def test_format_is_chosen_by_suffix() -> None:
    assert format_of("Model.GGUF") is g.FORMAT
    assert format_of("model.safetensors") is not g.FORMAT and format_of("config.json") is None


# ---- attacks on the header -------------------------------------------------------------------


def test_bad_magic_refused() -> None:
    refused(b"GGUG" + raw_gguf()[4:], "expected the GGUF magic")


def test_file_shorter_than_header_refused() -> None:
    refused(b"GGUF\x03\x00", "24-byte header")


def test_version_1_refused() -> None:
    refused(raw_gguf(version=1), "expected GGUF version 2 or 3, found 1")


def test_big_endian_file_refused() -> None:
    refused(raw_gguf(version=3 << 24), "big-endian")


def test_huge_tensor_count_refused_before_allocation() -> None:
    refused(raw_gguf(n_tensors=1 << 60), "expected at most 1,048,576 tensors")


def test_huge_metadata_count_refused_before_allocation() -> None:
    refused(raw_gguf(n_kv=1 << 62), "expected at most 65,536 metadata entries")


def test_counts_the_file_cannot_hold_refused() -> None:
    refused(raw_gguf(n_tensors=1000), "1,000 tensor infos needs")


def test_string_length_past_end_of_file_refused() -> None:
    refused(raw_gguf([struct.pack("<Q", 1 << 40) + b"general.name"]), "metadata key 0: expected a string of at most")
    refused(raw_gguf([kv("general.name", STRING, struct.pack("<Q", 1 << 20) + b"x")]), "truncated")


def test_unknown_value_type_refused() -> None:
    refused(raw_gguf([kv("x.y", 13, b"\x00" * 8)]), "expected a value type 0-12, found 13")


def test_nested_array_refused() -> None:
    refused(raw_gguf([kv("x.y", ARRAY, struct.pack("<IQ", ARRAY, 1) + b"\x00" * 16)]), "array of arrays")


def test_array_length_past_end_of_file_refused() -> None:
    refused(raw_gguf([kv("x.y", ARRAY, struct.pack("<IQ", U32, 1 << 23))]), "an array of 8,388,608 elements needs")
    refused(raw_gguf([kv("x.y", ARRAY, struct.pack("<IQ", U32, 1 << 40))]), "at most 16,777,216 elements")


def test_boolean_other_than_0_or_1_refused() -> None:
    refused(raw_gguf([kv("x.flag", BOOL, b"\x02")]), "expected a boolean")


def test_duplicate_metadata_key_refused() -> None:
    one = kv("general.name", STRING, s("a"))
    refused(raw_gguf([one, one]), "expected each key once")


def test_metadata_key_with_control_characters_refused() -> None:
    refused(raw_gguf([kv("general.\nname", STRING, s("a"))]), "printable ASCII")


def test_invalid_utf8_string_refused() -> None:
    refused(raw_gguf([kv("general.name", STRING, s(b"\xff\xfe"))]), "expected UTF-8 text")


def test_known_key_of_the_wrong_type_refused() -> None:
    refused(raw_gguf([kv("general.alignment", STRING, s("32"))]), "'general.alignment': expected UINT32, found STRING")
    refused(raw_gguf([kv("general.license", U32, struct.pack("<I", 1))]), "expected STRING, found UINT32")


def test_alignment_not_a_power_of_two_refused() -> None:
    refused(raw_gguf([kv("general.alignment", U32, struct.pack("<I", 24))]), "power of two")
    refused(raw_gguf([kv("general.alignment", U32, struct.pack("<I", 0))]), "power of two")


def test_duplicate_tensor_name_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [8]), ti("a", [8], offset=32)], data=bytes(64)), "each tensor name once")


def test_tensor_name_longer_than_ggml_allows_refused() -> None:
    refused(raw_gguf(tis=[ti("a" * 65, [8])]), "at most 64 bytes")


def test_empty_tensor_name_refused() -> None:
    refused(raw_gguf(tis=[ti("", [8])]), "expected a name")


def test_too_many_dimensions_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [1, 1, 1, 1, 8])]), "at most 4 dimensions, found 5")


def test_element_count_overflow_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [1 << 40, 1 << 40])]), "more than 2\\*\\*62 elements")


def test_unknown_ggml_type_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [8], ggml_type=4)]), "expected a ggml type .*found 4")


def test_quantized_row_not_a_whole_number_of_blocks_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [48], ggml_type=Q8_0)], data=bytes(64)), "blocks of 32 values")


def test_misaligned_tensor_offset_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [8]), ti("b", [8], offset=36)], data=bytes(68)), "aligned to 32 bytes, found 36")


def test_overlapping_tensors_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [16]), ti("b", [8], offset=32)], data=bytes(96)), "overlapping tensor 'a'")


def test_gap_between_tensors_refused() -> None:
    refused(raw_gguf(tis=[ti("a", [8]), ti("b", [8], offset=64)], data=bytes(96)), "a gap of 32")


def test_tensor_past_end_of_file_refused() -> None:
    refused(raw_gguf(data=bytes(16)), "past the end of the file")


def test_trailing_bytes_refused() -> None:
    refused(raw_gguf(data=bytes(32 + 40)), "40 trailing bytes")


def test_truncated_file_refused_at_every_length_with_a_typed_error(tmp_path: Path) -> None:
    """The gguf package's reader raises raw numpy errors on these; seedvault names the fault."""
    blob = write_gguf(tmp_path / "m.gguf").read_bytes()
    header = parse(blob)
    for cut in [*range(0, header.data_start + 64), *range(header.data_start + 64, len(blob), 97)]:
        with pytest.raises(UnsafeWeightsError):
            parse(blob[:cut])


def test_publish_refuses_a_hostile_gguf(tmp_path: Path, make_client: Any, pub_key: PrivateKey) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.gguf").write_bytes(raw_gguf(tis=[ti("a", [16]), ti("b", [8], offset=32)], data=bytes(96)))
    client: Client = make_client("p")
    trust(client, pub_key)
    with pytest.raises(UnsafeWeightsError, match="overlapping"):
        client.publish(src, name="acme/bad", version="1", license="MIT", key=pub_key)
    assert client.vault.entries() == []


# ---- the signed summary, load, gguf_path ---------------------------------------------------


def _release(tmp_path: Path, make_client: Any, pub_key: PrivateKey, **kw: Any) -> tuple[Client, Path]:
    src = tmp_path / "q"
    src.mkdir(exist_ok=True)
    write_gguf(src / "model-q8_0.gguf", **kw)
    (src / "README.md").write_text("tiny")
    client: Client = make_client("gguf")
    trust(client, pub_key)
    return client, src


def test_publish_signs_the_gguf_summary(tmp_path: Path, make_client: Any, pub_key: PrivateKey) -> None:
    client, src = _release(tmp_path, make_client, pub_key)
    admitted = client.publish(src, name="acme/tiny-gguf", version="1", license="Apache-2.0", key=pub_key)
    manifest = Manifest.from_payload(admitted.envelope.payload)
    entry = manifest.file("model-q8_0.gguf")
    assert entry.gguf == g.read_header(src / "model-q8_0.gguf").summary()
    assert entry.safetensors is None and manifest.file("README.md").summary is None
    signed = admitted.envelope.payload.decode()
    assert '"gguf": {' in signed and '"architecture": "llama"' in signed and '"Q8_0": 1' in signed


def test_load_returns_metadata_and_tensors_after_verification(tmp_path: Path, make_client: Any,
                                                              pub_key: PrivateKey) -> None:
    client, src = _release(tmp_path, make_client, pub_key)
    client.publish(src, name="acme/tiny-gguf", version="1", license="Apache-2.0", key=pub_key)
    home = client.home
    loaded = seedvault.load("acme/tiny-gguf@1", home=home)
    reader = {t.name: t for t in GGUFReader(src / "model-q8_0.gguf").tensors}
    assert set(loaded) == set(reader)
    assert np.array_equal(loaded["blk.0.attn_q.weight"], reader["blk.0.attn_q.weight"].data)
    assert loaded.metadata["general.architecture"] == "llama"  # type: ignore[attr-defined]
    assert loaded.types["token_embd.weight"] == "F16"  # type: ignore[attr-defined]
    path = seedvault.gguf_path("acme/tiny-gguf", home=home)
    assert path.name == "model-q8_0.gguf" and path.parent == seedvault.snapshot_path("acme/tiny-gguf", home=home)
    assert GGUFReader(path).fields["general.architecture"].contents() == "llama"
    with pytest.raises(UsageError, match="numpy arrays only"):
        seedvault.load("acme/tiny-gguf@1", framework="pt", home=home)


def test_publish_warns_where_the_file_metadata_disagrees(tmp_path: Path, make_client: Any,
                                                         pub_key: PrivateKey) -> None:
    client, src = _release(tmp_path, make_client, pub_key, license="mit",
                           base_models=({"name": "Llama-3-8B", "organization": "Meta"},))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.publish(src, name="acme/tiny-gguf", version="1", license="Apache-2.0", key=pub_key)
    texts = [str(w.message) for w in caught if issubclass(w.category, SeedvaultWarning)]
    assert any("general.license is 'mit', the release signs Apache-2.0" in t for t in texts), texts
    assert any("names base model 'Meta/Llama-3-8B', which the signed lineage does not" in t for t in texts), texts


def test_publish_is_quiet_when_the_file_agrees(tmp_path: Path, make_client: Any, pub_key: PrivateKey) -> None:
    client, src = _release(tmp_path, make_client, pub_key, license="apache-2.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.publish(src, name="acme/tiny-gguf", version="1", license="Apache-2.0", key=pub_key)
    assert not [w for w in caught if issubclass(w.category, SeedvaultWarning)]


def test_gguf_summary_round_trips_and_malformed_is_refused() -> None:
    summary = GGUFSummary(3, 2, 10, {"Q4_K": 1, "F32": 1}, "a" * 64, architecture="llama", context_length=4096,
                          base_models=({"name": "Base"},), extra={"x-note": 1})
    assert GGUFSummary.from_dict(summary.to_dict(), "gguf") == summary
    assert summary.quantization == ["F32", "Q4_K"]
    for bad, fragment in (({**summary.to_dict(), "types": {"Q4_K": -1}}, "ggml type name to tensor count"),
                          ({**summary.to_dict(), "base_models": [{"name": 3}]}, "base_models\\[0\\].name"),
                          ({**summary.to_dict(), "context_length": "4k"}, "context_length")):
        with pytest.raises(ManifestError, match=fragment):
            GGUFSummary.from_dict(bad, "gguf")
