"""Real registry nodes for the registry tests: `create_app` served by aiohttp on 127.0.0.1.

Each `NodeServer` runs its own event loop in a background thread, so the synchronous
RegistryClient, the CLI and libtorrent talk to it over real sockets. Start and stop are
bounded in time; `close()` always runs the app's cleanup (which closes the node's
libtorrent session, index and vault) and stops the loop. A small observing middleware
records every request (method, path), so a test can tell what a sync fetched.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libtorrent as lt
from aiohttp import web

from seedvault.client import Client
from seedvault.demo_model import generate_model
from seedvault.registry import NodeConfig, create_app
from seedvault.registry.app import NODE, CappedSite, runner_kwargs
from seedvault.registry.node import Node
from seedvault.signing import Envelope, PrivateKey, TrustedKey, TrustPolicy

START_TIMEOUT = 60.0  # the node verifies and seeds what it holds before it answers
STOP_TIMEOUT = 30.0
HTTP_TIMEOUT = 60.0
PIECE = 256 * 1024  # small pieces: a 1 MB shard spans several pieces and web-seed requests
MODEL_MB = 2


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NodeServer:
    """`create_app(config)` on 127.0.0.1:<free port>, in a thread with its own event loop."""

    def __init__(self, home: Path, **settings: Any) -> None:
        self.home = home
        self.settings = settings
        self.config = NodeConfig(home=home, port=0, **settings)
        self.requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="registry-node", daemon=True)
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    @property
    def url(self) -> str:
        return self.config.base_url

    @property
    def node(self) -> Node:
        """The running Node, for white-box checks only (the tests speak HTTP to it)."""
        assert self._app is not None
        return self._app[NODE]

    def _call(self, coro: Awaitable[Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _start(self, port: int) -> None:
        # The node's base URL (web seed and tracker URLs in its torrents) comes from the
        # config, so the port is chosen before the app is built.
        self.config = replace(self.config, port=port)
        app = create_app(self.config)

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.requests.append((request.method, request.path))
            return await handler(request)

        app.middlewares.insert(0, record)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5,
                               **runner_kwargs(self.config))
        await runner.setup()  # runs cleanup_ctx: the Node, its vault, index and swarm
        try:  # served as `seedvault serve` serves it: with the connection cap and timeouts
            await CappedSite(runner, "127.0.0.1", port, cap=self.config.max_connections).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._app, self._runner = app, runner

    def start(self) -> NodeServer:
        self._thread.start()
        try:
            for attempt in range(3):  # the free port may be taken between probe and bind
                try:
                    self._call(self._start(free_port()), START_TIMEOUT)
                    break
                except OSError:
                    if attempt == 2:
                        raise
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                self._call(runner.cleanup(), STOP_TIMEOUT)
            finally:
                self._call(_cancel_pending(), STOP_TIMEOUT)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=STOP_TIMEOUT)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> NodeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(nodes: list[NodeServer], home: Path, **settings: Any) -> NodeServer:
    """Start a node and add it to `nodes` (the conftest fixture), which stops it at teardown."""
    server = NodeServer(home, **settings)
    nodes.append(server)
    return server.start()


async def _cancel_pending() -> None:
    """Connections still lingering after the app's cleanup: cancel them before the loop stops."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---- raw HTTP, for what RegistryClient would never send -----------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        """The JSON error document every refusal must carry: {"error": {"type", "message"}}."""
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.body[:200])
        err = self.json()["error"]
        assert isinstance(err.get("type"), str) and err["type"], err
        assert isinstance(err.get("message"), str) and err["message"], err
        return dict(err)


def request(base_url: str, method: str, path: str, body: bytes | None = None, *,
            headers: dict[str, str] | None = None, chunked: bool = False, chunk: int = 1 << 20) -> Answer:
    """One HTTP request with the path sent exactly as given (no normalization, no quoting)."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT)
    try:
        hdrs = dict(headers or {})
        if chunked:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in {**hdrs, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(k, v)
            conn.endheaders()
            data = body or b""
            for i in range(0, len(data), chunk):
                piece = data[i:i + chunk]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def bdecode(data: bytes) -> Any:
    """A bencoded document (a .torrent, a tracker answer) as dicts with bytes keys."""
    return lt.bdecode(data)


# ---- publishers, policies, models ---------------------------------------------------------


def policy(*keys: tuple[PrivateKey, str], required_approvals: int = 0,
           allowed_licenses: tuple[str, ...] | None = None, scope: str = "acme/*") -> TrustPolicy:
    trusted = TrustPolicy(required_approvals=required_approvals, allowed_licenses=allowed_licenses)
    for key, role in keys:
        trusted = trusted.with_key(TrustedKey(key.public, role, (scope,), role))  # type: ignore[arg-type]
    return trusted


def make_home(home: Path, trust: TrustPolicy) -> Path:
    with Client(home) as client:
        client.save_policy(trust)
    return home


@dataclass
class Published:
    """A model published into a publisher's vault: its envelope, snapshot and bytes."""

    ref: str
    name: str
    version: str
    envelope: Envelope
    snapshot: Path
    files: dict[str, bytes] = field(default_factory=dict)


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def publish(client: Client, workdir: Path, key: PrivateKey, name: str, *, version: str = "1.0",
            license: str = "Apache-2.0", seed: int = 0, size_mb: int = MODEL_MB) -> Published:
    """Generate a small model (2 safetensors shards, config, LICENSE) and publish it into `client`."""
    source = workdir / f"src-{name.replace('/', '-')}-{version}"
    generate_model(source, size_mb, shards=2, seed=seed)
    admitted = client.publish(source, name=name, version=version, license=license, key=key,
                              publisher="Acme", notes=f"test model {name}", piece_length=PIECE)
    return Published(admitted.verdict.manifest.ref, name, version, admitted.envelope, admitted.snapshot,
                   tree_bytes(admitted.snapshot))
