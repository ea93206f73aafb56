"""A handle follows its plugin's route: a move made by another process (`zepix-store flip`) is seen at the next call.

The route is the plugin's config.json (`database.use_shared`). Each call compares the file's identity (inode,
mtime, size: one stat) with the one it was read at, and only when it differs loads the configs again (checked as
at start; a config that no longer loads makes that call raise its ConfigError, and the next call tries again).
A flip rewrites config.json by atomic rename, so the identity always changes with the route.

A write also holds the plugin's writers' lock shared (writer_lock.py) and checks the route under it: a flip
rewrites config.json while it holds that lock exclusively, so a write that got its hold after the rewrite sees the
new route, and one that got it before committed before the flip's last round read the old place.

Only the plugin's own config.json is watched: a change to store.yaml (shared_db, data_dir) needs a restart.
"""

from __future__ import annotations

import json
import os

from .config import PluginConfig, StoreConfig, load_config
from .writer_lock import SharedWriterLock, writers_lock_path

__all__ = ["RouteFollower"]

_Identity = tuple[int, int, int, int] | None
_UNREAD = "unread"


def _identity(path: str) -> _Identity:
    try:
        st = os.stat(path)
    except OSError:
        return None  # gone or unreadable: the reload says why
    return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size


class RouteFollower:
    """One handle's view of where `plugin_id` is routed now, and its side of the plugin's writers' lock.

    `config.plugins[plugin_id]` is kept current, so whatever else reads that config sees the new route too.
    """

    def __init__(self, config: StoreConfig, plugin_id: str) -> None:
        self._config = config
        self.plugin_id = plugin_id
        self._plugin = config.plugin(plugin_id)
        self._file = os.fspath(self._plugin.config_path)  # stat'ed at every call: no Path conversion there
        # Unknown until the first call: the file may have changed between the load and now, so that call reads
        # it once (stat first, then read: a change meanwhile shows at the call after).
        self._seen: _Identity | str = _UNREAD
        self.writers = SharedWriterLock(writers_lock_path(config.data_dir, plugin_id), plugin_id, config.data_dir)

    def plugin(self) -> PluginConfig:
        """The plugin's config as its config.json says now (read again only when the file changed)."""
        seen = _identity(self._file)
        if seen != self._seen or seen is None:
            if self._seen is _UNREAD and seen is not None and self._routes_as_loaded():
                self._seen = seen
            else:
                self._reload(seen)
        return self._plugin

    def _routes_as_loaded(self) -> bool:
        """Whether config.json still says the use_shared it was loaded with (all a flip changes)."""
        try:
            doc = json.loads(self._plugin.config_path.read_bytes())
            return doc["database"]["use_shared"] is self._plugin.use_shared
        except (OSError, ValueError, KeyError, TypeError):
            return False  # the full load says what is wrong

    def _reload(self, seen: _Identity) -> None:
        plugin = load_config(self._config.config_dir, strict=False).plugin(self.plugin_id)
        self._config.plugins[self.plugin_id] = self._plugin = plugin
        self._file = os.fspath(plugin.config_path)
        self._seen = seen

    def close(self) -> None:
        self.writers.close()
