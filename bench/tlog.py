"""Transparency log: appends per second, proof sizes at 10^6 entries, the cost added to a push.

    python bench/tlog.py [--entries 1000000] [--singles 200] [--out bench/results/tlog.json]

Simulated entries (the real entry format, one signing key each) fill a node's LogStore
(SQLite, synchronous=FULL) in batches; then single appends, each one transaction signed
and synced as a push makes it, are timed at that size; proof sizes and the time to build
and check them are taken at the full size; and the log's share of a push (append, proof,
and one witness's cosignature over loopback, from a real aiohttp witness) is timed.
Everything stays in a temporary directory on 127.0.0.1, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._util import free_port, log  # noqa: E402
from seedvault.tlog.entry import LogEntry  # noqa: E402
from seedvault.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion  # noqa: E402
from seedvault.tlog.note import COSIGNATURE_V1, ED25519, Signer  # noqa: E402
from seedvault.tlog.proof import TlogProof  # noqa: E402
from seedvault.tlog.store import LogStore  # noqa: E402
from seedvault.tlog.witness import Witness, ask_witness  # noqa: E402

BATCH = 10_000


def entry(i: int) -> LogEntry:
    return LogEntry("release", "acme/bench", f"{i}.0", f"{i:064x}", f"{i * 7:064x}", (f"{i * 13:064x}",),
                    1_700_000_000 + i)


def run_witness(witness: Witness, port: int) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    async def add(request: web.Request) -> web.Response:
        line = await asyncio.get_running_loop().run_in_executor(None, witness.add_checkpoint, await request.read())
        return web.Response(body=line, content_type="text/plain")

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> None:
        app = web.Application()
        app.add_routes([web.post("/add-checkpoint", add)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    return loop, thread


def measure(root: Path, n: int, singles: int) -> dict[str, Any]:
    signer = Signer.generate("bench.test/log", ED25519)
    store = LogStore(root / "tlog.db", signer)
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        store.append([entry(i) for i in range(first, min(n, first + BATCH))])
        if first % 200_000 == 0:
            log(f"  filled {first:,} entries")
    fill_s = time.perf_counter() - started

    times = []
    for i in range(singles):
        t = time.perf_counter()
        store.append([entry(n + i)])
        times.append(time.perf_counter() - t)
    size = store.size

    rng = random.Random(1)
    digests = [f"{rng.randrange(size):064x}" for _ in range(50)]
    proof_ms, verify_ms, sizes, hashes = [], [], [], []
    for d in digests:
        t = time.perf_counter()
        proof = store.proof(d)
        proof_ms.append((time.perf_counter() - t) * 1000)
        raw = proof.to_bytes()
        sizes.append(len(raw))
        hashes.append(len(proof.path))
        t = time.perf_counter()
        parsed = TlogProof.parse(raw, "proof")
        verify_inclusion(leaf_hash(parsed.extra), parsed.index, size, parsed.path, store.root(size))
        verify_ms.append((time.perf_counter() - t) * 1000)
    old = size - 1000
    consistency = store.consistency(old, size)
    verify_consistency(old, size, consistency, store.root(old), store.root(size))

    # The log's share of one push: append (one transaction, synced), the proof the answer
    # carries, and one witness's cosignature over loopback.
    cosigner = Signer.generate("bench.test/witness", COSIGNATURE_V1)
    witness = Witness(root / "witness.db", cosigner, [signer.verifier])
    port = free_port()
    loop, thread = run_witness(witness, port)
    url = f"http://127.0.0.1:{port}"
    witnessed = 0
    sig, theirs = ask_witness(url, cosigner.verifier, 0, [], store.checkpoint(), 10)
    witnessed = store.size
    push_alone, push_witnessed = [], []
    for i in range(30):
        t = time.perf_counter()
        store.append([entry(size + i)])
        store.proof(f"{size + i:064x}")
        push_alone.append(time.perf_counter() - t)
        t = time.perf_counter()
        new = store.size
        sig, theirs = ask_witness(url, cosigner.verifier, witnessed, store.consistency(witnessed, new),
                                  store.checkpoint(), 10)
        assert sig is not None, theirs
        store.add_cosignatures(new, (sig,))
        witnessed = new
        push_witnessed.append(time.perf_counter() - t + push_alone[-1])
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    witness.close()
    db_bytes = sum(p.stat().st_size for p in root.glob("tlog.db*"))
    store.close()
    return {
        "entries": n,
        "fill_entries_per_s_batched": round(n / fill_s),
        "single_append_per_s": round(singles / sum(times)),
        "single_append_ms_p50": round(statistics.median(times) * 1000, 2),
        "single_append_ms_p99": round(sorted(times)[int(len(times) * 0.99) - 1] * 1000, 2),
        "inclusion_hashes_median": statistics.median(hashes),
        "tlog_proof_bytes_median": statistics.median(sizes),
        "proof_build_ms_median": round(statistics.median(proof_ms), 3),
        "proof_verify_ms_median": round(statistics.median(verify_ms), 3),
        "consistency_hashes_1000_back": len(consistency),
        "push_cost_ms_median_no_witness": round(statistics.median(push_alone) * 1000, 2),
        "push_cost_ms_median_one_witness": round(statistics.median(push_witnessed) * 1000, 2),
        "db_bytes": db_bytes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--singles", type=int, default=200)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tlog.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seedvault-bench-tlog-") as tmp:
        result = measure(Path(tmp), args.entries, args.singles)
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
