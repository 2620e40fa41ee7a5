"""Registry node configuration: TOML, with every field optional and validated."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedvault.errors import UsageError

MAX_JSON_BODY = 16 * 1024 * 1024  # envelopes are small; anything bigger is refused


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

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> NodeConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{source}: unknown settings {unknown}; expected some of {sorted(known)}")
        values: dict[str, Any] = dict(data)
        if "home" in values:
            values["home"] = Path(str(values["home"])).expanduser()
        if "upstreams" in values:
            ups = values["upstreams"]
            if not isinstance(ups, list) or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                                                    for u in ups):
                raise UsageError(f"{source}: upstreams must be a list of http(s) URLs, found {ups!r}")
            values["upstreams"] = tuple(u.rstrip("/") for u in ups)
        port = values.get("port", cls.port)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise UsageError(f"{source}: port must be an integer 0-65535, found {port!r}")
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"config file {path}: expected TOML, found invalid data ({exc})") from None
        return cls.from_dict(data, str(path))


