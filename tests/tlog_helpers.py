"""Helpers for the transparency-log tests: a node's log keys, and a hostile log server (a
real aiohttp server on 127.0.0.1 that serves a forked history under a stolen log key)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from seedvault.tlog.store import LogStore
from seedvault.tlog.tiles import parse_index

TIMEOUT = 30.0


def log_keys(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/log/keys", timeout=TIMEOUT) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
    return doc


class LyingLog:
    """Serves /log/checkpoint and /log/tile/... of `store`: a log signed with a real key
    whose history forks from the one that key's honest node shows."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lying-log", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _start(self) -> None:
        async def checkpoint(request: web.Request) -> web.Response:
            return web.Response(body=self.store.checkpoint(), content_type="text/plain")

        async def tile(request: web.Request) -> web.Response:
            index, width = parse_index(request.match_info["tail"])
            try:
                data = self.store.tile(int(request.match_info["level"]), index, width)
            except Exception:
                raise web.HTTPNotFound() from None
            return web.Response(body=data, content_type="application/octet-stream")

        app = web.Application()
        app.add_routes([web.get("/log/checkpoint", checkpoint), web.get(r"/log/tile/{level:\d+}/{tail:.+}", tile)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> LyingLog:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)
        self._loop.close()
        self.store.close()


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def home_config(home: Path) -> Path:
    return home / "config"
