"""The registry node's HTTP application: `create_app(config)`, served by `serve_app`.

Thin handlers over `Node`; one middleware maps seedvault's error hierarchy to JSON errors
with the right status (never a 500 for bad input); resources live in `cleanup_ctx`.
Node work runs on a single worker thread so the event loop never blocks on hashing.

Every client is hostile: request bodies are bounded each (MAX_JSON_BODY, the manifest's
file size) and all together in memory (`BodyBudget`); a client has HEADER_TIMEOUT to send
its headers and may pause a body at most BODY_TIMEOUT; connections are capped, and at the
cap the connection waiting longest for its headers makes room (`CappedServer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from seedvault.errors import (
    BusyError,
    Error,
    UsageError,
)
from seedvault.manifest import check_model_name, check_version
from seedvault.registry.config import MAX_JSON_BODY, NodeConfig
from seedvault.registry.mirror import sync
from seedvault.registry.node import Node, bearer_token, screen, storage_error
from seedvault.registry.openapi import OPENAPI
from seedvault.registry.tracker import AnnounceError, failure
from seedvault.settings import READ_CHUNK
from seedvault.signing import Envelope

log = logging.getLogger("seedvault.registry")
T = TypeVar("T")

REFRESH_TICKS = 20  # pump ticks (0.5 s) between Node.refresh calls
CONFIG = web.AppKey("config", NodeConfig)
NODE = web.AppKey("node", Node)
WORKER = web.AppKey("worker", ThreadPoolExecutor)
SYNCER = web.AppKey("syncer", ThreadPoolExecutor)
STOPPING = web.AppKey("stopping", threading.Event)
MAX_QUERY_TEXT = 256  # characters of a search filter
RETRY_AFTER = "5"  # seconds, on a 503: the bounds that answer it free up as requests finish
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _run(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
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


async def _screen(request: web.Request, body: bytes, source: str, *, release: bool) -> Envelope:
    """Parse (and, for a release, judge) an envelope in the screening process."""
    policy_file = request.app[NODE].client.paths.policy_file if release else None
    return await request.app[SCREENER].screen(body, source, policy_file)


def error_json(status: int, kind: str, message: str, hint: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if hint:
        body["error"]["hint"] = hint
    extra = dict(headers or {})
    if status == 401:  # RFC 9110: a 401 names the scheme that would be accepted
        extra.setdefault("WWW-Authenticate", 'Bearer realm="seedvault"')
    if status == 503:
        extra.setdefault("Retry-After", RETRY_AFTER)
    return web.json_response(body, status=status, headers=extra)


# Headers of aiohttp's own refusals that a client needs (405 names the allowed methods).
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


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


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Error as exc:
        return error_json(exc.http_status, type(exc).__name__, str(exc), exc.hint)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {h: exc.headers[h] for h in _KEPT_HEADERS if h in exc.headers}
        return error_json(exc.status, type(exc).__name__, exc.text or exc.reason, headers=kept)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_json(500, "InternalError", "the registry failed unexpectedly; see its log")


def _model(request: web.Request) -> tuple[str, str | None]:
    info = request.match_info
    name = f"{info['ns']}/{info['name']}"
    check_model_name(name)
    version = info.get("version")
    if version is not None:
        check_version(version)
    return name, version


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
MIN_BODY_RATE = 16 * 1024  # bytes/s, on average, that a request body must keep up


@contextlib.asynccontextmanager
async def _json_body(request: web.Request) -> AsyncIterator[bytes]:
    """The whole request body, refused (413) as soon as it passes MAX_JSON_BODY, counted in
    the node's BodyBudget while the request is handled.

    `StreamReader.read(n)` returns what has arrived so far, not n bytes: a body that comes
    in several TCP segments or chunks must be read until EOF.
    """
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=request.content_length)
    budget = request.app[BUDGET]
    held = 0  # reserved as it arrives: a declared length that never comes holds nothing
    clock = BodyClock(request.app[CONFIG].body_timeout)
    try:
        chunks: list[bytes] = []
        size = 0
        while chunk := await _read_some(request):
            size += len(chunk)
            if size > MAX_JSON_BODY:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=size)
            clock.check(size)
            budget.take(size - held)
            held = size
            chunks.append(chunk)
        yield b"".join(chunks)
    finally:
        budget.give(held)


class BodyClock:
    """A body must keep coming at MIN_BODY_RATE on average once `grace` seconds have passed:
    a byte every few seconds (under the per-read timeout) would otherwise hold a connection,
    and a slot of the connection cap, for as long as the sender likes."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.started = time.monotonic()

    def check(self, size: int) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.grace and size < MIN_BODY_RATE * (elapsed - self.grace):
            raise web.HTTPRequestTimeout(
                text=f"the request body came at {size / elapsed:,.0f} bytes/s; expected at least "
                     f"{MIN_BODY_RATE:,} bytes/s after the first {self.grace:g} s")


async def _read_some(request: web.Request) -> bytes:
    """The next bytes of the body (b"" at its end); a client silent for body_timeout is
    answered 408 and its connection closed."""
    timeout = request.app[CONFIG].body_timeout
    try:
        async with asyncio.timeout(timeout):
            return await request.content.read(READ_CHUNK)  # what has arrived, up to READ_CHUNK
    except TimeoutError:
        raise web.HTTPRequestTimeout(text=f"no byte of the request body for {timeout:g} s; "
                                          "expected the rest of the body") from None


# ---- handlers ------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def search(request: web.Request) -> web.Response:
    q = request.query
    limit = _int_param(q.get("limit", "100"), "limit", 1, 1000)  # SQLite reads a negative LIMIT as "no limit"
    offset = _int_param(q.get("offset", "0"), "offset", 0, 10**9)
    text, publisher, license = (_text_param(q, name) for name in ("q", "publisher", "license"))
    node = request.app[NODE]
    releases = await _run(request, lambda: node.index.search(
        text, publisher=publisher, license=license, limit=limit, offset=offset))
    return web.json_response({"models": [r.to_dict() for r in releases]})


def _int_param(raw: str, name: str, low: int, high: int) -> int:
    try:
        value = int(raw) if raw.isascii() and len(raw) <= 12 else low - 1
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise UsageError(f"{name}: expected an integer from {low} to {high}, found {_shown(raw)}")
    return value


def _text_param(query: Any, name: str) -> str | None:
    """A search filter: bounded, and free of control characters. SQLite's LIKE stops at a
    NUL, so `q=%00` would otherwise match every release."""
    raw = query.get(name)
    if raw is None:
        return None
    if len(raw) > MAX_QUERY_TEXT:
        raise UsageError(f"{name}: expected at most {MAX_QUERY_TEXT} characters, found {len(raw)}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in raw):
        raise UsageError(f"{name}: expected text without control characters, found some")
    return str(raw)


def _shown(raw: str, limit: int = 40) -> str:
    """What a client sent, safe to repeat in a message: printable, short, quoted."""
    clean = "".join(c if c.isprintable() else "?" for c in raw[:limit])
    return f'"{clean}"' + ("..." if len(raw) > limit else "")


async def versions(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    return web.json_response({"name": name, "versions": await _run(request, node.versions, name)})


async def detail(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    return web.json_response(await _run(request, node.detail, name, version))


async def envelope(request: web.Request) -> web.Response:
    name, version = _model(request)
    assert version is not None
    node = request.app[NODE]
    body = node.cached_envelope(name, version)  # the hot path: no thread hop once cached
    if body is None:
        body = await _run(request, node.envelope_bytes, name, version)
    return web.Response(body=body, content_type="application/json")


async def torrent(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    torrent_name, data = await _run(request, node.torrent, name, version)
    return web.Response(body=data, content_type="application/x-bittorrent",
                        headers={"Content-Disposition": f'attachment; filename="{torrent_name}.torrent"'})


async def begin_upload(request: web.Request) -> web.Response:
    node = request.app[NODE]
    async with _json_body(request) as body:
        envelope = await _screen(request, body, "uploaded envelope", release=True)
    result = await _run(request, node.begin_upload, envelope)
    return web.json_response(result, status=200 if result["status"] == "present" else 202)


async def upload_file(request: web.Request) -> web.Response:
    """One file's bytes, into a temporary file of this request's own; the node moves it into
    the session only once it is complete (see Node.file_received)."""
    digest = request.match_info["digest"]
    path = request.match_info["path"]
    token = bearer_token(request.headers.get("Authorization"))
    node = request.app[NODE]
    part, size = await _run(request, node.upload_part, digest, path, token)
    if request.content_length is not None and request.content_length != size:
        raise UsageError(f"{path}: expected exactly {size} bytes (from the manifest), "
                         f"the request declares {request.content_length}")
    try:
        await _receive(request, part, path, size)
        result = await _run(request, node.file_received, digest, path, token, part)
    finally:
        part.unlink(missing_ok=True)  # moved into the session already, or never to be used
    return web.json_response(result, status=201 if result["status"] == "published" else 202)


async def _receive(request: web.Request, part: Path, path: str, size: int) -> None:
    """Stream the body into `part` (a new file: never one that another request could hold)."""
    received = 0
    loop = asyncio.get_running_loop()
    clock = BodyClock(request.app[CONFIG].body_timeout)
    try:
        with open(part, "xb") as f:
            while chunk := await _read_some(request):
                received += len(chunk)
                if received > size:
                    raise web.HTTPRequestEntityTooLarge(max_size=size, actual_size=received)
                clock.check(received)
                await loop.run_in_executor(None, f.write, chunk)  # disk writes off the event loop
    except OSError as exc:
        raise storage_error(exc, path) from None
    if received != size:
        raise UsageError(f"{path}: expected {size} bytes, received {received}")


async def abort_upload(request: web.Request) -> web.Response:
    node = request.app[NODE]
    token = bearer_token(request.headers.get("Authorization"))
    return web.json_response(await _run(request, node.abort_upload, request.match_info["digest"], token))


async def get_head(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    return web.json_response({"name": name, "heads": await _run(request, node.heads, name)})


async def put_head(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    async with _json_body(request) as body:
        offered = await _screen(request, body, "head", release=False)
    return web.json_response(await _run(request, node.put_head, name, offered))


async def approve(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    async with _json_body(request) as body:
        offered = await _screen(request, body, "approval", release=False)
    return web.json_response(await _run(request, node.approve, name, version, offered))


async def yank(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await _run(request, node.yank, name, version))


async def remove(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await _run(request, node.remove, name, _purge_param(request)))


def _purge_param(request: web.Request) -> bool:
    """`?purge=true` frees a removed model's bytes now rather than after the grace period."""
    raw = request.query.get("purge", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise UsageError(f"purge: expected true or false, found {_shown(raw)}")
    return raw in ("true", "1")


async def lift_removal(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await _run(request, node.lift_removal, name))


class _PlainFileResponse(web.FileResponse):
    """A FileResponse that serves exactly the file named: aiohttp's would answer a request
    with `Accept-Encoding: gzip` for X with a sibling X.gz, which a release may hold as a
    file of its own, and the web seed would serve the wrong bytes."""

    def _get_file_path_stat_encoding(self, accept_encoding: str) -> tuple[Path | None, os.stat_result, str | None]:
        st = self._path.stat()
        return (self._path if stat.S_ISREG(st.st_mode) else None), st, None

    async def prepare(self, request: web.BaseRequest) -> Any:
        # `in_handler` sends the answer itself; aiohttp then calls prepare again, which a
        # FileResponse (unlike a StreamResponse) cannot take: it logged a traceback per GET.
        if self.prepared:
            return None
        return await super().prepare(request)


async def web_seed(request: web.Request) -> web.StreamResponse:
    digest = request.match_info["digest"]
    node = request.app[NODE]
    path = await _run(request, node.web_seed_file, digest, request.match_info["tail"])
    return _PlainFileResponse(path)  # HTTP Range support, as BEP 19 web seeds require


async def announce(request: web.Request) -> web.Response:
    node = request.app[NODE]
    raw = _raw_query(request.query_string)
    try:
        port = _small_int(raw.get(b"port", b"0"))
        left = _small_int(raw.get(b"left", b"0"))
        numwant = _small_int(raw.get(b"numwant", b"50"))
        body = node.tracker.announce(
            raw.get(b"info_hash", b""), raw.get(b"peer_id", b""), request.remote or "", port, left,
            raw.get(b"event", b"").decode(errors="replace"), numwant,
        )
    except (AnnounceError, ValueError) as exc:
        body = failure(str(exc))
    return web.Response(body=body, content_type="text/plain")


def _small_int(raw: bytes) -> int:
    """A decimal count from a query (ports, byte counts): at most 20 digits, never a huge int."""
    if not raw.isdigit() or len(raw) > 20:
        raise ValueError("expected a decimal number")
    return int(raw)


def _raw_query(query: str) -> dict[bytes, bytes]:
    """Percent-decode to bytes: info_hash and peer_id are binary, not UTF-8."""
    out = {}
    for part in query.split("&"):
        key, _, value = part.partition("=")
        out[unquote_to_bytes(key)] = unquote_to_bytes(value)
    return out


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
    next_sync = loop.time() + (config.mirror_interval or 0)
    ticks = 0
    while True:
        await asyncio.sleep(0.5)
        await loop.run_in_executor(app[WORKER], node.pump)
        ticks += 1
        if ticks % REFRESH_TICKS == 0:
            await loop.run_in_executor(app[WORKER], node.refresh)
        due = config.mirror_interval and config.upstreams and loop.time() >= next_sync
        if due and (syncing is None or syncing.done()):
            syncing = loop.run_in_executor(app[SYNCER], _sync_all, app)
            next_sync = loop.time() + (config.mirror_interval or 0)


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
    app = web.Application(middlewares=[in_handler, errors], client_max_size=MAX_JSON_BODY)
    app[CONFIG] = config
    app[BUSY] = set()
    app[BUDGET] = BodyBudget(config.max_body_memory)
    app.cleanup_ctx.append(_node_ctx)
    model = "/v1/models/{ns}/{name}"
    app.add_routes([
        web.get("/health", health),
        web.get("/openapi.json", openapi),
        web.get("/v1/models", search),
        web.get(model, versions),
        web.get(model + "/head", get_head),
        web.post(model + "/head", put_head),
        web.delete(model, remove),
        # `head` names the model's head here: a release labelled "head" has no detail page (its
        # envelope and torrent are still served).
        web.get(model + "/{version:(?!head$)[^{}/]+}", detail),
        web.delete(model + "/{version:(?!head$)[^{}/]+}", yank),
        web.get(model + "/{version}/envelope", envelope),
        web.get(model + "/{version}/torrent", torrent),
        web.post(model + "/{version}/approvals", approve),
        web.delete("/v1/removed/{ns}/{name}", lift_removal),
        web.post("/v1/envelopes", begin_upload),
        web.put("/v1/uploads/{digest}/{path:.+}", upload_file),
        web.delete("/v1/uploads/{digest}", abort_upload),
        web.get("/webseed/{digest}/{tail:.+}", web_seed),
        web.get("/announce", announce),
    ])  # fmt: skip
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
