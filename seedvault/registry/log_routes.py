"""The node's transparency log over HTTP, as C2SP lays it out (tlog-tiles, tlog-witness).

    GET  /log/checkpoint              the latest signed checkpoint, with cosignatures
    GET  /log/tile/<L>/<N>[.p/<W>]    hash tiles (full tiles never change: cached for a year)
    GET  /log/tile/entries/<N>[.p/<W>] entry bundles
    GET  /log/proof/<digest>          the .tlog-proof of a release on this node
    GET  /log/keys                    the log's and the node's witness verifier keys (JSON)
    POST /add-checkpoint              this node as a witness of the logs it follows

Reads go to the store on the loop's default executor, not the node worker: a witness
asked by another node while this node's worker waits on that node's witness call must
not wait behind its own worker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from seedvault.errors import NotFoundError, OldSizeConflict, UsageError
from seedvault.registry.node import Node
from seedvault.tlog.tiles import MAX_TILE_LEVEL, TILE_WIDTH, parse_index
from seedvault.tlog.witness import MAX_REQUEST, SIZE_TYPE

T = TypeVar("T")
_DIGEST = re.compile(r"[0-9a-f]{64}")
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
FRESH = {"Cache-Control": "no-store"}
BODY_TIMEOUT = 20.0


def routes(node_key: web.AppKey[Node]) -> list[web.RouteDef]:
    async def off_loop(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def checkpoint(request: web.Request) -> web.Response:
        note = await off_loop(request, request.app[node_key].log.store.checkpoint)
        return web.Response(body=note, content_type="text/plain", charset="utf-8", headers=FRESH)

    async def tile(request: web.Request) -> web.Response:
        level = _number(request.match_info["level"], "tile level", MAX_TILE_LEVEL)
        index, width = _tile_index(request.match_info["tail"])
        data = await off_loop(request, request.app[node_key].log.store.tile, level, index, width)
        return web.Response(body=data, content_type="application/octet-stream",
                            headers=IMMUTABLE if width == TILE_WIDTH else FRESH)

    async def entries(request: web.Request) -> web.Response:
        index, width = _tile_index(request.match_info["tail"])
        data = await off_loop(request, request.app[node_key].log.store.entry_bundle, index, width)
        return web.Response(body=data, content_type="application/octet-stream",
                            headers=IMMUTABLE if width == TILE_WIDTH else FRESH)

    async def proof(request: web.Request) -> web.Response:
        digest = request.match_info["digest"]
        if not _DIGEST.fullmatch(digest):
            raise UsageError("proof: expected a manifest digest (64 lowercase hex digits) in the path")
        text = await off_loop(request, request.app[node_key].log_proof, digest)
        return web.Response(text=text, content_type="text/plain", headers=FRESH)

    async def keys(request: web.Request) -> web.Response:
        log = request.app[node_key].log
        return web.json_response({"origin": log.signer.name, "log": log.vkey, "witness": log.witness_vkey,
                                  "witnessing": log.witness is not None})

    async def add_checkpoint(request: web.Request) -> web.Response:
        witness = request.app[node_key].log.witness
        if witness is None:
            raise NotFoundError("this node witnesses no log (set witness_for in its config)")
        body = await _bounded_body(request)
        try:
            line = await off_loop(request, witness.add_checkpoint, body)
        except OldSizeConflict as exc:
            return web.Response(status=409, text=f"{exc.size}\n", content_type=SIZE_TYPE)
        return web.Response(body=line, content_type="text/plain", charset="utf-8")

    return [
        web.get("/log/checkpoint", checkpoint),
        web.get("/log/tile/entries/{tail:.+}", entries),
        web.get(r"/log/tile/{level:\d+}/{tail:.+}", tile),
        web.get("/log/proof/{digest}", proof),
        web.get("/log/keys", keys),
        web.post("/add-checkpoint", add_checkpoint),
    ]


def _number(raw: str, what: str, high: int) -> int:
    if not raw.isdigit() or len(raw) > 3 or int(raw) > high:
        raise NotFoundError(f"{what}: expected a number from 0 to {high}, found one out of range")
    return int(raw)


def _tile_index(tail: str) -> tuple[int, int]:
    try:
        return parse_index(tail)
    except ValueError:
        raise NotFoundError("tile: expected an index written as C2SP tlog-tiles does (such as x001/234 or "
                            "000.p/5)") from None


async def _bounded_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_REQUEST:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST, actual_size=request.content_length)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while chunk := await request.content.read(MAX_REQUEST):
                size += len(chunk)
                if size > MAX_REQUEST:
                    raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST, actual_size=size)
                chunks.append(chunk)
    except TimeoutError:
        raise web.HTTPRequestTimeout(text=f"add-checkpoint: expected the whole body within {BODY_TIMEOUT:g} s, "
                                          "found it still coming") from None
    return b"".join(chunks)
