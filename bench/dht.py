"""No-server discovery benchmark (issue 10): `pull NS/NAME` to verified, through the DHT alone
versus through a registry node.

    python bench/dht.py [--size-mb 8] [--runs 5] [--out bench/results/dht.json]

A private DHT of 6 libtorrent nodes on 127.0.0.1 (in this process). One home holds a
generated model published under a fresh key; from it run `seedvault seed --dht-node N --key K`
(which seeds the model and its cards and puts the DHT pointers) and `seedvault serve` (a
registry node serving the same release). Each run starts two fresh client homes that trust
the key and nothing else, and times, as separate processes, side by side in alternating
order:

- DHT:      `seedvault pull acme/bench --dht-node N`                 (no envelope, no registry)
- registry: `seedvault pull acme/bench --registry URL --dht-node N`  (envelope from the node)

Both find the model's bytes the same way (the DHT finds the seed); the difference is how
the signed head and envelope are found. The table gives medians over runs, the per-run
ratio DHT / registry, and each pull's peak RSS. Goal: DHT within 2x of the registry path,
and under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _util import free_port, log

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
NAME = "acme/bench"
GOAL_RATIO = 2.0
GOAL_SECONDS = 10.0
PULL_TIMEOUT_S = 120


def seedvault(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "seedvault", "--home", str(home), *args]


def read_json_line(proc: subprocess.Popen[str], want: str, deadline: float) -> dict[str, Any]:
    """The first JSON line on PROC's stdout that has key WANT."""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.args[4:6]} exited {proc.poll()} before reporting {want!r}")
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if want in doc:
            return doc  # type: ignore[no-any-return]
    raise RuntimeError(f"no {want!r} report before the deadline")


def timed_pull(home: Path, *args: str) -> dict[str, Any]:
    """One pull as a separate process: wall time, exit code, peak RSS (from wait4)."""
    out_path, err_path = home.parent / f"{home.name}.out", home.parent / f"{home.name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(seedvault(home, "pull", NAME, "--json", "--timeout", str(PULL_TIMEOUT_S), *args),
                                stdout=out, stderr=err, text=True)
        killer = threading.Timer(PULL_TIMEOUT_S + 30, proc.kill)
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if proc.returncode != 0:
        raise RuntimeError(f"pull {' '.join(args)} exited {proc.returncode}: {err_path.read_text()[-1500:]}")
    report = json.loads(out_path.read_text().strip().splitlines()[-1])
    return {"seconds": round(elapsed, 3), "ref": report["ref"], "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dht.json")
    args = parser.parse_args()

    from seedvault.client import Client
    from seedvault.demo_model import generate_model
    from seedvault.p2p import Swarm, SwarmConfig, format_endpoint
    from seedvault.signing import PrivateKey, TrustedKey, TrustPolicy

    work = Path(tempfile.mkdtemp(prefix="bench-dht-"))
    key = PrivateKey.generate()
    key.save(work / "acme.key")
    policy = TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("acme/*",), "bench"))
    home = work / "origin"
    generate_model(work / "model", args.size_mb, shards=2)
    with Client(home) as client:
        client.save_policy(policy)
        client.publish(work / "model", name=NAME, version="1.0", license="Apache-2.0", key=key, publisher="Bench")

    first = Swarm(SwarmConfig(extra={"enable_dht": True}))
    nodes = [first] + [Swarm(SwarmConfig(dht_nodes=(first.endpoint,))) for _ in range(5)]
    for node in nodes[1:]:
        first.session.add_dht_node(node.endpoint)
    children: list[subprocess.Popen[str]] = []
    runs: list[dict[str, Any]] = []
    try:
        dht_at = [format_endpoint(n.endpoint) for n in nodes]
        port = free_port()
        children.append(subprocess.Popen(seedvault(home, "serve", "--port", str(port), "--json"),
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        read_json_line(children[-1], "serving", time.monotonic() + 60)
        seed = subprocess.Popen(seedvault(home, "seed", "--dht-node", dht_at[0], "--key", str(work / "acme.key"),
                                          "--json", "--announce-every", "5"),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        children.append(seed)
        read_json_line(seed, "announced", time.monotonic() + 60)
        registry = f"http://127.0.0.1:{port}"
        for i in range(args.runs):
            contenders = [("dht", ("--dht-node", dht_at[3])),
                          ("registry", ("--registry", registry, "--dht-node", dht_at[3]))]
            if i % 2:
                contenders.reverse()  # A B, then B A: drift in the machine's load hits both
            run: dict[str, Any] = {}
            for label, extra in contenders:
                client_home = work / f"client-{label}-{i}"
                with Client(client_home) as client:
                    client.save_policy(policy)
                run[label] = timed_pull(client_home, *extra)
                log(f"run {i + 1}: {label:<8} {run[label]['seconds']:.2f} s  {run[label]['peak_rss_mb']} MB")
            run["ratio"] = round(run["dht"]["seconds"] / run["registry"]["seconds"], 3)
            runs.append(run)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=15)
        for node in nodes:
            node.close()

    dht_s = statistics.median(r["dht"]["seconds"] for r in runs)
    reg_s = statistics.median(r["registry"]["seconds"] for r in runs)
    ratio = statistics.median(r["ratio"] for r in runs)
    result = {
        "benchmark": "dht", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "size_mb": args.size_mb, "runs": runs,
        "median_seconds": {"dht": dht_s, "registry": reg_s}, "median_ratio": ratio,
        "peak_rss_mb": {k: max(r[k]["peak_rss_mb"] for r in runs) for k in ("dht", "registry")},
        "goal": {"ratio_at_most": GOAL_RATIO, "seconds_under": GOAL_SECONDS,
                 "met": ratio <= GOAL_RATIO and dht_s < GOAL_SECONDS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| path | median s | peak RSS MB |\n| --- | --- | --- |\n"
          f"| DHT only | {dht_s:.2f} | {result['peak_rss_mb']['dht']} |\n"
          f"| registry | {reg_s:.2f} | {result['peak_rss_mb']['registry']} |\n"
          f"median ratio DHT/registry {ratio:.2f} (goal <= {GOAL_RATIO}); DHT median {dht_s:.2f} s "
          f"(goal < {GOAL_SECONDS} s): {'met' if result['goal']['met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
