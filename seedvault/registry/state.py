"""What a registry node's application holds, shared by its API, its pages and the app
factory: the typed app keys, the envelope screener, the request-body budget, and the one
way to run node work (on the node's single worker thread, see node.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from seedvault.errors import BusyError
from seedvault.registry.config import NodeConfig
from seedvault.registry.node import Node, screen
from seedvault.signing import Envelope

T = TypeVar("T")

CONFIG = web.AppKey("config", NodeConfig)
NODE = web.AppKey("node", Node)
WORKER = web.AppKey("worker", ThreadPoolExecutor)
SYNCER = web.AppKey("syncer", ThreadPoolExecutor)
STOPPING = web.AppKey("stopping", threading.Event)
RETRY_AFTER = "5"  # seconds, on a 503: the bounds that answer it free up as requests finish


async def on_worker(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run node work on the node's worker thread: the event loop never blocks on it."""
    return await asyncio.get_running_loop().run_in_executor(request.app[WORKER], fn, *args)


class Screener:
    """One process that parses and judges envelopes from outside: a flood of heavy ones
    queues there, on the other core, while searches and downloads keep the node's worker
    and the GIL to themselves (a thread was not enough: parsing 16 MiB of junk holds the GIL).

    spawn, not fork: the node process runs libtorrent and worker threads, which a forked
    child would inherit half-copied. A process that died (killed, out of memory) is replaced
    for the next request; the request it had is answered 503, never with an unchecked envelope."""

    def __init__(self) -> None:
        self._pool = self._start()

    @staticmethod
    def _start() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    async def screen(self, raw: bytes, source: str, policy_file: Path | None) -> Envelope:
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, screen, raw, source, policy_file)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = self._start()
            raise BusyError("the registry's envelope checker stopped; expected it running, found it gone",
                            hint="retry in a moment") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


SCREENER = web.AppKey("screener", Screener)


class BodyBudget:
    """Bytes of request bodies held in memory by all requests together (item: 64 concurrent
    16 MiB POSTs must not take the node to a gigabyte). A request that would pass the budget
    is answered 503 with Retry-After at once, rather than queued holding its connection.
    Used from the event loop only, so it needs no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise BusyError(f"this registry holds {self.used} bytes of request bodies, its bound is {self.limit}; "
                            f"expected room for {n} more", hint="retry in a few seconds")
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n


BUDGET = web.AppKey("budget", BodyBudget)
# Connections with a request being handled or answered: the connection cap never closes these.
BUSY: web.AppKey[set[object]] = web.AppKey("busy")
