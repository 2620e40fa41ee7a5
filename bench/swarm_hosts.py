"""A swarm across many hosts: network namespaces joined by a bridge, each link shaped by tc.

    sudo python bench/swarm_hosts.py [--hosts 32] [--size-mb 256] [--host-mbit 100] [--origin-mbit 50]
                                     [--out bench/results/swarm_hosts.json]

Each host is a network namespace of its own with one veth pair to a bridge (addresses in
10.213.0.0/16, which nothing else here uses); each link is shaped with `tc tbf` in both
directions (the namespace's side shapes the host's upload, the bridge's side its download)
to --host-mbit, the origin's to --origin-mbit. Host 0 runs `seedvault seed --super-seed`;
every other host runs `seedvault pull --seed` at once, given every host as a peer, and
verifies before it reports. Reported: origin bytes sent / model size (from its veth's
counters, which count every byte the origin put on the wire, and from libtorrent), each
host's completion time against the lower bound, and CPU seconds per host. Then the same
again with the origin killed halfway (at half the first run's last completion): whether
every host still completes from its peers.

Lower bounds: the issue's, max(model / host rate, pullers x model / total upload capacity),
and the one the origin's own uplink sets, since every byte leaves it at least once:
model / origin rate. Every namespace, link and process is removed in a `finally`.
Needs root (ip netns, tc); the machine's own interfaces are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.signing import PrivateKey, TrustedKey, TrustPolicy

REF = "bench/hosts@1.0.0"
SUBNET = "10.213"  # 10.213.0.0/16: only this benchmark's namespaces use it
PORT = 6881
TIMEOUT = 1200.0  # seconds for every host to complete, per run
TICK = os.sysconf("SC_CLK_TCK")


def sh(*args: str, check: bool = True) -> None:
    subprocess.run(args, check=check, capture_output=True, timeout=30)


@dataclass
class Network:
    """The bridge, namespaces and veth pairs of one run; `close` removes all of them."""

    prefix: str
    hosts: int
    host_mbit: int
    origin_mbit: int
    made: list[str] = field(default_factory=list)  # namespaces created
    links: list[str] = field(default_factory=list)  # links created in the root namespace

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def ns(self, i: int) -> str:
        return f"{self.prefix}h{i}"

    def veth(self, i: int) -> str:
        return f"{self.prefix}v{i}"  # the bridge's end, in the root namespace

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i // 250}.{i % 250 + 2}"

    def open(self) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.links.append(self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i in range(self.hosts):
            ns, outer = self.ns(i), self.veth(i)
            rate = f"{self.origin_mbit if i == 0 else self.host_mbit}mbit"
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", f"{outer}p")
            self.links.append(outer)
            sh("ip", "link", "set", f"{outer}p", "netns", ns)
            sh("ip", "-n", ns, "link", "set", f"{outer}p", "name", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(i)}/16", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "set", outer, "master", self.bridge)
            sh("ip", "link", "set", outer, "up")
            # burst >= rate / HZ or tbf cannot reach its rate; the queue holds ~100 ms.
            shape = ["root", "tbf", "rate", rate, "burst", "64kb", "latency", "100ms"]
            sh("tc", "qdisc", "add", "dev", outer, *shape)  # toward the host: its download
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", *shape)  # its upload

    def sent_by(self, i: int) -> int:
        """Bytes host i put on its link (what the bridge's end received)."""
        return int(Path(f"/sys/class/net/{self.veth(i)}/statistics/rx_bytes").read_text())

    def close(self) -> None:
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)  # takes its veth pair with it
        for link in reversed(self.links):
            if Path(f"/sys/class/net/{link}").exists():
                sh("ip", "link", "del", link, check=False)
        self.made.clear()
        self.links.clear()


class Host:
    """One seedvault process inside a namespace; its JSON report read on a thread."""

    def __init__(self, net: Network, i: int, home: Path, args: list[str], start: float) -> None:
        self.i = i
        self.start = start
        cmd = ["ip", "netns", "exec", net.ns(i), sys.executable, "-m", "seedvault", "--home", str(home), *args]
        # `ip netns exec` execs the command: this pid is the seedvault process itself.
        self.log = home / "host.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        self.reports: list[dict[str, Any]] = []
        self.done_at: float | None = None
        self.cpu = 0.0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            buf += line
            try:
                doc = json.loads(buf)
            except json.JSONDecodeError:
                continue
            buf = ""
            self.reports.append(doc)
            if self.done_at is None:
                self.done_at = time.perf_counter() - self.start

    def sample_cpu(self) -> None:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._reader.join(timeout=10)


def make_home(path: Path, key: PrivateKey) -> Path:
    with Client(path) as c:
        c.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",))))
    return path


def run(net: Network, work: Path, key: PrivateKey, envelope: Path, origin_home: Path, size: int,
        kill_after: float | None, patience: float = TIMEOUT) -> dict[str, Any]:
    """One swarm: the origin seeds, every other host pulls at once; `kill_after` seconds in,
    the origin is SIGKILLed, and the hosts get `patience` seconds more to complete from
    each other (a piece nobody but the origin had never comes)."""
    origin_sent_before = net.sent_by(0)
    start = time.perf_counter()
    origin = Host(net, 0, origin_home, ["seed", "--json", "--listen", f"{net.address(0)}:{PORT}", "--super-seed"],
                  start)
    hosts: list[Host] = []
    try:
        deadline = time.monotonic() + 120
        while not origin.reports:  # seeding (it verified what it serves)
            if time.monotonic() > deadline or origin.proc.poll() is not None:
                raise RuntimeError("the origin did not start seeding")
            time.sleep(0.1)
        start = time.perf_counter()
        for i in range(1, net.hosts):
            home = make_home(work / f"h{i}", key)
            mine = [a for j in range(net.hosts) if j != i for a in ("--peer", f"{net.address(j)}:{PORT}")]
            hosts.append(Host(net, i, home, ["pull", REF, "--envelope", str(envelope), *mine, "--listen",
                                             f"{net.address(i)}:{PORT}", "--seed", "--json", "--timeout",
                                             str(TIMEOUT)], start))
        killed_at = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not all(h.done_at is not None or h.proc.poll() is not None
                                                      for h in hosts):
            elapsed = time.perf_counter() - start
            if kill_after is not None and killed_at is None and elapsed >= kill_after:
                origin.sample_cpu()
                origin.stop(kill=True)
                killed_at = elapsed
                deadline = min(deadline, time.monotonic() + patience)
            for h in [origin, *hosts]:
                if h.proc.poll() is None:
                    h.sample_cpu()
            time.sleep(0.2)
        origin_sent = net.sent_by(0) - origin_sent_before
    finally:
        for h in hosts:
            h.sample_cpu()
        origin.sample_cpu()
        origin.stop()
        for h in hosts:
            h.stop()
    lt_sent = None
    if kill_after is None and len(origin.reports) >= 2:
        lt_sent = sum(origin.reports[-1].get("uploaded", {}).values())
    failures = {h.i: h.log.read_text(errors="replace")[-400:] for h in hosts
                if not h.reports and h.log.exists()}
    times = [h.done_at for h in hosts]
    ok = [h.done_at is not None and "from_peers" in h.reports[0] for h in hosts]
    return {
        "completed": sum(ok), "pullers": len(hosts), "every_host_completed": all(ok),
        "origin_killed_at_s": killed_at,
        "origin_wire_bytes": origin_sent, "origin_wire_ratio": origin_sent / size,
        "origin_libtorrent_bytes": lt_sent, "origin_libtorrent_ratio": lt_sent / size if lt_sent else None,
        "completion_s": times, "last_s": max((t for t in times if t is not None), default=None),
        "cpu_s": {"origin": origin.cpu, "hosts": [h.cpu for h in hosts]},
        "from_peers": [h.reports[0].get("from_peers") if h.reports else None for h in hosts],
        "pull_elapsed_s": [h.reports[0].get("elapsed") if h.reports else None for h in hosts],  # excl. startup
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=32, help="hosts in all, the origin included")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--host-mbit", type=int, default=100)
    parser.add_argument("--origin-mbit", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/swarm_hosts.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/swarm_hosts.py needs root (ip netns, tc)")
    # SIGTERM (a timeout, Ctrl-C's cousin) runs the cleanup below too, rather than leaving namespaces behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("swarm_hosts: terminated"))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit("swarm_hosts: hung up"))
    work = Path(tempfile.mkdtemp(prefix="seedvault-bench-hosts-"))
    os.chmod(work, 0o755)
    net = Network(f"sv{os.getpid() % 100000}", args.hosts, args.host_mbit, args.origin_mbit)
    try:
        key = PrivateKey.generate()
        generate_model(work / "model", args.size_mb, shards=4)
        origin_home = work / "origin"
        with Client(origin_home) as c:
            published = c.publish(work / "model", name="bench/hosts", version="1.0.0", license="MIT", key=key)
            c.save_policy(TrustPolicy().with_key(TrustedKey(key.public, "publisher", ("bench/*",))))
            size = published.verdict.manifest.total_size
        envelope = work / "release.json"
        envelope.write_bytes(published.envelope.to_json())
        net.open()
        pullers = args.hosts - 1
        bits = size * 8
        host_rate, origin_rate = args.host_mbit * 1e6, args.origin_mbit * 1e6
        issue_bound = max(bits / host_rate, pullers * bits / (origin_rate + pullers * host_rate))
        origin_bound = bits / origin_rate
        print(f"{args.hosts} hosts ({pullers} pulling), model {size / 1e6:.0f} MB, links {args.host_mbit} Mbit/s, "
              f"origin {args.origin_mbit} Mbit/s; bound {issue_bound:.1f} s (issue), {origin_bound:.1f} s "
              "(the origin's uplink)", flush=True)
        full = run(net, work, key, envelope, origin_home, size, None)
        for i, text in list(full["failures"].items())[:3]:
            print(f"host {i} failed: {text}", flush=True)
        print(f"full run: {full['completed']}/{pullers} completed, last {full['last_s']} s, "
              f"origin sent {full['origin_wire_ratio']:.2f}x on the wire", flush=True)
        for i in range(1, args.hosts):
            shutil.rmtree(work / f"h{i}", ignore_errors=True)
        half = (full["last_s"] or TIMEOUT) / 2
        killed = run(net, work, key, envelope, origin_home, size, half, patience=max(2 * (full["last_s"] or 60), 60))
        print(f"origin killed at {half:.1f} s: {killed['completed']}/{pullers} completed, last {killed['last_s']} s",
              flush=True)
        last = full["last_s"]
        table = {
            "hosts": args.hosts, "model_bytes": size, "host_mbit": args.host_mbit, "origin_mbit": args.origin_mbit,
            "bound_s_issue": issue_bound, "bound_s_origin_uplink": origin_bound,
            "full": full, "origin_killed_halfway": killed,
            "last_over_issue_bound": last / issue_bound if last else None,
            "last_over_origin_bound": last / max(issue_bound, origin_bound) if last else None,
            "goals": {"origin<=1.1x": full["origin_wire_ratio"] <= 1.1,
                      "last<=1.3x bound (issue)": bool(last and last <= 1.3 * issue_bound),
                      "every host completes without the origin": killed["every_host_completed"]},
        }
        cpu = full["cpu_s"]["hosts"]
        print(f"\n{'':<34}{'value':>12}")
        print(f"{'origin sent / model (wire)':<34}{full['origin_wire_ratio']:>12.2f}")
        if full["origin_libtorrent_ratio"]:
            print(f"{'origin sent / model (libtorrent)':<34}{full['origin_libtorrent_ratio']:>12.2f}")
        print(f"{'last host done, s':<34}{last or float('nan'):>12.1f}")
        print(f"{'  / bound (issue)':<34}{table['last_over_issue_bound'] or float('nan'):>12.2f}")
        print(f"{'  / bound (origin uplink)':<34}{table['last_over_origin_bound'] or float('nan'):>12.2f}")
        print(f"{'CPU s per host (mean / max)':<34}{sum(cpu) / len(cpu):>6.1f} / {max(cpu):.1f}")
        print(f"{'CPU s origin':<34}{full['cpu_s']['origin']:>12.1f}")
        print(f"{'origin killed halfway: completed':<34}{killed['completed']:>9}/{pullers}")
        print(f"goals: {table['goals']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=2))
    finally:
        net.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
