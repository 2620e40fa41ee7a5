"""Where seedvault keeps its state, and the limits it enforces.

`SEEDVAULT_HOME` puts everything (config, keys, vault) under one directory; without it,
the platform's user directories are used (XDG on Linux). `config/seedvault.toml` holds the
client's settings (today one: `registry = "URL"`, the registry used when a command needs
one and `--registry` is not given; `SEEDVAULT_REGISTRY` overrides it).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from seedvault._text import quote, toml_error
from seedvault.errors import UsageError

APP_NAME = "seedvault"

# A safetensors header is JSON; safetensors itself refuses headers above 100 MB.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
# An envelope pins files by digest; even a model of 100k shards stays far below this.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_FILES_PER_MANIFEST = 100_000
# Signatures per envelope, refused at parse before any is checked: a publisher and its
# approvers need a handful; junk padding must not cost a verification each.
MAX_SIGNATURES = 64
# Nesting of any JSON document read from outside; a statement needs 5 levels.
MAX_JSON_DEPTH = 64
# A file path in a manifest: bytes, components, bytes per component. 1024 leaves room for
# the vault's own prefix below Linux's PATH_MAX (4096) and macOS's (1024 for the whole
# path is the practical limit there: such a path is refused when written, clearly).
MAX_PATH_BYTES = 1024
MAX_PATH_COMPONENTS = 32
MAX_COMPONENT_BYTES = 255
# BitTorrent v2 leaf size (BEP 52); fixed by the protocol.
MERKLE_BLOCK_SIZE = 16 * 1024
DEFAULT_PIECE_LENGTH = 4 * 1024 * 1024
# libtorrent refuses pieces above 256 MiB; a swarm buffers whole pieces, so stay well below.
MAX_PIECE_LENGTH = 64 * 1024 * 1024
# Files are read in chunks of this size: bounded memory, large enough to amortize syscalls.
READ_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Paths:
    """All on-disk locations, derived from one or two roots."""

    config_dir: Path
    data_dir: Path

    @property
    def policy_file(self) -> Path:
        return self.config_dir / "policy.toml"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "seedvault.toml"

    @property
    def keys_dir(self) -> Path:
        return self.config_dir / "keys"

    @property
    def vault_dir(self) -> Path:
        return self.data_dir / "vault"


def paths(home: str | os.PathLike[str] | None = None) -> Paths:
    """Resolve state locations: explicit home, then $SEEDVAULT_HOME, then platform dirs."""
    root = home if home is not None else os.environ.get("SEEDVAULT_HOME")
    if root:
        base = Path(root).expanduser().absolute()
        return Paths(config_dir=base / "config", data_dir=base / "data")
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
    )


def worker_count() -> int:
    """Threads for hashing: hashlib releases the GIL, so one per core is the limit."""
    override = os.environ.get("SEEDVAULT_WORKERS")
    if override and override.isdigit() and int(override) > 0:
        return int(override)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


CLIENT_SETTINGS = ("registry",)


def default_registry(where: Paths) -> str | None:
    """The registry URL to use when none is given: $SEEDVAULT_REGISTRY, else `registry` in
    config/seedvault.toml, else None. A settings file that does not read is an error, never
    ignored."""
    env = os.environ.get("SEEDVAULT_REGISTRY", "").strip()
    if env:
        return env
    path = where.settings_file
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        place, hint = toml_error(exc)
        raise UsageError(f"settings file {path}: expected TOML, found invalid data {place}",
                         hint=f'{hint}; it holds lines such as: registry = "http://registry.internal:8470"') from None
    unknown = sorted(set(data) - set(CLIENT_SETTINGS))
    if unknown:
        raise UsageError(f"settings file {path}: unknown setting {quote(unknown[0])}; expected "
                         + ", ".join(CLIENT_SETTINGS))
    value = data.get("registry")
    if value is not None and (not isinstance(value, str) or not value.startswith(("http://", "https://"))):
        raise UsageError(f"settings file {path}: registry must be an http(s) URL in quotes",
                         hint='registry = "http://registry.internal:8470"')
    return value
