"""Registry node configuration: TOML, with every field optional and validated."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedvault._text import listing, toml_error
from seedvault.errors import UsageError
from seedvault.registry.database import redacted

MAX_JSON_BODY = 16 * 1024 * 1024  # envelopes are small; anything bigger is refused
# Bounds a node keeps against slow or numerous clients (each configurable, see NodeConfig).
MAX_CONNECTIONS = 512  # well under the usual 1,024 file descriptors: the node keeps some for its vault and swarm
HEADER_TIMEOUT = 20.0  # seconds to send a request's headers (and to idle between keep-alive requests)
BODY_TIMEOUT = 60.0  # seconds without a byte of a request body before the request is dropped
MAX_BODY_MEMORY = 64 * 1024 * 1024  # request bodies held in memory at once, all requests together
MAX_UPLOADS = 64  # upload sessions open at once
REMOVAL_GRACE = 86400.0  # seconds an admin-removed model's bytes stay on disk (its removal can be lifted meanwhile)
_POSITIVE = {"max_connections": int, "header_timeout": float, "body_timeout": float, "max_body_memory": int,
             "max_uploads": int, "max_staging_bytes": int}


@dataclass(frozen=True)
class NodeConfig:
    """Where the node listens, whose state it uses, and what it mirrors.

    The node's trust policy is the policy file of its home (`seedvault --home H trust ...`):
    the node accepts, serves and mirrors only what that policy accepts.
    """

    host: str = "127.0.0.1"
    port: int = 8470
    home: Path | None = None  # None: $SEEDVAULT_HOME or the user dirs
    public_url: str | None = None  # how clients reach this node; default http://host:port
    admin_token: str | None = None  # bearer token for yank/remove; None disables them
    swarm_listen: str = "127.0.0.1:0"  # the node's own BitTorrent seed
    upstreams: tuple[str, ...] = ()
    mirror_interval: float | None = None  # seconds between syncs while serving; None: no sync
    seed: bool = True
    max_connections: int = MAX_CONNECTIONS
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    max_body_memory: int = MAX_BODY_MEMORY
    max_uploads: int = MAX_UPLOADS
    max_staging_bytes: int | None = None  # bytes of unfinished uploads at once; None: only free disk bounds it
    removal_grace: float = REMOVAL_GRACE  # seconds before a removed model's bytes are freed; 0: at the next pass
    # The transparency log (seedvault.tlog): its origin (default: the name in config/log.key,
    # else this node's URL without scheme), the logs it witnesses, the witnesses it asks.
    log_origin: str | None = None
    # The log key's file (default: config/log.key). Nodes sharing a database share one log,
    # so each must be given a copy of the same key file; a node with another is refused.
    log_key: Path | None = None
    witness_for: tuple[str, ...] = ()  # verifier keys (vkeys) of logs this node cosigns
    witnesses: tuple[str, ...] = ()  # "URL VKEY" of each witness asked to cosign this node's log
    # The index: None, the SQLite file in the node's home; "postgresql://..." one PostgreSQL
    # database that several nodes of one registry share (each with its own home and vault).
    database_url: str | None = None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> NodeConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            close = [m for u in unknown for m in difflib.get_close_matches(u, sorted(known), 1)]
            raise UsageError(f"{source}: unknown {'setting' if len(unknown) == 1 else 'settings'} "
                             f"{listing(unknown)}; expected some of {listing(sorted(known), len(known))}",
                             hint=f"did you mean {listing(close)}?" if close else None)
        values: dict[str, Any] = dict(data)
        if "home" in values:
            values["home"] = Path(str(values["home"])).expanduser()
        if "log_key" in values:
            if not isinstance(values["log_key"], str | Path) or not str(values["log_key"]):
                raise UsageError(f"{source}: log_key must be the path of the log key file, "
                                 f"found {_shown(values['log_key'])}")
            values["log_key"] = Path(str(values["log_key"])).expanduser()
        if "upstreams" in values:
            ups = values["upstreams"]
            if not isinstance(ups, list) or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                                                    for u in ups):
                raise UsageError(f"{source}: upstreams must be a list of http(s) URLs, found {_shown(ups)}")
            values["upstreams"] = tuple(u.rstrip("/") for u in ups)
        for key in ("witness_for", "witnesses"):
            if key in values:
                if not isinstance(values[key], list) or not all(isinstance(v, str) for v in values[key]):
                    raise UsageError(f"{source}: {key} must be a list of strings, found {_shown(values[key])}")
                values[key] = tuple(values[key])
        port = values.get("port", cls.port)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise UsageError(f"{source}: port must be an integer 0-65535, found {_shown(port)}")
        for key, kind in _POSITIVE.items():
            if key not in values:
                continue
            value = values[key]
            number = isinstance(value, int | float) if kind is float else isinstance(value, int)
            if not number or isinstance(value, bool) or value <= 0:
                raise UsageError(f"{source}: {key} must be a positive number, found {_shown(value)}")
        _check_removal_grace(values, source)
        _check_database_url(values, source)
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"config file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            where, hint = toml_error(exc)
            raise UsageError(f"config file {path}: expected TOML, found invalid data {where}", hint=hint) from None
        return cls.from_dict(data, str(path))



def _check_removal_grace(values: dict[str, Any], source: str) -> None:
    """`removal_grace` may be 0 (free a removed model's bytes at the node's next pass)."""
    value = values.get("removal_grace", REMOVAL_GRACE)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise UsageError(f"{source}: removal_grace must be a number of seconds, 0 or more, found {_shown(value)}")
    values["removal_grace"] = float(value)


def _check_database_url(values: dict[str, Any], source: str) -> None:
    url = values.get("database_url")
    if url is None:
        return
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        shown = _shown(redacted(url) if isinstance(url, str) else url)
        raise UsageError(f"{source}: database_url must be a PostgreSQL URL (postgresql://user@host:port/db), "
                         f"found {shown}", hint="leave it out to keep the index in SQLite in the node's home")


def _shown(value: Any) -> str:
    """A TOML value as a person wrote it, not a Python repr (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list of " + ", ".join(_shown(v) for v in value[:5]) + (" ..." if len(value) > 5 else "")
    if isinstance(value, str):
        return f'"{value[:80]}"'
    return str(value)[:80]
