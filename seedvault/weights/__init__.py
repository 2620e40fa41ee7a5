"""Weights formats behind one interface: which files are weights, how each is validated
strictly, what its signed summary says, and its tensors from verified bytes.

Each format is one module (`safetensors`, `gguf`) exposing a `WeightFormat`; nothing else
in seedvault knows a format's suffix or layout. Pickle formats are not among them: they
run code when loaded and are only ever refused or, by the publisher's opt-in, stored
(`seedvault.manifest.check_pickles`).
"""

from __future__ import annotations

from pathlib import Path

from seedvault.summaries import Summary
from seedvault.weights import gguf, safetensors
from seedvault.weights._format import WeightFormat
from seedvault.weights.safetensors import (
    DTYPE_SIZES,
    MAX_TENSOR_RANK,
    SafetensorsHeader,
    TensorInfo,
    header_from_buffer,
    header_length,
    parse_header,
    read_header,
    tensors_from_buffer,
)

FORMATS: tuple[WeightFormat, ...] = (safetensors.FORMAT, gguf.FORMAT)


def format_of(path: str) -> WeightFormat | None:
    """The weights format of a file, by its name; None for any other file."""
    return next((f for f in FORMATS if f.matches(path)), None)


def validate(path: Path, name: str) -> None:
    """Strictly validate the header of a weights file (nothing for other files)."""
    fmt = format_of(name)
    if fmt is not None:
        fmt.validate(path, name)


def summary(path: Path, name: str) -> Summary | None:
    """The signed summary of a weights file, from its strictly validated header."""
    fmt = format_of(name)
    return fmt.summary(path, name) if fmt is not None else None


__all__ = [
    "DTYPE_SIZES", "FORMATS", "MAX_TENSOR_RANK", "SafetensorsHeader", "TensorInfo", "WeightFormat", "format_of",
    "gguf", "header_from_buffer", "header_length", "parse_header", "read_header", "safetensors", "summary",
    "tensors_from_buffer", "validate",
]  # fmt: skip
