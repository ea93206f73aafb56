"""zepix_store: a database per Zepix strategy plugin, shared or isolated, and a lossless move of the history."""

from importlib.metadata import PackageNotFoundError, version

from .config import PluginConfig, StoreConfig, load_config
from .errors import (
    ConfigError,
    CorruptDatabaseError,
    IsolationError,
    RowError,
    SchemaError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreIOError,
    UnknownPluginError,
    VerifyError,
)
from .plugin_store import PluginStore
from .registry import Store
from .rows import Trade
from .schema import SCHEMA_VERSION

try:
    __version__ = version("zepix-store")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "CorruptDatabaseError",
    "IsolationError",
    "PluginConfig",
    "PluginStore",
    "RowError",
    "SCHEMA_VERSION",
    "SchemaError",
    "Store",
    "StoreBusyError",
    "StoreConfig",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "Trade",
    "UnknownPluginError",
    "VerifyError",
    "load_config",
]
