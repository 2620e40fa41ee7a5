"""Swarm vs HTTP: 1 origin + N clients, the origin's upload capped at the same rate in both.

    python bench/swarm.py [--size-mb 1024] [--clients 8] [--rate-mb 50] [--out bench/results/swarm.json]

seedvault: the origin runs `seedvault seed --upload-limit RATE` (libtorrent applies the cap
to loopback peers too); N `seedvault pull --seed` processes fetch at once from the origin
and from each other, each verifying before it reports. HTTP: an aiohttp file server whose
responses share one token bucket of RATE bytes/s; N processes download every file and
check its SHA-256. Reported side by side from one run: origin bytes sent / model size, time
until all N hold verified copies, and each client's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _util import free_port
from aiohttp import web

from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.signing import PrivateKey, TrustedKey, TrustPolicy

REF = "bench/swarm@1.0.0"
TIMEOUT = 1800.0


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return float("nan")


class RssSampler:
    """Peak anonymous RSS of child processes, sampled. VmHWM also counts file pages that
    libtorrent maps (its disk I/O is mmap), which are page cache, not the client's memory;
    ru_maxrss is inherited across fork, so neither tells a client's own footprint."""

    def __init__(self) -> None:
        self.peak_anon: dict[int, float] = {}
        self.pids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        self.pids.append(pid)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in list(self.pids):
                anon = _status_mb(pid, "RssAnon")
                if anon == anon:  # not NaN
                    self.peak_anon[pid] = max(self.peak_anon.get(pid, 0.0), anon)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def read_json(proc: subprocess.Popen[str], deadline: float) -> dict[str, Any]:
    """The next JSON document a child prints (pretty-printed over several lines)."""
    buf = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited ({proc.poll()}) before reporting")
        buf += line
        try:
            return dict(json.loads(buf))
        except json.JSONDecodeError:
            continue
    raise TimeoutError("child did not report in time")


def seedvault_cmd(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "seedvault", "--home", str(home), *args]


def run_swarm(work: Path, key: PrivateKey, envelope: Path, origin: Path, clients: int, rate: int,
              size: int) -> dict[str, Any]:
    origin_port = free_port()
    seed_args = ["seed", "--json", "--listen", f"127.0.0.1:{origin_port}", "--upload-limit", str(rate), "--super-seed"]
    seed = subprocess.Popen(seedvault_cmd(origin, *seed_args), stdout=subprocess.PIPE, text=True)
    procs: list[subprocess.Popen[str]] = []
    sampler = RssSampler()
    try:
        read_json(seed, time.monotonic() + 120)
        ports = [free_port() for _ in range(clients)]
        start = time.perf_counter()
        for i, port in enumerate(ports):
            home = work / f"swarm-client{i}"
            with Client(home) as c:
                c.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",))))
            others = [a for p in ports if p != port for a in ("--peer", f"127.0.0.1:{p}")]
            procs.append(subprocess.Popen(
                seedvault_cmd(home, "pull", REF, "--envelope", str(envelope), "--peer", f"127.0.0.1:{origin_port}",
                              *others, "--listen", f"127.0.0.1:{port}", "--seed", "--json", "--timeout", str(TIMEOUT)),
                stdout=subprocess.PIPE, text=True))
            sampler.watch(procs[-1].pid)
        reports = [read_json(p, time.monotonic() + TIMEOUT) for p in procs]
        elapsed = time.perf_counter() - start
        hwm = [_status_mb(p.pid, "VmHWM") for p in procs]
        anon = [sampler.peak_anon.get(p.pid, float("nan")) for p in procs]
    finally:
        sampler.stop()
        for p in [*procs, seed]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    final = read_json(seed, time.monotonic() + 30)
    seed.wait(timeout=30)
    origin_bytes = sum(final["uploaded"].values())
    return {"seconds": elapsed, "origin_bytes": origin_bytes, "origin_ratio": origin_bytes / size,
            "client_rss_mb": anon, "client_vmhwm_mb": hwm, "from_peers": [r["from_peers"] for r in reports],
            "verified": all(not r["already_present"] for r in reports)}


class Throttle:
    """One token bucket shared by every response: the origin's uplink."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.allowance = 0.0
        self.last = time.monotonic()
        self.lock = asyncio.Lock()
        self.sent = 0

    async def take(self, n: int) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.allowance = min(self.rate * 0.1, self.allowance + (now - self.last) * self.rate)
                self.last = now
                if self.allowance >= n:
                    self.allowance -= n
                    self.sent += n
                    return
                await asyncio.sleep((n - self.allowance) / self.rate)


def http_origin(root: Path, rate: int, port: int, ready: threading.Event, stop: threading.Event,
                result: dict[str, int]) -> None:
    async def main() -> None:
        throttle = Throttle(rate)

        async def handler(request: web.Request) -> web.StreamResponse:
            path = root / request.match_info["path"]
            resp = web.StreamResponse(headers={"Content-Length": str(path.stat().st_size)})
            await resp.prepare(request)
            with open(path, "rb") as f:
                while chunk := f.read(256 * 1024):
                    await throttle.take(len(chunk))
                    await resp.write(chunk)
            await resp.write_eof()
            return resp

        app = web.Application()
        app.add_routes([web.get("/{path:.+}", handler)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        result["sent"] = throttle.sent
        await runner.cleanup()

    asyncio.run(main())


HTTP_CLIENT = r"""
import hashlib, json, sys, urllib.request
base, files = sys.argv[1], json.loads(sys.argv[2])
for name, sha in files.items():
    h = hashlib.sha256()
    with urllib.request.urlopen(base + name, timeout=600) as r:
        while chunk := r.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == sha, name
print(json.dumps({"ok": True}))
"""


def run_http(snapshot: Path, files: dict[str, str], clients: int, rate: int, size: int) -> dict[str, Any]:
    port = free_port()
    ready, stop, result = threading.Event(), threading.Event(), {}
    server = threading.Thread(target=http_origin, args=(snapshot, rate, port, ready, stop, result), daemon=True)
    server.start()
    if not ready.wait(30):
        raise RuntimeError("HTTP origin did not start")
    start = time.perf_counter()
    sampler = RssSampler()
    procs = [subprocess.Popen([sys.executable, "-c", HTTP_CLIENT, f"http://127.0.0.1:{port}/", json.dumps(files)],
                              stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    for p in procs:
        sampler.watch(p.pid)
    outs = [json.loads(p.communicate(timeout=TIMEOUT)[0]) for p in procs]
    elapsed = time.perf_counter() - start
    sampler.stop()
    assert all(o["ok"] for o in outs)
    stop.set()
    server.join(timeout=30)
    sent = result.get("sent", 0)
    return {"seconds": elapsed, "origin_bytes": sent, "origin_ratio": sent / size,
            "client_rss_mb": [sampler.peak_anon.get(p.pid, float("nan")) for p in procs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate-mb", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/swarm.json"))
    args = parser.parse_args()
    rate = int(args.rate_mb * 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="seedvault-bench-swarm-"))
    try:
        key = PrivateKey.generate()
        generate_model(work / "model", args.size_mb, shards=4)
        origin = work / "origin"
        with Client(origin) as c:
            published = c.publish(work / "model", name="bench/swarm", version="1.0.0", license="MIT", key=key)
            c.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",))))
            manifest = published.verdict.manifest
            files = {f.path: f.sha256 for f in manifest.files}
        envelope = work / "release.json"
        envelope.write_bytes(published.envelope.to_json())
        size = manifest.total_size
        print(f"model {size / 1e6:.0f} MB, {args.clients} clients, origin capped at {args.rate_mb} MB/s", flush=True)
        swarm = run_swarm(work, key, envelope, origin, args.clients, rate, size)
        print(f"swarm: {swarm['seconds']:.1f} s, origin sent {swarm['origin_ratio']:.2f}x", flush=True)
        for i in range(args.clients):
            shutil.rmtree(work / f"swarm-client{i}", ignore_errors=True)
        http = run_http(published.snapshot, files, args.clients, rate, size)
        print(f"http:  {http['seconds']:.1f} s, origin sent {http['origin_ratio']:.2f}x", flush=True)
        table = {
            "model_bytes": size, "clients": args.clients, "rate_bytes_per_s": rate,
            "swarm": swarm, "http": http,
            "time_ratio_swarm_over_http": swarm["seconds"] / http["seconds"],
            "goals": {"origin_ratio<=1.5": swarm["origin_ratio"] <= 1.5,
                      "time_ratio<=0.3": swarm["seconds"] / http["seconds"] <= 0.3,
                      "client_rss<=250MB": max(swarm["client_rss_mb"]) <= 250},
        }
        print(f"\n{'':<8}{'origin sent / model':>22}{'time s':>10}{'max client anon RSS MB':>25}")
        for name, r in (("swarm", swarm), ("http", http)):
            print(f"{name:<8}{r['origin_ratio']:>22.2f}{r['seconds']:>10.1f}{max(r['client_rss_mb']):>25.0f}")
        hwm = max(swarm["client_vmhwm_mb"])
        print(f"swarm clients' VmHWM (incl. libtorrent's mapped file pages): max {hwm:.0f} MB")
        print(f"time ratio swarm/http: {table['time_ratio_swarm_over_http']:.2f}; goals: {table['goals']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
