"""A small synchronous client for a registry node's JSON API.

The node is never trusted: envelopes it returns are judged under the caller's policy,
torrents are checked against the signed binding, bytes are verified. This client only
moves data; every transport failure becomes a TransferError, and every response is read
with a size bound.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from seedvault import _json
from seedvault._text import cut
from seedvault._text import quote as quote_text
from seedvault.errors import (
    Error,
    NotFoundError,
    OversizeError,
    PolicyError,
    RemovedError,
    RollbackError,
    SignatureError,
    TransferError,
    UnauthorizedError,
    UsageError,
    VerificationError,
    YankedError,
    by_name,
)
from seedvault.head import Head
from seedvault.manifest import Manifest, check_model_name, check_version
from seedvault.settings import MAX_ENVELOPE_BYTES, READ_CHUNK
from seedvault.signing import Envelope

MAX_JSON_RESPONSE = 64 * 1024 * 1024
TIMEOUT = 30.0
MAX_ERROR_BODY = 64 * 1024  # an error body is a short JSON object; more is not read
MAX_ERROR_TEXT = 2000  # characters of a server's message repeated to the user
MAX_RESPONSE_TIME = 300.0  # seconds to read one answer: a server dripping bytes is cut off
MAX_LISTING_PAGES = 1000  # pages of a full listing (a million releases at 1000 a page)
MAX_VERSIONS = 100_000
MAX_HEADS = 4  # heads one answer may carry (the head, and the publisher's head it refreshes)
MAX_HEADS_RESPONSE = 4 * 1024 * 1024  # versions of one model a registry may list
# Fields of a listing entry that code reads, with their JSON types; others are passed through.
_ENTRY_TEXT = ("name", "version", "digest")
_ENTRY_OPTIONAL: dict[str, tuple[type, ...]] = {
    "license": (str,), "publisher": (str,), "size": (int,), "yanked": (bool,), "created": (str,),
    "yanked_by_admin": (bool,), "yanked_by_publisher": (str,), "head_sequence": (int,),
    "publisher_keys": (list,), "approver_keys": (list,),
}


class RegistryClient:
    def __init__(self, base_url: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"registry URL: expected http(s)://HOST[:PORT], found {quote_text(base_url)}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    # ---- transport --------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                 limit: int = MAX_JSON_RESPONSE, data_stream: Any = None, length: int | None = None) -> bytes:
        url = self.base_url + path
        hdrs = dict(headers or {})
        payload: Any = body if data_stream is None else data_stream
        if length is not None:
            hdrs["Content-Length"] = str(length)
        req = urllib.request.Request(url, data=payload, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = _read_bounded(resp, limit + 1, time.monotonic() + MAX_RESPONSE_TIME, f"{method} {url}")
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, method, url) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransferError(f"could not reach the registry at {self.base_url} ({method} {path.split('?')[0]}): "
                                f"{_unreachable(exc)}",
                                hint="check the registry URL (--registry, SEEDVAULT_REGISTRY or registry = in "
                                "config/seedvault.toml), that the node is running, and the network between") from None
        if len(data) > limit:
            raise TransferError(f"{method} {url}: expected at most {limit} bytes, the response is longer")
        return bytes(data)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        raw = self._request(method, path, **kw)
        # The one strict reader (seedvault._json): a registry's answer is outside input too.
        return _json.loads(raw, f"{method} {self.base_url}{path}", TransferError)

    # ---- reading ----------------------------------------------------------------------------
    def search(self, text: str | None = None, *, publisher: str | None = None, license: str | None = None,
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        query = {k: v for k, v in {"q": text, "publisher": publisher, "license": license,
                                   "limit": str(limit), "offset": str(offset) if offset else None}.items() if v}
        where = f"listing from {self.base_url}"
        return _listing(self._json("GET", "/v1/models?" + urlencode(query)), "models", limit, where)

    def all_releases(self, page: int = 1000, max_pages: int = MAX_LISTING_PAGES) -> Iterator[dict[str, Any]]:
        """Every listed release, page by page; bounded, since an upstream decides what it sends:
        at most `max_pages` pages, and a page bringing nothing not seen before (an upstream
        that ignores `offset`) ends the listing with an error instead of looping forever."""
        offset = 0
        seen: set[tuple[str, str]] = set()
        for _ in range(max_pages):
            batch = self.search(limit=page, offset=offset)
            fresh = [r for r in batch if (r["name"], r["version"]) not in seen]
            if batch and not fresh:
                raise TransferError(f"listing from {self.base_url}: the page at offset {offset} repeats only "
                                    "releases already listed; expected the next page (the registry ignores offset)")
            seen.update((r["name"], r["version"]) for r in fresh)
            yield from fresh
            if len(batch) < page:
                return
            offset += len(batch)
        raise TransferError(f"listing from {self.base_url}: expected at most {max_pages} pages of {page} releases, "
                            "found more", hint="mirror fewer releases per upstream, or raise the bound")

    def versions(self, name: str) -> list[dict[str, Any]]:
        return _listing(self._json("GET", f"/v1/models/{_q(name)}"), "versions", MAX_VERSIONS,
                        f"versions of {name} from {self.base_url}")

    def envelope(self, name: str, version: str) -> Envelope:
        raw = self._request("GET", f"/v1/models/{_q(name)}/{quote(version, safe='')}/envelope",
                            limit=MAX_ENVELOPE_BYTES)
        return Envelope.from_json(raw, f"envelope from {self.base_url}")

    def heads(self, name: str) -> list[Envelope]:
        """The heads the registry serves for `name` (its head, and the publisher-signed head that
        one refreshes), unjudged; none when it has no head. Each is judged by the caller."""
        where = f"heads of {name} from {self.base_url}"
        try:
            doc = self._json("GET", f"/v1/models/{_q(name)}/head", limit=MAX_HEADS_RESPONSE)
        except NotFoundError:
            return []
        items = doc.get("heads") if isinstance(doc, dict) else None
        if not isinstance(items, list) or len(items) > MAX_HEADS:
            raise TransferError(f"{where}: expected a JSON object with a list \"heads\" of at most {MAX_HEADS} "
                                "envelopes, found something else")
        return [Envelope.from_dict(item, f"{where}, head {i + 1}") for i, item in enumerate(items)]

    def put_head(self, envelope: Envelope) -> dict[str, Any]:
        name = _head_name(envelope)
        return _answer(self._json("POST", f"/v1/models/{_q(name)}/head", body=envelope.to_json(),
                                  headers={"Content-Type": "application/json"}), f"head of {name} to {self.base_url}")

    def torrent(self, name: str, version: str) -> bytes:
        return self._request("GET", f"/v1/models/{_q(name)}/{quote(version, safe='')}/torrent",
                             limit=MAX_ENVELOPE_BYTES)

    # ---- writing ----------------------------------------------------------------------------
    def push(
        self, envelope: Envelope, files_dir: Path, progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Upload an envelope, then each file the node still needs, streamed, under the upload
        token the node gave for this push. Returns only once the release is published (or was
        already there), checked by fetching it back; anything else raises, never returns quietly."""
        manifest = Manifest.from_payload(envelope.payload)
        where = f"push {manifest.ref} to {self.base_url}"
        result = _answer(self._json("POST", "/v1/envelopes", body=envelope.to_json(),
                                    headers={"Content-Type": "application/json"}), where)
        if result.get("status") != "present":
            token = result.get("upload_token")
            if not isinstance(token, str) or not token.isascii() or not token.isprintable():
                raise TransferError(f"{where}: expected an upload token in the registry's answer, found none")
            try:
                result = self._upload(manifest, envelope.digest, files_dir, _needed(result, manifest, where),
                                      token, where, progress)
            except Error:
                self._abort(envelope.digest, token)  # the staging goes now, not at the node's idle timeout
                raise
        status = result.get("status")
        if status not in ("published", "present"):
            needed = result.get("needed")
            left = len(needed) if isinstance(needed, list) else "some"
            raise TransferError(f"{where}: expected the release published after the last file, found status "
                                f"{_shown(status)} with {left} files still needed",
                                hint="run push again; if it keeps failing, see the registry's log")
        self._check_published(manifest, envelope.digest, where)
        return result

    def _upload(self, manifest: Manifest, digest: str, files_dir: Path, needed: list[str], token: str,
                where: str, progress: Callable[[int], None] | None) -> dict[str, Any]:
        result: dict[str, Any] = {"status": "uploading", "needed": needed}
        headers = {"Content-Type": "application/octet-stream", "Authorization": f"Bearer {token}"}
        for path in needed:
            with open(files_dir / path, "rb") as f:
                result = _answer(self._json("PUT", f"/v1/uploads/{digest}/{quote(path)}",
                                            data_stream=_Chunks(f, progress), length=manifest.file(path).size,
                                            headers=headers), where)
        return result

    def _abort(self, digest: str, token: str) -> None:
        with contextlib.suppress(Error):
            self._request("DELETE", f"/v1/uploads/{digest}", headers={"Authorization": f"Bearer {token}"},
                          limit=MAX_ERROR_BODY)

    def _check_published(self, manifest: Manifest, digest: str, where: str) -> None:
        try:
            served = self.envelope(manifest.name, manifest.version)
        except Error as exc:
            raise TransferError(f"{where}: the registry said published, but does not serve it ({exc})") from None
        if served.digest != digest:
            raise TransferError(f"{where}: expected the registry to serve digest {digest}, found {served.digest}")

    def approve(self, name: str, version: str, envelope: Envelope) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/models/{_q(name)}/{quote(version, safe='')}/approvals",
                               body=envelope.to_json(), headers={"Content-Type": "application/json"}))

    def yank(self, name: str, version: str, token: str) -> dict[str, Any]:
        """The node's admin yanks a release on this node only (the publisher yanks by a head)."""
        return dict(self._json("DELETE", f"/v1/models/{_q(name)}/{quote(version, safe='')}",
                               headers={"Authorization": f"Bearer {token}"}))

    def remove(self, name: str, token: str, *, purge: bool = False) -> dict[str, Any]:
        """The node's admin removes a model from this node (every version); `purge` frees its
        bytes now rather than after the node's grace period."""
        return dict(self._json("DELETE", f"/v1/models/{_q(name)}" + ("?purge=true" if purge else ""),
                               headers={"Authorization": f"Bearer {token}"}))


class _Chunks:
    """A file as an iterable of chunks, so urllib streams it instead of reading it whole."""

    def __init__(self, f: Any, progress: Callable[[int], None] | None) -> None:
        self.f = f
        self.progress = progress

    def __iter__(self) -> Any:
        while chunk := self.f.read(READ_CHUNK):
            if self.progress:
                self.progress(len(chunk))
            yield chunk


def _read_bounded(resp: Any, limit: int, deadline: float, what: str) -> bytes:
    """At most `limit` bytes of a response, within a deadline: the socket timeout bounds
    each read only, so a server sending a byte just before it expires is cut off here."""
    data = bytearray()
    while len(data) < limit:
        chunk = resp.read1(min(READ_CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
        if time.monotonic() > deadline:
            raise TransferError(f"{what}: the answer took longer than {MAX_RESPONSE_TIME:g} s to arrive; "
                                "expected it sooner", hint="check the registry, or try again later")
    return bytes(data)


def _listing(doc: Any, key: str, limit: int, where: str) -> list[dict[str, Any]]:
    """A listing's entries, checked: at most `limit` of them, each with the name, version and
    digest that callers use, of the right types. A hostile registry gets a clear error, never
    a KeyError or a TypeError."""
    entries = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise TransferError(f"{where}: expected a JSON object with a list \"{key}\", found something else")
    if len(entries) > limit:
        raise TransferError(f"{where}: expected at most {limit} entries, found {len(entries)}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TransferError(f"{where}: entry {i + 1}: expected a JSON object, found another JSON value")
        for field in _ENTRY_TEXT:
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise TransferError(f"{where}: entry {i + 1}: expected text \"{field}\", found "
                                    + ("none" if entry.get(field) is None else "another JSON value"))
        try:
            check_model_name(entry["name"])
            check_version(entry["version"])
        except Error as exc:
            raise TransferError(f"{where}: entry {i + 1}: {exc}") from None
        for field, types in _ENTRY_OPTIONAL.items():
            value = entry.get(field)
            if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
                raise TransferError(f"{where}: entry {i + 1}: \"{field}\" has the wrong JSON type")
        out.append({"license": "", "publisher": "", "size": 0, **{k: v for k, v in entry.items() if v is not None}})
    return out


def _head_name(envelope: Envelope) -> str:
    return Head.from_payload(envelope.payload).name


def _answer(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TransferError(f"{where}: expected a JSON object from the registry, found another JSON value")
    return value


def _needed(result: dict[str, Any], manifest: Manifest, where: str) -> list[str]:
    """The files the node asks for: each listed by the manifest, each once."""
    items = result.get("needed")
    if not isinstance(items, list) or len(items) > len(manifest.files):
        raise TransferError(f"{where}: expected a list of at most {len(manifest.files)} files to upload, "
                            "found something else")
    paths: list[str] = []
    listed = {f.path for f in manifest.files}
    for item in items:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or path not in listed or path in paths:
            raise TransferError(f"{where}: the registry asked for a file the manifest does not list once; "
                                f"expected some of {len(listed)} listed paths")
        paths.append(path)
    return paths


def _shown(value: object) -> str:
    return f'"{value[:40]}"' if isinstance(value, str) else "none" if value is None else "a non-text value"


def _q(name: str) -> str:
    ns, _, model = name.partition("/")
    return f"{quote(ns, safe='')}/{quote(model, safe='')}"


def _http_error(exc: urllib.error.HTTPError, method: str, url: str) -> Error:
    """The node's refusal as the very error class it raised (its JSON `type`), so a refusal
    over HTTP means what it means locally; a type seedvault does not know falls back on the
    status. Only classes of seedvault's hierarchy are ever built from what a server says."""
    kind: object = None
    try:
        body = _json.loads(exc.read(MAX_ERROR_BODY), "error answer", TransferError)["error"]
        # A server's words reach the user's terminal: escaped (no control characters) and cut.
        message, hint, kind = cut(str(body["message"]), MAX_ERROR_TEXT), body.get("hint"), body.get("type")
        hint = cut(str(hint), MAX_ERROR_TEXT) if hint else None
    except (Error, KeyError, TypeError):
        message, hint = cut(str(exc.reason), MAX_ERROR_TEXT), None
    cls = by_name(kind) or _BY_STATUS.get(exc.code, TransferError)
    if issubclass(cls, SignatureError | PolicyError) and not issubclass(cls, UnauthorizedError | RemovedError
                                                                          | YankedError):
        # The node judged it under the node's own trust policy: its hint names the node's
        # local commands, which are not the user's to run.
        return cls(f"the registry at {_base(url)} refused {method} {urlsplit(url).path} ({exc.code}) under the "
                   f"node's trust policy (not yours): {message}",
                   hint="ask the node's operator to trust the signing key for this namespace and role on the "
                   "node (there: seedvault --home NODE_HOME trust add KEY.pub --role ROLE --scope 'NS/*'), or use "
                   "a node that does")
    return cls(f"registry refused {method} {url} ({exc.code}): {message}", hint=hint)


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _unreachable(exc: BaseException) -> str:
    """Why a connection failed, in words (not urllib's `<urlopen error [Errno 111] ...>`)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(reason, ssl.SSLError):
        return "the TLS connection failed (certificate or protocol)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(reason, ConnectionResetError):
        return "the connection was reset"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return "the connection failed"


_BY_STATUS: dict[int, type[Error]] = {
    400: UsageError, 401: PolicyError, 403: PolicyError, 404: NotFoundError, 409: RollbackError, 413: OversizeError,
    422: VerificationError,
}
