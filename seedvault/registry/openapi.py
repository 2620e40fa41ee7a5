"""The OpenAPI 3.1 description of the registry node's API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "an error a person can act on",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_PART = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}
_MODEL_PARAMS = [
    {"name": "ns", "in": "path", "required": True, "schema": _PART},
    {"name": "name", "in": "path", "required": True, "schema": _PART},
]
_VERSION_PARAMS = [*_MODEL_PARAMS,
                   {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}]
_JSON = {"application/json": {"schema": {"type": "object"}}}
_ENVELOPE_BODY = {"required": True,
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
_ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


def _op(summary: str, params: list[dict[str, Any]] | None = None, ok: str = "200", **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [],
                          "responses": {ok: {"description": "success", "content": _JSON},
                                        "400": _ERROR, "403": _ERROR, "404": _ERROR, "422": _ERROR}}
    op.update(extra)
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "seedvault registry node", "version": "1"},
    "paths": {
        "/health": {"get": _op("liveness")},
        "/openapi.json": {"get": _op("this OpenAPI document")},
        "/v1/models": {"get": _op("list and search releases", [
            {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "text in name, publisher, notes"},
            {"name": "publisher", "in": "query", "schema": {"type": "string"}, "description": "publisher key id"},
            {"name": "license", "in": "query", "schema": {"type": "string"}, "description": "SPDX expression"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        ])},
        "/v1/models/{ns}/{name}": {
            "get": _op("versions of a model", _MODEL_PARAMS),
            "delete": _op("remove a model (admin)", _MODEL_PARAMS, security=_ADMIN),
        },
        "/v1/models/{ns}/{name}/{version}": {
            "get": _op("a release: statement, signers and the node's verdict", _VERSION_PARAMS),
            "delete": _op("yank a release (admin)", _VERSION_PARAMS, security=_ADMIN),
        },
        "/v1/models/{ns}/{name}/{version}/envelope": {"get": _op("the signed DSSE envelope", _VERSION_PARAMS)},
        "/v1/models/{ns}/{name}/{version}/torrent": {"get": _op(
            "the BitTorrent v2 torrent, with this node as web seed and tracker", _VERSION_PARAMS)},
        "/v1/models/{ns}/{name}/{version}/approvals": {"post": _op(
            "add countersignatures by approver keys over the stored payload", _VERSION_PARAMS,
            requestBody=_ENVELOPE_BODY)},
        "/v1/envelopes": {"post": _op(
            "publish step 1: an envelope the node's policy accepts; answers which files to upload",
            ok="202", requestBody=_ENVELOPE_BODY)},
        "/v1/uploads/{digest}/{path}": {"put": _op(
            "publish step 2: one file's bytes (exactly its manifest size); the release appears when all "
            "files are in and verified", [
                {"name": "digest", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            ], ok="201",
            requestBody={"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                               "format": "binary"}}}})},
        "/webseed/{digest}/{tail}": {"get": _op("file bytes with HTTP Range (BEP 19 web seed)", [
            {"name": "digest", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "tail", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "<torrent name>/<file path>, or <file path> for a single-file torrent"},
        ])},
        "/announce": {"get": _op("BitTorrent tracker announce (BEP 3, compact peers BEP 23)")},
    },
    "components": {
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}},
            }}},
            "Envelope": {"type": "object", "required": ["payloadType", "payload", "signatures"], "properties": {
                "payloadType": {"const": "application/vnd.in-toto+json"},
                "payload": {"type": "string", "contentEncoding": "base64"},
                "signatures": {"type": "array", "items": {"type": "object", "properties": {
                    "keyid": {"type": "string"}, "sig": {"type": "string", "contentEncoding": "base64"}}}},
            }},
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
