"""The per-file summaries a manifest signs, one per weight format: pure data, no I/O.

A summary describes a weights file's header (what a reader of the file would see: its
tensors, types and, for GGUF, the file's own metadata) so that a person or a policy can
judge a release without fetching its bytes. Summaries are informational: the bytes are
pinned by the digests, and a verifier validates the file itself before loading it
(`seedvault.weights`). Each summary sits in `predicate.files[i]` under its format's key
(`SUMMARY_KINDS`); the normative text is manifests/README.md section 4.4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seedvault._json import describe
from seedvault.errors import ManifestError

_KINDS = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
# Bounds on what a summary may carry: it describes a header, it is not a copy of one.
MAX_SUMMARY_STRING = 4096
MAX_BASE_MODELS = 64


def _fail(where: str, expected: str, found: object) -> ManifestError:
    return ManifestError(f"manifest field {where}: expected {expected}, found {describe(found)}")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    if key not in data:
        raise ManifestError(f"manifest field {where}.{key}: expected an integer >= 0, found nothing")
    value = data[key]
    if not _is_count(value):
        raise _fail(f"{where}.{key}", "an integer >= 0", value)
    result: int = value
    return result


def _type_counts(data: Mapping[str, Any], key: str, where: str, what: str) -> dict[str, int]:
    counts = data.get(key)
    if not isinstance(counts, dict) or not all(isinstance(k, str) and _is_count(v) for k, v in counts.items()):
        raise ManifestError(
            f"manifest field {where}.{key}: expected a map of {what} to tensor count (integer >= 0), "
            f"found {describe(counts) if not isinstance(counts, dict) else 'another value in it'}"
        )
    return dict(counts)


def _sha256(data: Mapping[str, Any], key: str, where: str) -> str:
    from seedvault.manifest import check_hex_digest  # the one digest rule (manifest imports this module)

    return check_hex_digest(data.get(key), f"{where}.{key}")


def _text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, str) or len(value) > MAX_SUMMARY_STRING:
        raise _fail(f"{where}.{key}", f"a string of at most {MAX_SUMMARY_STRING} characters", value)
    return value


@dataclass(frozen=True)
class SafetensorsSummary:
    tensors: int
    parameters: int
    dtypes: dict[str, int]
    header_sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    KEY = "safetensors"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> SafetensorsSummary:
        return cls(
            tensors=_count(data, "tensors", where),
            parameters=_count(data, "parameters", where),
            dtypes=_type_counts(data, "dtypes", where, "dtype name"),
            header_sha256=_sha256(data, "header_sha256", where),
            extra={k: v for k, v in data.items() if k not in {"tensors", "parameters", "dtypes", "header_sha256"}},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensors": self.tensors,
            "parameters": self.parameters,
            "dtypes": dict(sorted(self.dtypes.items())),
            "header_sha256": self.header_sha256,
            **self.extra,
        }


# The string members of a GGUF `general.base_model.N.*` entry a summary carries.
BASE_MODEL_FIELDS = ("name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url")
_GGUF_KEYS = {"version", "tensors", "parameters", "types", "header_sha256", "architecture", "file_type",
              "context_length", "license", "base_models"}


@dataclass(frozen=True)
class GGUFSummary:
    """A GGUF file as its header describes it, including what the file says about itself
    (its `general.license` and `general.base_model.*`), which `publish` compares with
    what the publisher signs."""

    version: int  # the GGUF format version (2 or 3)
    tensors: int
    parameters: int
    types: dict[str, int]  # ggml type name (F32, Q8_0, Q4_K ...) -> tensor count: the quantization
    header_sha256: str  # SHA-256 of the bytes from the magic to the end of the tensor infos
    architecture: str | None = None  # general.architecture
    file_type: int | None = None  # general.file_type (llama.cpp's llama_ftype)
    context_length: int | None = None  # {architecture}.context_length
    license: str | None = None  # general.license, as the file states it
    base_models: tuple[dict[str, str], ...] = ()  # general.base_model.N.{name, organization, ...}
    extra: dict[str, Any] = field(default_factory=dict)

    KEY = "gguf"

    @property
    def quantization(self) -> list[str]:
        """The ggml types of its tensors, most used first."""
        return sorted(self.types, key=lambda t: (-self.types[t], t))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> GGUFSummary:
        bases = data.get("base_models", [])
        if not isinstance(bases, list) or len(bases) > MAX_BASE_MODELS:
            raise _fail(f"{where}.base_models", f"a list of at most {MAX_BASE_MODELS} objects", bases)
        base_models = []
        for i, base in enumerate(bases):
            spot = f"{where}.base_models[{i}]"
            if not isinstance(base, dict):
                raise _fail(spot, "an object of strings", base)
            base_models.append({k: v for k in base if (v := _text(base, k, spot)) is not None})
        optional_counts = {}
        for key in ("file_type", "context_length"):
            if key in data:
                optional_counts[key] = _count(data, key, where)
        return cls(
            version=_count(data, "version", where),
            tensors=_count(data, "tensors", where),
            parameters=_count(data, "parameters", where),
            types=_type_counts(data, "types", where, "ggml type name"),
            header_sha256=_sha256(data, "header_sha256", where),
            architecture=_text(data, "architecture", where),
            file_type=optional_counts.get("file_type"),
            context_length=optional_counts.get("context_length"),
            license=_text(data, "license", where),
            base_models=tuple(base_models),
            extra={k: v for k, v in data.items() if k not in _GGUF_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "tensors": self.tensors,
            "parameters": self.parameters,
            "types": dict(sorted(self.types.items())),
            "header_sha256": self.header_sha256,
        }
        for key in ("architecture", "file_type", "context_length", "license"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.base_models:
            out["base_models"] = [dict(b) for b in self.base_models]
        return {**out, **self.extra}


Summary = SafetensorsSummary | GGUFSummary
# The member of a predicate.files entry each summary kind is written under.
SUMMARY_KINDS: dict[str, type[SafetensorsSummary] | type[GGUFSummary]] = {
    SafetensorsSummary.KEY: SafetensorsSummary,
    GGUFSummary.KEY: GGUFSummary,
}
