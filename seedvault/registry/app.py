"""The registry node's application: `create_app(config)` (the API, the pages, the node and
its background work: libtorrent alerts, housekeeping, scheduled mirror syncs), served by
`serve` with the node's bounds.

Every client is hostile: a client has HEADER_TIMEOUT to send its headers; connections are
capped, and at the cap the connection waiting longest for its headers makes room
(`CappedServer`). Request bodies are bounded in api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from seedvault.errors import Error, UsageError
from seedvault.registry import api, log_routes, pages, shared
from seedvault.registry.config import MAX_JSON_BODY, NodeConfig
from seedvault.registry.mirror import sync
from seedvault.registry.node import Node
from seedvault.registry.state import (
    BUDGET,
    BUSY,
    CONFIG,
    NODE,
    RETRY_AFTER,
    SCREENER,
    STOPPING,
    SYNCER,
    WORKER,
    BodyBudget,
    Screener,
)

__all__ = ["NODE", "SCREENER", "CappedSite", "check_bindable", "create_app", "runner_kwargs", "serve"]

log = logging.getLogger("seedvault.registry")

REFRESH_TICKS = 20  # pump ticks (0.5 s) between Node.refresh calls
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def in_handler(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Mark the connection busy until its answer is sent: the response is sent here (aiohttp
    would do it after the middlewares return, prepare and write_eof being idempotent), so a
    web seed streaming a file is never taken for an idle connection."""
    busy = request.app[BUSY]
    protocol = request.protocol
    busy.add(protocol)
    try:
        response = await handler(request)
        await response.prepare(request)
        await response.write_eof()
        return response
    finally:
        busy.discard(protocol)


# ---- the application ---------------------------------------------------------------------


async def _node_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = ThreadPoolExecutor(1, thread_name_prefix="seedvault-node")
    app[WORKER] = worker
    loop = asyncio.get_running_loop()
    node = await loop.run_in_executor(worker, Node, app[CONFIG])
    app[NODE] = node
    await loop.run_in_executor(worker, node.start_swarm)
    syncer = ThreadPoolExecutor(1, thread_name_prefix="seedvault-mirror")
    app[SYNCER] = syncer
    app[SCREENER] = Screener()
    app[STOPPING] = threading.Event()
    pump = asyncio.create_task(_pump(app))
    try:
        yield
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        # A running sync stops at its next status check; wait for it before closing the
        # vault and index it uses.
        app[STOPPING].set()
        await loop.run_in_executor(None, syncer.shutdown, True)
        await loop.run_in_executor(None, app[SCREENER].close)
        await loop.run_in_executor(worker, node.close)
        worker.shutdown(wait=True)


async def _pump(app: web.Application) -> None:
    """Drain libtorrent's alerts; run scheduled mirror syncs on a thread of their own, so
    a long download never holds up the requests that the node worker serves."""
    config = app[CONFIG]
    node = app[NODE]
    loop = asyncio.get_running_loop()
    syncing: asyncio.Future[None] | None = None
    fetching: asyncio.Future[None] | None = None
    next_sync = loop.time() + (config.mirror_interval or 0)
    ticks = 0
    while True:
        await asyncio.sleep(0.5)
        await loop.run_in_executor(app[WORKER], node.pump)
        ticks += 1
        if ticks % REFRESH_TICKS == 0:
            await loop.run_in_executor(app[WORKER], node.refresh)
            # Nodes sharing one index: the bytes of releases another node admitted, fetched
            # on the mirror's thread (never the worker's: a download takes minutes).
            if node.index.shared and (fetching is None or fetching.done()):
                fetching = loop.run_in_executor(app[SYNCER], _fetch_missing, app)
        due = config.mirror_interval and config.upstreams and loop.time() >= next_sync
        if due and (syncing is None or syncing.done()):
            syncing = loop.run_in_executor(app[SYNCER], _sync_all, app)
            next_sync = loop.time() + (config.mirror_interval or 0)


def _fetch_missing(app: web.Application) -> None:
    node = app[NODE]
    try:
        fetched = shared.fetch_missing(node, app[STOPPING])
    except Error as exc:  # the shared index unreachable: the next pass retries
        log.warning("fetching from the other nodes failed: %s", exc)
        return
    for ref in fetched:
        log.info("fetched %s from the other nodes of this registry", ref)
        app[WORKER].submit(node.seed_ref, ref)


def _sync_all(app: web.Application) -> None:
    node = app[NODE]
    for upstream in app[CONFIG].upstreams:
        try:
            report = sync(node.client, node.index, upstream, stop=app[STOPPING])
        except Error as exc:
            log.warning("mirror sync from %s failed: %s", upstream, exc)
            continue
        for ref in report.added:
            log.info("mirror: added %s from %s", ref, upstream)
            app[WORKER].submit(node.seed_ref, ref)
        for ref in report.signed:
            log.info("mirror: took new signatures on %s from %s", ref, upstream)
        for name in report.heads:
            log.info("mirror: took a newer head of %s from %s", name, upstream)
        for ref, reason in report.refused:
            log.info("mirror: refused %s from %s: %s", ref, upstream, reason)
        for ref, reason in report.failed:
            log.warning("mirror: could not copy %s from %s: %s", ref, upstream, reason)


def create_app(config: NodeConfig) -> web.Application:
    # The pages' HTML errors sit inside the API's JSON ones: each answers only its own requests.
    app = web.Application(middlewares=[in_handler, api.errors, pages.html_errors], client_max_size=MAX_JSON_BODY)
    app[CONFIG] = config
    app[BUSY] = set()
    app[BUDGET] = BodyBudget(config.max_body_memory)
    app.cleanup_ctx.append(_node_ctx)
    api.add_routes(app)
    pages.add_routes(app)
    app.add_routes(log_routes.routes(NODE))
    return app


# ---- serving -------------------------------------------------------------------------------

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + RETRY_AFTER.encode()
         + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class CappedServer:
    """aiohttp's protocol factory with a bound on open connections (file descriptors).

    At the bound, the connection that has waited longest without a request in a handler
    (a slow or idle client) is closed to make room; when every connection is in a handler,
    the new one is answered 503 and closed. Slow clients are also dropped by aiohttp's
    keep-alive timer, which `runner_kwargs` sets to the header timeout."""

    def __init__(self, server: web.Server, cap: int, busy: set[object]) -> None:
        self.server = server
        self.cap = cap
        self.busy = busy  # see in_handler

    def __call__(self) -> asyncio.BaseProtocol:
        connections = self.server.connections  # oldest first
        if len(connections) >= self.cap:
            idle = next((c for c in connections if c not in self.busy), None)
            if idle is None:
                return _Refuse()
            idle.force_close()
        return self.server()


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class _OneLine(logging.Filter):
    """aiohttp logs every malformed request (a bad header, a NUL byte) with a traceback: anyone
    could fill the node's disk with them. Such a refusal is one line at INFO, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | ConnectionError | TimeoutError):
            record.msg = f"refused a malformed request ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


HTTP_LOG = logging.getLogger("seedvault.registry.http")
HTTP_LOG.addFilter(_OneLine())


def runner_kwargs(config: NodeConfig) -> dict[str, Any]:
    """Settings for aiohttp's request handlers: the keep-alive timer also bounds the time to
    a complete request head, since aiohttp starts it as the connection opens."""
    return {"keepalive_timeout": config.header_timeout, "lingering_time": 2.0, "logger": HTTP_LOG}


class CappedSite(web.TCPSite):
    """A TCPSite whose connections are capped (see CappedServer)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, cap: int, **kw: Any) -> None:
        super().__init__(runner, host, port, **kw)
        self.cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner, which stops it
        server = self._runner.server
        assert isinstance(server, web.Server)
        busy = self._runner.app[BUSY] if isinstance(self._runner, web.AppRunner) else set()
        factory = CappedServer(server, self.cap, busy)
        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, backlog=self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


def check_bindable(host: str, port: int) -> None:
    """Refuse, before anything is opened, an address the node cannot listen on (a port in
    use, an address not on this machine), in the user's terms."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise UsageError(f"host {host!s}: expected an address or name of this machine, found one that does not "
                         "resolve", hint="use --host 127.0.0.1, or an address of one of this machine's "
                         "interfaces") from None
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
            try:
                probe.bind(address)
            except OSError as exc:
                raise _bind_error(host, port, exc) from None


def _bind_error(host: str, port: int, exc: OSError) -> UsageError:
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"cannot listen on {host}:{port}: the port is already in use",
                          hint="stop the program using it (another seedvault serve?), or choose another --port")
    if exc.errno == errno.EACCES:
        return UsageError(f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges)",
                          hint="choose a --port above 1023")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"cannot listen on {host}:{port}: {host} is not an address of this machine",
                          hint="use --host 127.0.0.1, or an address of one of this machine's interfaces")
    return UsageError(f"cannot listen on {host}:{port}: {exc.strerror or 'the system refused'}")


async def serve(config: NodeConfig, access_log: logging.Logger | None = None,
                on_ready: Callable[[str], None] | None = None) -> None:
    """Run a node until cancelled (Ctrl-C) or SIGTERM, with every bound of its config.

    A port in use is refused before the node opens anything; `on_ready` gets the node's URL
    once it listens."""
    check_bindable(config.host, config.port)
    runner = web.AppRunner(create_app(config), access_log=access_log, handle_signals=True, shutdown_timeout=10,
                           **runner_kwargs(config))
    await runner.setup()
    try:
        site = CappedSite(runner, config.host, config.port, cap=config.max_connections)
        try:
            await site.start()
        except OSError as exc:
            raise _bind_error(config.host, config.port, exc) from None
        if on_ready is not None:
            port = site._bound_port if config.port == 0 else config.port
            on_ready(config.public_url.rstrip("/") if config.public_url else f"http://{config.host}:{port}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
