"""The registry node's JSON API: its handlers and route table (`add_routes`), and the one
middleware that maps seedvault's error hierarchy to JSON errors with the right status
(never a 500 for bad input).

Thin handlers over `Node`, whose work runs on the node's worker thread (`on_worker`).
Every client is hostile: request bodies are bounded each (MAX_JSON_BODY, the manifest's
file size) and all together in memory (`BodyBudget`); a client may pause a body at most
BODY_TIMEOUT, and must keep up MIN_BODY_RATE on average.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from seedvault.errors import Error, UsageError
from seedvault.manifest import check_model_name, check_version
from seedvault.registry.config import MAX_JSON_BODY
from seedvault.registry.node import bearer_token, storage_error
from seedvault.registry.openapi import OPENAPI
from seedvault.registry.state import BUDGET, CONFIG, NODE, RETRY_AFTER, SCREENER, on_worker
from seedvault.registry.tracker import AnnounceError, failure
from seedvault.settings import READ_CHUNK
from seedvault.signing import Envelope

log = logging.getLogger("seedvault.registry")
MAX_QUERY_TEXT = 256  # characters of a search filter
MIN_BODY_RATE = 16 * 1024  # bytes/s, on average, that a request body must keep up
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    text, publisher, license = (text_param(q, name) for name in ("q", "publisher", "license"))
    node = request.app[NODE]
    releases = await on_worker(request, lambda: node.index.search(
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


def text_param(query: Any, name: str) -> str | None:
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
    return web.json_response({"name": name, "versions": await on_worker(request, node.versions, name)})


async def detail(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    return web.json_response(await on_worker(request, node.detail, name, version))


async def envelope(request: web.Request) -> web.Response:
    name, version = _model(request)
    assert version is not None
    node = request.app[NODE]
    body = node.cached_envelope(name, version)  # the hot path: no thread hop once cached
    if body is None:
        body = await on_worker(request, node.envelope_bytes, name, version)
    return web.Response(body=body, content_type="application/json")


async def torrent(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    torrent_name, data = await on_worker(request, node.torrent, name, version)
    return web.Response(body=data, content_type="application/x-bittorrent",
                        headers={"Content-Disposition": f'attachment; filename="{torrent_name}.torrent"'})


async def begin_upload(request: web.Request) -> web.Response:
    node = request.app[NODE]
    async with _json_body(request) as body:
        envelope = await _screen(request, body, "uploaded envelope", release=True)
    result = await on_worker(request, node.begin_upload, envelope)
    return web.json_response(result, status=200 if result["status"] == "present" else 202)


async def upload_file(request: web.Request) -> web.Response:
    """One file's bytes, into a temporary file of this request's own; the node moves it into
    the session only once it is complete (see Node.file_received)."""
    digest = request.match_info["digest"]
    path = request.match_info["path"]
    token = bearer_token(request.headers.get("Authorization"))
    node = request.app[NODE]
    part, size = await on_worker(request, node.upload_part, digest, path, token)
    if request.content_length is not None and request.content_length != size:
        raise UsageError(f"{path}: expected exactly {size} bytes (from the manifest), "
                         f"the request declares {request.content_length}")
    try:
        await _receive(request, part, path, size)
        result = await on_worker(request, node.file_received, digest, path, token, part)
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
    return web.json_response(await on_worker(request, node.abort_upload, request.match_info["digest"], token))


async def get_head(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    return web.json_response({"name": name, "heads": await on_worker(request, node.heads, name)})


async def put_head(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    async with _json_body(request) as body:
        offered = await _screen(request, body, "head", release=False)
    return web.json_response(await on_worker(request, node.put_head, name, offered))


async def approve(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    async with _json_body(request) as body:
        offered = await _screen(request, body, "approval", release=False)
    return web.json_response(await on_worker(request, node.approve, name, version, offered))


async def yank(request: web.Request) -> web.Response:
    name, version = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await on_worker(request, node.yank, name, version))


async def remove(request: web.Request) -> web.Response:
    name, _ = _model(request)
    node = request.app[NODE]
    node.check_admin(request.headers.get("Authorization"))
    return web.json_response(await on_worker(request, node.remove, name, _purge_param(request)))


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
    return web.json_response(await on_worker(request, node.lift_removal, name))


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
    path = await on_worker(request, node.web_seed_file, digest, request.match_info["tail"])
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



def add_routes(app: web.Application) -> None:
    """The API's route table."""
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
