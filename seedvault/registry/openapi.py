"""The OpenAPI 3.1 description of the registry node's API, served at /openapi.json.

It documents every status and content type the node sends (a test runs Schemathesis with
all its checks against a live node): each operation lists its own successes and refusals,
and `default` is the JSON error document any other refusal carries.
"""

from __future__ import annotations

from typing import Any

_ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}
_HEADER_TEXT = {"schema": {"type": "string"}}


def _error(description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    if headers:
        out["headers"] = {name.replace("_", "-"): {"description": text, "required": True, **_HEADER_TEXT}
                          for name, text in headers.items()}
    return out


_COMMON_ERRORS = {
    "400": _error("the request is malformed (a parameter, a path, a body)"),
    "404": _error("no such model, release, file or upload"),
    "405": _error("the method is not allowed on this path", Allow="the methods that are"),
    "422": _error("the data is refused: bad signature, digest, manifest or weights"),
    "default": _error("any other refusal, as the same JSON error document"),
}
_UNAUTHORIZED = _error("a credential is needed (admin or upload token)",
                       WWW_Authenticate='the scheme, `Bearer realm="seedvault"`')
_BUSY = _error("the node is at one of its bounds (request bodies in memory, uploads, connections)",
               Retry_After="seconds to wait before retrying")
_BODY_ERRORS = {
    "403": _error("signatures verify, but the node's policy does not accept them"),
    "408": _error("the client stopped sending the request body"),
    "413": _error("the body is larger than its bound"),
    "503": _BUSY,
}

_PART = {"type": "string", "pattern": r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$"}
_VERSION = {"type": "string", "pattern": r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?$"}
_DIGEST = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_MODEL_PARAMS = [
    {"name": "ns", "in": "path", "required": True, "schema": _PART},
    {"name": "name", "in": "path", "required": True, "schema": _PART},
]
_VERSION_PARAMS = [*_MODEL_PARAMS, {"name": "version", "in": "path", "required": True, "schema": _VERSION}]
# A release's own page: `head` there is the model's head (see /v1/models/{ns}/{name}/head).
_RELEASE_PARAMS = [*_MODEL_PARAMS, {"name": "version", "in": "path", "required": True,
                                    "schema": {**_VERSION, "not": {"const": "head"}}}]
_OBJECT = {"type": "object"}
_ENVELOPE_BODY = {"required": True,
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
_ADMIN: list[dict[str, list[str]]] = [{"admin": []}]
_UPLOADER: list[dict[str, list[str]]] = [{"upload": []}]
_TEXT_FILTER = {"type": "string", "maxLength": 256, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}


def _ok(description: str, content_type: str = "application/json", schema: dict[str, Any] | None = None,
        **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {content_type: {"schema": schema or (_OBJECT if "json" in content_type
                                                                            else {"type": "string"})}}}
    if headers:
        out["headers"] = {name.replace("_", "-"): {"description": text, **_HEADER_TEXT}
                          for name, text in headers.items()}
    return out


def _op(summary: str, params: list[dict[str, Any]] | None = None, responses: dict[str, Any] | None = None,
        **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [],
                          "responses": {**(responses or {"200": _ok("success")}), **_COMMON_ERRORS}}
    op.update(extra)
    return op


def _log_paths() -> dict[str, Any]:
    """The transparency log's routes (registry/log_routes.py), C2SP tlog-tiles and tlog-witness."""
    def path(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    text, octets = "text/plain", "application/octet-stream"
    return {
        "/log/checkpoint": {"get": _op("the log's latest checkpoint (C2SP signed note) with cosignatures", [],
                                       {"200": _ok("a signed checkpoint", text)})},
        "/log/tile/{level}/{tail}": {"get": _op("a hash tile (C2SP tlog-tiles): tail N or N.p/W", [
            path("level"), path("tail")], {"200": _ok("32-byte hashes", octets)})},
        "/log/tile/entries/{tail}": {"get": _op("an entry bundle (C2SP tlog-tiles)", [path("tail")],
                                                {"200": _ok("uint16-length-prefixed entries", octets)})},
        "/log/proof/{digest}": {"get": _op("the .tlog-proof (C2SP tlog-proof) of a release on this node",
                                           [{**path("digest"), "schema": _DIGEST}],
                                           {"200": _ok("a .tlog-proof", text)})},
        "/log/keys": {"get": _op("the log's and this node's witness verifier keys (signed-note vkeys)")},
        "/add-checkpoint": {"post": _op("cosign another log's checkpoint (C2SP tlog-witness)", [],
                                        {"200": _ok("a cosignature line", text),
                                         "409": _ok("the witness's size for the log", "text/x.tlog.size")},
                                        requestBody={"required": True, "content": {text: {"schema": {
                                            "type": "string"}}}})},
    }


def _admin(summary: str, params: list[dict[str, Any]], done: str) -> dict[str, Any]:
    return _op(summary, params, {"200": _ok(done), "401": _UNAUTHORIZED,
                                 "403": _error("admin operations are disabled on this node")}, security=_ADMIN)


_WEB_SEED_OK = {"200": _ok("the whole file", "application/octet-stream", {"type": "string", "format": "binary"}),
                "206": _ok("the requested byte range", "application/octet-stream",
                           {"type": "string", "format": "binary"}, Content_Range="the range sent"),
                "304": {"description": "not modified since the conditional request's validator"},
                "412": {"description": "a precondition (If-Match, If-Unmodified-Since) failed"},
                "416": {"description": "the range is outside the file",
                        "headers": {"Content-Range": {"description": "the file's size", **_HEADER_TEXT}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "seedvault registry node", "version": "1"},
    "paths": {
        "/health": {"get": _op("liveness")},
        "/openapi.json": {"get": _op("this OpenAPI document")},
        "/v1/models": {"get": _op("list and search releases", [
            {"name": "q", "in": "query", "schema": _TEXT_FILTER, "description": "text in name, publisher, notes"},
            {"name": "publisher", "in": "query", "schema": _TEXT_FILTER, "description": "publisher key id"},
            {"name": "license", "in": "query", "schema": _TEXT_FILTER, "description": "SPDX expression"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}},
        ])},
        "/v1/models/{ns}/{name}": {
            "get": _op("versions of a model", _MODEL_PARAMS),
            "delete": _admin("remove a model (admin): no longer served; its bytes are freed after the node's "
                             "removal_grace, or now with purge=true; re-pushing it is refused until the removal is "
                             "lifted", [*_MODEL_PARAMS, {"name": "purge", "in": "query", "schema": {"type": "boolean"},
                                                        "description": "free the model's disk now"}],
                             "the model was removed"),
        },
        "/v1/models/{ns}/{name}/head": {
            "get": _op("the model's signed heads: its head, and the publisher-signed head it refreshes when that "
                       "is another (judge them under your own policy)", _MODEL_PARAMS),
            "post": _op("a new head, accepted by signature under the node's policy and only with a higher "
                        "sequence", _MODEL_PARAMS, {
                            "200": _ok("the head was accepted"), **_BODY_ERRORS,
                            "409": _error("the node holds this head's sequence or a higher one (rollback)"),
                        }, requestBody=_ENVELOPE_BODY),
        },
        "/v1/removed/{ns}/{name}": {
            "delete": _admin("lift the removal of a model (admin), so that it may be pushed or mirrored again",
                             _MODEL_PARAMS, "the removal was lifted"),
        },
        "/v1/models/{ns}/{name}/{version}": {
            "get": _op("a release: statement, signers and the node's verdict", _RELEASE_PARAMS),
            "delete": _admin("yank a release on this node only (admin; a publisher yanks by a signed head)",
                             _RELEASE_PARAMS, "the release was yanked"),
        },
        "/v1/models/{ns}/{name}/{version}/envelope": {"get": _op("the signed DSSE envelope", _VERSION_PARAMS)},
        "/v1/models/{ns}/{name}/{version}/torrent": {"get": _op(
            "the BitTorrent v2 torrent, with this node as web seed and tracker", _VERSION_PARAMS,
            {"200": _ok("the torrent", "application/x-bittorrent", {"type": "string", "format": "binary"})})},
        "/v1/models/{ns}/{name}/{version}/approvals": {"post": _op(
            "add countersignatures by approver keys over the stored payload", _VERSION_PARAMS,
            {"200": _ok("the signatures were added"), **_BODY_ERRORS}, requestBody=_ENVELOPE_BODY)},
        "/v1/envelopes": {"post": _op(
            "publish step 1: an envelope the node's policy accepts; answers which files to upload and the "
            "upload token every later step of this upload must present", None, {
                "200": _ok("the release is already published here"),
                "202": _ok("an upload session was opened", schema={"$ref": "#/components/schemas/UploadSession"}),
                **_BODY_ERRORS,
                "409": _error("another release already has this name and version"),
                "410": _error("the node's admin removed this release"),
                "507": _error("the node cannot store the release (disk space or its staging quota)"),
            }, requestBody=_ENVELOPE_BODY)},
        "/v1/uploads/{digest}/{path}": {"put": _op(
            "publish step 2: one file's bytes (exactly its manifest size); the release appears when all "
            "files are in and verified", [
                {"name": "digest", "in": "path", "required": True, "schema": _DIGEST},
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            ], {
                "201": _ok("the last file: the release was verified and published"),
                "202": _ok("the file was received; others are still needed"),
                "401": _UNAUTHORIZED, "408": _BODY_ERRORS["408"], "413": _BODY_ERRORS["413"],
                "409": _error("another release already has this name and version"),
                "410": _error("the node's admin removed this release during the upload"),
                "503": _BUSY,
                "507": _error("the node's disk cannot hold the file; nothing of it was kept"),
            }, security=_UPLOADER,
            requestBody={"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                               "format": "binary"}}}})},
        "/v1/uploads/{digest}": {"delete": _op(
            "abort an upload (only with its upload token)",
            [{"name": "digest", "in": "path", "required": True, "schema": _DIGEST}],
            {"200": _ok("the upload was aborted and its files dropped"), "401": _UNAUTHORIZED},
            security=_UPLOADER)},
        "/webseed/{digest}/{tail}": {"get": _op("file bytes with HTTP Range (BEP 19 web seed)", [
            {"name": "digest", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "tail", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "<torrent name>/<file path>, or <file path> for a single-file torrent"},
        ], _WEB_SEED_OK)},
        "/announce": {"get": _op(
            "BitTorrent tracker announce (BEP 3, compact peers BEP 23); refusals are bencoded failure reasons",
            [{"name": n, "in": "query", "schema": {"type": "string"}}
             for n in ("info_hash", "peer_id", "port", "left", "event", "numwant")],
            {"200": _ok("a bencoded announce answer or failure reason", "text/plain")})},
        **_log_paths(),
    },
    "components": {
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}},
            }}},
            "Envelope": {"type": "object", "required": ["payloadType", "payload", "signatures"], "properties": {
                "payloadType": {"const": "application/vnd.in-toto+json"},
                "payload": {"type": "string", "contentEncoding": "base64", "minLength": 4},
                "signatures": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["keyid", "sig"], "properties": {
                        "keyid": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "sig": {"type": "string", "contentEncoding": "base64", "minLength": 4}}}},
            }},
            "UploadSession": {"type": "object", "required": ["digest", "status", "needed", "upload_token"],
                              "properties": {
                "digest": _DIGEST, "status": {"const": "uploading"}, "upload_url": {"type": "string"},
                "upload_token": {"type": "string", "description": "send as 'Authorization: Bearer <token>'"},
                "needed": {"type": "array", "items": {"type": "object", "required": ["path", "size"], "properties": {
                    "path": {"type": "string"}, "size": {"type": "integer", "minimum": 0}}}},
            }},
        },
        "securitySchemes": {
            "admin": {"type": "http", "scheme": "bearer", "description": "the node's admin_token"},
            "upload": {"type": "http", "scheme": "bearer", "description": "the upload_token of POST /v1/envelopes"},
        },
    },
}
