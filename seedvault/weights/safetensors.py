"""safetensors: strict header validation, summaries, and tensors from verified bytes.

Validation follows the format's rules and refuses anything a lenient parser might accept:
a header length beyond the file or the 100 MB bound, non-JSON or duplicate keys, unknown
dtypes, a shape whose byte size disagrees with its offsets, offsets outside the data,
overlaps, gaps, and trailing bytes. Tensors are built as views over an already verified
buffer, so the bytes that were hashed are the bytes handed out.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seedvault import _json
from seedvault._json import describe, quote
from seedvault.errors import UnsafeWeightsError, UsageError
from seedvault.settings import MAX_SAFETENSORS_HEADER
from seedvault.summaries import SafetensorsSummary
from seedvault.weights._format import WeightFormat

# numpy (1.x) refuses arrays of more than 32 dimensions; so would a loader.
MAX_TENSOR_RANK = 32

# Bytes per element. Sub-byte types (F4, F6) cannot be sliced per tensor safely here.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
    "I32": "<i4", "U32": "<u4", "F32": "<f4", "I64": "<i8", "U64": "<u8", "F64": "<f8",
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # relative to the start of the data section
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    data_start: int  # 8 + header length
    header_sha256: str

    def summary(self) -> SafetensorsSummary:
        dtypes: dict[str, int] = {}
        for t in self.tensors:
            dtypes[t.dtype] = dtypes.get(t.dtype, 0) + 1
        return SafetensorsSummary(
            tensors=len(self.tensors),
            parameters=sum(math.prod(t.shape) for t in self.tensors),
            dtypes=dtypes,
            header_sha256=self.header_sha256,
        )


def _bad(name: str, message: str) -> UnsafeWeightsError:
    return UnsafeWeightsError(f"safetensors file {quote(name)}: {message}")


def header_length(prefix: bytes, file_size: int, name: str) -> int:
    """The declared header length from the first 8 bytes, bounded before anything is read."""
    if file_size < 8 or len(prefix) < 8:
        raise _bad(name, f"expected at least 8 bytes (the header length), found {file_size}")
    length: int = struct.unpack("<Q", prefix[:8])[0]
    limit = min(MAX_SAFETENSORS_HEADER, file_size - 8)
    if length > limit:
        raise _bad(
            name,
            f"expected a header length of at most {limit} bytes "
            f"(file size {file_size}, limit {MAX_SAFETENSORS_HEADER}), found {length}",
        )
    return length


# Members of a tensor entry; anything else is refused (a reader that honoured an extra
# member, say a byte order, would read other numbers from the same bytes).
_TENSOR_KEYS = frozenset({"dtype", "shape", "data_offsets"})


def parse_header(header: bytes, file_size: int, name: str) -> SafetensorsHeader:
    """Validate the JSON header (the bytes after the 8-byte length) against the file size.

    The header is one JSON object (seedvault's strict profile: unique names, no NaN, ...)
    starting at its first byte and followed only by space (0x20) padding; `__metadata__`,
    when present, maps strings to strings; every other member is a tensor with exactly
    dtype, shape and data_offsets; the tensors tile the data section exactly."""
    data_start = 8 + len(header)
    data_len = file_size - data_start
    if not header.startswith(b"{") or not header.rstrip(b" ").endswith(b"}"):
        raise _bad(
            name,
            "expected the header to be a JSON object starting at its first byte and followed only "
            "by spaces, found other bytes around it",
        )
    raw = _json.load_object(header, f"safetensors file {quote(name)}: header", UnsafeWeightsError)
    metadata = raw.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(name, f"expected __metadata__ to map strings to strings, found {describe(metadata)}")
    tensors = [_tensor(name, tname, info, data_len) for tname, info in raw.items()]
    ordered = sorted(tensors, key=lambda t: (t.begin, t.end))
    cursor = 0
    for t in ordered:
        if t.begin < cursor:
            raise _bad(name, f"tensor {quote(t.name)} starts at byte {t.begin}, overlapping the previous "
                             f"tensor, which ends at {cursor}")
        if t.begin > cursor:
            raise _bad(name, f"expected tensor {quote(t.name)} to start at byte {cursor} (no gaps), "
                             f"found {t.begin}")
        cursor = t.end
    if cursor != data_len:
        raise _bad(name, f"expected the tensors to cover all {data_len} data bytes, they cover "
                         f"{cursor} ({data_len - cursor} trailing bytes)")
    return SafetensorsHeader(
        tensors=tuple(tensors),
        metadata=dict(metadata),
        data_start=data_start,
        header_sha256=hashlib.sha256(header).hexdigest(),
    )


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor(name: str, tname: str, info: object, data_len: int) -> TensorInfo:
    where = f"tensor {quote(tname)}"
    if not isinstance(info, dict):
        raise _bad(name, f"{where}: expected an object with dtype, shape, data_offsets, found {describe(info)}")
    unknown = sorted(set(info) - _TENSOR_KEYS)
    if unknown:
        raise _bad(name, f"{where}: expected only dtype, shape and data_offsets, found {quote(unknown[0])}")
    dtype = info.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise _bad(name, f"{where}: expected a dtype in {', '.join(DTYPE_SIZES)}, found {describe(dtype)}")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise _bad(name, f"{where}: expected a shape of non-negative integers, found {describe(shape)}")
    if len(shape) > MAX_TENSOR_RANK:
        raise _bad(name, f"{where}: expected at most {MAX_TENSOR_RANK} dimensions, found {len(shape)}")
    offsets = info.get("data_offsets")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
        raise _bad(name, f"{where}: expected data_offsets [begin, end], found {describe(offsets)}")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise _bad(name, f"{where}: expected offsets within 0..{data_len}, found [{begin}, {end}]")
    nbytes = _byte_size(shape, DTYPE_SIZES[dtype], _SIZE_CAP)
    if end - begin != nbytes:
        held = "more than 2**128 bytes" if nbytes > _SIZE_CAP else f"{nbytes} bytes"
        raise _bad(
            name,
            f"{where}: shape {_shape(shape)} of {dtype} needs {held}, its offsets hold {end - begin}",
        )
    return TensorInfo(tname, dtype, tuple(shape), begin, end)


_SIZE_CAP = 2**128  # far above any file; keeps each multiplication small


def _byte_size(shape: list[int], item: int, limit: int) -> int:
    """Bytes a shape needs, stopping once past `limit`: the product of many large
    dimensions would otherwise cost time quadratic in their count."""
    if 0 in shape:
        return 0
    total = item
    for d in shape:
        total *= d
        if total > limit:
            return limit + 1
    return total


def _shape(shape: list[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def read_header(path: Path, name: str | None = None) -> SafetensorsHeader:
    """Validate the header of a file on disk (reads only the header)."""
    label = name or path.name
    size = path.stat().st_size
    with open(path, "rb") as f:
        length = header_length(f.read(8), size, label)
        return parse_header(f.read(length), size, label)


def header_from_buffer(buf: np.ndarray | bytes | bytearray | memoryview, name: str) -> SafetensorsHeader:
    view = (buf.data if isinstance(buf, np.ndarray) else memoryview(buf)).cast("B")
    length = header_length(bytes(view[:8]), len(view), name)
    return parse_header(bytes(view[8 : 8 + length]), len(view), name)


def tensors_from_buffer(buf: np.ndarray, name: str, framework: str = "numpy") -> dict[str, Any]:
    """Tensors as zero-copy views over a verified uint8 buffer."""
    header = header_from_buffer(buf, name)
    if framework == "numpy":
        out: dict[str, Any] = {}
        for t in header.tensors:
            np_dtype = _NUMPY_DTYPES.get(t.dtype)
            if np_dtype is None:
                raise UsageError(
                    f"tensor {quote(t.name)} in {quote(name)} is {t.dtype}, which numpy cannot represent",
                    hint="load with framework='pt' (needs PyTorch: pip install 'seedvault[torch]')",
                )
            start = header.data_start + t.begin
            out[t.name] = buf[start : header.data_start + t.end].view(np_dtype).reshape(t.shape)
        return out
    if framework == "pt":
        return _torch_tensors(buf, header, name)
    raise UsageError(f"framework: expected 'numpy' or 'pt', found {quote(framework)}")


def _torch_tensors(buf: np.ndarray, header: SafetensorsHeader, name: str) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise UsageError(
            "framework='pt' needs PyTorch, which is not installed: pip install 'seedvault[torch]'",
            hint="or load with framework='numpy' (the default)",
        ) from None
    torch_dtypes = {
        "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
        "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32, "F32": torch.float32,
        "I64": torch.int64, "F64": torch.float64, "U16": torch.uint16, "U32": torch.uint32,
        "U64": torch.uint64, "F8_E5M2": torch.float8_e5m2, "F8_E4M3": torch.float8_e4m3fn,
    }  # fmt: skip
    out: dict[str, Any] = {}
    for t in header.tensors:
        dtype = torch_dtypes.get(t.dtype)
        if dtype is None:
            raise UsageError(f"tensor {quote(t.name)} in {quote(name)} is {t.dtype}, which torch cannot represent")
        if t.end == t.begin:  # torch.frombuffer refuses an empty buffer
            out[t.name] = torch.empty(t.shape, dtype=dtype)
            continue
        raw = buf[header.data_start + t.begin : header.data_start + t.end]
        out[t.name] = torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(t.shape)
    return out


def _validate(path: Path, name: str) -> None:
    read_header(path, name)


def _summary(path: Path, name: str) -> SafetensorsSummary:
    return read_header(path, name).summary()


FORMAT = WeightFormat(
    name="safetensors",
    suffixes=(".safetensors",),
    validate=_validate,
    summary=_summary,
    tensors=tensors_from_buffer,
)
