"""Hostile-load benchmark (issue 8): does junk posted by anyone starve a node's users?

    python bench/hostile.py [--duration 8] [--runs 3] [--attackers 4] [--out bench/results/hostile.json]

One node (`seedvault serve`, its own process) holds a published model. A prober process asks
for the search listing one request at a time and records latencies. Each run measures:

- idle: the prober alone;
- attacked: the prober while ATTACKERS connections each POST, over and over, a 16 MiB
  envelope: the release's public envelope padded with ~95,000 junk signatures under the
  trusted key id (the attack of issue 8, item 1), to /v1/envelopes and to the approvals route.

The figure is the ratio of median search p50 attacked over idle, side by side in one run,
medians over runs; plus the node's peak RSS (VmHWM) and what each junk POST was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import NAME, VERSION, Server, environment, free_port, log, prepare

SEARCH = "/v1/models?q=bench"
JUNK_TARGET_BYTES = 16 * 1024 * 1024 - 4096  # just under the node's envelope cap
GOAL = 3.0  # attacked search p50 at most this many times the idle p50


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def junk_envelope(envelope: bytes) -> bytes:
    """The public envelope, padded with random signatures under its own key id up to ~16 MiB."""
    doc = json.loads(envelope)
    keyid = doc["signatures"][0]["keyid"]
    one = {"keyid": keyid, "sig": base64.b64encode(os.urandom(64)).decode()}
    per = len(json.dumps(one)) + 2
    count = (JUNK_TARGET_BYTES - len(envelope)) // per
    doc["signatures"] += [{"keyid": keyid, "sig": base64.b64encode(os.urandom(64)).decode()} for _ in range(count)]
    return json.dumps(doc).encode()


async def _probe(base: str, duration: float, attackers: int, junk_file: str) -> dict[str, Any]:
    import aiohttp

    junk = Path(junk_file).read_bytes() if attackers else b""
    answers: dict[str, int] = {}
    latencies: list[float] = []
    stop = time.perf_counter() + duration
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def attacker(i: int) -> None:
            path = "/v1/envelopes" if i % 2 == 0 else f"/v1/models/{NAME}/{VERSION}/approvals"
            while time.perf_counter() < stop:
                try:
                    async with session.post(base + path, data=junk,
                                            headers={"Content-Type": "application/json"}) as resp:
                        await resp.read()
                        key = str(resp.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                answers[key] = answers.get(key, 0) + 1

        async def prober() -> None:
            await asyncio.sleep(0.5 if attackers else 0)  # let the attack start first
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with session.get(base + SEARCH) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.01)

        await asyncio.gather(prober(), *(attacker(i) for i in range(attackers)))
    latencies.sort()
    n = len(latencies)
    return {"searches": n, "p50_ms": 1000 * latencies[n // 2] if n else None,
            "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None, "junk_answers": answers}


def probe(base: str, duration: str, attackers: str, junk_file: str) -> None:
    print(json.dumps(asyncio.run(_probe(base, float(duration), int(attackers), junk_file))))


def measure(server: Server, duration: float, attackers: int, junk_file: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_probe", f"http://127.0.0.1:{server.port}", str(duration), str(attackers),
           str(junk_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 180, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"prober exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    env = environment()
    root = Path(tempfile.mkdtemp(prefix="seedvault-bench-hostile-"))
    idle: list[dict[str, Any]] = []
    attacked: list[dict[str, Any]] = []
    server: Server | None = None
    try:
        home, envelope = prepare(root)
        junk_file = root / "junk.json"
        junk_file.write_bytes(junk_envelope(envelope))
        port = free_port()
        server = Server("node: seedvault serve",
                        [sys.executable, "-m", "seedvault", "--home", str(home), "serve", "--port", str(port)],
                        port, root / "serve.log")
        server.start()
        assert server.proc is not None
        log(f"junk envelope: {junk_file.stat().st_size} bytes; {args.runs} runs x (idle, {args.attackers} attackers)"
            f" x {args.duration:g} s")
        for r in range(args.runs):
            order = [("idle", 0, idle), ("attacked", args.attackers, attacked)]
            for label, n, into in order if r % 2 == 0 else order[::-1]:  # A B, B A: drift cancels
                result = measure(server, args.duration, n, junk_file)
                into.append(result)
                log(f"  run {r + 1}/{args.runs} {label}: {result['searches']} searches, p50 {result['p50_ms']} ms, "
                    f"p99 {result['p99_ms']} ms, junk answers {result['junk_answers']}")
        peak = peak_rss_mib(server.proc.pid)
        alive = server.proc.poll() is None
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    def med(runs: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    ratios = [a["p50_ms"] / i["p50_ms"] for i, a in zip(idle, attacked, strict=True) if a["p50_ms"] and i["p50_ms"]]
    ratio = statistics.median(ratios) if ratios else None
    summary = {
        "benchmark": "hostile",
        "command": " ".join(["python", "bench/hostile.py", *argv]),
        "attackers": args.attackers, "duration_s": args.duration, "runs": args.runs,
        "idle_p50_ms": med(idle, "p50_ms"), "attacked_p50_ms": med(attacked, "p50_ms"),
        "idle_p99_ms": med(idle, "p99_ms"), "attacked_p99_ms": med(attacked, "p99_ms"),
        "p50_ratio_attacked_over_idle": ratio, "ratio_per_run": ratios, "goal": f"<= {GOAL}x",
        "met": None if ratio is None else ratio <= GOAL,
        "node_peak_rss_mib": round(peak, 1), "node_alive_after": alive,
        "idle": idle, "attacked": attacked, "environment": env,
    }
    print(f"search p50: idle {summary['idle_p50_ms']:.2f} ms, attacked {summary['attacked_p50_ms']:.2f} ms "
          f"(ratio {ratio:.2f}x, goal {summary['goal']}); p99 idle {summary['idle_p99_ms']:.2f} ms, attacked "
          f"{summary['attacked_p99_ms']:.2f} ms; node peak RSS {peak:.0f} MiB; node alive: {alive}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if alive else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_probe":
        probe(*argv[1:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hostile.json")
    return run(parser.parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
