"""Small GGUF files written by the `gguf` package's own writer (llama.cpp's), for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize


def write_gguf(path: Path, *, arch: str = "llama", license: str | None = "apache-2.0",
               base_models: tuple[dict[str, str], ...] = (), context_length: int = 2048,
               seed: int = 0) -> Path:
    """A tiny llama-like GGUF: an F32 norm, a Q8_0 weight, an F16 embedding, a token list."""
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), arch)
    writer.add_context_length(context_length)
    writer.add_file_type(7)  # MOSTLY_Q8_0
    if license is not None:
        writer.add_license(license)
    if base_models:
        writer.add_base_model_count(len(base_models))
        for i, base in enumerate(base_models):
            for key, value in base.items():
                getattr(writer, f"add_base_model_{key}")(i, value)
    writer.add_token_list(["<s>", "</s>", "hello", "world"])
    writer.add_tensor("output_norm.weight", rng.standard_normal(64).astype(np.float32))
    weight = rng.standard_normal((4, 64)).astype(np.float32)
    writer.add_tensor("blk.0.attn_q.weight", quantize(weight, GGMLQuantizationType.Q8_0),
                      raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((4, 64)).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
