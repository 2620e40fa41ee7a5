"""Strict safetensors header validation, summaries, and tensors from verified bytes."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from seedvault import weights
from seedvault.errors import UnsafeWeightsError, UsageError
from seedvault.settings import MAX_SAFETENSORS_HEADER


def craft(header: dict[str, Any] | bytes, data: bytes, *, length: int | None = None) -> bytes:
    """A safetensors file from a header (dict or raw bytes) and data, with an optional fake length."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def f32(name_offsets: list[tuple[str, list[int], int, int]]) -> dict[str, Any]:
    return {name: {"dtype": "F32", "shape": shape, "data_offsets": [b, e]} for name, shape, b, e in name_offsets}


def write(tmp_path: Path, blob: bytes, name: str = "w.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def test_valid_file_summary_matches_what_was_saved(tmp_path: Path) -> None:
    tensors = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.ones((2, 2, 2), dtype=np.int64),
        "c": np.zeros(0, dtype=np.float16),  # empty tensors are legal
        "d": np.array([True, False, True]),
    }
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    header = weights.read_header(tmp_path / "m.safetensors")
    summary = header.summary()
    assert summary.tensors == 4
    assert summary.parameters == 12 + 8 + 0 + 3
    assert summary.dtypes == {"F32": 1, "I64": 1, "F16": 1, "BOOL": 1}
    raw = (tmp_path / "m.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert summary.header_sha256 == hashlib.sha256(raw[8 : 8 + length]).hexdigest()
    assert header.metadata == {"k": "v"}


def test_tensors_from_buffer_equal_the_saved_arrays(tmp_path: Path) -> None:
    tensors = {
        "w": np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32),
        "i": np.arange(-4, 4, dtype=np.int8),
        "h": np.linspace(0, 1, 9).astype(np.float16),
        "u": np.arange(6, dtype=np.uint32).reshape(2, 3),
    }
    save_file(tensors, str(tmp_path / "m.safetensors"))
    buf = np.frombuffer((tmp_path / "m.safetensors").read_bytes(), dtype=np.uint8).copy()
    loaded = weights.tensors_from_buffer(buf, "m.safetensors")
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        np.testing.assert_array_equal(loaded[k], v)
    # They are views over the verified buffer, not copies of something read again.
    assert all(np.shares_memory(t, buf) for t in loaded.values() if t.size)


def test_tensors_from_buffer_refuses_unknown_framework(tmp_path: Path) -> None:
    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "m.safetensors"))
    buf = np.frombuffer((tmp_path / "m.safetensors").read_bytes(), dtype=np.uint8).copy()
    with pytest.raises(UsageError, match="expected 'numpy' or 'pt', found 'jax'"):
        weights.tensors_from_buffer(buf, "m", "jax")


def test_bf16_cannot_be_represented_in_numpy() -> None:
    blob = craft({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4)
    buf = np.frombuffer(blob, dtype=np.uint8).copy()
    assert weights.header_from_buffer(buf, "x").summary().dtypes == {"BF16": 1}
    with pytest.raises(UsageError, match="BF16"):
        weights.tensors_from_buffer(buf, "x")


def test_safetensors_header_huge_length_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [1], 0, 4)]), b"\0" * 4, length=2**63))
    with pytest.raises(UnsafeWeightsError, match=f"at most {path.stat().st_size - 8} bytes.*found {2**63}"):
        weights.read_header(path)


def test_safetensors_header_length_above_the_bound_refused(tmp_path: Path) -> None:
    # The length fits the (sparse) file but exceeds the 100 MB bound: refused before reading it.
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", MAX_SAFETENSORS_HEADER + 1))
        f.truncate(MAX_SAFETENSORS_HEADER + 64)
    with pytest.raises(UnsafeWeightsError, match=f"limit {MAX_SAFETENSORS_HEADER}.*found {MAX_SAFETENSORS_HEADER + 1}"):
        weights.read_header(path)


def test_safetensors_header_length_beyond_file_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [1], 0, 4)]), b"", length=500))
    with pytest.raises(UnsafeWeightsError, match="found 500"):
        weights.read_header(path)


def test_file_shorter_than_length_prefix_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeWeightsError, match=r"expected at least 8 bytes.*found 3"):
        weights.read_header(write(tmp_path, b"abc"))


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        (b"not json", b"", "expected the header to be a JSON object"),
        (b"{\"a\": }", b"", "invalid JSON"),
        (b"[1, 2]", b"", "JSON object"),
        (b"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
         b"\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", b"\0" * 8, "found 'a' twice"),
        ({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "expected a dtype in .*found 'F99'"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape of non-negative"),
        ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4, "shape of non-negative"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\0" * 4, "data_offsets"),
        ({"a": [1, 2]}, b"", "expected an object"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__ to map strings to strings"),
    ],
    ids=["not-json", "truncated-json", "json-list", "duplicate-key", "unknown-dtype", "negative-dim",
         "bool-dim", "one-offset", "info-not-object", "metadata-not-strings"],
)
def test_malformed_header_refused(tmp_path: Path, header: Any, data: bytes, message: str) -> None:
    with pytest.raises(UnsafeWeightsError, match=message):
        weights.read_header(write(tmp_path, craft(header, data)))


def test_safetensors_overlapping_offsets_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [2], 0, 8), ("b", [2], 4, 12)]), b"\0" * 12))
    message = "'b' starts at byte 4, overlapping the previous tensor, which ends at 8"
    with pytest.raises(UnsafeWeightsError, match=message):
        weights.read_header(path)


def test_safetensors_aliased_tensors_refused(tmp_path: Path) -> None:
    """Two names for the same bytes are an overlap too."""
    path = write(tmp_path, craft(f32([("a", [2], 0, 8), ("b", [2], 0, 8)]), b"\0" * 8))
    with pytest.raises(UnsafeWeightsError, match="overlapping"):
        weights.read_header(path)


def test_safetensors_out_of_range_offsets_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [4], 0, 16)]), b"\0" * 8))
    with pytest.raises(UnsafeWeightsError, match=r"expected offsets within 0..8, found \[0, 16\]"):
        weights.read_header(path)
    path = write(tmp_path, craft(f32([("a", [1], 8, 4)]), b"\0" * 8), "reversed.safetensors")
    with pytest.raises(UnsafeWeightsError, match=r"found \[8, 4\]"):
        weights.read_header(path)


def test_safetensors_shape_disagrees_with_bytes_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [3, 3], 0, 32)]), b"\0" * 32))
    with pytest.raises(UnsafeWeightsError, match=r"shape \[3, 3\] of F32 needs 36 bytes, its offsets hold 32"):
        weights.read_header(path)


def test_safetensors_huge_shape_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [2**40, 2**40], 0, 4)]), b"\0" * 4))
    with pytest.raises(UnsafeWeightsError, match="needs 4835703278458516698824704 bytes"):
        weights.read_header(path)


def test_safetensors_gap_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [1], 0, 4), ("b", [1], 8, 12)]), b"\0" * 12))
    with pytest.raises(UnsafeWeightsError, match=r"'b' to start at byte 4 .*found 8"):
        weights.read_header(path)


def test_safetensors_trailing_bytes_refused(tmp_path: Path) -> None:
    path = write(tmp_path, craft(f32([("a", [1], 0, 4)]), b"\0" * 4 + b"EXTRA"))
    with pytest.raises(UnsafeWeightsError, match=r"cover all 9 data bytes, they cover 4 .5 trailing bytes"):
        weights.read_header(path)


def test_header_from_buffer_applies_the_same_rules() -> None:
    blob = craft(f32([("a", [3, 3], 0, 32)]), b"\0" * 32)
    with pytest.raises(UnsafeWeightsError, match="needs 36 bytes"):
        weights.header_from_buffer(np.frombuffer(blob, dtype=np.uint8), "x")


def test_what_we_accept_safetensors_also_loads(tmp_path: Path) -> None:
    """Our strict reader accepts real files, and refuses nothing the reference loader needs."""
    tensors = {"z": np.zeros((0, 3), np.float32), "a": np.ones((2, 3), np.float64)}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    weights.read_header(tmp_path / "m.safetensors")
    ref = load_file(str(tmp_path / "m.safetensors"))
    buf = np.frombuffer((tmp_path / "m.safetensors").read_bytes(), dtype=np.uint8).copy()
    ours = weights.tensors_from_buffer(buf, "m")
    for k in tensors:
        np.testing.assert_array_equal(ours[k], ref[k])
        assert ours[k].shape == ref[k].shape


@pytest.mark.parametrize(
    "header",
    [
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a": {"dtype": "F32", "shape": [' + b"1" * 5000 + b"]}}",
    ],
    ids=["deeply-nested", "5000-digit-number"],
)
def test_hostile_header_json_refused_not_a_crash(tmp_path: Path, header: bytes) -> None:
    with pytest.raises(UnsafeWeightsError, match="header: expected ") as caught:
        weights.read_header(write(tmp_path, craft(header, b"")))
    assert "Error" not in str(caught.value)
