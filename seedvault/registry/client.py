"""A small synchronous client for a registry node's JSON API.

The node is never trusted: envelopes it returns are judged under the caller's policy,
torrents are checked against the signed binding, bytes are verified. This client only
moves data; every transport failure becomes a TransferError, and every response is read
with a size bound.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from seedvault import _json
from seedvault.errors import (
    Error,
    NotFoundError,
    OversizeError,
    PolicyError,
    RollbackError,
    TransferError,
    UsageError,
    VerificationError,
    by_name,
)
from seedvault.manifest import Manifest
from seedvault.settings import MAX_ENVELOPE_BYTES, READ_CHUNK
from seedvault.signing import Envelope

MAX_JSON_RESPONSE = 64 * 1024 * 1024
TIMEOUT = 30.0
MAX_ERROR_BODY = 64 * 1024  # an error body is a short JSON object; more is not read
MAX_ERROR_TEXT = 2000  # characters of a server's message repeated to the user


class RegistryClient:
    def __init__(self, base_url: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"registry URL: expected http(s)://HOST[:PORT], found {base_url!r}")
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
                data = resp.read(limit + 1)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, method, url) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransferError(f"{method} {url}: the registry did not answer ({exc})",
                                hint="check the --registry URL and that the node is running") from None
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
        return list(self._json("GET", "/v1/models?" + urlencode(query))["models"])

    def all_releases(self, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every listed release, page by page."""
        offset = 0
        while True:
            batch = self.search(limit=page, offset=offset)
            yield from batch
            if len(batch) < page:
                return
            offset += len(batch)

    def versions(self, name: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/models/{_q(name)}")["versions"])

    def envelope(self, name: str, version: str) -> Envelope:
        raw = self._request("GET", f"/v1/models/{_q(name)}/{quote(version, safe='')}/envelope",
                            limit=MAX_ENVELOPE_BYTES)
        return Envelope.from_json(raw, f"envelope from {self.base_url}")

    def torrent(self, name: str, version: str) -> bytes:
        return self._request("GET", f"/v1/models/{_q(name)}/{quote(version, safe='')}/torrent",
                             limit=MAX_ENVELOPE_BYTES)

    # ---- writing ----------------------------------------------------------------------------
    def push(
        self, envelope: Envelope, files_dir: Path, progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Upload an envelope, then each file the node still needs, streamed."""
        manifest = Manifest.from_payload(envelope.payload)
        result = self._json("POST", "/v1/envelopes", body=envelope.to_json(),
                            headers={"Content-Type": "application/json"})
        for item in result.get("needed", []):
            path = str(item["path"])
            manifest.file(path)  # the node may only ask for files the manifest lists
            with open(files_dir / path, "rb") as f:
                result = self._json("PUT", f"/v1/uploads/{result['digest']}/{quote(path)}",
                                    data_stream=_Chunks(f, progress), length=(files_dir / path).stat().st_size,
                                    headers={"Content-Type": "application/octet-stream"})
        return dict(result)

    def approve(self, name: str, version: str, envelope: Envelope) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/models/{_q(name)}/{quote(version, safe='')}/approvals",
                               body=envelope.to_json(), headers={"Content-Type": "application/json"}))

    def yank(self, name: str, version: str, token: str) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/v1/models/{_q(name)}/{quote(version, safe='')}",
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


def _q(name: str) -> str:
    ns, _, model = name.partition("/")
    return f"{quote(ns, safe='')}/{quote(model, safe='')}"


def _http_error(exc: urllib.error.HTTPError, method: str, url: str) -> Error:
    """The node's refusal as the very error class it raised (its JSON `type`), so a refusal
    over HTTP means what it means locally; a type seedvault does not know falls back on the
    status. Only classes of seedvault's hierarchy are ever built from what a server says."""
    kind: object = None
    try:
        body = json.loads(exc.read(MAX_ERROR_BODY))["error"]
        message, hint, kind = str(body["message"])[:MAX_ERROR_TEXT], body.get("hint"), body.get("type")
        hint = str(hint)[:MAX_ERROR_TEXT] if hint else None
    except (ValueError, KeyError, TypeError):
        message, hint = str(exc.reason)[:MAX_ERROR_TEXT], None
    text = f"registry refused {method} {url} ({exc.code}): {message}"
    cls = by_name(kind) or _BY_STATUS.get(exc.code, TransferError)
    return cls(text, hint=hint)


_BY_STATUS: dict[int, type[Error]] = {
    400: UsageError, 401: PolicyError, 403: PolicyError, 404: NotFoundError, 409: RollbackError, 413: OversizeError,
    422: VerificationError,
}
