"""Load and check `store.yaml` and every `plugins/<id>/config.json`.

Pure: this module reads the config files (and the environment variable a `postgresql.dsn_env` names) and nothing
else. It never opens a database, creates a file or folder,
or prints. Every problem is one `ConfigError` line, `<file>: <field>: <problem>`, raised before the caller touches
anything on disk.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from zepix_store._config_io import (
    MAX_CONFIG_BYTES,
    _describe,
    _error,
    _IsolationConfigError,
    _key,
    _one_line,
    _parse_json,
    _parse_yaml,
    _resolve_dir,
    _resolve_inside,
    _show,
)
from zepix_store._config_pg import PostgresConfig, backend_of
from zepix_store.attribution import DEFAULT_MAPPING_COLUMNS, AttributionRules
from zepix_store.errors import ConfigError, UnknownPluginError
from zepix_store.schema import TRADES
from zepix_store.timefmt import LOCAL, resolve_zone

__all__ = [
    'MAX_CONFIG_BYTES',
    'PLUGIN_FILE',
    'PLUGIN_ID_PATTERN',
    'PluginConfig',
    'PostgresConfig',
    'STORE_FILE',
    'StoreConfig',
    'load_config',
    'validate_plugin_id',
]

PLUGIN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
STORE_FILE = "store.yaml"
PLUGIN_FILE = "config.json"

_STORE_KEYS = ("data_dir", "shared_db", "backup_dir", "plugins_dir", "default_plugin_id", "mapping")
# absent: DEFAULT_MAPPING_COLUMNS, LOCAL, sqlite and no block (_config_pg.py checks the last two)
_OPTIONAL_STORE_KEYS = ("mapping_columns", "timezone", "backend", "postgresql")
_DATABASE_KEYS = frozenset({"use_shared", "shared_db", "isolated_db", "path", "backup_enabled"})


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """Where one plugin's rows live, from its `config.json`."""

    plugin_id: str
    use_shared: bool
    shared_db: Path
    isolated_db: Path | None
    config_path: Path
    backup_enabled: bool = True  # false: no automatic pre-change backup of its own file (the bot template's key)

    def __post_init__(self) -> None:
        if not self.use_shared and self.isolated_db is None:
            raise ValueError(f"{self.config_path}: an isolated plugin needs isolated_db")

    @property
    def db_path(self) -> Path:
        """Return the file this plugin reads and writes now."""
        if self.use_shared or self.isolated_db is None:
            return self.shared_db
        return self.isolated_db


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The whole checked configuration: `store.yaml` plus every plugin config."""

    config_dir: Path
    root: Path
    data_dir: Path
    shared_db: Path
    backup_dir: Path
    plugins_dir: Path
    default_plugin_id: str
    mapping: dict[str, str]
    plugins: dict[str, PluginConfig]
    mapping_columns: tuple[str, ...] = DEFAULT_MAPPING_COLUMNS
    timezone: str = LOCAL
    backend: str = "sqlite"  # or "postgresql" (then `postgresql` is set)
    postgresql: PostgresConfig | None = None
    # plugin (folder name) -> why its own config.json was refused; only a lenient load (Store.open) keeps any
    disabled: dict[str, ConfigError] = field(default_factory=dict)

    @property
    def rules(self) -> AttributionRules:
        """How legacy rows are attributed (SPEC 5): mapping, default id and mapping columns."""
        return AttributionRules(self.mapping, self.default_plugin_id, self.mapping_columns)

    @property
    def zone(self) -> datetime.tzinfo:
        """The zone of naive legacy times and of day boundaries (store.yaml `timezone`)."""
        return resolve_zone(self.timezone)

    def plugin(self, plugin_id: str) -> PluginConfig:
        """Return the config of `plugin_id`.

        Raises:
            UnknownPluginError: no folder of `plugins_dir` holds a config for this id.
        """
        if isinstance(plugin_id, str) and plugin_id in self.disabled:
            raise self.disabled[plugin_id]
        try:
            return self.plugins[plugin_id]
        except (KeyError, TypeError):
            known = ", ".join(self.plugins) or "none"
            close = difflib.get_close_matches(plugin_id, list(self.plugins), n=1) if isinstance(plugin_id, str) else []
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UnknownPluginError(
                f"{self.plugins_dir}: plugin_id: no plugin config for {_show(plugin_id)}{hint} (known: {known})"
            ) from None


@dataclass(frozen=True, slots=True)
class _StoreFile:
    path: Path
    data_dir: Path
    shared_db: Path
    backup_dir: Path
    plugins_dir: Path
    default_plugin_id: str
    mapping: dict[str, str]
    mapping_columns: tuple[str, ...]
    timezone: str
    backend: str
    postgresql: PostgresConfig | None


def validate_plugin_id(value: object, where: str) -> str:
    """Return `value` if it is a valid plugin id, else raise ConfigError prefixed with `where`."""
    if not isinstance(value, str):
        raise _one_line(f"{where}: must be a string, got {_describe(value)}")
    # fullmatch: `$` alone would accept a trailing newline
    if value in (".", "..") or PLUGIN_ID_PATTERN.fullmatch(value) is None:
        raise _one_line(
            f"{where}: {_show(value)} is not a valid plugin id (1-64 of a-z 0-9 . _ -, starting with a-z or 0-9)"
        )
    return value


def load_config(config_dir: str | os.PathLike[str], *, strict: bool = True,
                store_doc: dict[str, object] | None = None) -> StoreConfig:
    """Read and check `<config_dir>/store.yaml` and every plugin config under its `plugins_dir`.

    Relative paths resolve against the parent of `config_dir`, never the working directory. `store_doc` checks
    that content as if it were the store.yaml there (init, before it writes one). With
    `strict=False` (a running bot), a plugin whose own config.json is malformed or invalid is left out and
    its error kept in `disabled`; store.yaml errors and whatever endangers isolation (two configs with one id,
    the shared file claimed as an isolated one, a path out of data_dir) are still refused.

    Raises:
        ConfigError: any file or field is invalid; the message names both.
    """
    if "\x00" in os.fspath(config_dir):
        raise _one_line(f"{_show(os.fspath(config_dir))}: config dir: contains a NUL byte")
    folder = Path(os.path.abspath(config_dir))  # not realpath: a symlinked configs/ keeps its own parent as root
    root = folder.parent
    store = _load_store_file(folder / STORE_FILE, root, store_doc)
    plugins, disabled = _load_plugins(store, root, strict)
    for logic_type, target in store.mapping.items():
        if target not in plugins and target not in disabled:
            raise _error(store.path, f"mapping.{_key(logic_type)}", f"mapping target {target!r} has no plugin config")
    return StoreConfig(
        config_dir=folder,
        root=root,
        data_dir=store.data_dir,
        shared_db=store.shared_db,
        backup_dir=store.backup_dir,
        plugins_dir=store.plugins_dir,
        default_plugin_id=store.default_plugin_id,
        mapping=store.mapping,
        plugins=dict(sorted(plugins.items())),
        mapping_columns=store.mapping_columns,
        timezone=store.timezone,
        backend=store.backend,
        postgresql=store.postgresql,
        disabled=disabled,
    )


# --- store.yaml ---------------------------------------------------------------------------------------------------


def _load_store_file(path: Path, root: Path, raw: object = None) -> _StoreFile:
    if raw is None and not path.exists() and not path.is_symlink():
        where = "no such folder" if not path.parent.exists() else "not found"
        raise _error(path, "file", f"{where}: name the folder that holds store.yaml and plugins/ "
                                   "(commands: --config DIR, the library: Store.open(DIR)); the default is "
                                   "configs/ in the folder you run from (commands also look in its parents)")
    raw = _parse_yaml(path) if raw is None else raw
    if not isinstance(raw, dict):
        raise _error(path, "top level", f"must be a mapping, got {_describe(raw)}")
    for key in raw:
        if key not in _STORE_KEYS + _OPTIONAL_STORE_KEYS:
            raise _error(path, _key(key), f"unknown key (expected {', '.join(_STORE_KEYS + _OPTIONAL_STORE_KEYS)})")
    for key in _STORE_KEYS:
        if key not in raw:
            raise _error(path, key, "missing")
    text = {key: _yaml_str(path, key, raw[key]) for key in _STORE_KEYS if key != "mapping"}
    data_dir = _resolve_dir(path, "data_dir", text["data_dir"], root)
    backend, postgresql = backend_of(path, raw)
    return _StoreFile(
        path=path,
        data_dir=data_dir,
        shared_db=_resolve_inside(path, "shared_db", text["shared_db"], root, data_dir),
        backup_dir=_resolve_inside(path, "backup_dir", text["backup_dir"], root, data_dir, is_file=False),
        plugins_dir=_resolve_plugins_dir(path, text["plugins_dir"], root),
        default_plugin_id=validate_plugin_id(text["default_plugin_id"], f"{path}: default_plugin_id"),
        mapping=_mapping(path, raw["mapping"]),
        mapping_columns=_mapping_columns(path, raw.get("mapping_columns", list(DEFAULT_MAPPING_COLUMNS))),
        timezone=_timezone(path, raw.get("timezone", LOCAL)),
        backend=backend,
        postgresql=postgresql,
    )


def _mapping_columns(path: Path, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise _error(path, "mapping_columns", f"must be a list of trades columns, got {_describe(raw)}")
    columns: list[str] = []
    for index, value in enumerate(raw):
        field = f"mapping_columns[{index}]"
        column = _yaml_str(path, field, value)
        if column not in TRADES.column_names:
            raise _error(path, field, f"{column!r} is not a column of the trades table")
        if column in columns:
            raise _error(path, field, f"{column!r} is listed twice")
        columns.append(column)
    return tuple(columns)


def _timezone(path: Path, raw: object) -> str:
    name = _yaml_str(path, "timezone", raw)
    try:
        resolve_zone(name)
    except ValueError as exc:
        raise _error(path, "timezone", str(exc)) from None
    return name


def _mapping(path: Path, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _error(path, "mapping", f"must be a mapping of logic_type to plugin_id, got {_describe(raw)}")
    mapping: dict[str, str] = {}
    for key, value in raw.items():
        field = f"mapping.{_key(key)}"
        logic_type = _yaml_str(path, field, key, what="key")
        mapping[logic_type] = validate_plugin_id(_yaml_str(path, field, value), f"{path}: {field}")
    return mapping


def _yaml_str(path: Path, field: str, value: object, what: str = "value") -> str:
    if not isinstance(value, str):
        # YAML turns unquoted no/off/0755/2024-01-01 into bool, int or date
        hint = "; quote it in store.yaml" if isinstance(value, (int, float, datetime.date)) else ""
        raise _error(path, field, f"{what} must be a string, got {_describe(value)}{hint}")
    return value


def _resolve_plugins_dir(path: Path, raw: str, root: Path) -> Path:
    plugins_dir = _resolve_dir(path, "plugins_dir", raw, root)
    if not os.path.isdir(plugins_dir):
        raise _error(path, "plugins_dir", f"{plugins_dir} is not a folder")
    return plugins_dir


# --- plugins/<id>/config.json -------------------------------------------------------------------------------------




def _load_plugins(store: _StoreFile, root: Path, strict: bool = True
                  ) -> tuple[dict[str, PluginConfig], dict[str, ConfigError]]:
    files = {name: store.plugins_dir / name / PLUGIN_FILE for name in _plugin_folders(store.plugins_dir)}
    docs: dict[str, dict[str, object]] = {}
    disabled: dict[str, ConfigError] = {}
    for name, file in files.items():
        try:
            docs[name] = _parse_json(file)
            _plugin_id(file, docs[name])
        except ConfigError as exc:
            if strict:
                raise
            docs.pop(name, None)
            disabled[name] = exc
    owners: dict[str, Path] = {}
    for name, doc in docs.items():
        plugin_id = _plugin_id(files[name], doc)
        if plugin_id in owners:
            # name first the copy whose folder does not match: that is the one to fix
            first, second = (files[name], owners[plugin_id]) if name != plugin_id else (owners[plugin_id], files[name])
            raise _error(first, "plugin_id", f"{plugin_id!r} is also claimed by {second}")
        owners[plugin_id] = files[name]
    plugins: dict[str, PluginConfig] = {}
    for name, doc in docs.items():
        try:
            plugins[name] = _plugin_config(files[name], name, doc, store, root)
        except _IsolationConfigError:
            raise
        except ConfigError as exc:
            if strict:
                raise
            disabled[name] = exc
    return plugins, disabled


def _plugin_folders(plugins_dir: Path) -> list[str]:
    try:
        with os.scandir(plugins_dir) as entries:
            # `_template` and hidden folders are not plugins (the bot's registry skips `_` folders too), nor
            # is a folder without a config.json
            names = sorted(entry.name for entry in entries if not entry.name.startswith((".", "_"))
                           and entry.is_dir() and os.path.lexists(os.path.join(entry.path, PLUGIN_FILE)))
    except OSError as exc:
        raise _error(plugins_dir, "folder", f"cannot list ({exc.strerror})") from exc
    for name in names:
        validate_plugin_id(name, f"{plugins_dir / name}: folder name")
    return names


def _plugin_id(path: Path, doc: dict[str, object]) -> str:
    if "plugin_id" not in doc:
        raise _error(path, "plugin_id", "missing")
    return validate_plugin_id(doc["plugin_id"], f"{path}: plugin_id")


def _plugin_config(path: Path, folder: str, doc: dict[str, object], store: _StoreFile, root: Path) -> PluginConfig:
    plugin_id = _plugin_id(path, doc)
    if plugin_id != folder:
        raise _error(path, "plugin_id", f"{plugin_id!r} differs from its folder name {folder!r}")
    if plugin_id == store.default_plugin_id:
        raise _error(path, "plugin_id", f"{plugin_id!r} is reserved: it is default_plugin_id in {store.path}")
    block = _database_block(path, doc)
    shared_db = store.shared_db
    if block.shared is not None:
        shared_db = _resolve_inside(path, "database.shared_db", block.shared, root, store.data_dir)
        if shared_db != store.shared_db:
            problem = f"{shared_db} differs from shared_db {store.shared_db} in {store.path}"
            raise _error(path, "database.shared_db", problem)
    isolated_db = None
    if block.isolated is not None:
        isolated_db = _resolve_inside(path, block.isolated_field, block.isolated, root, store.data_dir)
        if isolated_db == shared_db:
            raise _IsolationConfigError(f"{path}: {block.isolated_field}: is the shared database {shared_db}; "
                                        "name a file of its own")
    return PluginConfig(plugin_id, block.use_shared, shared_db, isolated_db, path, block.backup_enabled)


@dataclass(frozen=True, slots=True)
class _DatabaseBlock:
    use_shared: bool
    shared: str | None
    isolated: str | None
    isolated_field: str
    backup_enabled: bool


def _database_block(path: Path, doc: dict[str, object]) -> _DatabaseBlock:
    block = doc.get("database")
    if "database" not in doc:
        raise _error(path, "database", 'missing (add {"use_shared": ..., "shared_db": ..., "isolated_db": ...}, '
                                       'or the bot template\'s {"path": ...})')
    if not isinstance(block, dict):
        raise _error(path, "database", f"must be an object, got {_describe(block)}")
    for key in block:
        if key not in _DATABASE_KEYS:
            raise _error(path, f"database.{_key(key)}", f"unknown key (expected {', '.join(sorted(_DATABASE_KEYS))})")
    if "path" in block and "isolated_db" in block:
        raise _error(path, "database.path", "names the isolated file, as isolated_db does: give one of the two")
    template = "path" in block  # the bot's plugin template: {"path": ..., "backup_enabled": ...}
    isolated_field = "database.path" if template else "database.isolated_db"
    use_shared = _json_bool(path, "database.use_shared", block, None if template else "missing (true or false)")
    backup_enabled = _json_bool(path, "database.backup_enabled", block, None)
    shared = block.get("shared_db")
    if not isinstance(shared, str) and (shared is not None or not template):
        raise _error(path, "database.shared_db", f"must be a string, got {_describe(shared)}")
    isolated = block.get("path" if template else "isolated_db")
    if isolated is None and not use_shared:
        raise _error(path, isolated_field, "required when use_shared is false")
    if isolated is not None and not isinstance(isolated, str):
        raise _error(path, isolated_field, f"must be a string, got {_describe(isolated)}")
    return _DatabaseBlock(bool(use_shared), shared, isolated, isolated_field,
                          True if backup_enabled is None else backup_enabled)


def _json_bool(path: Path, field_name: str, block: dict[str, object], missing: str | None) -> bool | None:
    """A JSON boolean of `block`; None when absent and `missing` is None (else absent is that error)."""
    key = field_name.rpartition(".")[2]
    if key not in block:
        if missing is not None:
            raise _error(path, field_name, missing)
        return None
    value = block[key]
    if not isinstance(value, bool):
        raise _error(path, field_name, f"must be true or false (a JSON boolean), got {_describe(value)}")
    return value


