"""A pull at line rate: 1 seed -> 1 client over loopback, unthrottled, against plain HTTP.

    python bench/pull.py [--size-mb 1024] [--runs 3] [--out bench/results/pull.json]

seedvault: `seedvault seed` in one process, `seedvault pull --envelope ... --peer ...` in
another; the time is from starting the pull to the verified snapshot in the vault (the
command's own exit), and the client's CPU is its user+system seconds. HTTP: an aiohttp file
server with no limit; a client process downloads every file, writes it to disk and
SHA-256-hashes it as it writes. The two alternate (A B A B), each run on a fresh client, and
the medians and the per-pair ratios are reported from one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _util import free_port, log
from swarm import http_origin, read_json, seedvault_cmd

from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.signing import PrivateKey, TrustedKey, TrustPolicy

NAME = "bench/pull"
TIMEOUT = 900.0

HTTP_CLIENT = r"""
import hashlib, json, os, sys, urllib.request
base, files, dest = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
for name, sha in files.items():
    h = hashlib.sha256()
    path = os.path.join(dest, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with urllib.request.urlopen(base + name, timeout=600) as r, open(path, "wb") as out:
        while chunk := r.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
    assert h.hexdigest() == sha, name
print(json.dumps({"ok": True}))
"""


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pull_once(work: Path, key: PrivateKey, envelope: Path, port: int, run: int) -> dict[str, float]:
    home = work / f"client-{run}"
    with Client(home) as c:
        c.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",))))
    cpu0, start = _child_cpu(), time.perf_counter()
    out = subprocess.run(seedvault_cmd(home, "pull", f"{NAME}@1.0.0", "--envelope", str(envelope), "--peer",
                                       f"127.0.0.1:{port}", "--json", "--timeout", str(TIMEOUT)),
                         capture_output=True, text=True, timeout=TIMEOUT + 60, check=True)
    elapsed, cpu = time.perf_counter() - start, _child_cpu() - cpu0
    report = json.loads(out.stdout.splitlines()[-1])
    assert not report["already_present"] and report["done"] == report["total"], report
    shutil.rmtree(home, ignore_errors=True)
    return {"seconds": elapsed, "cpu_seconds": cpu}


def http_once(work: Path, port: int, files: dict[str, str], run: int) -> dict[str, float]:
    dest = work / f"http-{run}"
    cpu0, start = _child_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", HTTP_CLIENT, f"http://127.0.0.1:{port}/", json.dumps(files), str(dest)],
                   capture_output=True, text=True, timeout=TIMEOUT, check=True)
    elapsed, cpu = time.perf_counter() - start, _child_cpu() - cpu0
    shutil.rmtree(dest, ignore_errors=True)
    return {"seconds": elapsed, "cpu_seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/pull.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seedvault-bench-pull-"))
    seed: subprocess.Popen[str] | None = None
    stop = threading.Event()
    try:
        key = PrivateKey.generate()
        generate_model(work / "model", args.size_mb, shards=4)
        origin = work / "origin"
        with Client(origin) as c:
            c.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",))))
            published = c.publish(work / "model", name=NAME, version="1.0.0", license="MIT", key=key)
        manifest = published.verdict.manifest
        files = {f.path: f.sha256 for f in manifest.files}
        envelope = work / "release.json"
        envelope.write_bytes(published.envelope.to_json())
        port, http_port = free_port(), free_port()
        seed = subprocess.Popen(seedvault_cmd(origin, "seed", "--json", "--listen", f"127.0.0.1:{port}"),
                                stdout=subprocess.PIPE, text=True)
        read_json(seed, time.monotonic() + 120)
        ready, result = threading.Event(), {}
        server = threading.Thread(target=http_origin, args=(published.snapshot, 10**12, http_port, ready, stop, result),
                                  daemon=True)
        server.start()
        if not ready.wait(30):
            raise RuntimeError("HTTP origin did not start")
        size = manifest.total_size
        log(f"model {size / 1e6:.0f} MB in {len(files)} files; {args.runs} runs each, alternating")
        pulls, https = [], []
        for run in range(args.runs):
            pulls.append(pull_once(work, key, envelope, port, run))
            https.append(http_once(work, http_port, files, run))
            log(f"run {run}: seedvault {pulls[-1]['seconds']:.2f} s ({pulls[-1]['cpu_seconds']:.2f} CPU s), "
                f"http {https[-1]['seconds']:.2f} s ({https[-1]['cpu_seconds']:.2f} CPU s)")
        ratios = [p["seconds"] / h["seconds"] for p, h in zip(pulls, https, strict=True)]
        gib = size / 2**30
        table: dict[str, Any] = {
            "model_bytes": size, "runs": args.runs,
            "seedvault_seconds": [p["seconds"] for p in pulls], "http_seconds": [h["seconds"] for h in https],
            "ratio_per_pair": ratios, "median_ratio": statistics.median(ratios),
            "seedvault_cpu_s_per_gib": statistics.median(p["cpu_seconds"] for p in pulls) / gib,
            "http_cpu_s_per_gib": statistics.median(h["cpu_seconds"] for h in https) / gib,
        }
        table["goals"] = {"ratio<=1.3": table["median_ratio"] <= 1.3}
        print(f"{'':<10}{'median s':>10}{'CPU s/GiB':>11}")
        print(f"{'seedvault':<10}{statistics.median(table['seedvault_seconds']):>10.2f}"
              f"{table['seedvault_cpu_s_per_gib']:>11.2f}")
        print(f"{'http':<10}{statistics.median(table['http_seconds']):>10.2f}{table['http_cpu_s_per_gib']:>11.2f}")
        print(f"ratio seedvault/http per pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {table['median_ratio']:.2f} (goal <= 1.3)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=2))
    finally:
        stop.set()
        if seed is not None:
            seed.terminate()
            seed.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
