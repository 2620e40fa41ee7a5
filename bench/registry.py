"""Registry node benchmark (issue 4): GET of a version's envelope at 64 concurrent connections.

    python bench/registry.py [--duration 5] [--runs 3] [--concurrency 64] [--out bench/results/registry.json]

Publishes a small generated model into a temporary node home, then starts three HTTP servers
on 127.0.0.1, each in its own process, all serving the same envelope bytes at the same path:

- `seedvault serve`: the node as a user runs it (no per-request access log unless
  `--access-log`; its stderr goes to a file here);
- the node without an access log: `web.run_app(create_app(config), access_log=None)`;
- a bare aiohttp app whose one handler returns the same bytes.

The load generator is a separate Python process (aiohttp ClientSession, a connector limited
to CONCURRENCY connections, CONCURRENCY workers on keep-alive connections): after a warm-up
second it counts, for DURATION seconds, the requests that complete with status 200 and the
exact expected body, and their latencies. Each run measures every contender once, rotating
the order; the table gives medians over runs. Server CPU time (utime + stime from /proc)
per 1000 requests is reported too: when the load generator, not the server, is the limit,
requests/s understates the difference and CPU per request shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _util import free_port, log

REPO = Path(__file__).resolve().parent.parent
NAME, VERSION = "acme/bench", "1.0"
PATH = f"/v1/models/{NAME}/{VERSION}/envelope"
GOAL = 0.7  # the node's requests/s over the bare app's
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


# ---- child roles: the servers and the load generator ---------------------------------------


def serve_bare(body_file: Path, port: int) -> None:
    from aiohttp import web

    body = body_file.read_bytes()

    async def envelope(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/models/{ns}/{name}/{version}/envelope", envelope)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_node(home: Path, port: int) -> None:
    from aiohttp import web

    from seedvault.registry import NodeConfig, create_app

    config = NodeConfig(home=home, port=port)
    web.run_app(create_app(config), host=config.host, port=port, access_log=None, print=None)


async def _load(url: str, concurrency: int, duration: float, warmup: float, expected: bytes) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    total = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = time.perf_counter()
        window_start = begin + warmup
        window_end = window_start + duration
        cpu_start: list[float] = []

        async def worker() -> None:
            nonlocal errors, total
            while (t0 := time.perf_counter()) < window_end:
                try:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        ok = resp.status == 200 and body == expected
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                t1 = time.perf_counter()
                total += 1
                if not cpu_start and t1 >= window_start:
                    cpu_start.append(time.process_time())
                if window_start <= t1 < window_end:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        client_cpu = time.process_time() - (cpu_start[0] if cpu_start else 0.0)
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "requests_all": total,  # warm-up and tail included: the denominator of server CPU
        "rps": n / duration,
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
        "client_cpu_s": round(client_cpu, 3),
    }


def load(url: str, concurrency: int, duration: float, warmup: float, body_file: Path) -> None:
    result = asyncio.run(_load(url, concurrency, duration, warmup, body_file.read_bytes()))
    print(json.dumps(result))


# ---- the parent: setup, servers, runs, report --------------------------------------------------


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> None:
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {self.url} within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # aiohttp's run_app shuts down gracefully
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(values) if values else None


def prepare(root: Path) -> tuple[Path, bytes]:
    """A node home holding one published model; returns the home and the envelope as served."""
    from seedvault.client import Client
    from seedvault.demo_model import generate_model
    from seedvault.signing import PrivateKey, TrustedKey, TrustPolicy

    key = PrivateKey.generate()
    home = root / "node"
    generate_model(root / "model", 2, shards=2)
    with Client(home) as client:
        client.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("acme/*",), "bench")))
        client.publish(root / "model", name=NAME, version=VERSION, license="Apache-2.0", key=key,
                       publisher="Bench")
        envelope = client.vault.resolve(f"{NAME}@{VERSION}").envelope.to_json()
    return home, envelope


def measure(server: Server, args: argparse.Namespace, body_file: Path) -> dict[str, Any]:
    assert server.proc is not None
    cpu_before = cpu_seconds(server.proc.pid)
    cmd = [sys.executable, __file__, "_load", server.url, str(args.concurrency), str(args.duration),
           str(args.warmup), str(body_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + args.warmup + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator against {server.name} exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    server_cpu = cpu_seconds(server.proc.pid) - cpu_before
    result["server_cpu_s"] = round(server_cpu, 3)
    result["server_cpu_ms_per_1k"] = 1e6 * server_cpu / result["requests_all"] if result["requests_all"] else None
    return result


def table(servers: Sequence[Server], bare: Server) -> str:
    lines = ["| contender | req/s (median) | p50 ms | p99 ms | server CPU ms / 1k req | req/s per run | errors "
             "| req/s ratio to bare | CPU ratio (bare / this) | goal | met? |",
             "|---|--:|--:|--:|--:|---|--:|--:|--:|---|---|"]
    for s in servers:
        rps, p50, p99, cpu = s.median("rps"), s.median("p50_ms"), s.median("p99_ms"), s.median("server_cpu_ms_per_1k")
        ratio, capacity = ratios(s, bare)
        is_node = s is not bare
        goal = f"req/s >= {GOAL}x" if is_node else ""
        met = "" if not is_node or ratio is None else ("yes" if ratio >= GOAL else "**no**")
        lines.append(
            f"| {s.name} | {rps or 0:.0f} | {p50 or 0:.2f} | {p99 or 0:.2f} | {cpu or 0:.1f} | "
            + ", ".join(f"{r['rps']:.0f}" for r in s.runs)
            + f" | {sum(r['errors'] for r in s.runs)} | {_x(ratio)} | {_x(capacity)} | {goal} | {met} |"
        )
    return "\n".join(lines)


def ratios(server: Server, bare: Server) -> tuple[float | None, float | None]:
    """(median req/s over the bare app's; the bare app's median CPU per request over this one's).

    The second estimates the req/s ratio when the server, not the load generator, is the limit.
    """
    rps, base = server.median("rps"), bare.median("rps")
    cpu, base_cpu = server.median("server_cpu_ms_per_1k"), bare.median("server_cpu_ms_per_1k")
    return (rps / base if rps and base else None), (base_cpu / cpu if cpu and base_cpu else None)


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def environment() -> dict[str, Any]:
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    import aiohttp

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": rev or None,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    env = environment()
    root = Path(tempfile.mkdtemp(prefix="seedvault-bench-registry-"))
    servers: list[Server] = []
    started = time.perf_counter()
    try:
        home, envelope = prepare(root)
        body_file = root / "envelope.json"
        body_file.write_bytes(envelope)
        py, me = sys.executable, __file__
        ports = [free_port() for _ in range(3)]
        bare = Server("bare aiohttp handler, same bytes", [py, me, "_serve-bare", str(body_file), str(ports[0])],
                      ports[0], root / "bare.log")
        servers = [
            bare,
            Server("node: seedvault serve",
                   [py, "-m", "seedvault", "--home", str(home), "serve", "--port", str(ports[1])],
                   ports[1], root / "serve.log"),
            Server("node: create_app, no access log", [py, me, "_serve-node", str(home), str(ports[2])],
                   ports[2], root / "node.log"),
        ]
        for s in servers:
            s.start()
            with urllib.request.urlopen(s.url, timeout=10) as resp:
                if resp.read() != envelope:
                    raise RuntimeError(f"{s.name} serves other bytes than the stored envelope")
        log(f"envelope: {len(envelope)} bytes; {args.runs} runs x {len(servers)} contenders x "
            f"({args.warmup:g} s warm-up + {args.duration:g} s) at {args.concurrency} connections")
        for r in range(args.runs):
            k = r % len(servers)
            for s in [*servers[k:], *servers[:k]]:
                result = measure(s, args, body_file)
                s.runs.append(result)
                log(f"  run {r + 1}/{args.runs} {s.name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
                    f"p99 {result['p99_ms']:.2f} ms, server CPU {result['server_cpu_ms_per_1k']:.1f} ms/1k, "
                    f"client CPU {result['client_cpu_s']:.2f} s, errors {result['errors']}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(table(servers, bare))
    summary = {}
    for s in servers:
        ratio, capacity = ratios(s, bare)
        summary[s.name] = {
            "median_rps": s.median("rps"), "median_p50_ms": s.median("p50_ms"), "median_p99_ms": s.median("p99_ms"),
            "median_server_cpu_ms_per_1k": s.median("server_cpu_ms_per_1k"),
            "rps_ratio_to_bare": ratio, "cpu_ratio_bare_over_this": capacity,
            "met": None if s is bare or ratio is None else ratio >= GOAL,
            "runs": s.runs,
        }
    result = {
        "benchmark": "registry",
        "command": " ".join(["python", "bench/registry.py", *argv]),
        "path": PATH,
        "envelope_bytes": len(envelope),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "runs": args.runs,
        "goal": f"node req/s >= {GOAL}x bare aiohttp req/s",
        "environment": env,
        "loadavg_after": os.getloadavg(),
        "wall_s": round(time.perf_counter() - started, 1),
        "contenders": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run and contender")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    p.add_argument("--runs", type=int, default=3, help="runs per contender; medians reported")
    p.add_argument("--concurrency", type=int, default=64, help="connections (and workers) of the load generator")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "registry.json")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.runs < 1 or args.concurrency < 1:
        p.error("--duration must be > 0, --warmup >= 0, --runs and --concurrency >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    role = argv[0] if argv else ""
    if role == "_serve-bare":
        serve_bare(Path(argv[1]), int(argv[2]))
    elif role == "_serve-node":
        serve_node(Path(argv[1]), int(argv[2]))
    elif role == "_load":
        load(argv[1], int(argv[2]), float(argv[3]), float(argv[4]), Path(argv[5]))
    else:
        return run(parse_args(argv), argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
