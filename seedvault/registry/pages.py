"""The registry node's web pages: home and search, a model, the keys it trusts.

Server-rendered (aiohttp-jinja2, autoescaped), usable with JavaScript off: the pages carry
no script at all, and a Content-Security-Policy that would refuse one, inline styles too.
Everything a publisher wrote (names, notes, origin, license, file names) is hostile and
reaches the page only through the templates' escaping. The pages only read: every admin
action stays in the API.

Errors on a page are pages too (`html_errors`, inside the API's JSON error middleware): a
person who follows a dead link reads a page that says what was expected and what was
found; a program calling the API still gets the JSON error it parses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from http import HTTPStatus
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from seedvault.errors import Error, UsageError
from seedvault.manifest import format_time
from seedvault.registry.api import text_param
from seedvault.registry.state import CONFIG, NODE, on_worker
from seedvault.registry.views import FORMATS, MAX_SHOWN_FILES, Filters, RowCache, home_view, keys_view, model_view

log = logging.getLogger("seedvault.registry")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PAGE = "page."  # the name prefix of every page route (see `is_page`)
# Nothing but the node's own stylesheet: no script, no inline style, no frame, no form
# sent anywhere else.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
API_PREFIXES = ("/v1/", "/webseed/", "/announce", "/health", "/openapi.json")
MAX_NOTES_CHARS = 20_000  # of a release's notes on its page; the rest is counted
ROWS = web.AppKey("page_rows", RowCache)
STYLESHEET = resources.files("seedvault.registry").joinpath("static/style.css").read_bytes()


def add_routes(app: web.Application) -> None:
    """Templates and the page routes (GET only: the pages never change anything)."""
    app[ROWS] = RowCache()
    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("seedvault.registry", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, filters=FILTERS, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    app.add_routes([
        web.get("/", home, name=PAGE + "home"),
        web.get("/models/{ns}/{name}", model, name=PAGE + "model"),
        web.get("/models/{ns}/{name}/{version}", model, name=PAGE + "release"),
        web.get("/keys", keys, name=PAGE + "keys"),
        web.get("/static/style.css", stylesheet, name=PAGE + "style"),
    ])  # fmt: skip


def is_page(request: web.Request) -> bool:
    """A page route, or an unknown address a browser asked for outside the API."""
    route = request.match_info.route
    if route.name is not None:
        return route.name.startswith(PAGE)
    if request.match_info.http_exception is None:  # another route of the app (the API's)
        return False
    return not request.path.startswith(API_PREFIXES) and "text/html" in request.headers.get("Accept", "")


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_page(request):
        return await handler(request)
    try:
        response = await handler(request)
    except Error as exc:
        response = _error_page(request, exc.http_status, str(exc), exc.hint)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_page(request, exc.status, exc.text or exc.reason, None)
        for header in ("Allow", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
    except Exception:
        log.exception("unexpected error on page %s", request.path)
        response = _error_page(request, 500, "the registry failed unexpectedly; see its log", None)
    response.headers.update(SECURITY_HEADERS)
    return response


def _error_page(request: web.Request, status: int, message: str, hint: str | None) -> web.Response:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    context = {"status": status, "title": title, "message": message, "hint": hint}
    return aiohttp_jinja2.render_template("error.html", request, context, status=status)


# ---- pages -------------------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    q = request.query
    fmt = text_param(q, "format") or None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"format: expected one of {', '.join(FORMATS)}, found {fmt[:40]!s}")
    text, publisher, license = (text_param(q, name) or None for name in ("q", "publisher", "license"))
    filters = Filters(text, publisher, license, fmt)
    view = await on_worker(request, home_view, request.app[NODE], filters, request.app[ROWS])
    return _render("home.html", request, {"view": view, "formats": FORMATS})


async def model(request: web.Request) -> web.Response:
    info = request.match_info
    view = await on_worker(request, model_view, request.app[NODE], f"{info['ns']}/{info['name']}",
                           info.get("version"), request.app[ROWS])
    notes = view.manifest.origin.notes or ""
    return _render("model.html", request, {
        "view": view, "m": view.manifest, "files": view.manifest.files[:MAX_SHOWN_FILES],
        "notes": notes[:MAX_NOTES_CHARS], "notes_hidden": max(0, len(notes) - MAX_NOTES_CHARS),
        "source_link": _http_link(view.manifest.origin.source_url),
    })  # fmt: skip


async def keys(request: web.Request) -> web.Response:
    view = await on_worker(request, keys_view, request.app[NODE])
    return _render("keys.html", request, {"view": view})


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=STYLESHEET, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "max-age=3600"})


def _render(template: str, request: web.Request, context: dict[str, Any]) -> web.Response:
    context["base_url"] = request.app[CONFIG].base_url
    return aiohttp_jinja2.render_template(template, request, context)


def _http_link(url: str | None) -> str | None:
    """A publisher's source URL as a link only when it is http(s): a `javascript:` or `data:`
    URL is shown as text, never followed."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


# ---- filters ------------------------------------------------------------------------------------


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def moment(value: datetime | str) -> str:
    return value if isinstance(value, str) else format_time(value)


# Characters that change how the text around them reads (bidirectional overrides and
# isolates, zero-width marks): shown as their code, so a name cannot pose as another.
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF, *range(0x202A, 0x202F),
              *range(0x2066, 0x206A)}


def shown(text: str, keep_newlines: bool = False) -> str:
    """Publisher text with control and invisible characters made visible (escaping for HTML
    is the template's)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in _INVISIBLE or 0xD800 <= code < 0xE000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


FILTERS: dict[str, Callable[..., str]] = {"size": human_size, "moment": moment, "shown": shown}
