"""zepix_store: a database per Zepix strategy plugin, shared or isolated, and a lossless move of the history."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    StoreUnavailableError,
    UnknownPluginError,
    VerifyError,
)
from .plugin_store import PluginStore
from .registry import Store, install_mover
from .rows import Trade
from .schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from .ops.flip import FlipReport

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
    "StoreUnavailableError",
    "Trade",
    "UnknownPluginError",
    "VerifyError",
    "load_config",
]


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed metadata when first asked (importlib.metadata slows every start)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("zepix-store")
    except PackageNotFoundError:  # run from a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found


def _move_with_flip(config_dir: str, plugin_id: str, to: str, *, prune: bool = False) -> FlipReport:
    """Store.move_plugin's mover: the file tooling's flip, imported only when a move is asked for."""
    from .ops.flip import flip

    return flip(config_dir, plugin_id, to, prune=prune)


# The package wires the tooling into the core here, so that registry.py never imports ops/ (tests/test_layout.py).
install_mover(_move_with_flip)
