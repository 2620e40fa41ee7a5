"""The registry node's HTTP application: `create_app(config)`.

Thin handlers over `Node`; one middleware maps seedvault's error hierarchy to JSON errors
with the right status (never a 500 for bad input); resources live in `cleanup_ctx`.
Node work runs on a single worker thread so the event loop never blocks on hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from aiohttp import web

from seedvault.errors import (
    Error,
    UsageError,
)
from seedvault.manifest import check_model_name, check_version
from seedvault.registry.config import MAX_JSON_BODY, NodeConfig
from seedvault.registry.mirror import sync
from seedvault.registry.node import Node
from seedvault.registry.openapi import OPENAPI
from seedvault.registry.tracker import AnnounceError, failure
from seedvault.settings import READ_CHUNK

log = logging.getLogger("seedvault.registry")
T = TypeVar("T")

REFRESH_TICKS = 20  # pump ticks (0.5 s) between Node.refresh calls
CONFIG = web.AppKey("config", NodeConfig)
NODE = web.AppKey("node", Node)
WORKER = web.AppKey("worker", ThreadPoolExecutor)
SYNCER = web.AppKey("syncer", ThreadPoolExecutor)
STOPPING = web.AppKey("stopping", threading.Event)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _run(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(request.app[WORKER], fn, *args)


def error_json(status: int, kind: str, message: str, hint: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if hint:
        body["error"]["hint"] = hint
    return web.json_response(body, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Error as exc:
        return error_json(exc.http_status, type(exc).__name__, str(exc), exc.hint)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_json(exc.status, type(exc).__name__, exc.text or exc.reason)
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


async def _json_body(request: web.Request) -> bytes:
    """The whole request body, refused (413) as soon as it passes MAX_JSON_BODY.

    `StreamReader.read(n)` returns what has arrived so far, not n bytes: a body that comes
    in several TCP segments or chunks must be read until EOF.
    """
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BODY, actual_size=len(body))
    return bytes(body)


# ---- handlers ------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def search(request: web.Request) -> web.Response:
    q = request.query
    limit = _int_param(q.get("limit", "100"), "limit", 1, 1000)  # SQLite reads a negative LIMIT as "no limit"
    offset = _int_param(q.get("offset", "0"), "offset", 0, 10**9)
    node = request.app[NODE]
    releases = await _run(request, lambda: node.index.search(
        q.get("q"), publisher=q.get("publisher"), license=q.get("license"), limit=limit, offset=offset))
    return web.json_response({"models": [r.to_dict() for r in releases]})


def _int_param(raw: str, name: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise UsageError(f"{name}: expected an integer from {low} to {high}, found {raw!r}")
    return value


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
    body = await _json_body(request)
    node = request.app[NODE]
    result = await _run(request, node.begin_upload, body)
    return web.json_response(result, status=200 if result["status"] == "present" else 202)


async def upload_file(request: web.Request) -> web.Response:
    digest = request.match_info["digest"]
    path = request.match_info["path"]
    node = request.app[NODE]
    target, size = await _run(request, node.upload_target, digest, path)
    if request.content_length is not None and request.content_length != size:
        raise UsageError(f"{path}: expected exactly {size} bytes (from the manifest), "
                         f"the request declares {request.content_length}")
    received = 0
    loop = asyncio.get_running_loop()
    try:
        with open(target, "wb") as f:
            async for chunk in request.content.iter_chunked(READ_CHUNK):
                received += len(chunk)
                if received > size:
                    raise web.HTTPRequestEntityTooLarge(max_size=size, actual_size=received)
                await loop.run_in_executor(None, f.write, chunk)  # disk writes off the event loop
        if received != size:
            raise UsageError(f"{path}: expected {size} bytes, received {received}")
    except BaseException:
        await _run(request, node.abort_upload, digest, path)
        raise
    result = await _run(request, node.file_received, digest, path)
    return web.json_response(result, status=201 if result["status"] == "published" else 202)


async def approve(request: web.Request) -> web.Response:
    name, version = _model(request)
    body = await _json_body(request)
    node = request.app[NODE]
    return web.json_response(await _run(request, node.approve, name, version, body))


async def yank(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await _run(request, node.yank, name, version))


async def remove(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await _run(request, node.remove, name))


async def web_seed(request: web.Request) -> web.StreamResponse:
    digest = request.match_info["digest"]
    node = request.app[NODE]
    path = await _run(request, node.web_seed_file, digest, request.match_info["tail"])
    return web.FileResponse(path)  # HTTP Range support, as BEP 19 web seeds require


async def announce(request: web.Request) -> web.Response:
    node = request.app[NODE]
    raw = _raw_query(request.query_string)
    try:
        port = int(raw.get(b"port", b"0"))
        left = int(raw.get(b"left", b"0"))
        body = node.tracker.announce(
            raw.get(b"info_hash", b""), raw.get(b"peer_id", b""), request.remote or "", port, left,
            raw.get(b"event", b"").decode(errors="replace"),
        )
    except (AnnounceError, ValueError) as exc:
        body = failure(str(exc))
    return web.Response(body=body, content_type="text/plain")


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
            app[WORKER].submit(node.seed_ref, ref)
        for ref, reason in report.refused:
            log.info("mirror: refused %s from %s: %s", ref, upstream, reason)


def create_app(config: NodeConfig) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=MAX_JSON_BODY)
    app[CONFIG] = config
    app.cleanup_ctx.append(_node_ctx)
    model = "/v1/models/{ns}/{name}"
    app.add_routes([
        web.get("/health", health),
        web.get("/openapi.json", openapi),
        web.get("/v1/models", search),
        web.get(model, versions),
        web.delete(model, remove),
        web.get(model + "/{version}", detail),
        web.delete(model + "/{version}", yank),
        web.get(model + "/{version}/envelope", envelope),
        web.get(model + "/{version}/torrent", torrent),
        web.post(model + "/{version}/approvals", approve),
        web.post("/v1/envelopes", begin_upload),
        web.put("/v1/uploads/{digest}/{path:.+}", upload_file),
        web.get("/webseed/{digest}/{tail:.+}", web_seed),
        web.get("/announce", announce),
    ])  # fmt: skip
    return app
