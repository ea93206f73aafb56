"""init: a store.yaml for the bot's own folder, pointing at its database and its plugin folders.

Read only until the very end: the bot's plugin configs are checked exactly as every command will check them
(config.load_config on the store.yaml about to be written), the legacy file is opened read-only and its trades
attributed in temp tables (attribution.build_owners, as split --dry-run does), and only then are files written:
the plugin configs' copies (`copy`), then configs/store.yaml, each new under its final name or, with `force`,
replacing one that is first kept as `.bak`. A dry run writes nothing.

The mapping is proposed from the distinct text values of the trades' mapping columns: a value maps to a plugin
when it names exactly one (the id itself in any case; or `LOGIC<n>` / `combinedlogic-<n>` in any case, the
bot's V3 combined logic n, to the one plugin whose id carries `logic-<n>`, a V3 one when several do). Every
other value stays unmapped and is listed with its count: re-entries inherit their chain's owner anyway.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import attribution
from .._fs import fsync_path
from ..attribution_report import AttributionReport, attribution_report
from ..backend.sqlite_file import read_snapshot, translated_errors
from ..config import PLUGIN_FILE, STORE_FILE, StoreConfig, load_config
from ..errors import ConfigError
from ..readonly import open_reader
from ..schema import DEFAULT_PLUGIN_ID, TABLES, TRADES

__all__ = ["BOT_DB", "BOT_PLUGINS", "InitReport", "PluginFound", "ValueFound", "init_project", "propose_target"]

BOT_DB = "data/trading_bot.db"
BOT_PLUGINS = "src/logic_plugins"
COPIED_PLUGINS = "configs/plugins"
MAPPING_COLUMNS = ("logic_type", "strategy")
_LOGIC_VALUE = re.compile(r"(?:combinedlogic-|logic)0*(\d+)", re.IGNORECASE)


@dataclass
class PluginFound:
    """One plugin of the bot: its config, where it is routed and what a split would copy."""

    plugin_id: str
    config: str
    route: str  # shared | isolated
    file: str
    trades: int = 0  # trades the attribution gives it in the shared file
    rows: int = 0  # its rows over every table: what a split copies when it is isolated


@dataclass
class ValueFound:
    """A distinct text of a mapping column, how many trades carry it, and the plugin it names (or why none)."""

    column: str
    value: str
    trades: int
    plugin_id: str | None
    why: str


@dataclass
class InitReport:
    root: Path
    store_yaml: Path
    shared_db: Path
    plugins_dir: str
    copy: bool
    dry_run: bool
    shared_exists: bool = False
    shared_trades: int = 0
    shared_migrated: bool = False
    plugins: list[PluginFound] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)  # config file -> why it was refused
    values: list[ValueFound] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    attribution: AttributionReport | None = None
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # .bak copies of files --force replaced
    store_text: str = ""

    @property
    def unmapped(self) -> list[ValueFound]:
        return [v for v in self.values if v.plugin_id is None]

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "store_yaml": str(self.store_yaml), "dry_run": self.dry_run, "copy": self.copy,
            "plugins_dir": self.plugins_dir, "shared_db": str(self.shared_db), "shared_exists": self.shared_exists,
            "shared_migrated": self.shared_migrated, "shared_trades": self.shared_trades,
            "plugins": [vars(p) for p in self.plugins], "disabled": self.disabled,
            "mapping": self.mapping,
            "values": [vars(v) for v in self.values],
            "unmapped": [{"column": v.column, "value": v.value, "trades": v.trades} for v in self.unmapped],
            "attribution": self.attribution.to_json() if self.attribution else None,
            "written": self.written, "kept": self.kept,
        }


def propose_target(value: str, plugin_ids: list[str]) -> tuple[str | None, str]:
    """The plugin `value` names unambiguously, with why; None and why not otherwise."""
    same = [p for p in plugin_ids if p == value.lower()]
    if same:
        return same[0], "the plugin's id"
    match = _LOGIC_VALUE.fullmatch(value)
    if match is None:
        return None, "names no plugin"
    n = int(match.group(1))
    numbered = [p for p in plugin_ids if re.search(rf"logic[-_]?0*{n}(?!\d)", p)]
    if len(numbered) > 1:  # the bot's LOGIC<n> / combinedlogic-<n> are its V3 combined logic
        numbered = [p for p in numbered if "v3" in p or "combined" in p] or numbered
    if len(numbered) == 1:
        return numbered[0], f"logic {n}"
    if not numbered:
        return None, f"logic {n}: no plugin id carries logic-{n}"
    return None, f"logic {n}: several plugins ({', '.join(numbered)})"


def init_project(root: Path, *, copy: bool = False, force: bool = False, dry_run: bool = False) -> InitReport:
    """Find the bot's database and plugins under `root`, propose a mapping and write configs/store.yaml.

    Raises:
        ConfigError: `root` holds no plugin folder, a file to write exists (without `force`), or a config
            endangers isolation (store.yaml's checks, a path out of data/).
    """
    root = Path(os.path.abspath(root))
    configs = root / "configs"
    store_yaml = configs / STORE_FILE
    plugins_src = root / BOT_PLUGINS
    if not plugins_src.is_dir():
        raise ConfigError(f"{plugins_src}: folder: not found; run init in the bot's folder (the one holding "
                          f"{BOT_PLUGINS}/ and data/) or name it with --root", path=plugins_src)
    if store_yaml.exists() and not force:
        raise ConfigError(f"{store_yaml}: file: exists already; init never overwrites it (--force replaces it, "
                          f"keeping {STORE_FILE}.bak)", path=store_yaml)
    report = InitReport(root, store_yaml, root / BOT_DB, COPIED_PLUGINS if copy else BOT_PLUGINS, copy, dry_run)
    config = load_config(configs, strict=False, store_doc=_store_doc(BOT_PLUGINS, {}, []))
    report.disabled = {_shown(root, config.plugins_dir / name / PLUGIN_FILE): str(e)
                       for name, e in config.disabled.items()}
    report.shared_exists = report.shared_db.is_file()
    conn = open_reader(report.shared_db) if report.shared_exists else None
    try:
        if conn is not None:
            _propose_mapping(conn, report, list(config.plugins))
        default = _default_id(config)
        doc = _store_doc(BOT_PLUGINS, report.mapping, [default] if default != DEFAULT_PLUGIN_ID else [])
        config = load_config(configs, strict=False, store_doc=doc)  # the mapping's targets checked too
        buckets = _attribute(conn, config, report) if conn is not None else {}
    finally:
        if conn is not None:
            conn.close()
    for pid, plugin in config.plugins.items():
        where = configs / "plugins" / pid / PLUGIN_FILE if copy else plugin.config_path
        route = "shared" if plugin.use_shared else "isolated"
        found = PluginFound(pid, _shown(root, where), route, _shown(root, plugin.db_path))
        found.trades = report.attribution.by_plugin.get(pid, 0) if report.attribution else 0
        found.rows = sum(attribution.owned_rows(b, pid, config.default_plugin_id) for b in buckets.values())
        report.plugins.append(found)
    report.store_text = _store_text(report.plugins_dir, report.mapping, config.default_plugin_id)
    if not dry_run:
        _write(report, configs, plugins_src, force)
    return report


def _store_doc(plugins_dir: str, mapping: dict[str, str], default: list[str]) -> dict[str, object]:
    return {"data_dir": "data", "shared_db": BOT_DB, "backup_dir": "data/backups", "plugins_dir": plugins_dir,
            "default_plugin_id": default[0] if default else DEFAULT_PLUGIN_ID, "mapping": dict(mapping),
            "mapping_columns": list(MAPPING_COLUMNS), "timezone": "local"}


def _default_id(config: StoreConfig) -> str:
    """`legacy`, unless a plugin of the bot is called that."""
    taken = set(config.plugins) | set(config.disabled)
    return next(c for c in (DEFAULT_PLUGIN_ID, "unattributed", "legacy-unattributed") if c not in taken)


def _shown(root: Path, path: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# --- reading the legacy file ------------------------------------------------------------------------------------


def _propose_mapping(conn: sqlite3.Connection, report: InitReport, plugin_ids: list[str]) -> None:
    """Distinct text values of the mapping columns with their counts, each mapped when it names one plugin."""
    with translated_errors(report.shared_db):
        columns = attribution.source_columns(conn, "main", "trades")
        report.shared_migrated = "plugin_id" in columns
        if not columns:
            return
        report.shared_trades = int(conn.execute("SELECT count(*) FROM main.trades").fetchone()[0])
        for column in MAPPING_COLUMNS:
            if column not in columns:
                continue
            col = TRADES.column_names[TRADES.column_names.index(column)]
            rows = conn.execute(f"SELECT {col}, count(*) FROM main.trades WHERE typeof({col}) = 'text' "
                                f"GROUP BY {col} ORDER BY count(*) DESC, {col}").fetchall()
            for value, count in rows:
                target, why = propose_target(str(value), plugin_ids)  # the same value, the same answer
                report.values.append(ValueFound(column, str(value), int(count), target, why))
                if target is not None:
                    report.mapping[value] = target


def _attribute(conn: sqlite3.Connection, config: StoreConfig,
               report: InitReport) -> dict[str, attribution.TableBuckets]:
    """Who owns each row under the proposed mapping (temp tables only; the file is not written)."""
    with translated_errors(report.shared_db), read_snapshot(conn):
        present = attribution.build_owners(conn, "main", config.rules)
        report.attribution = attribution_report(conn, "main", config.rules, present)
        return {t.name: attribution.count_buckets(conn, "main", t.name) for t in TABLES if t.name in present}


# --- writing ----------------------------------------------------------------------------------------------------


def _store_text(plugins_dir: str, mapping: dict[str, str], default: str) -> str:
    """store.yaml as init writes it: every value a JSON string, which YAML reads as the same string."""
    lines = ["# Written by `zepix-store init` for this bot's folder (SPEC section 3). Paths are relative to the",
             "# folder that holds configs/. Check the mapping, then: zepix-store split --dry-run",
             "data_dir: data", f"shared_db: {BOT_DB}", "backup_dir: data/backups", f"plugins_dir: {plugins_dir}",
             f"default_plugin_id: {_q(default)}  # owner of the trades no mapping or chain gives a plugin",
             f"mapping_columns: [{', '.join(MAPPING_COLUMNS)}]  # the bot keeps its logic in strategy",
             "timezone: local  # the zone of the bot's naive timestamps"]
    if not mapping:
        lines.append("mapping: {}  # no strategy value names a plugin: add value: plugin_id lines here")
    else:
        lines.append("mapping:  # strategy / logic_type value -> plugin_id, exact match")
        lines.extend(f"  {_q(value)}: {_q(plugin)}" for value, plugin in sorted(mapping.items()))
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar, same value


def _write(report: InitReport, configs: Path, plugins_src: Path, force: bool) -> None:
    """Copies first (when asked), store.yaml last: a run stopped half-way leaves no store.yaml to trust."""
    planned: list[tuple[Path, bytes]] = []
    if report.copy:
        for folder in sorted(plugins_src.iterdir()):
            source = folder / PLUGIN_FILE
            if folder.name.startswith((".", "_")) or not source.is_file():
                continue
            planned.append((configs / "plugins" / folder.name / PLUGIN_FILE, source.read_bytes()))
    planned.append((report.store_yaml, report.store_text.encode()))
    clashes = [p for p, data in planned if p.exists() and p.read_bytes() != data and p != report.store_yaml]
    if clashes and not force:
        raise ConfigError(f"{clashes[0]}: file: exists already with other content; init never overwrites it "
                          "(--force replaces it, keeping a .bak)", path=clashes[0])
    if report.copy:
        (configs / "plugins").mkdir(parents=True, exist_ok=True)
    configs.mkdir(parents=True, exist_ok=True)
    for path, data in planned:
        if path.exists() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = _keep(path) if path.exists() else None
        _write_file(path, data, replace=kept is not None)
        report.written.append(_shown(report.root, path))
        if kept is not None:
            report.kept.append(_shown(report.root, kept))


def _keep(path: Path) -> Path:
    """Copy `path` to the first free `<name>.bak`, `<name>.1.bak`, ... and return it."""
    candidates = [path.with_name(f"{path.name}.bak"), *(path.with_name(f"{path.name}.{i}.bak") for i in range(1, 1000))]
    target = next(c for c in candidates if not c.exists())
    _write_file(target, path.read_bytes(), replace=False)
    return target


def _write_file(path: Path, data: bytes, *, replace: bool) -> None:
    """Write `path` whole: a temp file, fsynced, then renamed (replace) or linked (never over a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with open(tmp, "xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError if it appeared meanwhile: never overwritten
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent, directory=True)
