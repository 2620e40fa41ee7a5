"""The registry node (aiohttp app, SQLite index, tracker, web seed, mirror) and its client."""

from seedvault.registry.app import create_app
from seedvault.registry.client import RegistryClient
from seedvault.registry.config import NodeConfig
from seedvault.registry.mirror import SyncReport, sync

__all__ = ["NodeConfig", "RegistryClient", "SyncReport", "create_app", "sync"]
