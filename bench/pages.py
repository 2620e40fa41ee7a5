"""Registry web pages benchmark (issue 16): how long the home page and a model page take to
render as the node holds more releases.

    python bench/pages.py [--releases 10,100,1000] [--requests 20] [--out bench/results/pages.json]

For each size, a temporary node home gets that many small generated releases (10 versions
per model), published straight into its vault (the node indexes them as it starts); the
node then serves on 127.0.0.1 in this process's background thread, and sequential GETs of
`/` and of one model's page are timed (after one warm-up each). Each listed release costs
the page one envelope read and one signature check under the node's policy (the refused
mark), so the home page grows with what it lists; it reads at most MAX_LISTED_RELEASES.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from _util import log  # noqa: E402
from conftest import make_model  # noqa: E402
from registry_helpers import NodeServer, make_home, policy  # noqa: E402

from seedvault.client import Client  # noqa: E402
from seedvault.registry.views import MAX_LISTED_RELEASES  # noqa: E402
from seedvault.signing import PrivateKey  # noqa: E402

VERSIONS_PER_MODEL = 10


def fill(home: Path, work: Path, releases: int, key: PrivateKey) -> None:
    make_model(work / "model", seed=0)
    with Client(home) as client:
        for i in range(releases):
            name = f"acme/model-{i // VERSIONS_PER_MODEL:04d}"
            (work / "model" / "config.json").write_text(json.dumps({"release": i}))
            client.publish(work / "model", name=name, version=f"1.{i % VERSIONS_PER_MODEL}", license="MIT",
                           key=key, publisher="Acme", notes=f"release {i}")


def timed(url: str, n: int) -> list[float]:
    urllib.request.urlopen(url, timeout=120).read()  # warm-up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as answer:
            answer.read()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", default="10,100,1000")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pages.json")
    args = parser.parse_args()
    key = PrivateKey.generate("ed25519")
    rows = []
    for releases in (int(n) for n in args.releases.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            home = make_home(Path(tmp) / "node", policy((key, "publisher")))
            log(f"publishing {releases} releases ...")
            fill(home, Path(tmp), releases, key)
            with NodeServer(home, seed=False) as node:
                home_ms = timed(node.url + "/", args.requests)
                model_ms = timed(node.url + "/models/acme/model-0000", args.requests)
            rows.append({"releases": releases, "home_median_ms": statistics.median(home_ms),
                         "home_max_ms": max(home_ms), "model_median_ms": statistics.median(model_ms),
                         "model_max_ms": max(model_ms)})
            log(f"{releases} releases: home {rows[-1]['home_median_ms']:.1f} ms, "
                f"model {rows[-1]['model_median_ms']:.1f} ms")
    print(f"{'releases':>9} {'home median ms':>15} {'home max ms':>12} {'model median ms':>16} {'model max ms':>13}")
    for r in rows:
        print(f"{r['releases']:>9} {r['home_median_ms']:>15.1f} {r['home_max_ms']:>12.1f} "
              f"{r['model_median_ms']:>16.1f} {r['model_max_ms']:>13.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "pages", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(), "requests": args.requests, "max_listed_releases": MAX_LISTED_RELEASES,
        "rows": rows,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
