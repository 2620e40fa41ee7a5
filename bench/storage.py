"""Storage that scales with what changed: publish, disk for two versions, a delta pull.

    python bench/storage.py [--size-mb 1024] [--runs 3] [--out bench/results/storage.json]

- publish: `Client.publish` (hash: SHA-256 and BEP 52 pieces roots in one read, sign, into the
  vault without a second copy where the filesystem allows) against `model_signing` signing
  the same directory in-process plus libtorrent's v2 `create_torrent` + `set_piece_hashes`,
  each run on a fresh home, alternating, warm page cache. Ratio per pair, median.
- disk: version 1.1 differs from 1.0 in config.json only: bytes on disk of the vault's
  blobs (each inode once) and layers after both versions, over one version's bytes.
- delta: a client holding 1.0 pulls a 1.1 that changes one 1 MB file (from an in-process
  seed over loopback): payload bytes downloaded over the bytes that changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from _util import log, make_model
from core import lt_create_v2, ms_api_sign, write_p256_keys

from seedvault.client import Client
from seedvault.p2p import Swarm, SwarmConfig
from seedvault.signing import PrivateKey, TrustedKey, TrustPolicy
from seedvault.swarming import pull, start_seeding

MiB = 1024 * 1024
NAME = "bench/storage"


def policy(key: PrivateKey) -> TrustPolicy:
    return TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",)))


def vault_disk_bytes(client: Client) -> int:
    """Bytes of blobs (each inode once) and stored piece layers."""
    seen: dict[tuple[int, int], int] = {}
    for d in (client.vault.blobs, client.vault.layers):
        for p in d.iterdir():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def bench_publish(work: Path, model: Path, runs: int) -> dict[str, Any]:
    """seedvault with `store="link"` (no second copy) and `store="copy"` (a copy, fsynced),
    against model_signing + create_torrent, rotating the order each run."""
    keys = write_p256_keys(work / "keys")
    times: dict[str, list[float]] = {"link": [], "copy": [], "baseline": []}
    stored: dict[str, Any] = {}

    def ours(mode: str, run: int) -> None:
        home = work / f"publish-{mode}-{run}"
        with Client(home) as client:
            client.save_policy(policy(keys.seedvault))
            t = time.perf_counter()
            admitted = client.publish(model, name=NAME, version="1.0", license="MIT", key=keys.seedvault,
                                      store=mode)  # type: ignore[arg-type]
            times[mode].append(time.perf_counter() - t)
            stored[mode] = dict(admitted.stored)
        shutil.rmtree(home)

    def baseline(run: int) -> None:
        t = time.perf_counter()
        ms_api_sign(model, work / f"ms-{run}.sig", keys.private_pem)
        lt_create_v2(model)
        times["baseline"].append(time.perf_counter() - t)

    for run in range(runs):
        jobs = [partial(ours, "link", run), partial(ours, "copy", run), partial(baseline, run)]
        for job in jobs[run % 3:] + jobs[: run % 3]:
            job()
        log(f"publish run {run}: link {times['link'][-1]:.2f} s, copy {times['copy'][-1]:.2f} s, "
            f"model_signing + create_torrent {times['baseline'][-1]:.2f} s")
    out: dict[str, Any] = {"seconds": times, "stored": stored}
    for mode in ("link", "copy"):
        ratios = [a / b for a, b in zip(times[mode], times["baseline"], strict=True)]
        out[f"{mode}_ratio_per_pair"] = ratios
        out[f"{mode}_median_ratio"] = statistics.median(ratios)
    return out


def bench_disk_and_delta(work: Path, model: Path) -> dict[str, Any]:
    key = PrivateKey.generate()
    home = work / "origin"
    with Client(home) as client:
        client.save_policy(policy(key))
        v10 = client.publish(model, name=NAME, version="1.0", license="MIT", key=key)
        one = vault_disk_bytes(client)
        new_config = model / "config.json.new"  # replaced, not written in place: the old may be 1.0's copy
        new_config.write_text(json.dumps({"hidden_size": 1024, "revision": 2}))
        new_config.replace(model / "config.json")
        v11 = client.publish(model, name=NAME, version="1.1", license="MIT", key=key)
        two = vault_disk_bytes(client)
        changed = model / "tokenizer.model"
        data = np.random.default_rng(7).integers(0, 256, MiB, dtype=np.uint8).tobytes()
        changed.write_bytes(data)
        v12 = client.publish(model, name=NAME, version="1.2", license="MIT", key=key)
        disk = {"one_version_bytes": one, "two_versions_bytes": two, "ratio": two / one}
        log(f"disk: one version {one / MiB:.1f} MiB, two versions {two / MiB:.1f} MiB, ratio {two / one:.4f}")
    with Client(home) as origin, Swarm(SwarmConfig()) as swarm:
        report = start_seeding(origin, swarm, [v10.verdict.manifest.ref, v12.verdict.manifest.ref])
        assert len(report.seeding) == 2, report.refused
        with Client(work / "client") as client:
            client.save_policy(policy(key))
            pull(client, v10.verdict.manifest.ref, v10.envelope, peers=[swarm.endpoint], timeout=600)
            t = time.perf_counter()
            second = pull(client, v12.verdict.manifest.ref, v12.envelope, peers=[swarm.endpoint], timeout=600)
            elapsed = time.perf_counter() - t
    # 1.2 differs from 1.0 by config.json (a few bytes) and the new 1 MiB file.
    changed_bytes = len(data) + v12.verdict.manifest.file("config.json").size
    s = second.stats
    delta = {"changed_bytes": changed_bytes, "downloaded_bytes": s.downloaded, "reused_bytes": s.reused,
             "ratio": s.downloaded / changed_bytes, "seconds": elapsed}
    log(f"delta: downloaded {s.downloaded} bytes for {changed_bytes} changed ({s.downloaded / changed_bytes:.3f}x), "
        f"reused {s.reused / MiB:.1f} MiB from the vault, {elapsed:.2f} s")
    del v11
    return {"disk": disk, "delta": delta}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/storage.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seedvault-bench-storage-"))
    try:
        model = work / "model"
        make_model(model, args.size_mb * MiB, 4, np.random.default_rng(0))
        (model / "config.json").write_text(json.dumps({"hidden_size": 1024}))
        for f in model.iterdir():  # warm: every contender reads from the page cache
            f.read_bytes()
        results: dict[str, Any] = {"model_bytes": sum(f.stat().st_size for f in model.iterdir())}
        results["publish"] = bench_publish(work, model, args.runs)
        results.update(bench_disk_and_delta(work, model))
        results["goals"] = {"publish<=0.7x": results["publish"]["link_median_ratio"] <= 0.7,
                            "disk<=1.01": results["disk"]["ratio"] <= 1.01,
                            "delta<=1.05": results["delta"]["ratio"] <= 1.05}
        for mode in ("link", "copy"):
            pairs = ", ".join(f"{r:.2f}" for r in results["publish"][f"{mode}_ratio_per_pair"])
            print(f"publish ({mode}) / (model_signing + create_torrent): median "
                  f"{results['publish'][f'{mode}_median_ratio']:.2f} (pairs {pairs}; goal <= 0.7)")
        print(f"disk, two versions / one: {results['disk']['ratio']:.4f} (goal <= 1.01)")
        print(f"delta, downloaded / changed: {results['delta']['ratio']:.3f} (goal <= 1.05)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
