"""GGUF (llama.cpp's format): strict header validation, summary, tensors from verified bytes.

A GGUF file is, little-endian: the magic `GGUF`, a u32 version, a u64 tensor count, a u64
metadata count; the metadata pairs (string key, u32 value type, value); the tensor infos
(string name, u32 dimension count, u64 dimensions, u32 ggml type, u64 offset); padding to
`general.alignment` (default 32); then the tensor data, each tensor at its offset and
padded to the alignment. A string is a u64 length and that many UTF-8 bytes.

llama.cpp parses this header in native code, and the `gguf` package's reader raises raw
numpy errors on a truncated file, so seedvault reads it with its own bounded parser before
anything else does: every count and length is checked against what the file can still
hold before anything is allocated, and the layout must be exactly the one llama.cpp
accepts. The type knowledge (ggml types and their block sizes) comes from the `gguf`
package. Tensors are views over an already verified buffer, like safetensors.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from seedvault._json import quote
from seedvault.errors import UnsafeWeightsError, UsageError
from seedvault.summaries import BASE_MODEL_FIELDS, MAX_BASE_MODELS, MAX_SUMMARY_STRING, GGUFSummary
from seedvault.weights._format import WeightFormat

MAGIC = b"GGUF"
VERSIONS = (2, 3)  # version 1 used 32-bit counts; nothing current writes it
DEFAULT_ALIGNMENT = 32
MAX_ALIGNMENT = 1 << 20
# Bounds far above any real model (a 256k-token vocabulary is one array of 256k strings),
# far below what would exhaust memory while validating.
MAX_HEADER = 512 * 1024 * 1024  # magic to the end of the tensor infos
MAX_METADATA = 1 << 16
MAX_TENSORS = 1 << 20
MAX_ARRAY = 1 << 24
MAX_KEY_BYTES = 65535
MAX_TENSOR_NAME_BYTES = 64  # GGML_MAX_NAME
MAX_DIMS = 4  # GGML_MAX_DIMS
_ELEMENT_CAP = 1 << 62

# GGUF metadata value types: (name, struct format); STRING (8) and ARRAY (9) are read apart.
_SCALARS: dict[int, tuple[str, str]] = {
    0: ("UINT8", "B"), 1: ("INT8", "b"), 2: ("UINT16", "H"), 3: ("INT16", "h"), 4: ("UINT32", "I"),
    5: ("INT32", "i"), 6: ("FLOAT32", "f"), 7: ("BOOL", "B"), 10: ("UINT64", "Q"), 11: ("INT64", "q"),
    12: ("FLOAT64", "d"),
}  # fmt: skip
STRING, ARRAY, BOOL = 8, 9, 7
TYPE_NAMES = {**{k: v[0] for k, v in _SCALARS.items()}, STRING: "STRING", ARRAY: "ARRAY"}
# Keys whose type seedvault (and llama.cpp) relies on: a file giving them another type is refused.
_KNOWN_TYPES: dict[str, tuple[int, ...]] = {
    "general.alignment": (4,),
    "general.architecture": (STRING,),
    "general.file_type": (4,),
    "general.quantization_version": (4,),
    "general.license": (STRING,),
    "general.name": (STRING,),
    "general.base_model.count": (4,),
}
_QUANT_SIZES: dict[int, tuple[int, int]] = {int(t): size for t, size in GGML_QUANT_SIZES.items()}
_NUMPY_TYPES: dict[int, str] = {
    GGMLQuantizationType.F32: "<f4", GGMLQuantizationType.F16: "<f2", GGMLQuantizationType.F64: "<f8",
    GGMLQuantizationType.I8: "i1", GGMLQuantizationType.I16: "<i2", GGMLQuantizationType.I32: "<i4",
    GGMLQuantizationType.I64: "<i8",
}  # fmt: skip


def type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    dims: tuple[int, ...]  # as the file lists them: the fastest-varying dimension first
    ggml_type: int
    offset: int  # relative to the start of the data section
    nbytes: int

    @property
    def type_name(self) -> str:
        return type_name(self.ggml_type)

    @property
    def elements(self) -> int:
        total = 1
        for d in self.dims:
            total *= d
        return total


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    value_types: dict[str, str]  # key -> GGUF value type name (ARRAY[UINT32] for arrays)
    tensors: tuple[GGUFTensorInfo, ...]
    alignment: int
    header_end: int  # the end of the tensor infos: the bytes header_sha256 covers
    data_start: int
    header_sha256: str

    def summary(self) -> GGUFSummary:
        md = self.metadata
        types: dict[str, int] = {}
        for t in self.tensors:
            types[t.type_name] = types.get(t.type_name, 0) + 1
        arch = md.get("general.architecture")
        context = md.get(f"{arch}.context_length") if isinstance(arch, str) else None
        bases = []
        count = md.get("general.base_model.count", 0)
        for i in range(min(count if isinstance(count, int) else 0, MAX_BASE_MODELS)):
            base = {f: v for f in BASE_MODEL_FIELDS if isinstance(v := md.get(f"general.base_model.{i}.{f}"), str)}
            if base:
                bases.append(base)
        file_type = md.get("general.file_type")
        return GGUFSummary(
            version=self.version,
            tensors=len(self.tensors),
            parameters=sum(t.elements for t in self.tensors),
            types=types,
            header_sha256=self.header_sha256,
            architecture=arch if isinstance(arch, str) else None,
            file_type=file_type if isinstance(file_type, int) else None,
            context_length=context if isinstance(context, int) and not isinstance(context, bool) else None,
            license=md.get("general.license") if isinstance(md.get("general.license"), str) else None,
            base_models=tuple(bases),
        )


def _bad(name: str, message: str) -> UnsafeWeightsError:
    return UnsafeWeightsError(f"GGUF file {quote(name)}: {message}")


class _Cursor:
    """Bounded reads over the file's bytes: every length is checked against what is left
    before a byte is read or a container allocated."""

    def __init__(self, buf: bytes | memoryview | mmap.mmap, size: int, name: str) -> None:
        self.buf, self.size, self.name, self.pos = buf, size, name, 0

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise _bad(self.name, f"{what} needs {n} bytes at offset {self.pos}, but the file has "
                                  f"{self.size - self.pos} left (truncated?)")
        if self.pos + n > MAX_HEADER:
            raise _bad(self.name, f"expected the header (metadata and tensor infos) to end within "
                                  f"{MAX_HEADER:,} bytes, {what} reaches past it")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize("<" + fmt)
        self.need(n, what)
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        value: int = self.scalar("I", what)
        return value

    def u64(self, what: str) -> int:
        value: int = self.scalar("Q", what)
        return value

    def string(self, what: str, limit: int) -> str:
        length = self.u64(f"the length of {what}")
        if length > limit:
            raise _bad(self.name, f"{what}: expected a string of at most {limit:,} bytes, found a length of "
                                  f"{length:,}")
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length])
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(self.name, f"{what}: expected UTF-8 text, found bytes that are not") from None


def _value(cur: _Cursor, vtype: int, key: str) -> Any:
    where = f"metadata {quote(key)}"
    if vtype == STRING:
        return cur.string(where, MAX_HEADER)
    if vtype in _SCALARS:
        value = cur.scalar(_SCALARS[vtype][1], where)
        if vtype == BOOL and value not in (0, 1):
            raise _bad(cur.name, f"{where}: expected a boolean (0 or 1), found {value}")
        return bool(value) if vtype == BOOL else value
    if vtype != ARRAY:
        raise _bad(cur.name, f"{where}: expected a value type 0-12, found {vtype}")
    etype = cur.u32(f"{where}: the array's element type")
    count = cur.u64(f"{where}: the array's length")
    if etype == ARRAY:
        raise _bad(cur.name, f"{where}: expected an array of scalars or strings, found an array of arrays")
    if etype not in _SCALARS and etype != STRING:
        raise _bad(cur.name, f"{where}: expected an array element type 0-8 or 10-12, found {etype}")
    # Each element takes at least its own size (a string at least its 8-byte length).
    least = 8 if etype == STRING else struct.calcsize("<" + _SCALARS[etype][1])
    if count > MAX_ARRAY:
        raise _bad(cur.name, f"{where}: expected an array of at most {MAX_ARRAY:,} elements, found {count:,}")
    cur.need(count * least, f"{where}: an array of {count:,} elements")
    if etype == STRING:
        return [cur.string(f"{where}[{i}]", MAX_HEADER) for i in range(count)]
    fmt = _SCALARS[etype][1]
    values = list(struct.unpack_from(f"<{count}{fmt}", cur.buf, cur.pos))
    cur.pos += count * least
    if etype == BOOL:
        if any(v not in (0, 1) for v in values):
            raise _bad(cur.name, f"{where}: expected booleans (0 or 1), found another byte")
        return [bool(v) for v in values]
    return values


def _check_key_types(name: str, metadata: dict[str, Any], types: dict[str, int]) -> None:
    arch = metadata.get("general.architecture")
    wanted = dict(_KNOWN_TYPES)
    if isinstance(arch, str):
        wanted[f"{arch}.context_length"] = (4, 10)
    for key, vtype in types.items():
        if key.startswith("general.base_model.") and key != "general.base_model.count":
            allowed: tuple[int, ...] = (STRING,)
        else:
            allowed = wanted.get(key, ())
        if allowed and vtype not in allowed:
            raise _bad(name, f"metadata {quote(key)}: expected {' or '.join(TYPE_NAMES[t] for t in allowed)}, "
                             f"found {TYPE_NAMES.get(vtype, str(vtype))}")
        value = metadata[key]
        if allowed == (STRING,) and len(value) > MAX_SUMMARY_STRING:
            raise _bad(name, f"metadata {quote(key)}: expected at most {MAX_SUMMARY_STRING} characters, found "
                             f"{len(value):,}")
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not 0 < alignment <= MAX_ALIGNMENT or alignment & (alignment - 1):
        raise _bad(name, f"metadata 'general.alignment': expected a power of two up to {MAX_ALIGNMENT}, "
                         f"found {alignment}")


def parse(buf: bytes | memoryview | mmap.mmap, size: int, name: str) -> GGUFHeader:
    """Validate a whole GGUF file's layout (header, metadata, tensor infos, data extents)."""
    cur = _Cursor(buf, size, name)
    if size < 24 or bytes(buf[:4]) != MAGIC:
        found = bytes(buf[:4]).hex() if size >= 4 else f"a file of {size} bytes"
        raise _bad(name, f"expected the GGUF magic (47475546, 'GGUF') and a 24-byte header, found {found}")
    cur.pos = 4
    version = cur.u32("the version")
    if version not in VERSIONS:
        big = " (a big-endian file? seedvault reads little-endian GGUF)" if version > 0xFFFF else ""
        raise _bad(name, f"expected GGUF version 2 or 3, found {version}{big}")
    n_tensors = cur.u64("the tensor count")
    n_kv = cur.u64("the metadata count")
    if n_kv > MAX_METADATA:
        raise _bad(name, f"expected at most {MAX_METADATA:,} metadata entries, found a count of {n_kv:,}")
    if n_tensors > MAX_TENSORS:
        raise _bad(name, f"expected at most {MAX_TENSORS:,} tensors, found a count of {n_tensors:,}")
    # A metadata entry takes at least 13 bytes (key length, one key byte, type, one value byte),
    # a tensor info at least 29: refuse counts the file cannot hold before looping over them.
    cur.need(n_kv * 13 + n_tensors * 29, f"{n_kv:,} metadata entries and {n_tensors:,} tensor infos")
    metadata: dict[str, Any] = {}
    types: dict[str, int] = {}
    value_types: dict[str, str] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key {i}", MAX_KEY_BYTES)
        if not key or not all(0x21 <= ord(c) <= 0x7E for c in key):
            raise _bad(name, f"metadata key {i}: expected printable ASCII without spaces, found {quote(key)}")
        if key in metadata:
            raise _bad(name, f"metadata key {quote(key)}: expected each key once, found it twice")
        vtype = cur.u32(f"the type of metadata {quote(key)}")
        start = cur.pos
        metadata[key] = _value(cur, vtype, key)
        types[key] = vtype
        value_types[key] = TYPE_NAMES.get(vtype, "?")
        if vtype == ARRAY:
            etype = struct.unpack_from("<I", buf, start)[0]
            value_types[key] = f"ARRAY[{TYPE_NAMES[etype]}]"
    _check_key_types(name, metadata, types)
    alignment: int = metadata.get("general.alignment", DEFAULT_ALIGNMENT)

    infos: list[GGUFTensorInfo] = []
    seen: set[str] = set()
    for i in range(n_tensors):
        tname = cur.string(f"the name of tensor {i}", MAX_TENSOR_NAME_BYTES)
        where = f"tensor {quote(tname)}"
        if not tname:
            raise _bad(name, f"tensor {i}: expected a name, found an empty one")
        if tname in seen:
            raise _bad(name, f"{where}: expected each tensor name once, found it twice")
        seen.add(tname)
        n_dims = cur.u32(f"{where}: its dimension count")
        if n_dims > MAX_DIMS:
            raise _bad(name, f"{where}: expected at most {MAX_DIMS} dimensions, found {n_dims}")
        dims = tuple(cur.u64(f"{where}: dimension {d}") for d in range(n_dims))
        elements = 1
        for d in dims:
            elements *= d
            if elements > _ELEMENT_CAP:
                raise _bad(name, f"{where}: dimensions {list(dims)} hold more than 2**62 elements")
        ggml_type = cur.u32(f"{where}: its type")
        if ggml_type not in _QUANT_SIZES:
            known = ", ".join(type_name(t) for t in sorted(_QUANT_SIZES))
            raise _bad(name, f"{where}: expected a ggml type ({known}), found {ggml_type}")
        block, type_size = _QUANT_SIZES[ggml_type]
        row = dims[0] if dims else 1
        if row % block:
            raise _bad(name, f"{where}: {type_name(ggml_type)} stores blocks of {block} values, but its first "
                             f"dimension is {row}, not a multiple of {block}")
        offset = cur.u64(f"{where}: its offset")
        if offset % alignment:
            raise _bad(name, f"{where}: expected an offset aligned to {alignment} bytes, found {offset}")
        infos.append(GGUFTensorInfo(tname, dims, ggml_type, offset, elements // block * type_size))
    header_end = cur.pos
    data_start = _pad(header_end, alignment)
    if data_start > size:
        raise _bad(name, f"expected the data section to start at byte {data_start}, but the file has only "
                         f"{size} bytes (truncated?)")
    data_len = size - data_start
    # llama.cpp reads tensors in the order listed, each at the previous one's padded end.
    expected = 0
    previous: GGUFTensorInfo | None = None
    for t in infos:
        where = f"tensor {quote(t.name)}"
        if t.offset < expected:
            assert previous is not None
            raise _bad(name, f"{where} starts at data byte {t.offset}, overlapping tensor {quote(previous.name)}, "
                             f"which ends at {previous.offset + previous.nbytes}")
        if t.offset > expected:
            raise _bad(name, f"expected {where} to start at data byte {expected} (right after the previous "
                             f"tensor, padded to {alignment}), found {t.offset}: a gap of {t.offset - expected}")
        if t.offset + t.nbytes > data_len:
            raise _bad(name, f"{where}: {list(t.dims)} of {t.type_name} needs {t.nbytes} bytes at data byte "
                             f"{t.offset}, past the end of the file ({data_len} data bytes; truncated?)")
        expected = _pad(t.offset + t.nbytes, alignment)
        previous = t
    last_end = previous.offset + previous.nbytes if previous is not None else 0
    if data_len not in (last_end, expected):
        raise _bad(name, f"expected the file to end after its last tensor, at byte {data_start + last_end} "
                         f"(or {data_start + expected} with padding), found {data_len - expected} trailing bytes"
                   if data_len > expected else
                   f"expected the file to end at byte {data_start + expected}, found it ends at {size}")
    return GGUFHeader(
        version=version,
        metadata=metadata,
        value_types=value_types,
        tensors=tuple(infos),
        alignment=alignment,
        header_end=header_end,
        data_start=data_start,
        header_sha256=hashlib.sha256(bytes(buf[:header_end])).hexdigest(),
    )


def read_header(path: Path, name: str | None = None) -> GGUFHeader:
    """Validate a GGUF file on disk. It is mapped, not read: only header pages are touched."""
    label = name or path.name
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 24:
            f.seek(0)
            return parse(f.read(), size, label)  # raises: too short to map usefully
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return parse(mapped, size, label)


class GGUFTensors(dict[str, np.ndarray]):
    """A GGUF file's tensors by name (numpy arrays, quantized ones as raw uint8 blocks), with
    the file's metadata and each tensor's ggml type."""

    metadata: dict[str, Any]
    types: dict[str, str]


def tensors_from_buffer(buf: np.ndarray, name: str, framework: str = "numpy") -> dict[str, Any]:
    """Tensors as zero-copy views over a verified uint8 buffer, in numpy's dimension order
    (the file's reversed). Types numpy has (F32, F16, F64, I8-I64) are typed arrays; the
    others (BF16 and every quantized type) are their raw blocks, shape [..., row bytes]."""
    if framework != "numpy":
        raise UsageError(f"framework: GGUF tensors load as numpy arrays only, found {quote(framework)}",
                         hint="load with framework='numpy' (quantized tensors are raw blocks for ggml)")
    header = parse(memoryview(buf.data).cast("B"), len(buf), name)
    out = GGUFTensors()
    out.metadata = header.metadata
    out.types = {}
    for t in header.tensors:
        start = header.data_start + t.offset
        raw = buf[start : start + t.nbytes]
        shape = tuple(reversed(t.dims))
        np_type = _NUMPY_TYPES.get(t.ggml_type)
        if np_type is not None:
            out[t.name] = raw.view(np_type).reshape(shape)
        else:
            block, type_size = _QUANT_SIZES[t.ggml_type]
            row_bytes = (t.dims[0] // block) * type_size if t.dims else type_size
            out[t.name] = raw.reshape((*shape[:-1], row_bytes) if t.dims else (row_bytes,))
        out.types[t.name] = t.type_name
    return out


def disagreements(summary: GGUFSummary, path: str, spdx: str, bases: list[str]) -> list[str]:
    """Where a GGUF file's own metadata says something else than the release signs: its
    `general.license` against the signed SPDX expression, its `general.base_model.*`
    against the signed lineage (`bases`: the lineage refs). For `publish` to warn about:
    the signed statement is what counts, but a user of the file alone reads the file's."""
    from seedvault import licenses  # the SPDX rules, only needed at publish

    found = []
    if summary.license is not None:
        stated = summary.license
        normal = licenses.normalize(stated) if licenses.is_valid(stated) else stated
        if normal.lower() != spdx.lower():
            found.append(f"{quote(path)} says general.license is {quote(stated)}, the release signs {spdx}")
    signed = {ref.partition("@")[0].lower() for ref in bases}
    for base in summary.base_models:
        label = "/".join(v for v in (base.get("organization"), base.get("name")) if v)
        names = {label.lower(), base.get("name", "").lower(), base.get("repo_url", "").lower()}
        if not any(n and (n in signed or any(n.endswith("/" + s) or s.endswith("/" + n) for s in signed))
                   for n in names):
            found.append(f"{quote(path)} names base model {quote(label or base.get('repo_url', '?'))}, which the "
                         "signed lineage does not" + (f" (it names {', '.join(sorted(signed))})" if signed else
                                                      " (it names none: pass --base REF --relation R)"))
    return found


def _validate(path: Path, name: str) -> None:
    read_header(path, name)


def _summary(path: Path, name: str) -> GGUFSummary:
    return read_header(path, name).summary()


FORMAT = WeightFormat(
    name="gguf",
    suffixes=(".gguf",),
    validate=_validate,
    summary=_summary,
    tensors=tensors_from_buffer,
)
