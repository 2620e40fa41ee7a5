"""Benchmark plumbing shared by the bench scripts: model generation, timing, limits, output.

Nothing here knows about seedvault; `core.py` composes it with the contenders.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

MiB = 1024 * 1024
GB = 1_000_000_000  # throughput is reported in GB/s (10^9 bytes)
TENSOR_BYTES = 64 * MiB
READ_CHUNK = 8 * MiB
ROW = 1024  # tensors are (rows, 1024)
SUBPROCESS_TIMEOUT_S = 900.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the only address benchmarks bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- model generation ---------------------------------------------------------------


def _tensor_shapes(nbytes: int, first: int) -> dict[str, tuple[np.dtype[Any], tuple[int, int]]]:
    """Names, dtypes and shapes of <= 64 MiB tensors filling about `nbytes`; F16/F32 alternate."""
    plan: dict[str, tuple[np.dtype[Any], tuple[int, int]]] = {}
    left, index = nbytes, first
    while left >= ROW * 4:
        dtype = np.dtype(np.float16 if index % 2 == 0 else np.float32)
        rows = max(1, min(left, TENSOR_BYTES) // (ROW * dtype.itemsize))
        plan[f"layers.{index}.weight"] = (dtype, (rows, ROW))
        left -= rows * ROW * dtype.itemsize
        index += 1
    return plan


def write_safetensors(path: Path, nbytes: int, rng: np.random.Generator, first: int = 0) -> int:
    """Write a safetensors file of about `nbytes` of random F16/F32 tensors; returns the count.

    `save_file` writes the layout from `np.zeros` arrays, whose untouched pages are never
    allocated, then each tensor's bytes are overwritten with random values one at a time:
    memory stays at one 8 MiB slice whatever the file size.
    """
    plan = _tensor_shapes(nbytes, first)
    save_file({name: np.zeros(shape, dtype) for name, (dtype, shape) in plan.items()}, path)
    with open(path, "r+b") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        for name, (dtype, _shape) in plan.items():
            begin, end = header[name]["data_offsets"]
            f.seek(8 + header_len + begin)
            for start in range(begin, end, READ_CHUNK):
                count = (min(end, start + READ_CHUNK) - start) // dtype.itemsize
                rng.standard_normal(count, dtype=np.float32).astype(dtype).tofile(f)
    return len(plan)


def make_model(directory: Path, total_bytes: int, shards: int, rng: np.random.Generator) -> list[Path]:
    """A model directory of `shards` safetensors files totalling about `total_bytes`."""
    directory.mkdir(parents=True)
    files: list[Path] = []
    first = 0
    for i in range(shards):
        name = "model.safetensors" if shards == 1 else f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        path = directory / name
        first += write_safetensors(path, total_bytes // shards, rng, first)
        files.append(path)
    return files


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read every file once so runs measure hashing, not the disk."""
    buf = bytearray(READ_CHUNK)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def total_size(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


# ---- the SHA-256 limits ---------------------------------------------------------------


def sha256_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def sha256_range(path: Path, offset: int, length: int) -> bytes:
    """SHA-256 of one byte range, read in 8 MiB chunks (hashlib drops the GIL while hashing)."""
    sha = hashlib.sha256()
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        left = length
        while left > 0:
            n = f.readinto(view[: min(READ_CHUNK, left)])
            if not n:
                break
            sha.update(view[:n])
            left -= n
    return sha.digest()


def sha256_threads(paths: Sequence[Path], threads: int) -> list[bytes]:
    """The throughput limit: `threads` threads, each hashing whole files, or file parts if
    there are fewer files than threads (the part digests are not file digests; only the
    time matters)."""
    if len(paths) >= threads:
        with ThreadPoolExecutor(threads) as ex:
            return list(ex.map(sha256_file, paths))
    jobs: list[tuple[Path, int, int]] = []
    for path in paths:
        size = path.stat().st_size
        step = -(-size // threads)
        jobs.extend((path, off, min(step, size - off)) for off in range(0, size, step))
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda job: sha256_range(*job), jobs))


# ---- timing ---------------------------------------------------------------------------


def _noop() -> None:
    return None


@dataclass
class Contender:
    """One thing to time. `setup`/`teardown` run around each timed call, untimed."""

    name: str
    run: Callable[[], object]
    setup: Callable[[], None] = _noop
    teardown: Callable[[], None] = _noop


def measure(contenders: Sequence[Contender], runs: int, label: str) -> dict[str, list[float]]:
    """Time every contender once per run, rotating their order each run; seconds per run."""
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(runs):
        k = r % len(contenders)
        for c in [*contenders[k:], *contenders[:k]]:
            c.setup()
            try:
                start = time.perf_counter()
                c.run()
                times[c.name].append(time.perf_counter() - start)
            finally:
                c.teardown()
        log(f"  {label} run {r + 1}/{runs}: " + ", ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()))
    return times


def run_command(cmd: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None) -> None:
    """Run a command to completion (bounded), raising with its output if it fails."""
    done = subprocess.run(
        [str(c) for c in cmd],
        env={**os.environ, **env} if env else None,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}: {done.stderr or done.stdout}")


# ---- results --------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the report: a contender's median, or a derived figure with a goal."""

    section: str
    model: str
    contender: str
    times: list[float] = field(default_factory=list)
    nbytes: int = 0
    ratio: float | None = None
    ratio_text: str = ""
    goal: str = ""
    met: bool | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def gbps(self) -> float | None:
        m = self.median
        return self.nbytes / m / GB if m and self.nbytes else None

    def to_dict(self) -> dict[str, object]:
        return {
            "section": self.section,
            "model": self.model,
            "contender": self.contender,
            "times_s": [round(t, 4) for t in self.times],
            "median_s": None if self.median is None else round(self.median, 4),
            "min_s": round(min(self.times), 4) if self.times else None,
            "bytes": self.nbytes,
            "gb_per_s": None if self.gbps is None else round(self.gbps, 3),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "ratio_of": self.ratio_text,
            "goal": self.goal,
            "met": self.met,
        }


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table: contender, median seconds, GB/s, ratio, goal, met?"""
    head = "| section | model | contender | median s | GB/s | ratio | goal | met? |"
    lines = [head, "|---|---|---|--:|--:|---|---|---|"]
    for r in rows:
        median = "" if r.median is None else f"{r.median:.3f}"
        gbps = "" if r.gbps is None else f"{r.gbps:.2f}"
        ratio = ("" if r.ratio is None else f"{r.ratio:.2f}x ") + r.ratio_text
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.section} | {r.model} | {r.contender} | {median} | {gbps} | {ratio} | {r.goal} | {met} |")
    return "\n".join(lines)
